#!/usr/bin/env bash
# Paced live-capture benchmark: private PulseAudio null sink <- paplay (looped WAV); earshot run captures the
# sink's monitor through ALSA "pulse" for DURATION seconds and prints NDJSON with --timing.
# Usage: bench/capture.sh [DURATION_S=300]     (env: SKIP_BUILD=1 reuses the release build, WAV=file to play,
#        FEATURES=rms_dbfs, WARMUP_S=2 excluded from the steady-state CPU figure)
# Measures: process CPU (utime+stime from /proc/PID/stat, % of one core), VmHWM, dsp_us and ready_ms
# p50/p99/max, frames vs DURATION*100, discontinuities. Writes bench/data/capture-<N>s.{ndjson,tsv}.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${1:-300}
FEATURES=${FEATURES:-rms_dbfs}
WARMUP_S=${WARMUP_S:-2}
DATA=$ROOT/bench/data
mkdir -p "$DATA"
die() { echo "bench/capture.sh: $*" >&2; exit 1; }
for c in pulseaudio paplay pactl python3; do
    command -v "$c" >/dev/null || die "$c not found (apt-get install pulseaudio pulseaudio-utils libasound2-plugins python3)"
done
[[ -e /usr/lib/x86_64-linux-gnu/alsa-lib/libasound_module_pcm_pulse.so ]] || ls /usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so >/dev/null 2>&1 \
    || die "ALSA pulse plugin missing (apt-get install libasound2-plugins)"

# The same binary `make release`/`make install` produce (statically linked Swift runtime).
if [[ -z "${SKIP_BUILD:-}" ]]; then swift build -c release --static-swift-stdlib --product earshot >&2; fi
BIN=$(swift build -c release --show-bin-path)/earshot
[[ -x $BIN ]] || die "$BIN missing (run swift build -c release)"

WAV=${WAV:-$DATA/bench-600s.wav}
if [[ ! -s $WAV ]]; then
    python3 -c 'import numpy, soundfile' 2>/dev/null || die "numpy/soundfile missing: pip install -r scripts/requirements.txt"
    python3 bench/make_input.py "$WAV" --seconds 600
fi

