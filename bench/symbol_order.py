#!/usr/bin/env python3
"""Regenerates Sources/earshot/earshot.order, the linker's symbol ordering file for the `earshot` binary.

Why: the static binary has ~18 MB of text, and the kernel maps 64 KB around every page fault of a file
mapping (fault-around), so the few thousand functions a running daemon executes, scattered over the whole
text, kept ~9 MB of it resident. lld places the sections of the symbols listed in the ordering file first, in
that order, so the executed code sits together and the daemon's resident text shrinks (bench/README.md,
issue 10, "Round 4"). The list only changes the layout: a stale or missing entry costs memory, never
correctness (`--no-warn-symbol-ordering`).

How: runs the release binary (its debug info stripped: valgrind cannot read the DWARF of this toolchain)
under `valgrind --tool=callgrind` on the path `bench/live_cost.py` measures — ALSA's `file` plugin reading a
FIFO written in real time, default configuration — with one subscriber to every stream, one SIGHUP reload
and a clean stop, then writes every function of the binary callgrind saw executed, sorted by name.

Usage (needs valgrind: `sh scripts/install-deps.sh bench`):
  swift build -c release --static-swift-stdlib --product earshot
  python3 bench/symbol_order.py [--seconds 30] [--out Sources/earshot/earshot.order]
  rm .build/release/earshot && swift build -c release --static-swift-stdlib --product earshot
  (the link does not track the file: remove the binary so it is linked again with the new order)
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import live_cost  # noqa: E402  (Writer, Subscriber, material: the same paced FIFO and client as the CPU figures)

ROOT = live_cost.ROOT
STREAMS = ["frame", "rolling", "onset", "alert", "status", "stats", "spectrum"]


def executed_functions(callgrind_out, binary_name):
    """Names of the functions callgrind saw executed in the object `binary_name` (fn= records; with
    --compress-strings=no every record names its object and function in full)."""
    names, ob = set(), ""
    with open(callgrind_out, errors="replace") as f:
        for line in f:
            if line.startswith("ob="):
                ob = line[3:].strip()
            elif line.startswith("fn=") and ob.endswith("/" + binary_name):
                name = line[3:].strip()
                if name and not name.startswith("0x"):
                    names.add(name)
    return names


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, ".build/release/earshot"))
    ap.add_argument("--seconds", type=float, default=30, help="run time under valgrind (before and after the reload)")
    ap.add_argument("--out", default=os.path.join(ROOT, "Sources/earshot/earshot.order"))
    a = ap.parse_args()
    if not shutil.which("valgrind"):
        sys.exit("symbol_order: valgrind missing (sh scripts/install-deps.sh bench)")
    tmp = tempfile.mkdtemp(prefix="earshot-order.")
    try:
        binary = os.path.join(tmp, "earshot")
        subprocess.run(["objcopy", "--strip-debug", a.binary, binary], check=True)
        fifo, env = live_cost.paced_device(tmp, "order")
        sock = os.path.join(tmp, "earshot.sock")
        cfg = live_cost.default_config(tmp, "order", sock)
        out = os.path.join(tmp, "callgrind.out")
        writer = live_cost.Writer(fifo, live_cost.material(), 20)
        writer.start()
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no",
               "--demangle=no", "--compress-strings=no", "--compress-pos=no", binary, "run", "--config", cfg]
        log = open(os.path.join(tmp, "log"), "wb")
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
        sub = None
        try:
            deadline = time.monotonic() + 180
            while not os.path.exists(sock):
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"symbol_order: daemon did not open its socket:\n{open(log.name).read()[-3000:]}")
                time.sleep(0.2)
            sub = live_cost.Subscriber(sock, streams=STREAMS, ping_every=2)
            sub.start()
            time.sleep(a.seconds / 2)
            proc.send_signal(signal.SIGHUP)
            time.sleep(a.seconds / 2)
            if proc.poll() is not None:
                sys.exit(f"symbol_order: daemon exited early:\n{open(log.name).read()[-3000:]}")
        finally:
            if sub: sub.close()
            proc.send_signal(signal.SIGTERM)
            try: proc.wait(120)
            except subprocess.TimeoutExpired: proc.kill(); proc.wait()
            writer.close()
        if not os.path.exists(out):
            sys.exit("symbol_order: callgrind wrote no profile")
        names = executed_functions(out, "earshot")
        if len(names) < 500 or (sub and sub.lines == 0):
            sys.exit(f"symbol_order: implausible profile ({len(names)} functions, {sub.lines if sub else 0} lines)")
        with open(a.out, "w") as f:
            f.write("# Linker symbol ordering file for the `earshot` binary (lld --symbol-ordering-file, Package.swift):\n"
                    "# the functions a running daemon executes, placed together so its resident text stays small.\n"
                    "# Generated by bench/symbol_order.py from a release build; regenerate after large changes.\n")
            for n in sorted(names):
                f.write(n + "\n")
        print(f"symbol_order: {len(names)} functions -> {os.path.relpath(a.out, ROOT)} "
              f"(subscriber read {sub.lines} lines)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
