import EarshotDSP
import Foundation
import Testing

/// The default onset detector (``OnsetFunctionKind/superflux`` + the picker's filled-history rule) on
/// noise, across discontinuities, on percussive hits over noise (including hi-hats above the mel range)
/// and on narrow-band chirps. Signals are synthetic and seeded (the recorded-material comparison with
/// librosa, aubio and essentia is `bench/onset_eval.py`).
@Suite("Onsets in noise")
struct OnsetNoiseTests {
    static let sr = 48_000

    /// Runs `segments` through one analyzer, resetting it (a discontinuity) between segments; returns the
    /// onsets as (segment, seconds from the segment start of the onset frame's centre).
    static func detect(_ segments: [[Float]], config: AnalyzerConfig = AnalyzerConfig()) throws -> [(Int, Double)] {
        let a = try FrameAnalyzer(config: config)
        var lm = [Float](repeating: 0, count: config.nMels)
        var mf = [Float](repeating: 0, count: config.nMFCC)
        var f = FrameFeatures()
        var out: [(Int, Double)] = []
        for (s, x) in segments.enumerated() {
            if s > 0 { a.reset() }
            let first = a.frameIndex
            let n = x.count >= config.nFFT ? 1 + (x.count - config.nFFT) / config.hop : 0
            x.withUnsafeBufferPointer { p in
                for i in 0..<n {
                    let frame = UnsafeBufferPointer(rebasing: p[(i * config.hop)..<(i * config.hop + config.nFFT)])
                    let e = lm.withUnsafeMutableBufferPointer { l in
                        mf.withUnsafeMutableBufferPointer { m in
                            a.process(frame: frame, newSampleCount: i == 0 ? config.nFFT : config.hop, features: &f,
                                      logmel: l, mfcc: m)
                        }
                    }
                    if let e {
                        out.append((s, Double(e.frameIndex - first) * config.frameDuration + config.windowDuration / 2))
                    }
                }
            }
        }
        return out
    }

    /// White (or, `colored`, one-pole low-passed) Gaussian noise at `dbfs` RMS.
    static func noise(seconds: Double, dbfs: Double, seed: UInt64, colored: Bool = false) -> [Float] {
        var rng = SeededNoise(state: seed)
        let n = Int(seconds * Double(sr))
        var x = [Double](repeating: 0, count: n)
        var y = 0.0
        for i in 0..<n {
            let g = rng.gaussian()
            y = colored ? 0.95 * y + g : g
            x[i] = y
        }
        let rms = sqrt(x.reduce(0) { $0 + $1 * $1 } / Double(n))
        let gain = pow(10, dbfs / 20) / rms
        return x.map { Float($0 * gain) }
    }

    enum Hit: CaseIterable { case kick, snare, hat }

    /// A percussive hit of peak amplitude `amp`: kick (falling 60→45 Hz sine, 80 ms), snare (noise + 190 Hz,
    /// 60 ms), hi-hat (noise low-passed by four one-pole stages to ~2 kHz and shifted to 12 kHz: a band of
    /// about 9–15 kHz, above the 8 kHz mel range; 30 ms).
    static func add(_ hit: Hit, at start: Int, amp: Double, into x: inout [Float], rng: inout SeededNoise) {
        let n = min(Int(0.25 * Double(sr)), x.count - start)
        var v = [Double](repeating: 0, count: n)
        var lp = (0.0, 0.0, 0.0, 0.0)
        for i in 0..<n {
            let t = Double(i) / Double(sr)
            switch hit {
            case .kick:
                v[i] = sin(2 * .pi * (45 * t + 15 * 0.03 * (1 - exp(-t / 0.03)))) * exp(-t / 0.08)
            case .snare:
                v[i] = (0.6 * rng.gaussian() * 0.5 + 0.4 * sin(2 * .pi * 190 * t)) * exp(-t / 0.06)
            case .hat:
                lp.0 = 0.7 * lp.0 + 0.3 * rng.gaussian()
                lp.1 = 0.7 * lp.1 + 0.3 * lp.0
                lp.2 = 0.7 * lp.2 + 0.3 * lp.1
                lp.3 = 0.7 * lp.3 + 0.3 * lp.2
                v[i] = lp.3 * cos(2 * .pi * 12_000 * t) * exp(-t / 0.03)
            }
        }
        let peak = v.reduce(0) { max($0, abs($1)) }
        for i in 0..<n { x[start + i] += Float(amp * v[i] / max(peak, 1e-12)) }
    }

    /// A bird-like chirp: a sweep between `f0` and `f1` Hz, `duration` s, 3 ms attack, at `dbfs` RMS.
    static func addChirp(at start: Int, f0: Double, f1: Double, duration: Double, dbfs: Double, into x: inout [Float]) {
        let n = min(Int(duration * Double(sr)), x.count - start)
        let amp = pow(10, dbfs / 20) * sqrt(2)
        for i in 0..<n {
            let t = Double(i) / Double(sr)
            let env = min(1, t / 0.003) * sin(.pi * t / duration).squareRoot()
            x[start + i] += Float(amp * env * sin(2 * .pi * (f0 * t + (f1 - f0) * t * t / (2 * duration))))
        }
    }

    /// Precision and recall of `estimated` against `reference` (one-to-one within ±`window` s).
    static func precisionRecall(_ reference: [Double], _ estimated: [Double], window: Double = 0.05) -> (Double, Double) {
        var used = [Bool](repeating: false, count: estimated.count)
        var hits = 0
        for r in reference {
            if let j = estimated.indices.first(where: { !used[$0] && abs(estimated[$0] - r) <= window }) {
                used[j] = true
                hits += 1
            }
        }
        return (estimated.isEmpty ? 1 : Double(hits) / Double(estimated.count),
                reference.isEmpty ? 1 : Double(hits) / Double(reference.count))
    }

