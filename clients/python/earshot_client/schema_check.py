"""Validates NDJSON lines of the daemon against the protocol's JSON Schema.

    python3 -m earshot_client.schema_check FILE.ndjson [--schema protocol-v1.json] [--require-types a,b,...]

(or run this file directly: it needs only `jsonschema`). Prints `ok TYPE COUNT` per message type and
`invalid LINE: REASON` for each failing line; exits 1 when a line fails, when a line's type has no
definition in the schema (the daemon sends a message the schema does not describe), or when a type in
`--require-types` never occurred; 0 otherwise.
"""
import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import jsonschema

DEFAULT_SCHEMA = Path(__file__).with_name("schema") / "protocol-v1.json"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", help="NDJSON file ('-' for stdin)")
    ap.add_argument("--schema", default=str(DEFAULT_SCHEMA))
    ap.add_argument("--require-types", default="", help="comma-separated types that must occur")
    args = ap.parse_args(argv)
    schema = json.loads(Path(args.schema).read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema)
    # The message types the schema describes: the `type` constants its top-level `if`s dispatch on.
    described = {c["if"]["properties"]["type"]["const"] for c in schema.get("allOf", [])}
    counts: Counter = Counter()
    failures = 0
    src = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")
    for n, line in enumerate(src, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            print(f"invalid {n}: not JSON: {e}")
            failures += 1
            continue
        errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
        kind = obj.get("type") if isinstance(obj, dict) else None
        if errors:
            failures += 1
            for e in errors[:3]:
                where = "/".join(str(p) for p in e.absolute_path) or "(top)"
                print(f"invalid {n} ({kind}): {where}: {e.message}")
            continue
        if kind not in described:
            failures += 1
            print(f"invalid {n}: type {kind!r} has no definition in the schema")
            continue
        counts[kind] += 1
    for kind, c in sorted(counts.items()):
        print(f"ok {kind} {c}")
    missing = [t for t in args.require_types.split(",") if t and t not in counts]
    if missing:
        print(f"missing types: {','.join(missing)}")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
