import EarshotDSP
import Foundation
import Testing

/// Every DSP kernel on the whole float domain (issue 9, items 1 and 2): no trap, nothing non-finite out,
/// and the stateful ones (level meter, onset strength) back to normal by themselves after a transient.
@Suite("Hostile samples")
struct HostileInputTests {
    static let hostile: [Float] = [Float.nan, -Float.nan, Float.infinity, -Float.infinity, 1e20, -1e20, Float.greatestFiniteMagnitude,
                                   -Float.greatestFiniteMagnitude, Float.leastNonzeroMagnitude, 1001, -1001, 1000, -1000, 0.5]

    static func sine(_ n: Int, amplitude: Float = 0.1, frequency: Double = 1000, rate: Int = 48_000) -> [Float] {
        (0..<n).map { amplitude * Float(sin(2 * Double.pi * frequency * Double($0) / Double(rate))) }
    }

    @Test func sampleGuardCountsAndReplaces() {
        let counts = Self.hostile.withUnsafeBufferPointer { SampleGuard.scan($0) }
        #expect(counts == SampleGuard.Counts(nonFinite: 4, clamped: 6))
        var out = [Float](repeating: 7, count: Self.hostile.count)
        Self.hostile.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { SampleGuard.copySanitized(src.baseAddress!, to: $0.baseAddress!, count: src.count) }
        }
        #expect(out == [0, 0, 0, 0, 1000, -1000, 1000, -1000, .leastNonzeroMagnitude, 1000, -1000, 1000, -1000, 0.5])
        // The SIMD blocks and the scalar tail agree, wherever the bad sample sits.
        for position in 0..<19 {
            var x = [Float](repeating: 0.25, count: 19)
            x[position] = .nan
            #expect(x.withUnsafeBufferPointer { SampleGuard.scan($0) } == SampleGuard.Counts(nonFinite: 1, clamped: 0))
            x[position] = -2000
            #expect(x.withUnsafeBufferPointer { SampleGuard.scan($0) } == SampleGuard.Counts(nonFinite: 0, clamped: 1))
        }
    }

    /// Before: an infinite power spectrum (one 1e20 sample) made the exponent sum overflow an `Int` (SIGILL).
    @Test func flatnessIsTotal() {
        for bins in [513, 8, 9, 15] {
            let spectral = SpectralFeatures(sampleRate: 48_000, nFFT: (bins - 1) * 2)
            for value in Self.hostile + [0, 3e38] {
                for layout in 0..<3 {
                    // All bins, only the SIMD part, only the scalar tail.
                    let power = (0..<bins).map { k -> Float in
                        switch layout {
                        case 0: value
                        case 1: k < bins / 8 * 8 ? value : 1
                        default: k >= bins / 8 * 8 ? value : 1
                        }
                    }
                    var f = FrameFeatures()
                    power.withUnsafeBufferPointer { p in
                        let magnitude = p.map { $0.squareRoot() }
                        magnitude.withUnsafeBufferPointer { m in spectral.process(magnitude: m, power: p, outputs: .spectral, into: &f) }
                    }
                    #expect(f.flatness.isFinite && f.flatness >= 0 && f.flatness <= 1.0001, "bins \(bins) value \(value) layout \(layout): \(f.flatness)")
                    for v in [f.centroidHz, f.bandwidthHz, f.rolloffHz, f.flux] { #expect(v.isFinite && v >= 0) }
                }
            }
        }
    }

    @Test func frameStatisticsAreFinite() {
        for value in Self.hostile {
            let frame = Self.sine(1024).enumerated().map { $0.offset == 100 ? value : $0.element }
            frame.withUnsafeBufferPointer { x in
                for v in [FrameStatistics.rmsDbfs(x), FrameStatistics.peakDbfs(x)] {
                    #expect(v.isFinite && v >= -200 && v <= FrameStatistics.maxDb, "\(value): \(v)")
                }
            }
        }
        [Float](repeating: .infinity, count: 64).withUnsafeBufferPointer { #expect(FrameStatistics.rmsDbfs($0) == FrameStatistics.maxDb) }
        [Float](repeating: .nan, count: 64).withUnsafeBufferPointer { #expect(FrameStatistics.rmsDbfs($0) == -200) }
    }

    /// Before: one NaN stayed in the IIR states and every level read −200 until a reset.
    @Test func levelMeterRecoversFromNonFiniteSamples() {
        let rate = 48_000
        for value in [Float.nan, Float.infinity, -Float.infinity] {
            let clean = Self.sine(2 * rate)
            var dirty = clean
            dirty[rate / 2] = value
            var a = FrameFeatures(), b = FrameFeatures()
            let m1 = LevelMeter(sampleRate: rate), m2 = LevelMeter(sampleRate: rate)
            var zeroed = clean
            zeroed[rate / 2] = 0
            zeroed.withUnsafeBufferPointer { m1.process($0) }
            dirty.withUnsafeBufferPointer { m2.process($0) }
            m1.read(into: &a)
            m2.read(into: &b)
            // A non-finite sample is metered as 0: exactly what the meter reads for the zeroed signal.
            #expect(a.laf == b.laf && a.las == b.las && a.lcf == b.lcf && a.lzf == b.lzf, "\(value): \(b) vs \(a)")
            #expect(abs(Double(b.laf) - -23.01) < 0.1, "\(value): laf \(b.laf)")
        }
    }

    /// The whole chain fed raw hostile frames (no guard in front): every feature finite, log-mel and MFCC
    /// finite, and two seconds of clean audio later the levels and onset strength are those of the tone again.
    @Test func frameAnalyzerIsTotalAndRecovers() throws {
        let config = AnalyzerConfig()
        let analyzer = try FrameAnalyzer(config: config)
        let reference = try FrameAnalyzer(config: config)
        var logmel = [Float](repeating: 0, count: config.nMels), mfcc = [Float](repeating: 0, count: config.nMFCC)
        var f = FrameFeatures(), g = FrameFeatures()
        func run(_ a: FrameAnalyzer, _ frame: [Float], first: Bool, into features: inout FrameFeatures) {
            frame.withUnsafeBufferPointer { x in
                logmel.withUnsafeMutableBufferPointer { l in
                    mfcc.withUnsafeMutableBufferPointer { m in
                        _ = a.process(frame: x, newSampleCount: first ? config.nFFT : config.hop, features: &features, logmel: l, mfcc: m)
                    }
                }
            }
            #expect(logmel.allSatisfy { $0.isFinite } && mfcc.allSatisfy { $0.isFinite })
        }
        let tone = Self.sine(config.nFFT)
        run(analyzer, tone, first: true, into: &f)
        run(reference, tone, first: true, into: &g)
        for value in Self.hostile {
            var frame = tone
            frame[config.nFFT - 1] = value
            run(analyzer, frame, first: false, into: &f)
            let all = [f.rmsDbfs, f.peakDbfs, f.zcr, f.centroidHz, f.bandwidthHz, f.rolloffHz, f.flatness, f.flux,
                       f.onsetStrength, f.laf, f.las, f.lcf, f.lzf]
            #expect(all.allSatisfy { $0.isFinite }, "\(value): \(f)")
        }
        // Recovery: 2 s of the tone (the fast level decays from the ±3.4e38 blasts at 34.7 dB/s).
        for _ in 0..<400 {
            run(analyzer, tone, first: false, into: &f)
            run(reference, tone, first: false, into: &g)
        }
        #expect(abs(f.onsetStrength - g.onsetStrength) < 1e-3)
        #expect(f.laf.isFinite && f.laf > -200, "laf \(f.laf)")
    }
}
