import Foundation
import Testing

@testable import EarshotDSP

/// The level meter of an input with N ≥ 3 channels (``LevelMeter/channels``): the averaged downmix as samples,
/// the N channels interleaved as ``LevelMeter/side``; levels are the energy mean over the channels, per sample.
@Suite("LevelMeter with 3 or more channels")
struct MultichannelLevelMeterTests {
    static let rate = 48_000

    static func tone(_ f: Double, _ amplitude: Double, count: Int, phase: Double = 0) -> [Float] {
        (0..<count).map { Float(amplitude * sin(2 * Double.pi * f * Double($0) / Double(rate) + phase)) }
    }

    /// Feeds `channels` (equal lengths) to `meter` in blocks of `block` samples: the averaged downmix (as
    /// capture computes it) with the channels interleaved as its side. Returns the last block's level reading.
    @discardableResult
    static func feed(_ meter: LevelMeter, _ channels: [[Float]], block: Int = 1_000, split: Int = Int.max) -> FrameFeatures {
        let n = channels.count, count = channels[0].count
        var features = FrameFeatures()
        var start = 0
        while start < count {
            let m = min(block, count - start)
            var mid = [Float](repeating: 0, count: m), inter = [Float](repeating: 0, count: m * n)
            for j in 0..<m {
                var acc: Float = 0
                for c in 0..<n {
                    let v = channels[c][start + j]
                    inter[j * n + c] = v
                    acc += v.isFinite ? v : 0
                }
                mid[j] = acc * (1 / Float(n))
            }
            meter.split = split
            inter.withUnsafeBufferPointer { s in
                meter.side = s.baseAddress
                mid.withUnsafeBufferPointer { meter.process($0) }
            }
            meter.read(into: &features)
            start += m
        }
        return features
    }

    static func mono(_ samples: [Float], block: Int = 1_000) -> FrameFeatures {
        let meter = LevelMeter(sampleRate: rate)
        var features = FrameFeatures()
        var start = 0
        while start < samples.count {
            let m = min(block, samples.count - start)
            samples[start..<(start + m)].withUnsafeBufferPointer { meter.process($0) }
            meter.read(into: &features)
            start += m
        }
        return features
    }

    static func levels(_ f: FrameFeatures) -> [Float] { [f.laf, f.las, f.lcf, f.lzf] }

