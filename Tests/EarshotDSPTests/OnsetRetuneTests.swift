import EarshotDSP
import Testing

/// ``OnsetPicker/retune(_:)``: new parameters take effect at the next frame, keeping the history.
@Suite("Onset picker retune")
struct OnsetRetuneTests {
    /// A strength sequence with a peak of `height` every 10 frames over a flat 1.
    static func strengths(_ n: Int, height: Float) -> [Float] {
        (0..<n).map { $0 % 10 == 5 ? height : 1 }
    }

    func onsets(_ picker: OnsetPicker, _ s: ArraySlice<Float>, from index: Int) -> [Int64] {
        var out: [Int64] = []
        for (i, x) in s.enumerated() {
            if let e = picker.process(strength: x, frameIndex: Int64(index + i)) { out.append(e.frameIndex) }
        }
        return out
    }

    @Test func retunedDeltaTakesEffectAtOnceWithoutReset() {
        var c = OnsetPickerConfig()
        c.delta = 2
        c.meanWeight = 1
        let picker = OnsetPicker(config: c)
        let s = Self.strengths(200, height: 5)
        let first = onsets(picker, s[0..<100], from: 0)
        // the peak at frame 5 comes before the 10 frames of history are filled
        #expect(first == [15, 25, 35, 45, 55, 65, 75, 85, 95], "\(first)")
        var high = c
        high.delta = 10
        #expect(picker.retune(high))
        #expect(picker.config.delta == 10)
        #expect(onsets(picker, s[100..<150], from: 100).isEmpty, "delta 10 must reject peaks of 4 above the mean")
        #expect(picker.retune(c))
        // Back to delta 2: every peak is found again from the next one on.
        let back = onsets(picker, s[150..<200], from: 150)
        #expect(back == [155, 165, 175, 185, 195], "\(back)")
    }

    @Test func historyIsKeptAcrossARetune() {
        // A peak 2 frames after the retune: the picker that kept its history decides on it at once; a reset
        // picker (control) must first refill its history (no decision on an empty history).
        var c = OnsetPickerConfig()
        c.delta = 0.5
        c.meanWeight = 1
        c.postMaxFrames = 0
        c.preMaxFrames = 0
        let kept = OnsetPicker(config: c)
        let reset = OnsetPicker(config: c)
        var s: [Float] = (0..<40).map { 10 + Float($0) * 0.01 }
        s[22] = 12
        #expect(onsets(kept, s[0..<20], from: 0).isEmpty)
        _ = onsets(reset, s[0..<20], from: 0)
        var d = c
        d.delta = 0.4
        #expect(kept.retune(d))
        reset.reset()
        #expect(reset.retune(d))
        #expect(onsets(kept, s[20..<40], from: 20) == [22])
        #expect(onsets(reset, s[20..<40], from: 20).isEmpty, "control: a reset picker waits for its history")
    }

    @Test func lookAheadAndOversizedHistoryAreRefused() {
        let picker = OnsetPicker(config: OnsetPickerConfig())
        var c = OnsetPickerConfig()
        c.postMaxFrames = 0
        #expect(!picker.retune(c))
        c = OnsetPickerConfig()
        c.preAvgFrames = OnsetPicker.maxHistoryFrames + 1
        #expect(!picker.retune(c))
        c.preAvgFrames = OnsetPicker.maxHistoryFrames
        #expect(picker.retune(c))
        #expect(picker.config.preAvgFrames == OnsetPicker.maxHistoryFrames)
    }
}