RT=$(mktemp -d /tmp/earshot-capbench.XXXXXX)
SINK=esbench$$
PA_PID="" PLAY_PID="" ES_PID=""
cleanup() {
    set +e
    [[ -n $ES_PID ]] && kill "$ES_PID" 2>/dev/null
    [[ -n $PLAY_PID ]] && { kill "$PLAY_PID" 2>/dev/null; wait "$PLAY_PID" 2>/dev/null; }
    [[ -f $RT/pid ]] && PA_PID=$(cat "$RT/pid" 2>/dev/null)
    [[ -n $PA_PID ]] && kill "$PA_PID" 2>/dev/null && sleep 0.2
    rm -rf "$RT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export PULSE_RUNTIME_PATH=$RT XDG_RUNTIME_DIR=$RT
printf 'autospawn = no\n' >"$RT/client.conf"
export PULSE_CLIENTCONFIG=$RT/client.conf PULSE_SOURCE=$SINK.monitor PULSE_SINK=$SINK
pulseaudio -n --daemonize=yes --exit-idle-time=-1 --disallow-exit --use-pid-file=yes \
    --load="module-null-sink sink_name=$SINK rate=48000 channels=1" --load=module-native-protocol-unix \
    2>"$RT/pa.log" || { cat "$RT/pa.log" >&2; die "pulseaudio failed to start"; }
for _ in $(seq 100); do [[ -S $RT/native && -s $RT/pid ]] && break; sleep 0.05; done
[[ -S $RT/native ]] || die "pulseaudio socket did not appear"
PA_PID=$(cat "$RT/pid")

# Play the WAV in a loop for the whole run.
# The loop kills its own current paplay (by pid) when it is terminated.
( p=""; trap '[[ -n $p ]] && kill "$p" 2>/dev/null; exit 0' TERM
  while true; do paplay -d "$SINK" "$WAV" & p=$!; wait "$p" || sleep 0.1; done ) &
PLAY_PID=$!
sleep 0.5

OUT=$DATA/capture-${DURATION}s.ndjson
SAMPLES=$DATA/capture-${DURATION}s.proc.tsv
TICK=$(getconf CLK_TCK)
echo "== earshot run --device pulse (PULSE_SOURCE=$SINK.monitor) for ${DURATION}s, features $FEATURES" >&2
START_NS=$(date +%s%N)
"$BIN" run --device pulse --no-socket --stdout --timing --features "$FEATURES" --duration "$DURATION" \
    >"$OUT" 2>"$DATA/capture-${DURATION}s.stderr" &
ES_PID=$!
# Sample /proc/PID/stat (utime+stime, ticks) and VmHWM/VmRSS once a second while it runs.
: >"$SAMPLES"
while kill -0 "$ES_PID" 2>/dev/null; do
    if read -r stat <"/proc/$ES_PID/stat" 2>/dev/null; then
        rest=${stat##*) }
        read -r -a f <<<"$rest"
        hwm=$(awk '/^VmHWM/{print $2}' "/proc/$ES_PID/status" 2>/dev/null || true)
        rss=$(awk '/^VmRSS/{print $2}' "/proc/$ES_PID/status" 2>/dev/null || true)
        # fields after "comm)": state=0 … utime=11 stime=12
        [[ -n $hwm ]] && echo "$(( ($(date +%s%N) - START_NS) / 1000000 )) $(( f[11] + f[12] )) $hwm $rss" >>"$SAMPLES"
    fi
    sleep 1
done
set +e; wait "$ES_PID"; RC=$?; set -e
ES_PID=""
[[ $RC -eq 0 ]] || { tail -20 "$DATA/capture-${DURATION}s.stderr" >&2; die "earshot run exited $RC"; }

echo "load average during run (other users of this machine): $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$DATA/capture-${DURATION}s.load"
python3 - "$OUT" "$SAMPLES" "$DURATION" "$TICK" "$WARMUP_S" "$START_NS" <<'PY' | tee "$DATA/capture-${DURATION}s.txt"
import json, sys
out, samples, dur, tick, warm = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
start_s = int(sys.argv[6]) / 1e9
ts = []
dsp, ready, seqs, disc, gaps, onsets, bad = [], [], [], 0, 0, 0, 0
for line in open(out):
    try:
        d = json.loads(line)
    except ValueError:
        bad += 1; continue
    if d.get("type") == "onset":
        onsets += 1; continue
    if d.get("type") != "frame":
        continue
    seqs.append(d["seq"]); ts.append(d["t"])
    if d.get("discontinuity"):
        disc += 1; gaps += d.get("gap_samples", 0)
    if "dsp_us" in d: dsp.append(d["dsp_us"])
    if "ready_ms" in d: ready.append(d["ready_ms"])
def pct(v, p):
    v = sorted(v); return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] if v else float("nan")
missing = sum(b - a - 1 for a, b in zip(seqs, seqs[1:]) if b != a + 1)
rows = [tuple(map(int, l.split())) for l in open(samples) if len(l.split()) == 4]
if len(rows) < 2:
    sys.exit("capture.sh: too few /proc samples")
steady = [r for r in rows if r[0] >= warm * 1000] or rows
(t0, c0, _, _), (t1, c1, hwm, rss) = steady[0], steady[-1]
cpu_steady = (c1 - c0) / tick / ((t1 - t0) / 1000) * 100 if t1 > t0 else float("nan")
cpu_total = rows[-1][1] / tick / (rows[-1][0] / 1000) * 100
expected = dur * 100
span = round((ts[-1] - ts[0]) * 100) + 1 if ts else 0
print(f"duration {dur:.0f} s; frames {len(seqs)} (expected ~{expected:.0f}, {len(seqs) / expected * 100:.2f}%); "
      f"frames vs first..last frame time span {len(seqs)}/{span}; seq holes {missing}; discontinuities {disc} (gap samples {gaps}); onsets {onsets}; unparsable lines {bad}")
print(f"first frame's first sample captured {ts[0] - start_s:.3f} s after launch; shortfall vs duration*100 = {expected - len(seqs):.0f} frames")
print(f"CPU: steady {cpu_steady:.2f}% of one core (from t={t0/1000:.0f}s to {t1/1000:.0f}s, tick 1/{tick} s); "
      f"whole run incl. startup {cpu_total:.2f}%")
print(f"memory: VmHWM {hwm / 1024:.1f} MB, VmRSS at end {rss / 1024:.1f} MB")
print(f"dsp_us:   p50 {pct(dsp, 50):.2f}  p99 {pct(dsp, 99):.2f}  max {max(dsp):.2f}")
print(f"ready_ms: p50 {pct(ready, 50):.3f}  p99 {pct(ready, 99):.3f}  max {max(ready):.3f}")
ok = lambda c: "MET" if c else "NOT MET"
print(f"targets: CPU <= 1%: {ok(cpu_steady <= 1)}; RSS <= 24 MB: {ok(hwm / 1024 <= 24)}; "
      f"DSP p99 <= 20 us: {ok(pct(dsp, 99) <= 20)}; ready p99 <= 12 ms: {ok(pct(ready, 99) <= 12)}")
PY
