@testable import EarshotDSP
import Foundation
import Testing

/// The two references of the default (`superflux`) onset function beside SuperFlux's lagged max-filter:
/// the decaying per-band peak memory (`memory_decay_db_per_s`) and the tracked background median
/// (`floor_slew_db_per_s`, `floor_margin_db`) with its fast start; and the strength's definition (root mean
/// square of the `top_bands` largest rises). Each behaviour test also runs a control configuration without
/// the part under test and expects it to fail there, so the test proves the part works.
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
        #expect(extraControl >= 15)
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
        var hrng = SeededNoise(state: seed &+ 11)
        let refs = addHits(into: &x, from: 2.5, until: 7.6, dbfs: (-23, 14), gap: (0.3, 0.4), rng: &hrng)
        return (x, refs)
    }

    /// Kick, snare and hat in turn from `from` s while before `until`, each of peak level
    /// `dbfs.0 + dbfs.1 × u` dBFS and followed by a gap of `gap.0 + gap.1 × u` s (`u` uniform in 0…1);
    /// returns the hit times.
    static func addHits(into x: inout [Float], from: Double, until: Double, dbfs: (Double, Double),
                        gap: (Double, Double), rng: inout SeededNoise) -> [Double] {
        var refs: [Double] = []
        var t = from, k = 0
        while t < until {
            let amp = pow(10, (dbfs.0 + dbfs.1 * rng.uniform()) / 20)
            OnsetNoiseTests.add(OnsetNoiseTests.Hit.allCases[k % 3], at: Int(t * Double(sr)), amp: amp, into: &x, rng: &rng)
            refs.append(t)
            t += gap.0 + gap.1 * rng.uniform()
            k += 1
        }
        return refs
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

    // MARK: strength = RMS of the top bands' rises

    /// Strength of `OnsetStrength` (defaults, 48 kHz, n_fft 1024) after a flat power spectrum held for 300
    /// frames (past the fast start), on one frame whose bands `rises` (band index → dB above the steady band
    /// level) rise by raising only each band's centre bin (the neighbouring bands' triangles are 0 there).
    static func strengthOfRise(_ rises: [Int: Double]) -> Float {
        let s = OnsetStrength(config: OnsetFunctionConfig(), sampleRate: 48_000, nFFT: 1024, nMels: 1)
        let edges = OnsetStrength.bandEdges(sampleRate: 48_000, nFFT: 1024, bandsPerOctave: OnsetFunctionConfig.bandsPerOctave)
        let p0: Float = 1  // band energies ≫ the 1e-10 floor of L[b]
        var flat = [Float](repeating: p0, count: 513)
        var last: Float = -1
        flat.withUnsafeBufferPointer { p in
            for _ in 0..<300 { last = s.process(power: p, logmel: UnsafeBufferPointer(start: nil, count: 0)) }
        }
        #expect(last == 0, "steady spectrum: \(last)")
        for (b, db) in rises {
            let lo = edges[b], c = edges[b + 1], hi = edges[b + 2]
            var weightSum = 0.0  // Σ_k W[b,k]: the band's energy is p0 × that on the flat spectrum
            for k in lo...hi {
                weightSum += k <= c ? (c > lo ? Double(k - lo) / Double(c - lo) : 1) : Double(hi - k) / Double(hi - c)
            }
            flat[c] = Float(Double(p0) * (1 + (pow(10, db / 10) - 1) * weightSum))
        }
        return flat.withUnsafeBufferPointer { s.process(power: $0, logmel: UnsafeBufferPointer(start: nil, count: 0)) }
    }

    @Test("the strength is the root mean square of the 4 largest rises above the references (their mean would read 5.0 / 8.0 / 22.4)")
    func rmsOfTopBands() {
        // the reference is the steady level + floor_margin_db (6) + the background's step toward the rising
        // band in this very frame (floor_slew_db_per_s × hop = 0.1 dB): a band 26 dB up rises 19.9 dB
        func rms(_ r: [Double]) -> Float { Float((r.map { $0 * $0 }.reduce(0, +) / 4).squareRoot()) }
        let one = Self.strengthOfRise([40: 26])
        #expect(abs(one - rms([19.9])) < 0.02, "one band 19.9 dB: RMS 9.95, mean 4.98; got \(one)")
        let two = Self.strengthOfRise([20: 26, 50: 18])
        #expect(abs(two - rms([19.9, 11.9])) < 0.02, "19.9 and 11.9 dB: RMS 11.59, mean 7.95; got \(two)")
        // five bands: only the 4 largest count
        let five = Self.strengthOfRise([10: 26, 20: 26, 30: 26, 40: 26, 50: 36])
        #expect(abs(five - rms([29.9, 19.9, 19.9, 19.9])) < 0.02, "29.9 and 3 × 19.9 dB (one 19.9 left out): RMS 22.8, mean 22.4; got \(five)")
        // under the margin: no rise
        #expect(Self.strengthOfRise([40: 5]) == 0)
    }

    // MARK: fast start of the background level

    /// −50 dBFS coloured noise that starts with a loud broadband burst (−12 dBFS RMS, the first 60 ms: a
    /// hit or a door at the moment capture starts), then hits 25…33 dB over the noise from 0.4 s to 2 s.
    static func loudStart(seed: UInt64) -> ([Float], [Double]) {
        var x = OnsetNoiseTests.noise(seconds: 2.2, dbfs: -50, seed: seed, colored: true)
        let burst = OnsetNoiseTests.noise(seconds: 0.06, dbfs: -12, seed: seed &+ 1)
        for i in 0..<burst.count { x[i] += burst[i] }
        var rng = SeededNoise(state: seed &+ 2)
        let refs = addHits(into: &x, from: 0.4, until: 2.0, dbfs: (-25, 8), gap: (0.2, 0.15), rng: &rng)
        return (x, refs)
    }

    @Test("after a loud start the background level settles within frames: the hits after it are found (fast start; 4 seeds)")
    func fastStartAfterLoudStart() throws {
        var slow = AnalyzerConfig()
        slow.onsetFunction.fastStartDb = 0  // control: the background level falls at floor_slew_db_per_s only
        var found = 0, foundControl = 0, hits = 0, extra = 0
        for seed in UInt64(1)...4 {
            let (x, refs) = Self.loudStart(seed: seed)
            let est = try OnsetNoiseTests.detect([x]).map(\.1)
            let (_, r) = OnsetNoiseTests.precisionRecall(refs, est)
            found += Int((r * Double(refs.count)).rounded())
            extra += Self.extra(est, refs).count
            hits += refs.count
            let (_, rc) = OnsetNoiseTests.precisionRecall(refs, try OnsetNoiseTests.detect([x], config: slow).map(\.1))
            foundControl += Int((rc * Double(refs.count)).rounded())
        }
        print("[Onset references] hits after a loud start: fast start \(found)/\(hits) (+\(extra) extra), without \(foundControl)/\(hits)")
        #expect(Double(found) >= 0.95 * Double(hits))
        #expect(extra == 0)
        #expect(Double(foundControl) <= 0.5 * Double(hits))
    }

    @Test("after a quiet start the background level climbs within frames: a dense background is not onsets from 0.5 s (fast start; 4 seeds)")
    func fastStartAfterQuietStart() throws {
        var slow = AnalyzerConfig()
        slow.onsetFunction.fastStartDb = 0
        var extraDefault = 0, extraControl = 0
        for seed in UInt64(1)...4 {
            let (x, _) = Self.babble(seed: seed)  // babble from 0.1 s over a −70 dBFS room, hits from 2.5 s
            let early = { (t: Double) in t >= 0.5 && t < 2.4 }
            extraDefault += try OnsetNoiseTests.detect([x]).map(\.1).filter(early).count
            extraControl += try OnsetNoiseTests.detect([x], config: slow).map(\.1).filter(early).count
        }
        print("[Onset references] babble onsets 0.5–2.4 s: fast start \(extraDefault), without \(extraControl)")
        #expect(extraDefault * 2 <= extraControl)
        #expect(extraControl >= 15)
    }
}
