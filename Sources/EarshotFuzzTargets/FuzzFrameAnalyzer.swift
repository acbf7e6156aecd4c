import EarshotDSP
import EarshotPipeline
import Synchronization

/// Fuzz target body (corpus: Fuzz/corpus/analyzer). Must be total: no trap, no hang, bounded memory, for any bytes.
///
/// Byte 0 picks the analysis (bits 0–1: one of ``FuzzAnalyzerRig/configurations``) and the path (bit 2):
/// - clear: the samples go straight into ``FrameAnalyzer/process(frame:newSampleCount:features:logmel:mfcc:)``
///   with no ``SampleGuard`` in front, so every kernel must be total on arbitrary floats (NaN, ±inf,
///   `Float.greatestFiniteMagnitude`, subnormals);
/// - set: they go through ``FrameProcessor`` (the live and offline entry, with the guard), in chunks whose
///   sizes come from byte 1, and the framing must give exactly `1 + (n − nFFT)/hop` frames. With bit 3 also
///   set the input is a 2-channel one: the floats alternate mid and side (`M = (L + R) / 2`, `S = (L − R) / 2`,
///   the side sanitized by the processor too), and the chunks whose index has a set bit in byte 0's bits 4–7
///   come without their side (a lapped side ring, a mono period), so the level meter's mid/side path and its
///   hand-over between the two are fuzzed as well.
///
/// The rest is little-endian Float32 samples (at most ``FuzzAnalyzerRig/maxSamples``). Every output is checked
/// against its documented range; a violation traps (`precondition`), which the fuzzer reports as a crash.
public func fuzzFrameAnalyzer(_ data: UnsafeRawBufferPointer) {
    runAnalyzerRig(data, configurations: FuzzAnalyzerRig.configurations, rigs: fuzzAnalyzerRigs)
}

/// Fuzz target body (corpus: Fuzz/corpus/bands): the analyzer rig above with the IEC 61260-1 band filter bank on
/// (`levels.bands` octave and third, at 16, 48, 8 and 192 kHz); same input layout. Besides every feature's
/// range, each frame's band energies must be ≥ 0 and never NaN, finite behind the sample guard, and as many as
/// the bank has bands (the direct path reads them from the level meter, the processor path from the frame).
public func fuzzBandFilters(_ data: UnsafeRawBufferPointer) {
    runAnalyzerRig(data, configurations: FuzzAnalyzerRig.bandConfigurations, rigs: fuzzBandRigs)
}

private func runAnalyzerRig(_ data: UnsafeRawBufferPointer, configurations: [(AnalyzerConfig, AnalyzerOutputs)],
                            rigs: borrowing Mutex<[FuzzAnalyzerRig?]>) {
    guard data.count >= 2 else { return }
    let selector = Int(data[0])
    let chunkByte = Int(data[1])
    let count = min((data.count - 2) / 4, FuzzAnalyzerRig.maxSamples)
    var samples = [Float](repeating: 0, count: count)
    for i in 0..<count {
        samples[i] = Float(bitPattern: UInt32(littleEndian: data.loadUnaligned(fromByteOffset: 2 + 4 * i, as: UInt32.self)))
    }
    let stereo = selector & 12 == 12
    var side: [Float] = []
    if stereo {
        side = stride(from: 1, to: count, by: 2).map { samples[$0] }
        samples = stride(from: 0, to: count - count % 2, by: 2).map { samples[$0] }
    }
    rigs.withLock { rigs in
        let index = selector & 3
        if rigs[index] == nil { rigs[index] = FuzzAnalyzerRig(configurations[index]) }
        let rig = rigs[index]!
        samples.withUnsafeBufferPointer { x in
            if selector & 4 == 0 {
                rig.analyzeDirectly(x)
            } else if stereo {
                side.withUnsafeMutableBufferPointer { s in
                    rig.analyzeThroughProcessor(x, side: s, sideless: UInt8(selector >> 4), chunk: 1 + chunkByte * 37)
                }
            } else {
                rig.analyzeThroughProcessor(x, chunk: 1 + chunkByte * 37)
            }
        }
    }
}