    @Test func identicalChannelsReadAsOne() {
        let x = Self.tone(1_000, 0.3, count: 48_000)
        let got = Self.levels(Self.feed(LevelMeter(sampleRate: Self.rate, channels: 4), [x, x, x, x]))
        let want = Self.levels(Self.mono(x))
        for (g, w) in zip(got, want) { #expect(abs(g - w) < 1e-5, "\(g) vs \(w)") }
        #expect(abs(want[0] - (-13.47)) < 0.05)  // 0.3 amplitude: −10.46 − 3.01 dB
    }

    /// Channels 0/1 and 2/3 in anti-phase: the averaged downmix is silence (−200), the energy mean the level
    /// of one channel.
    @Test func antiPhasePairsReadOneChannel() {
        let x = Self.tone(1_000, 0.3, count: 48_000), y = Self.tone(1_000, 0.3, count: 48_000, phase: 1)
        let neg = { (v: [Float]) in v.map { -$0 } }
        let meter = LevelMeter(sampleRate: Self.rate, channels: 4)
        let got = Self.levels(Self.feed(meter, [x, neg(x), y, neg(y)]))
        let want = Self.levels(Self.mono(x))
        for (g, w) in zip(got, want) { #expect(abs(g - w) < 0.01, "\(g) vs \(w)") }
        let downmix = Self.levels(Self.mono([Float](repeating: 0, count: 48_000)))
        #expect(downmix[0] == -200, "the averaged downmix cancels")
    }

    @Test func oneLoudChannelOfFourReadsSixDecibelsLower() {
        let x = Self.tone(500, 0.5, count: 48_000), z = [Float](repeating: 0, count: 48_000)
        let got = Self.levels(Self.feed(LevelMeter(sampleRate: Self.rate, channels: 4), [z, z, x, z]))
        let want = Self.levels(Self.mono(x))
        for (g, w) in zip(got, want) { #expect(abs(g - (w - 6.0206)) < 1e-3, "\(g) vs \(w) − 6.02") }
    }

    /// Every ``LevelSums`` field against N mono meters run sample by sample (the energy mean, per-sample extremes
    /// of the mean), the C peak the loudest channel's, the band energies the mean of the channels', with the
    /// head/tail split inside a block, on 5 channels of different content over several 256-sample chunks.
    @Test func sumsAreTheEnergyMeanOfTheChannels() {
        let n = 9_600, channels = 5, split = 4_321
        var g = SystemRandomNumberGenerator()
        let xs: [[Float]] = (0..<channels).map { c in
            (0..<n).map { i in
                let t = Double(i) / Double(Self.rate)
                let burst = i > 1_000 * c && i < 1_000 * c + 3_000 ? 0.4 * sin(2 * Double.pi * 1_000 * t) : 0
                return Float(burst + 0.1 * Double(c) * sin(2 * Double.pi * (125 * Double(c + 1)) * t) + 0.02 * Double(c))
                    + Float.random(in: -0.01...0.01, using: &g)
            }
        }
        let meter = LevelMeter(sampleRate: Self.rate, bands: .octave, channels: channels)
        Self.feed(meter, xs, block: n, split: split)
        #expect(meter.side == nil, "process consumes the side pointer")
        let refs = (0..<channels).map { _ in LevelMeter(sampleRate: Self.rate, bands: .octave) }
        var ref = [LevelSums.empty, .empty]
        var bandRef = [Double](repeating: 0, count: 2 * 16)
        let k = Double(channels)
        for i in 0..<n {
            var parts: [LevelSums] = []
            for c in 0..<channels {
                [xs[c][i]].withUnsafeBufferPointer { refs[c].process($0) }
                parts.append(refs[c].head)
            }
            func mean(_ f: (LevelSums) -> Double) -> Double { parts.reduce(0) { $0 + f($1) } / k }
            let part = i < split ? 0 : 1
            ref[part].merge(LevelSums(
                samples: 1, energyA: mean { $0.energyA }, energyC: mean { $0.energyC }, energyZ: mean { $0.energyZ },
                maxAF: mean { $0.maxAF }, minAF: .infinity, maxAS: mean { $0.maxAS }, minAS: .infinity,
                maxCF: mean { $0.maxCF }, minCF: .infinity, maxZF: mean { $0.maxZF }, minZF: .infinity,
                peakC: parts.map(\.peakC).max()!))
            for c in 0..<channels {
                let b = refs[c].bandFrame
                for band in 0..<Int(b.count) { bandRef[16 * part + band] += Double(b.head[band]) / k }
            }
        }
        StereoLevelMeterTests.expectSums([meter.head, meter.tail], ref)
        #expect(meter.head.samples == split && meter.tail.samples == n - split)
        let bands = meter.bandFrame
        #expect(bands.count > 0)
        for part in 0..<2 {
            for band in 0..<Int(bands.count) {
                let x = Double(part == 0 ? bands.head[band] : bands.tail[band]), y = bandRef[16 * part + band]
                #expect(abs(x - y) <= 1e-4 * max(y, 1e-9) + 1e-9, "band \(band) part \(part): \(x) vs \(y)")
            }
        }
    }

    /// LCpeak is the loudest channel's |C| peak, whatever the others do (in anti-phase they would cancel in the
    /// downmix).
    @Test func cPeakIsTheLoudestChannels() {
        let a = Self.tone(1_000, 0.8, count: 4_800), b = Self.tone(1_000, 0.2, count: 4_800)
        let meter = LevelMeter(sampleRate: Self.rate, channels: 3)
        Self.feed(meter, [b, a.map { -$0 }, a], block: 4_800)
        let alone = LevelMeter(sampleRate: Self.rate)
        a.withUnsafeBufferPointer { alone.process($0) }
        #expect(abs(meter.head.peakC - alone.head.peakC) <= 1e-9 * alone.head.peakC, "\(meter.head.peakC) vs \(alone.head.peakC)")
        #expect(meter.head.peakC > 0.7)
    }

    /// A NaN or an infinity in one channel counts as 0 there: the other channels stay measured, and the levels
    /// are those of the same input with 0 in its place, bit for bit.
    @Test func nonFiniteChannelSamplesCountAsZero() {
        let x = Self.tone(1_000, 0.3, count: 4_800), y = Self.tone(250, 0.1, count: 4_800)
        var bad = y, zeroed = y
        for i in stride(from: 100, to: 4_800, by: 997) { bad[i] = i % 2 == 0 ? .nan : .infinity; zeroed[i] = 0 }
        let m1 = LevelMeter(sampleRate: Self.rate, bands: .third, channels: 3)
        let m2 = LevelMeter(sampleRate: Self.rate, bands: .third, channels: 3)
        let f1 = Self.feed(m1, [x, bad, x]), f2 = Self.feed(m2, [x, zeroed, x])
        #expect(Self.levels(f1) == Self.levels(f2))
        #expect(f1.laf.isFinite && f1.laf > -20)
        #expect(m1.head.energyA == m2.head.energyA)
        #expect(m1.bandFrame.head[10] == m2.bandFrame.head[10] && m1.bandFrame.head[10].isFinite)
    }

    /// A block without channels (the side ring lapped) reads the averaged downmix; channels coming back read
    /// the energy mean again (their filters from rest), with no stale state left: the levels settle to the
    /// same values as a meter that saw the channels throughout.
    @Test func blocksWithoutChannelsFallBackToTheDownmix() {
        let x = Self.tone(1_000, 0.3, count: 48_000)
        let neg = x.map { -$0 }
        let meter = LevelMeter(sampleRate: Self.rate, channels: 4)
        Self.feed(meter, [x, neg, x, neg].map { Array($0[0..<9_600]) })
        // Downmix alone (silence: the pairs cancel) for 0.2 s.
        var f = FrameFeatures()
        [Float](repeating: 0, count: 9_600).withUnsafeBufferPointer { meter.process($0) }
        meter.read(into: &f)
        #expect(f.laf < -20, "the downmix of anti-phase pairs is silent: \(f.laf)")
        let back = Self.feed(meter, [x, neg, x, neg].map { Array($0[9_600...]) })
        let want = Self.mono(x)
        #expect(abs(back.laf - want.laf) < 0.01 && abs(back.lzf - want.lzf) < 0.01, "\(back.laf) vs \(want.laf)")
    }
}
