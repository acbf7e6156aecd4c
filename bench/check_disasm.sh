#!/usr/bin/env bash
# Counts runtime calls that must not happen per frame on the DSP thread in the release binary:
# swift_retain / swift_release (ARC) and swift_beginAccess (dynamic exclusivity checks) in the
# specialized per-frame functions. Fails (exit 1) if any is found.
# Usage: bench/check_disasm.sh [BINARY=.build/release/earshot]
set -euo pipefail
BIN=${1:-$(dirname "$0")/../.build/release/earshot}
[[ -x $BIN ]] || { echo "check_disasm: $BIN missing (swift build -c release --static-swift-stdlib --product earshot)" >&2; exit 2; }
command -v objdump >/dev/null || { echo "check_disasm: objdump missing (apt-get install binutils)" >&2; exit 2; }
# Per-frame functions on the DSP thread, FrameBus specializations (the live path); regexes on mangled names.
SYMBOLS=(
    'FrameProcessorC04emitC0_.*AA0C3BusC_Tg5$'                       # FrameProcessor<FrameBus>.emitFrame
    'FrameProcessorC4feed_.*AA0C3BusC_Tg5$'                          # .feed (if not inlined)
    'FrameProcessorC4push_.*AA0C3BusC_Tg5$'                            # .push (if not inlined)
    '8FrameBusC7publishyyAA0C6HeaderVF$'                               # FrameBus.publish
    '9DSPThreadC5drainyyF$'                                            # DSPThread.drain (per period)
    '9DSPThreadC4loopyyF$'                                             # DSPThread.loop
    '9DSPThreadC18runOnCaptureThread.*cfU_(To)?$'                      # the capture thread's per-period call into the DSP stage
    '14EarshotCapture0B6ThreadC6stream'                                # CaptureThread.stream (per period)
    '8FrameBusC17endDeferringWakesyyF$'                                # FrameBus.endDeferringWakes (if not inlined)
    '13FrameAnalyzerC7process'                                         # FrameAnalyzer.process
    '10LevelMeterC7processyySRySfGF$'                                  # LevelMeter.process
    '10LevelMeterC15processChannels'                                   # LevelMeter.processChannels (3…64 channels)
    '10LevelMeterC17monoAfterChannels'                                 # .monoAfterChannels
    '10LevelMeterC14channelSegment'                                    # .channelSegment (if not inlined)
    '23SampleHealthAccumulatorV7measure'                               # SampleHealthAccumulator.measure
)
fail=0
for re in "${SYMBOLS[@]}"; do
    syms=$(nm "$BIN" | awk '{print $3}' | grep -E "$re" || true)
    if [[ -z $syms ]]; then echo "  (no symbol matching $re: inlined or renamed)"; continue; fi
    for s in $syms; do
        body=$(objdump -d --no-show-raw-insn --disassemble="$s" "$BIN")
        r=$(grep -cE 'call.*<swift_(retain|release|bridgeObjectRetain|bridgeObjectRelease)' <<<"$body" || true)
        a=$(grep -cE 'call.*<swift_beginAccess' <<<"$body" || true)
        printf '%-100s retain/release %s  beginAccess %s\n' "$s" "$r" "$a"
        (( r + a > 0 )) && fail=1
    done
done
exit $fail