    @Test("no onset in the first frames of noise (24 seeds, white and coloured, −60…−20 dBFS)")
    func noStartupOnset() throws {
        var starts = 0
        for seed in UInt64(1)...24 {
            let db = -60 + Double(seed % 5) * 10
            let x = Self.noise(seconds: 1.5, dbfs: db, seed: seed &* 7919, colored: seed % 2 == 0)
            let onsets = try Self.detect([x])
            starts += onsets.count
            #expect(onsets.isEmpty, "seed \(seed), \(db) dBFS: \(onsets)")
        }
        #expect(starts == 0)
    }

    @Test("no onset right after a discontinuity, even onto a 20 dB louder or brighter noise (12 seeds)")
    func noOnsetAfterDiscontinuity() throws {
        for seed in UInt64(1)...12 {
            let before = Self.noise(seconds: 1.0, dbfs: -55, seed: seed, colored: seed % 2 == 0)
            let after = Self.noise(seconds: 1.0, dbfs: -35, seed: seed + 100, colored: seed % 2 == 1)
            let onsets = try Self.detect([before, after, before])
            #expect(onsets.isEmpty, "seed \(seed): \(onsets)")
        }
    }

    /// Hits of every kind at irregular times over white noise at −50 and −30 dBFS.
    @Test("hits over noise, hi-hats included: precision and recall ≥ 0.95", arguments: [-50.0, -30.0])
    func hitsOverNoise(noiseDb: Double) throws {
        var rng = SeededNoise(state: 0xbeef)
        var x = Self.noise(seconds: 8, dbfs: noiseDb, seed: 42)
        var refs: [Double] = []
        var t = 0.4
        var k = 0
        while t < 7.6 {
            let hit = Hit.allCases[k % 3]
            let amp = pow(10, (noiseDb + 30 + 14 * rng.uniform() - 3) / 20)  // 27…41 dB over the noise RMS
            Self.add(hit, at: Int(t * Double(Self.sr)), amp: min(amp, 0.7), into: &x, rng: &rng)
            refs.append(t)
            t += 0.15 + 0.45 * rng.uniform()
            k += 1
        }
        let est = try Self.detect([x]).map(\.1)
        let (p, r) = Self.precisionRecall(refs, est)
        print("[Onsets in noise] \(noiseDb) dBFS: \(refs.count) hits, \(est.count) onsets, P = \(p), R = \(r)")
        #expect(p >= 0.95 && r >= 0.95)
    }

    @Test("hi-hats above the mel fmax are onsets (the logmel function, limited to 0–8 kHz, misses most)")
    func hatsAboveMelRange() throws {
        var rng = SeededNoise(state: 0xa11)
        var x = Self.noise(seconds: 4, dbfs: -60, seed: 9)
        var refs: [Double] = []
        for i in 0..<12 {
            let t = 0.4 + 0.3 * Double(i)
            Self.add(.hat, at: Int(t * Double(Self.sr)), amp: 0.1, into: &x, rng: &rng)
            refs.append(t)
        }
        let (p, r) = Self.precisionRecall(refs, try Self.detect([x]).map(\.1))
        #expect(p >= 0.95 && r >= 0.95, "superflux P = \(p), R = \(r)")
        var mel = AnalyzerConfig()
        mel.onsetFunction.function = .logmel
        mel.onset.delta = 2
        mel.onset.meanWeight = 1
        let (_, rMel) = Self.precisionRecall(refs, try Self.detect([x], config: mel).map(\.1))
        print("[Onsets in noise] hi-hats: superflux R = \(r), logmel R = \(rMel)")
        #expect(rMel < r)
    }

    @Test("narrow-band chirps 20 dB over the background are onsets, the background is not")
    func chirps() throws {
        var rng = SeededNoise(state: 0xc41)
        var x = Self.noise(seconds: 6, dbfs: -50, seed: 5, colored: true)
        var refs: [Double] = []
        var t = 0.5
        while t < 5.5 {
            let f0 = 2_500 + 2_500 * rng.uniform()
            Self.addChirp(at: Int(t * Double(Self.sr)), f0: f0, f1: f0 * (0.8 + 0.5 * rng.uniform()),
                          duration: 0.03 + 0.04 * rng.uniform(), dbfs: -30, into: &x)
            refs.append(t)
            t += 0.3 + 0.4 * rng.uniform()
        }
        let est = try Self.detect([x]).map(\.1)
        let (p, r) = Self.precisionRecall(refs, est)
        print("[Onsets in noise] chirps: \(refs.count), \(est.count) onsets, P = \(p), R = \(r)")
        #expect(p >= 0.95 && r >= 0.95)
    }

    @Test("the log-frequency bands cover 30 Hz to 0.95 × Nyquist at every shape, none empty")
    func bandLayout() {
        for (sr, n) in [(48_000, 1024), (16_000, 16), (8_000, 512), (192_000, 65_536), (44_100, 2048)] {
            var c = OnsetFunctionConfig()
            c.function = .superflux
            let s = OnsetStrength(config: c, sampleRate: sr, nFFT: n, nMels: 1)
            #expect(s.bandCount >= 1, "\(sr) Hz, n_fft \(n)")
        }
        let s = OnsetStrength(config: OnsetFunctionConfig(), sampleRate: 48_000, nFFT: 1024, nMels: 64)
        // 12 per octave from 30 Hz to 22.8 kHz is ~115 bands; the low ones merge into single bins.
        #expect(s.bandCount > 60 && s.bandCount < 120, "\(s.bandCount)")
    }
}
