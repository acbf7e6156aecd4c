import EarshotDSP
import EarshotPipeline
import Foundation
import Testing

@testable import EarshotSinks

/// Collects the frames of a ``FrameProcessor`` (offline: `wallNs = sample / rate`).
final class HeaderCollector: FrameOutput {
    var headers: [FrameHeader] = []
    let logmel: UnsafeMutableBufferPointer<Float>
    let mfcc: UnsafeMutableBufferPointer<Float>
    init(nMels: Int, nMFCC: Int) {
        logmel = .allocate(capacity: nMels); logmel.initialize(repeating: 0)
        mfcc = .allocate(capacity: max(nMFCC, 1)); mfcc.initialize(repeating: 0)
    }
    deinit { logmel.deallocate(); mfcc.deallocate() }
    func nextFrameBuffers() -> (logmel: UnsafeMutableBufferPointer<Float>, mfcc: UnsafeMutableBufferPointer<Float>) {
        (logmel, UnsafeMutableBufferPointer(rebasing: mfcc[0..<0]))
    }
    func emit(_ header: FrameHeader) { headers.append(header) }
}

/// The frames of `samples` through the real analyzer and framing (offline times), levels only.
func analyzedHeaders(_ samples: [Float], sampleRate: Int = 48_000, bands: BandResolution = .off, grid: Int64 = 1_000_000_000) throws -> [FrameHeader] {
    var config = AnalyzerConfig()
    config.sampleRate = sampleRate
    config.nMFCC = 0
    config.bands = bands
    let analyzer = try FrameAnalyzer(config: config, outputs: .levels)
    let out = HeaderCollector(nMels: config.nMels, nMFCC: 0)
    let processor = FrameProcessor(analyzer: analyzer, output: out, measureTiming: false)
    processor.levelGridNs = grid
    samples.withUnsafeBufferPointer { p in
        processor.push(p, firstSample: 0, monotonicNs: 0, wallNs: 0)
    }
    return out.headers
}

/// Runs `samples` through the real analyzer and framing, then through a rolling aggregator (driven
/// synchronously) with `windows`; returns the closed windows, in order.
func rollingResults(_ samples: [Float], sampleRate: Int = 48_000, windows: [Double], weighting: LevelWeighting = .laf,
                    grid: Int64? = nil) throws -> [RollingResult] {
    var config = AnalyzerConfig()
    config.sampleRate = sampleRate
    config.nMFCC = 0
    let analyzer = try FrameAnalyzer(config: config, outputs: .levels)
    let out = HeaderCollector(nMels: config.nMels, nMFCC: 0)
    let processor = FrameProcessor(analyzer: analyzer, output: out, measureTiming: false)
    processor.levelGridNs = grid ?? FrameProcessor<HeaderCollector>.levelGrid(windowsSeconds: windows)
    samples.withUnsafeBufferPointer { p in
        var i = 0
        while i < p.count {  // live-sized chunks, so frames are assembled in the sliding window too
            let n = min(p.count - i, 1_000)
            processor.push(UnsafeBufferPointer(rebasing: p[i..<(i + n)]), firstSample: Int64(i), monotonicNs: 0,
                           wallNs: Int64((Double(i) * 1e9 / Double(sampleRate)).rounded()))
            i += n
        }
    }
    let pub = SinkTestKit2.Publisher()
    let agg = RollingAggregator(configuration: .init(windowsSeconds: windows, weighting: weighting), publisher: pub)
    agg.prepare(stream: StreamInfo(sampleRate: sampleRate, nFFT: config.nFFT, hop: config.hop, nMels: config.nMels, nMFCC: 0,
                                   melBandEdgesHz: [], levelUnit: "dBFS", levelOffsetDb: 0, device: "test",
                                   onsetLookAheadMs: 10), nMels: config.nMels)
    var results: [RollingResult] = []
    var seen = Set<String>()
    for h in out.headers {
        agg.ingest(h, logmel: UnsafeBufferPointer(out.logmel))
        for r in agg.latest() where !seen.contains("\(r.windowSeconds)/\(r.startNs)") {
            seen.insert("\(r.windowSeconds)/\(r.startNs)")
            results.append(r)
        }
    }
    return results
}

/// `amplitude · sin(2π f t)` over `[from, to)` seconds into `x`.
func addTone(_ x: inout [Float], rate: Int, frequency: Double = 1_000, amplitude: Double, from: Double, to: Double) {
    let a = Int((from * Double(rate)).rounded()), b = min(x.count, Int((to * Double(rate)).rounded()))
    for i in a..<b { x[i] += Float(amplitude * sin(2 * Double.pi * frequency * Double(i - a) / Double(rate))) }
}