/// One analysis set up once (FFTW planning per input would dominate the fuzzer's time), reset per input.
final class FuzzAnalyzerRig: FrameOutput, @unchecked Sendable {
    /// Short frames at the edges of the parameter space (odd sizes, few mels, a floor, partial outputs).
    static let configurations: [(AnalyzerConfig, AnalyzerOutputs)] = {
        var small = AnalyzerConfig()
        small.sampleRate = 16_000; small.nFFT = 64; small.hop = 16; small.nMels = 8; small.nMFCC = 8
        var usual = AnalyzerConfig()
        usual.nFFT = 256; usual.hop = 120; usual.nMels = 24; usual.nMFCC = 13
        var odd = AnalyzerConfig()
        odd.sampleRate = 8_000; odd.nFFT = 18; odd.hop = 18; odd.nMels = 4; odd.nMFCC = 3; odd.fMax = 4_000
        odd.logMelFloorDb = -80
        var wide = AnalyzerConfig()
        wide.sampleRate = 192_000; wide.nFFT = 210; wide.hop = 7; wide.nMels = 8; wide.nMFCC = 0
        wide.fMin = 20; wide.fMax = 96_000; wide.rolloffPercent = 0.99
        wide.onset.postMaxFrames = 0; wide.onset.preAvgFrames = 0; wide.onset.waitFrames = 0
        // Every edge configuration must be one the analyzer accepts (24 mels at n_fft 256/48 kHz, 8 mels at n_fft 210/192 kHz:
        // every mel band still holds an FFT bin; more would be refused as a dead feature).
        return [(small, .all), (usual, .all), (odd, [.flatness, .levels, .peak]), (wide, [.spectral, .rms, .zcr])]
    }()
    /// The same four with the band filter bank on (third octave where the rate allows the most bands).
    static let bandConfigurations: [(AnalyzerConfig, AnalyzerOutputs)] = configurations.enumerated().map { i, setup in
        var c = setup.0
        c.bands = i == 1 ? .octave : .third
        return (c, setup.1)
    }
    /// 4 s at 16 kHz: bounded time per input.
    static let maxSamples = 65_536

    let analyzer: FrameAnalyzer
    let config: AnalyzerConfig
    let logmel: UnsafeMutableBufferPointer<Float>
    let mfcc: UnsafeMutableBufferPointer<Float>
    var processor: FrameProcessor<FuzzAnalyzerRig>!
    /// Frames emitted through the processor since the last reset, and whether the guard must bound them.
    var emitted = 0
    var guarded = false

    init(_ setup: (AnalyzerConfig, AnalyzerOutputs)) {
        config = setup.0
        analyzer = try! FrameAnalyzer(config: setup.0, outputs: setup.1)
        logmel = .allocate(capacity: config.nMels); logmel.initialize(repeating: 0)
        mfcc = .allocate(capacity: config.nMFCC); mfcc.initialize(repeating: 0)
        processor = FrameProcessor(analyzer: analyzer, output: self, measureTiming: false)
    }

    deinit { logmel.deallocate(); mfcc.deallocate() }

    func analyzeDirectly(_ x: UnsafeBufferPointer<Float>) {
        analyzer.reset()
        guarded = false
        var features = FrameFeatures()
        var start = 0
        while start + config.nFFT <= x.count {
            _ = analyzer.process(
                frame: UnsafeBufferPointer(rebasing: x[start..<(start + config.nFFT)]),
                newSampleCount: start == 0 ? config.nFFT : config.hop, features: &features, logmel: logmel, mfcc: mfcc)
            check(features)
            if analyzer.levelMeter.bank != nil { checkBands(analyzer.levelMeter.bandFrame) }
            start += config.hop
        }
    }

