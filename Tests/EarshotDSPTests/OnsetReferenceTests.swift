import EarshotDSP
import Foundation
import Testing

/// The two references of the default (`superflux`) onset function beside SuperFlux's lagged max-filter:
/// the decaying per-band peak memory (`memory_decay_db_per_s`) and the tracked background median
/// (`floor_slew_db_per_s`, `floor_margin_db`). Each test also runs a control configuration without the
/// part under test and expects it to fail there, so the test proves the part works.
@Suite("Onset function references")
struct OnsetReferenceTests {
    static let sr = OnsetNoiseTests.sr

    /// Onsets (s) that are not within ±50 ms of any of `refs`.
    static func extra(_ est: [Double], _ refs: [Double]) -> [Double] {
        est.filter { e in !refs.contains { abs($0 - e) <= 0.05 } }
    }

    /// A sustained tone (1.5–3 kHz, −23 dBFS) over −70 dBFS noise from 0.2 s, faded out for 40 ms five
    /// times (20 ms raised-cosine fades: no click, no splatter into the neighbouring bands), as a partial's
    /// beating null or a fading note does.
    static func dropouts(seed: UInt64) -> [Float] {
        var x = OnsetNoiseTests.noise(seconds: 3, dbfs: -70, seed: seed)
        var rng = SeededNoise(state: seed &+ 3)
        let f = 1_500 + 1_500 * rng.uniform()
        let n = Int(2.6 * Double(sr)), start = Int(0.2 * Double(sr)), ramp = sr / 50
        var env = [Double](repeating: 1, count: n)
        let fade = (0..<ramp).map { 0.5 - 0.5 * cos(Double.pi * Double($0) / Double(ramp)) }
        for i in 0..<5 {
            let a = Int((0.5 + 0.4 * Double(i) + 0.1 * rng.uniform()) * Double(sr)), b = a + Int(0.04 * Double(sr))
            for j in 0..<ramp { env[a - ramp + j] = fade[ramp - 1 - j]; env[b + j] = fade[j] }
            for j in a..<b { env[j] = 0 }
        }
        for j in 0..<ramp { env[n - ramp + j] = fade[ramp - 1 - j] }
        for i in 0..<n {
            x[start + i] += Float(0.1 * env[i] * sin(2 * Double.pi * f * Double(i) / Double(sr)))
        }
        return x
    }

    @Test("a tone resuming after a 40 ms dropout is not a new onset (peak memory); without the memory it is (6 seeds)")
    func peakMemory() throws {
        var noMemory = AnalyzerConfig()
        noMemory.onsetFunction.memoryDecayDbPerSecond = 10_000  // forgets within a hop: plain SuperFlux lag
        var extraDefault = 0, extraControl = 0
        for seed in UInt64(1)...6 {
            let x = Self.dropouts(seed: seed)
            let est = try OnsetNoiseTests.detect([x]).map(\.1)
            #expect(est.contains { abs($0 - 0.2) <= 0.05 }, "seed \(seed): the tone's start is missed: \(est)")
            extraDefault += Self.extra(est, [0.2]).count
            #expect(Self.extra(est, [0.2]).isEmpty, "seed \(seed): \(est)")
            extraControl += Self.extra(try OnsetNoiseTests.detect([x], config: noMemory).map(\.1), [0.2]).count
        }
        print("[Onset references] onsets at dropout ends: memory \(extraDefault), without memory \(extraControl)")
        #expect(extraDefault == 0)
        #expect(extraControl >= 24)
    }

    /// Distant-babble-like background: low-passed noise "syllables" (100–250 ms, 15 ms attack, ±3 dB)
    /// separated by 60–160 ms gaps, at about −50 dBFS, 20 dB over a −70 dBFS room noise; from 2.5 s on,
    /// hits 27…41 dB over it (only onsets from 2.4 s on are counted: the median needs ~2 s to climb).
    static func babble(seed: UInt64) -> ([Float], [Double]) {
        var x = OnsetNoiseTests.noise(seconds: 8, dbfs: -70, seed: seed, colored: true)
        let voice = OnsetNoiseTests.noise(seconds: 8, dbfs: -47, seed: seed &+ 5, colored: true)
        var rng = SeededNoise(state: seed &+ 7)
        var t = 0.1
        while t < 7.7 {
            let len = 0.1 + 0.15 * rng.uniform()
            let g = pow(10, (rng.uniform() - 0.5) * 6 / 20)
            let a = Int(t * Double(sr)), n = Int(len * Double(sr))
            for i in 0..<n where a + i < x.count {
                let u = Double(i) / Double(sr)
                let env = min(1, u / 0.015) * exp(-u / (len * 0.7))
                x[a + i] += Float(g * env) * voice[a + i]
            }
            t += len + 0.06 + 0.1 * rng.uniform()
        }
        var refs: [Double] = []
        var hrng = SeededNoise(state: seed &+ 11)
        var h = 2.5
        var k = 0
        while h < 7.6 {
            let amp = pow(10, (-50 + 27 + 14 * hrng.uniform()) / 20)
            OnsetNoiseTests.add(OnsetNoiseTests.Hit.allCases[k % 3], at: Int(h * Double(sr)), amp: amp, into: &x, rng: &hrng)
            refs.append(h)
            h += 0.3 + 0.4 * hrng.uniform()
            k += 1
        }
        return (x, refs)
    }

    @Test("the weaker events of a dense background (distant babble) are not onsets once its median is tracked (4 seeds)")
    func backgroundMedian() throws {
        var noMargin = AnalyzerConfig()
        noMargin.onsetFunction.floorMarginDb = 0  // the reference is the memory alone
        var extraDefault = 0, extraControl = 0, found = 0, hits = 0
        for seed in UInt64(1)...4 {
            let (x, refs) = Self.babble(seed: seed)
            let est = try OnsetNoiseTests.detect([x]).map(\.1).filter { $0 >= 2.4 }
            let (_, r) = OnsetNoiseTests.precisionRecall(refs, est)
            found += Int((r * Double(refs.count)).rounded())
            hits += refs.count
            extraDefault += Self.extra(est, refs).count
            let control = try OnsetNoiseTests.detect([x], config: noMargin).map(\.1).filter { $0 >= 2.4 }
            extraControl += Self.extra(control, refs).count
        }
        print("[Onset references] babble onsets: median-referenced \(extraDefault), without margin \(extraControl); hits \(found)/\(hits)")
        #expect(extraDefault * 4 <= extraControl)
        #expect(extraControl >= 20)
        #expect(Double(found) >= 0.95 * Double(hits))
    }
}