@Suite("Integrated levels (LAeq,T, LAFmax, LCpeak, DC block)")
struct IntegratedLevelTests {
    static let rate = 48_000

    /// Tones and silence with steps inside a window and across window boundaries (1 s and 0.3 s windows;
    /// both boundaries fall inside hops): LAeq,T of each complete window within 0.05 dB of Σ a²/2·d / T
    /// (A-weighting is 0 dB at 1 kHz).
    @Test func laeqOfTonesAndSilence() throws {
        var x = [Float](repeating: 0, count: Int(3.2 * Double(Self.rate)))
        let segments: [(a: Double, from: Double, to: Double)] = [
            (0.1, 0.2, 0.45), (0.01, 0.45, 0.7), (0.05, 1.6, 2.3), (0.2, 2.85, 2.95)]
        // One continuous phase across the step at 0.45 s is not needed: energy is what is checked.
        for s in segments { addTone(&x, rate: Self.rate, amplitude: s.a, from: s.from, to: s.to) }
        let results = try rollingResults(x, windows: [1, 0.3])
        func analytic(_ t0: Double, _ t1: Double) -> Double {
            var e = 0.0
            for s in segments { e += s.a * s.a / 2 * max(0, min(t1, s.to) - max(t0, s.from)) }
            return 10 * log10(e / (t1 - t0))
        }
        var checked = 0
        for r in results where r.complete {
            let expected = analytic(Double(r.startNs) / 1e9, Double(r.endNs) / 1e9)
            guard expected > -100 else { continue }
            let laeq = try #require(r.levels).laeq
            #expect(abs(laeq - expected) < 0.05, "window \(r.windowSeconds) s at \(r.t): LAeq \(laeq) vs \(expected)")
            #expect(r.leq == laeq)  // weighting laf: leq is LAeq,T
            #expect(try #require(r.levels).samples == Int(r.windowSeconds * Double(Self.rate)) || r.startNs == 0)
            checked += 1
        }
        #expect(checked >= 8)
    }

    /// LAFmax of single 4 kHz tone bursts (IEC 61672-1 Table 4 signal, whole cycles) vs the exponential
    /// response to the steady tone `L + 10·log10(1 − exp(−Tb/τ))`, τ = 125 ms, where `L` is the LAeq of the
    /// steady 4 kHz tone: within 0.1 dB (class 1 allows +1.0/−1.5 dB at 2 ms, ±0.5 dB at 200 ms).
    @Test func lafmaxOfShortBursts() throws {
        var steady = [Float](repeating: 0, count: Int(2.1 * Double(Self.rate)))
        addTone(&steady, rate: Self.rate, frequency: 4_000, amplitude: 0.1, from: 0, to: 2.1)
        let l = try #require(try rollingResults(steady, windows: [1]).first { $0.startNs == 1_000_000_000 }?.levels).laeq
        for tb in [0.002, 0.01, 0.05, 0.2] {
            var x = [Float](repeating: 0, count: Int(2.2 * Double(Self.rate)))
            addTone(&x, rate: Self.rate, frequency: 4_000, amplitude: 0.1, from: 0.5, to: 0.5 + tb)
            let r = try #require(try rollingResults(x, windows: [1]).first { $0.startNs == 0 })
            let expected = l + 10 * log10(1 - exp(-tb / 0.125))
            let lafmax = try #require(r.levels).lafmax
            #expect(abs(lafmax - expected) < 0.1, "Tb \(tb): LAFmax \(lafmax) vs \(expected)")
            #expect(r.lmax == lafmax)
            // The per-frame LAF (every 10 ms) is what the old `lmax` saw: never above the per-sample maximum.
            #expect(r.levels!.lafmax >= r.l10)
        }
    }

    /// LCpeak of a sine is its amplitude (C is 0 dB at 1 kHz; 48 samples per period), and a DC offset does
    /// not move it (C blocks DC).
    @Test func lcpeakOfASine() throws {
        for dc in [0.0, 0.1] {
            var x = [Float](repeating: Float(dc), count: Int(2.1 * Double(Self.rate)))
            addTone(&x, rate: Self.rate, amplitude: 0.5, from: 0, to: 2.1)
            let r = try #require(try rollingResults(x, windows: [1]).first { $0.startNs == 1_000_000_000 })
            let lcpeak = try #require(r.levels).lcpeak
            #expect(abs(lcpeak - 20 * log10(0.5)) < 0.05, "DC \(dc): LCpeak \(lcpeak)")
        }
    }

