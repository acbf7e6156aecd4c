import EarshotDSP
import Foundation
import Testing

/// A deterministic 64-bit LCG + Box–Muller (no Foundation randomness, reproducible).
struct SeededNoise {
    var state: UInt64
    mutating func uniform() -> Double {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return (Double(state >> 11) + 0.5) / Double(1 << 53)
    }
    mutating func gaussian() -> Double {
        sqrt(-2 * log(uniform())) * cos(2 * Double.pi * uniform())
    }
}

@Suite("Onsets")
struct OnsetTests {
    /// 10 s at 48 kHz: decaying 2 kHz + noise-burst clicks at irregular intervals (0.12–0.6 s)
    /// and varying levels (−20 … −3 dBFS) over steady white noise at −46 dBFS.
    static func clickTrack(sampleRate sr: Int = 48_000) -> (samples: [Float], onsets: [Double]) {
        var rng = SeededNoise(state: 0x5eed_cafe)
        let n = 10 * sr
        var x = (0..<n).map { _ in Float(0.005 * rng.gaussian()) }
        var t = 0.3
        var onsets: [Double] = []
        while t < 9.7 {
            onsets.append(t)
            let amp = pow(10, (-20 + 17 * rng.uniform()) / 20)
            let start = Int(t * Double(sr))
            for i in 0..<Int(0.04 * Double(sr)) where start + i < n {
                let env = exp(-Double(i) / (0.008 * Double(sr)))
                let s = 0.6 * sin(2 * Double.pi * 2000 * Double(i) / Double(sr)) + 0.4 * rng.gaussian() * 0.5
                x[start + i] += Float(amp * env * s)
            }
            t += 0.12 + 0.48 * rng.uniform()
        }
        return (x, onsets)
    }

    static func fMeasure(reference: [Double], estimated: [Double], window: Double = 0.05) -> Double {
        var used = [Bool](repeating: false, count: estimated.count)
        var hits = 0
        for r in reference {
            if let j = estimated.indices.filter({ !used[$0] && abs(estimated[$0] - r) <= window })
                .min(by: { abs(estimated[$0] - r) < abs(estimated[$1] - r) })
            {
                used[j] = true
                hits += 1
            }
        }
        let p = estimated.isEmpty ? 0 : Double(hits) / Double(estimated.count)
        let r = reference.isEmpty ? 0 : Double(hits) / Double(reference.count)
        return p + r == 0 ? 0 : 2 * p * r / (p + r)
    }

    @Test("click track: F-measure ≥ 0.95 at ±50 ms with default picker")
    func clickTrackF() throws {
        let (x, truth) = Self.clickTrack()
        let config = AnalyzerConfig()
        let run = try AnalyzerRun(config: config, samples: x)
        // An onset in frame i is reported at the frame's start time plus half a window
        // (the frame's centre), the natural time stamp of a center=False frame.
        let est = run.onsets.map { Double($0.frameIndex) * config.frameDuration + config.windowDuration / 2 }
        let f = Self.fMeasure(reference: truth, estimated: est)
        print("[Onsets] \(truth.count) clicks, \(est.count) detected, F = \(f)")
        #expect(f >= 0.95)
        for e in run.onsets { #expect(e.detectedAtFrame == e.frameIndex + 1) }
    }

    @Test("picker rule: postMax look-ahead, wait, threshold")
    func pickerRule() {
        var c = OnsetPickerConfig()
        c.delta = 1
        c.waitFrames = 3
        c.meanWeight = 1
        c.preMaxFrames = 1
        c.preAvgFrames = 2  // history filled from frame 2 on
        let picker = OnsetPicker(config: c)
        let s: [Float] = [0, 0, 5, 3, 0, 6, 0, 0, 0, 0, 4, 4, 0]
        var events: [OnsetEvent] = []
        for (i, v) in s.enumerated() {
            if let e = picker.process(strength: v, frameIndex: Int64(i)) { events.append(e) }
        }
        // 2 is a peak; 5 is within wait (5-2 = 3 ≥ 3 → allowed); 10 (first of a plateau) is a peak.
        #expect(events.map(\.frameIndex) == [2, 5, 10])
        #expect(events.map(\.detectedAtFrame) == [3, 6, 11])
        #expect(events[0].strength == 5)
    }

    @Test("reset: onset strength and flux restart at 0")
    func resetRestarts() throws {
        let config = AnalyzerConfig()
        let a = try FrameAnalyzer(config: config)
        var rng = SeededNoise(state: 7)
        let x = (0..<config.nFFT).map { _ in Float(0.01 * rng.gaussian()) }
        let y = (0..<config.nFFT).map { _ in Float(1.0 * rng.gaussian()) }
        var lm = [Float](repeating: 0, count: config.nMels)
        var mf = [Float](repeating: 0, count: config.nMFCC)
        var f = FrameFeatures()
        func run(_ s: [Float], _ newCount: Int) {
            s.withUnsafeBufferPointer { p in
                lm.withUnsafeMutableBufferPointer { l in
                    mf.withUnsafeMutableBufferPointer { m in
                        _ = a.process(frame: p, newSampleCount: newCount, features: &f, logmel: l, mfcc: m)
                    }
                }
            }
        }
        // superflux (lag 2): strength 0 for the first two frames after the start and after a reset
        run(x, config.nFFT)
        #expect(f.onsetStrength == 0 && f.flux == 0)
        run(y, config.hop)
        #expect(f.onsetStrength == 0 && f.flux > 0)
        run(y, config.hop)
        // a 40 dB rise over frame 0 (the fast-starting background level has climbed ~30 dB by frame 2)
        #expect(f.onsetStrength > 0, "a 40 dB rise over frame 0")
        a.reset()
        run(y, config.nFFT)
        #expect(f.onsetStrength == 0 && f.flux == 0)
        run(x, config.hop)
        #expect(f.onsetStrength == 0)
        #expect(a.frameIndex == 5)
    }
}
