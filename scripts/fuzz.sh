#!/bin/bash
# Runs every fuzz target under libFuzzer (+ AddressSanitizer) for FUZZ_SECONDS each (default 300): the WAV reader,
# the command parser, the YAML loader, the analyzer, and (FUZZ_EXTRA_SECONDS each, default FUZZ_SECONDS; `make
# test` gives them 25 s) the analyzer with the IEC band filter bank on, the MQTT spool reader (segment and cursor
# file bytes), the MQTT credentials file and calibrate's YAML line editor.
# Fails on any crash, trap, sanitizer report, leak, input slower than 1 s or using more than 256 MB
# (ASan keeps 16 MB of freed memory in quarantine instead of its default 256 MB, so RSS measures the target).
# The committed corpus (Fuzz/corpus/<target>) is the seed; new inputs found go to a scratch corpus and are
# merged back into the repository's corpus only with FUZZ_MERGE=1. A crashing input is saved as
# Fuzz/artifacts/<target>-crash-…: commit it into Fuzz/corpus/<target>/ once fixed (EarshotFuzzTests replays it).
#   make fuzz                      # 5 minutes per target
#   make fuzz FUZZ_SECONDS=60      # what `make test` runs
#   FUZZ_TARGETS="wav config" make fuzz
#   FUZZ_TARGETS="bands spool credentials editor" make fuzz
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${FUZZ_SECONDS:-300}"
EXTRA_SECONDS="${FUZZ_EXTRA_SECONDS:-$SECONDS_PER_TARGET}"
TARGETS="${FUZZ_TARGETS:-wav command config analyzer bands spool credentials editor}"
SCRATCH=.build-fuzz
build_log="$(mktemp)"
if ! swift build --product earshot-fuzz --scratch-path "$SCRATCH" \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DEARSHOT_LIBFUZZER >"$build_log" 2>&1; then
    grep -Ev "Cannot export local symbol" "$build_log" | tail -40; echo "fuzz: build failed"; exit 1
fi
rm -f "$build_log"
BIN="$SCRATCH/debug/earshot-fuzz"
mkdir -p Fuzz/artifacts
status=0
for t in $TARGETS; do
    case "$t" in
        wav) maxlen=65536 ;; analyzer|bands) maxlen=32768 ;; spool) maxlen=16384 ;; *) maxlen=8192 ;;
    esac
    case "$t" in
        wav|command|config|analyzer) seconds="$SECONDS_PER_TARGET" ;; *) seconds="$EXTRA_SECONDS" ;;
    esac
    work="$(mktemp -d)"
    log="$work/fuzz.log"; mkdir -p "$work/corpus"
    echo "fuzz $t: ${seconds}s, seeds $(ls Fuzz/corpus/$t | wc -l) files"
    if EARSHOT_FUZZ_TARGET="$t" ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=0:quarantine_size_mb=16" "$BIN" \
        -max_total_time="$seconds" -timeout=1 -rss_limit_mb=256 -malloc_limit_mb=256 \
        -max_len="$maxlen" -print_final_stats=1 -artifact_prefix="Fuzz/artifacts/$t-" \
        "$work/corpus" "Fuzz/corpus/$t" >"$log" 2>&1 < /dev/null; then
        runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo "?")
        cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 || true)
        echo "fuzz $t: ok, $runs executions, $cov, corpus $(ls "$work/corpus" 2>/dev/null | wc -l) new inputs"
        if [ "${FUZZ_MERGE:-0}" = 1 ]; then
            EARSHOT_FUZZ_TARGET="$t" "$BIN" -merge=1 -max_len="$maxlen" "Fuzz/corpus/$t" "$work/corpus" >/dev/null 2>&1
            echo "fuzz $t: merged into Fuzz/corpus/$t ($(ls Fuzz/corpus/$t | wc -l) files)"
        fi
    else
        echo "fuzz $t: FAILED"; grep -E "ERROR|SUMMARY|Fatal|fatal|Test unit written|timeout|out-of-memory|crash" "$log" | head -20
        tail -40 "$log"
        status=1
    fi
    rm -rf "$work"
done
exit $status
