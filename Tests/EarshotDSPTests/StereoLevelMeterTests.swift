import Foundation
import Testing

@testable import EarshotDSP

/// Issue 12: the level meter fed the mid `M = (L + R) / 2` with the side `S = (L − R) / 2` reads the energy mean
/// over the two channels, sample for sample: energies, per-sample Fast/Slow extremes, C peak and bands.
@Suite("LevelMeter with a side signal")
struct StereoLevelMeterTests {
    /// Two channels with different content (a 1 kHz burst on L, a 250 Hz tone and noise on R, a DC offset on both)
    /// against two mono meters run sample by sample: every ``LevelSums`` field is the channels' energy mean
    /// (per-sample extremes of the mean, not the mean of the extremes), the C peak the louder channel's, and the
    /// band energies the mean of the channels' band energies.
    @Test func sumsAreTheEnergyMeanOfTheChannels() {
        let rate = 48_000, n = 9_600
        var g = SystemRandomNumberGenerator()
        let l: [Float] = (0..<n).map { i in
            (i > 2_000 && i < 5_000 ? Float(0.3 * sin(2 * Double.pi * 1_000 * Double(i) / Double(rate))) : 0) + 0.05
        }
        let r: [Float] = (0..<n).map { i in
            Float(0.1 * sin(2 * Double.pi * 250 * Double(i) / Double(rate))) + Float.random(in: -0.01...0.01, using: &g) + 0.05
        }
        let mid = zip(l, r).map { ($0 + $1) * 0.5 }, side = zip(l, r).map { ($0 - $1) * 0.5 }
        let stereo = LevelMeter(sampleRate: rate, bands: .octave)
        stereo.split = 4_321
        side.withUnsafeBufferPointer { s in
            stereo.side = s.baseAddress
            mid.withUnsafeBufferPointer { stereo.process($0) }
        }
        #expect(stereo.side == nil, "process consumes the side pointer (a later call must not read through it)")
        // Reference: each channel alone, one sample at a time (so every per-sample value is seen).
        let ml = LevelMeter(sampleRate: rate, bands: .octave), mr = LevelMeter(sampleRate: rate, bands: .octave)
        var ref = [LevelSums.empty, .empty]
        var bandRef = [Double](repeating: 0, count: 2 * 16)
        for i in 0..<n {
            [l[i]].withUnsafeBufferPointer { ml.process($0) }
            [r[i]].withUnsafeBufferPointer { mr.process($0) }
            let a = ml.head, b = mr.head
            let k = i < 4_321 ? 0 : 1
            let mean = LevelSums(
                samples: 1, energyA: (a.energyA + b.energyA) / 2, energyC: (a.energyC + b.energyC) / 2,
                energyZ: (a.energyZ + b.energyZ) / 2, maxAF: (a.maxAF + b.maxAF) / 2, minAF: (a.minAF + b.minAF) / 2,
                maxAS: (a.maxAS + b.maxAS) / 2, minAS: (a.minAS + b.minAS) / 2, maxCF: (a.maxCF + b.maxCF) / 2,
                minCF: (a.minCF + b.minCF) / 2, maxZF: (a.maxZF + b.maxZF) / 2, minZF: (a.minZF + b.minZF) / 2,
                peakC: max(a.peakC, b.peakC))
            ref[k].merge(mean)
            let fl = ml.bandFrame, fr = mr.bandFrame
            for band in 0..<Int(fl.count) { bandRef[16 * k + band] += Double(fl.head[band] + fr.head[band]) / 2 }
        }
        Self.expectSums([stereo.head, stereo.tail], ref)
        // The minima (settled after 0.625 s = 30000 samples: none here) stay "none" on both.
        #expect(stereo.tail.minAF == .infinity && ref[1].minAF == .infinity)
        let bands = stereo.bandFrame
        for k in 0..<2 {
            for band in 0..<Int(bands.count) {
                let x = Double(k == 0 ? bands.head[band] : bands.tail[band]), y = bandRef[16 * k + band]
                #expect(abs(x - y) <= 1e-4 * max(y, 1e-9) + 1e-9, "band \(band) part \(k): \(x) vs \(y)")
            }
        }
        // The side ended: the next call is mono again, from a side filter state that starts afresh.
        [Float](repeating: 0, count: 480).withUnsafeBufferPointer { stereo.process($0) }
        #expect(stereo.head.samples == 480)
    }

    /// `got` (head, tail) equal `want` within 1e-6 relative: sample counts, energies, maxima, C peak.
    static func expectSums(_ got: [LevelSums], _ want: [LevelSums]) {
        func close(_ x: Double, _ y: Double) -> Bool { x == y || abs(x - y) <= 1e-6 * max(abs(x), abs(y)) }
        for (got, want) in zip(got, want) {
            #expect(got.samples == want.samples)
            let pairs = [(got.energyA, want.energyA), (got.energyC, want.energyC), (got.energyZ, want.energyZ),
                         (got.maxAF, want.maxAF), (got.maxAS, want.maxAS), (got.maxCF, want.maxCF), (got.maxZF, want.maxZF),
                         (got.peakC, want.peakC)]
            for (i, (x, y)) in pairs.enumerated() { #expect(close(x, y), "field \(i): \(x) vs \(y)") }
        }
    }
}
