#!/usr/bin/env bash
# Offline throughput benchmark: earshot analyze vs librosa on a deterministic 10-minute 48 kHz WAV.
# Usage: bench/run.sh            (env: RUNS=3 CORE=0 SECONDS_IN=600 SKIP_BUILD=1 to reuse the build)
# Entry point for `make bench`. Prints a table; also writes bench/data/results-run.tsv.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${RUNS:-3}
CORE=${CORE:-0}
SECONDS_IN=${SECONDS_IN:-600}
DATA=$ROOT/bench/data
WAV=$DATA/bench-${SECONDS_IN}s.wav
RES=$DATA/results-run.tsv
mkdir -p "$DATA"

die() { echo "bench/run.sh: $*" >&2; exit 1; }
command -v python3 >/dev/null || die "python3 not found"
[[ -x /usr/bin/time ]] || die "/usr/bin/time not found (apt-get install time)"
command -v taskset >/dev/null || die "taskset not found (util-linux)"
if ! python3 -c 'import numpy, soundfile, librosa' 2>/dev/null; then
    die "numpy/soundfile/librosa missing: pip install -r scripts/requirements.txt"
fi

if [[ -z "${SKIP_BUILD:-}" ]]; then
    echo "== swift build -c release --static-swift-stdlib --product earshot (as make release)" >&2
    swift build -c release --static-swift-stdlib --product earshot >&2
fi
BIN=$(swift build -c release --show-bin-path)/earshot
[[ -x $BIN ]] || die "$BIN missing (run swift build -c release)"

if [[ ! -s $WAV ]]; then
    echo "== generating $WAV" >&2
    python3 bench/make_input.py "$WAV" --seconds "$SECONDS_IN"
fi

# Single-thread figures: pinned to one core; numpy/OpenBLAS told to use one thread too.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1
PIN=(taskset -c "$CORE")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# measure NAME CMD... : runs CMD $RUNS times under /usr/bin/time; keeps the run with the lowest wall time.
# Appends "NAME wall user sys maxrss_kb" (best run) to $RES.
measure() {
    local name=$1; shift
    local best="" line
    for ((i = 1; i <= RUNS; i++)); do
        /usr/bin/time -f '%e %U %S %M' -o "$TMP/t" "$@" >"$TMP/out" 2>"$TMP/err" \
            || { cat "$TMP/err" >&2; die "$name failed: $*"; }
        line=$(tail -1 "$TMP/t")
        echo "   $name run $i: wall/user/sys/maxrss_kb = $line" >&2
        if [[ -z $best ]] || awk -v a="${line%% *}" -v b="${best%% *}" 'BEGIN{exit !(a<b)}'; then
            best=$line; cp "$TMP/out" "$TMP/$name.out"
        fi
    done
    echo "$name $best" >>"$RES"
}

: >"$RES"
echo "== (a) compute-bound: analyze --features rms_dbfs,onset_strength -o /dev/null" >&2
measure a "${PIN[@]}" "$BIN" analyze "$WAV" --features rms_dbfs,onset_strength -o /dev/null
echo "== (b) full NDJSON (default features) -o /dev/null" >&2
measure b "${PIN[@]}" "$BIN" analyze "$WAV" -o /dev/null
echo "== (b') full NDJSON piped through wc -c (earshot pinned; wc free)" >&2
measure bpipe bash -c '"$@" | wc -c' _ "${PIN[@]}" "$BIN" analyze "$WAV"
BYTES=$(tr -d ' \n' <"$TMP/bpipe.out")
echo "== (c) librosa peer (load + melspectrogram + power_to_db + rms + onset_strength)" >&2
for ((i = 1; i <= RUNS; i++)); do
    /usr/bin/time -f '%e %U %S %M' -o "$TMP/t" "${PIN[@]}" python3 bench/librosa_peer.py "$WAV" >"$TMP/lp" \
        || die "librosa peer failed; pip install -r scripts/requirements.txt"
    echo "   librosa run $i: inside=$(cat "$TMP/lp")  process wall/user/sys/maxrss_kb = $(tail -1 "$TMP/t")" >&2
    python3 - "$TMP/lp" "$TMP/t" >>"$TMP/lib" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); w, u, s, m = open(sys.argv[2]).read().split()[-4:]
print(d["seconds"], d["compute_seconds"], d["cpu_seconds"], w, u, s, m)
PY
done
sort -g "$TMP/lib" | head -1 | sed 's/^/librosa_inside /' >>"$RES"
sort -g -k4 "$TMP/lib" | head -1 | awk '{print "librosa_process", $4, $5, $6, $7}' >>"$RES"
echo "bytes $BYTES" >>"$RES"

python3 - "$RES" "$SECONDS_IN" <<'PY'
import sys
rows = {l.split()[0]: l.split()[1:] for l in open(sys.argv[1]) if l.strip()}
dur = float(sys.argv[2])
def f(k): return [float(x) for x in rows[k]]
a, b, bp, li, lp = f("a"), f("b"), f("bpipe"), f("librosa_inside"), f("librosa_process")
nbytes = float(rows["bytes"][0])
lib_t = li[0]
print()
print(f"input: {dur:.0f} s of 48 kHz mono PCM16; best of runs; single core (taskset); wall seconds")
print(f"{'case':<44}{'wall s':>8}{'cpu s':>8}{'RT x':>9}{'vs librosa':>11}{'MB/s':>8}{'maxRSS MB':>10}")
def row(name, w, cpu, rss, ratio="", mbs=""):
    print(f"{name:<44}{w:>8.3f}{cpu:>8.3f}{dur / w:>9.0f}{ratio:>11}{mbs:>8}{rss / 1024:>10.1f}")
row("(a) earshot --features rms_dbfs,onset_str.", a[0], a[1] + a[2], a[3], f"{lib_t / a[0]:.2f}x")
row("(b) earshot all features -o /dev/null", b[0], b[1] + b[2], b[3], mbs=f"{nbytes / b[0] / 1e6:.1f}")
row("(b') earshot all features | wc -c", bp[0], bp[1] + bp[2], bp[3], mbs=f"{nbytes / bp[0] / 1e6:.1f}")
row("(c) librosa, timed inside (load+compute)", li[0], li[2], li[6])
print(f"{'    librosa compute only (no load)':<44}{li[1]:>8.3f}")
row("(c) librosa, whole process", lp[0], lp[1] + lp[2], lp[3])
print(f"NDJSON bytes: {nbytes:.0f} ({nbytes / 1e6:.1f} MB)")
print()
ok = lambda c: "MET" if c else "NOT MET"
print(f"target (a) >= 3000x RT: {ok(dur / a[0] >= 3000)} ({dur / a[0]:.0f}x; stretch 4000x: {ok(dur / a[0] >= 4000)})")
print(f"target (a) >= 3x librosa: {ok(lib_t / a[0] >= 3)} ({lib_t / a[0]:.2f}x; stretch 4x: {ok(lib_t / a[0] >= 4)})")
print(f"target (b) >= 1500x RT: {ok(dur / b[0] >= 1500)} ({dur / b[0]:.0f}x)")
PY