    /// `side`: nil, or the side signal of `x` (as many values); chunk `k` goes without it when bit `k % 4` of
    /// `sideless` is set.
    func analyzeThroughProcessor(_ x: UnsafeBufferPointer<Float>, side: UnsafeMutableBufferPointer<Float>? = nil,
                                 sideless: UInt8 = 0, chunk: Int) {
        processor.discontinuity(flags: 0, gapSamples: 0)  // forget the previous input's partial frame
        guarded = true
        emitted = 0
        let before = processor.sanitizedSamples.total
        var start = 0
        var k = 0
        while start < x.count {
            let end = min(x.count, start + chunk)
            let s = sideless >> (k % 4) & 1 == 0 ? side.flatMap { $0.baseAddress.map { $0 + start } } : nil
            processor.push(UnsafeBufferPointer(rebasing: x[start..<end]), side: s, firstSample: Int64(start),
                           monotonicNs: 0, wallNs: 0)
            start = end
            k += 1
        }
        if let side { precondition(SampleGuard.scan(UnsafeBufferPointer(side)).total == 0 || sideless != 0, "side left unsanitized") }
        let expected = x.count >= config.nFFT ? 1 + (x.count - config.nFFT) / config.hop : 0
        precondition(emitted == expected, "framing: \(emitted) frames for \(x.count) samples, expected \(expected)")
        let changed = processor.sanitizedSamples.total - before
        precondition(changed == SampleGuard.scan(x).total && changed <= x.count, "sanitized count \(changed)")
    }

    func nextFrameBuffers() -> (logmel: UnsafeMutableBufferPointer<Float>, mfcc: UnsafeMutableBufferPointer<Float>) {
        (logmel, mfcc)
    }

    func emit(_ header: FrameHeader) {
        emitted += 1
        check(header.features)
        if analyzer.levelMeter.bank != nil { checkBands(header.bands) }
    }

    /// Band energies: as many as the bank has bands, never negative or NaN; finite behind the guard (±1000 full
    /// scale: at most 1e6 per sample, times the samples of a frame and the multirate scale).
    func checkBands(_ b: BandFrame) {
        let count = analyzer.levelMeter.bank?.count ?? 0
        precondition(Int(b.count) == count, "band frame holds \(b.count) bands, the bank \(count)")
        for i in 0..<count {
            for v in [b.head[i], b.tail[i]] {
                precondition(v >= 0 && !v.isNaN, "band \(i) energy \(v)")
                if guarded { precondition(v.isFinite, "band \(i) energy \(v) behind the guard") }
            }
        }
    }

    /// Every documented range (FrameFeatures: nothing is ever NaN or infinite).
    func check(_ f: FrameFeatures) {
        let nyquist = Float(config.sampleRate) / 2 * 1.0001
        // Behind the guard no sample exceeds ±1000 (+60 dBFS); without it, up to `Float.greatestFiniteMagnitude`.
        let top: Float = guarded ? 60.01 : FrameStatistics.maxDb
        func within(_ v: Float, _ lo: Float, _ hi: Float, _ name: StaticString) {
            precondition(v >= lo && v <= hi, "\(name) = \(v) outside [\(lo), \(hi)]")
        }
        within(f.rmsDbfs, -200, top, "rms_dbfs")
        within(f.peakDbfs, -200, top, "peak_dbfs")
        within(f.zcr, 0, 1, "zcr")
        within(f.centroidHz, 0, nyquist, "centroid_hz")
        within(f.bandwidthHz, 0, nyquist, "bandwidth_hz")
        within(f.rolloffHz, 0, nyquist, "rolloff_hz")
        within(f.flatness, 0, 1.0001, "flatness")
        within(f.flux, 0, .greatestFiniteMagnitude, "flux")
        within(f.onsetStrength, 0, .greatestFiniteMagnitude, "onset_strength")
        for v in [f.laf, f.las, f.lcf, f.lzf] { within(v, -200, guarded ? 80 : 1_000, "level") }
        let floor = config.logMelFloorDb ?? -100
        for v in logmel { within(v, floor, 400, "logmel") }
        for v in mfcc { precondition(v.isFinite, "mfcc = \(v)") }
    }
}

/// The rigs, built on first use (one input at a time: libFuzzer is single-threaded, the corpus test serial).
let fuzzAnalyzerRigs = Mutex<[FuzzAnalyzerRig?]>([nil, nil, nil, nil])
let fuzzBandRigs = Mutex<[FuzzAnalyzerRig?]>([nil, nil, nil, nil])