    /// A 0.1 DC offset on a −43 dBFS tone (20 dB above it) changes neither `lzf` nor LZeq (the Z path's
    /// DC block), and anti-phase-free mono reads the tone.
    @Test func dcOffsetDoesNotChangeLZ() throws {
        let amp = pow(10, -43.0 / 20) * 2.0.squareRoot()
        var clean = [Float](repeating: 0, count: Int(2.1 * Double(Self.rate)))
        addTone(&clean, rate: Self.rate, amplitude: amp, from: 0, to: 2.1)
        let offset = clean.map { $0 + 0.1 }
        let a = try #require(try rollingResults(clean, windows: [1]).first { $0.startNs == 1_000_000_000 })
        let b = try #require(try rollingResults(offset, windows: [1]).first { $0.startNs == 1_000_000_000 })
        let la = try #require(a.levels), lb = try #require(b.levels)
        #expect(abs(la.lzeq - (-43)) < 0.05, "LZeq \(la.lzeq)")
        #expect(abs(lb.lzeq - la.lzeq) < 0.05, "LZeq with DC \(lb.lzeq) vs \(la.lzeq)")
        // Per-frame lzf at the end of the second window.
        let meter = LevelMeter(sampleRate: Self.rate)
        var f = FrameFeatures()
        offset.withUnsafeBufferPointer { meter.process($0) }
        meter.read(into: &f)
        #expect(abs(Double(f.lzf) - (-43)) < 0.1, "lzf with DC \(f.lzf)")
    }

    /// The grid: the gcd of the window lengths.
    @Test func levelGridIsTheCommonDivisor() {
        typealias P = FrameProcessor<HeaderCollector>
        #expect(P.levelGrid(windowsSeconds: [1, 10, 60]) == 1_000_000_000)
        #expect(P.levelGrid(windowsSeconds: [1, 0.3]) == 100_000_000)
        #expect(P.levelGrid(windowsSeconds: []) == 0)
    }

    /// `/metrics`: the integrated levels and the band Leq of the latest closed window, by window and
    /// quantity / band.
    @Test func metricsCarryIntegratedAndBandLevels() throws {
        var x = [Float](repeating: 0, count: Int(2.1 * Double(Self.rate)))
        addTone(&x, rate: Self.rate, amplitude: 0.1, from: 0, to: 2.1)
        var headers = try analyzedHeaders(x, bands: .third)
        let t0 = SinkTestKit2.t0
        for i in headers.indices {  // onto the kit's round wall clock
            headers[i].wallNs += t0; headers[i].levels.startWallNs += t0; headers[i].levels.splitWallNs += t0
        }
        let logs = SinkTestKit2.LogStore()
        let rolling = RollingAggregator(configuration: .init(windowsSeconds: [1]), publisher: nil)
        let sink = MetricsSink(configuration: .init(enabled: true, listen: "127.0.0.1:0"), logger: logs.logger(), rolling: rolling)
        let bus = FrameBus(capacity: 1024, nMels: 64, nMFCC: 0)
        let stream = StreamInfo(sampleRate: Self.rate, nFFT: 1024, hop: 480, nMels: 64, nMFCC: 0, melBandEdgesHz: [],
                                levelUnit: "dBFS", levelOffsetDb: 0, device: "test", onsetLookAheadMs: 10)
        try rolling.start(bus: bus, stream: stream)
        try sink.start(bus: bus, stream: stream)
        defer { sink.stop(); rolling.stop() }
        SinkTestKit2.publish(headers, on: bus, logmel: [Float](repeating: -50, count: 64))
        let deadline = Date().addingTimeInterval(5)
        while rolling.latest(windowSeconds: 1)?.t != Double(t0) / 1e9 + 1, Date() < deadline { usleep(2000) }
        let body = String(decoding: sink.render(), as: UTF8.self)
        func metric(_ key: String) -> Double? {
            body.split(separator: "\n").first { $0.hasPrefix(key + " ") }.flatMap { Double($0.split(separator: " ").last!) }
        }
        let expected = 10 * log10(0.1 * 0.1 / 2)
        let laeq = try #require(metric(#"earshot_rolling_level_db{window="1s",quantity="laeq"}"#), "\(body)")
        #expect(abs(laeq - expected) < 0.05)
        #expect(abs((metric(#"earshot_rolling_level_db{window="1s",quantity="lcpeak"}"#) ?? 0) - 20 * log10(0.1)) < 0.05)
        let band = try #require(metric(#"earshot_band_leq_db{window="1s",band_hz="1000"}"#), "\(body)")
        #expect(abs(band - expected) < 0.1)
        #expect((metric(#"earshot_band_leq_db{window="1s",band_hz="25"}"#) ?? 0) < expected - 40)
    }
}
