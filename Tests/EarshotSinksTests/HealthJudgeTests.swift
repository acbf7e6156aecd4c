#if canImport(Glibc)
import Glibc
#endif
import EarshotCapture
import EarshotDSP
import EarshotPipeline
import EarshotTestKit
import Foundation
import Testing

@testable import EarshotSinks

/// Collects the frames a ``FrameProcessor`` makes (offline, like `earshot analyze`).
final class CollectingOutput: FrameOutput, @unchecked Sendable {
    var headers: [FrameHeader] = []
    let logmel = UnsafeMutableBufferPointer<Float>.allocate(capacity: 256)
    let mfcc = UnsafeMutableBufferPointer<Float>.allocate(capacity: 64)
    let nMels: Int, nMFCC: Int
    init(nMels: Int, nMFCC: Int) { self.nMels = nMels; self.nMFCC = nMFCC }
    deinit { logmel.deallocate(); mfcc.deallocate() }
    func nextFrameBuffers() -> (logmel: UnsafeMutableBufferPointer<Float>, mfcc: UnsafeMutableBufferPointer<Float>) {
        (UnsafeMutableBufferPointer(rebasing: logmel[0..<nMels]), UnsafeMutableBufferPointer(rebasing: mfcc[0..<nMFCC]))
    }
    func emit(_ header: FrameHeader) { headers.append(header) }
}

enum HealthTestKit {
    static let rate = 48_000
    static let t0: Int64 = 1_700_000_000_000_000_000

    /// Frames of `samples` analysed with the default analyzer; `clockScale` stretches the capture times
    /// (1.01: the sample clock runs 1 % slow against the monotonic clock).
    static func frames(_ samples: [Float], clockScale: Double = 1) throws -> [FrameHeader] {
        let analyzer = try FrameAnalyzer(config: AnalyzerConfig())
        let out = CollectingOutput(nMels: analyzer.config.nMels, nMFCC: analyzer.config.nMFCC)
        let p = FrameProcessor(analyzer: analyzer, output: out, measureTiming: false)
        let chunk = 480
        var i = 0
        samples.withUnsafeBufferPointer { b in
            while i < b.count {
                let n = min(chunk, b.count - i)
                let ns = Int64((Double(i) / Double(rate) * 1e9 * clockScale).rounded())
                p.push(UnsafeBufferPointer(rebasing: b[i..<(i + n)]), firstSample: Int64(i), monotonicNs: 1_000_000_000 + ns, wallNs: t0 + ns)
                i += n
            }
        }
        return out.headers
    }

    /// Every transition of `headers` judged with `config`.
    static func judge(_ headers: [FrameHeader], _ config: HealthMonitor.Configuration) -> [HealthJudge.Transition] {
        var j = HealthJudge(config: config, sampleRate: rate, startMonotonicNs: 0)
        return headers.flatMap { j.frame($0) }
    }

    /// Seconds after `t0`.
    static func at(_ t: HealthJudge.Transition) -> Double { Double(t.wallNs - t0) / 1e9 }

    static func noise(seconds: Double, rms: Float, seed: UInt64 = 1) -> [Float] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<Int(seconds * Double(rate))).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int32(truncatingIfNeeded: state >> 32)) / Float(Int32.max) * rms * 1.732
        }
    }

    static func sine(seconds: Double, amplitude: Double, hz: Double = 440) -> [Float] {
        (0..<Int(seconds * Double(rate))).map { Float(amplitude * sin(2 * .pi * hz * Double($0) / Double(rate))) }
    }

    /// Short holds for the tests: 2 s silence, 1 s DC/clipping, 2 s floor over a 4 s baseline, 1 s clear.
    static var short: HealthMonitor.Configuration {
        var c = HealthMonitor.Configuration()
        c.silenceSeconds = 2; c.dcHoldSeconds = 1; c.floorHoldSeconds = 2; c.floorBaselineSeconds = 4
        c.clipHoldSeconds = 1; c.clearSeconds = 1; c.driftWindowSeconds = 10; c.noDataSeconds = 1
        return c
    }
}

@Suite struct HealthJudgeTests {
    typealias K = HealthTestKit

    @Test func accumulatorCountsRunsAcrossFrames() {
        var a = SampleHealthAccumulator()
        let first: [Float] = [0.1, 0, 0, 0]
        let second: [Float] = [0, 0, 1, 1, 1, 1, -0.5]
        let h1 = first.withUnsafeBufferPointer { a.measure($0) }
        #expect(h1.zeros == 3 && h1.constantRun == 3 && !h1.isConstant && h1.samples == 4)
        let h2 = second.withUnsafeBufferPointer { a.measure($0) }
        #expect(h2.zeros == 2 && h2.constantRun == 1 && h2.clipped == 3 && h2.longestClipRun == 4)
        #expect(abs(h2.sum - 3.5) < 1e-9 && h2.last == -0.5)
        let zeros = [Float](repeating: 0, count: 5)
        let h3 = zeros.withUnsafeBufferPointer { a.measure($0) }
        #expect(h3.isConstant && h3.constantRun == 5)
        let h4 = zeros.withUnsafeBufferPointer { a.measure($0) }
        #expect(h4.isConstant && h4.constantRun == 10, "a run continues across frames")
        a.reset()
        let h5 = zeros.withUnsafeBufferPointer { a.measure($0) }
        #expect(h5.constantRun == 5, "a discontinuity restarts the run")
    }

    @Test func silenceStartsAfterItsHoldAndEndsAfterClear() throws {
        let signal = K.noise(seconds: 3, rms: 0.01) + [Float](repeating: 0, count: 4 * K.rate) + K.noise(seconds: 3, rms: 0.01, seed: 2)
        let t = K.judge(try K.frames(signal), K.short)
        let silence = t.filter { $0.kind == .silence }
        #expect(silence.count == 2, "\(t)")
        #expect(silence.first?.started == true && silence.last?.started == false)
        // The condition began at 3 s (the judge's 0.5 s blocks) and was decided 2 s later; it cleared at 7 s.
        if let s = silence.first { #expect(abs(K.at(s) - 3) <= 0.55, "\(K.at(s))"); #expect(s.value >= 2) }
        if let e = silence.last { #expect(abs(K.at(e) - 7) <= 0.55, "\(K.at(e))") }
        #expect(!t.contains { $0.kind != .silence }, "only silence: \(t)")
    }

    @Test func constantDCIsSilenceAndDCOffset() throws {
        let signal = K.noise(seconds: 3, rms: 0.01) + [Float](repeating: 0.25, count: 4 * K.rate) + K.noise(seconds: 3, rms: 0.01)
        let t = K.judge(try K.frames(signal), K.short)
        #expect(Set(t.filter(\.started).map(\.kind)) == [.silence, .dcOffset], "\(t)")
        #expect(Set(t.filter { !$0.started }.map(\.kind)) == [.silence, .dcOffset], "\(t)")
        let dc = try #require(t.first { $0.kind == .dcOffset && $0.started })
        #expect(abs(dc.value - 0.25) < 0.01 && abs(K.at(dc) - 3) <= 0.55)
    }

    @Test func dcOnTopOfASignalAndItsHysteresis() throws {
        // Noise riding on +0.15: a DC fault; then +0.09 (between 0.8 × and 1 × the 0.1 limit): it stays;
        // then +0.05: it ends.
        let n = K.noise(seconds: 3, rms: 0.05)
        let signal = n + n.map { $0 + 0.15 } + n.map { $0 + 0.09 } + n.map { $0 + 0.05 }
        let t = K.judge(try K.frames(signal), K.short)
        let dc = t.filter { $0.kind == .dcOffset }
        #expect(dc.count == 2, "\(t)")
        if dc.count == 2 {
            #expect(dc[0].started && abs(K.at(dc[0]) - 3) <= 0.55)
            #expect(!dc[1].started && abs(K.at(dc[1]) - 9) <= 0.55, "ends when below 0.8 × limit: \(K.at(dc[1]))")
        }
    }

    @Test func floorDropOf40dBStartsAndRecovers() throws {
        // 6 s at −40 dBFS (the baseline), 6 s at −80 (a mic unplugged: the floor collapses), 4 s back.
        let signal = K.noise(seconds: 6, rms: 0.01) + K.noise(seconds: 6, rms: 0.0001, seed: 3) + K.noise(seconds: 4, rms: 0.01, seed: 4)
        let t = K.judge(try K.frames(signal), K.short)
        let floor = t.filter { $0.kind == .lowFloor }
        #expect(floor.count == 2, "\(t)")
        if floor.count == 2 {
            #expect(floor[0].started && abs(K.at(floor[0]) - 6) <= 1, "\(K.at(floor[0]))")
            #expect(floor[0].value < -70 && floor[0].threshold > -80)
            #expect(!floor[1].started && abs(K.at(floor[1]) - 12) <= 1, "\(K.at(floor[1]))")
        }
        #expect(!t.contains { $0.kind != .lowFloor }, "\(t)")
    }

    @Test func absoluteFloorWithoutBaseline() throws {
        var c = K.short
        c.floorMinDB = -90
        let t = K.judge(try K.frames(K.noise(seconds: 4, rms: 0.000_01)), c)
        #expect(t.first?.kind == .lowFloor && t.first?.started == true, "\(t)")
    }

    @Test func clippingFlatTopsButNotACleanFullScaleSine() throws {
        let clipped = K.sine(seconds: 3, amplitude: 3).map { max(-1, min(1, $0)) }
        let clean = K.sine(seconds: 3, amplitude: 1, hz: 50) + K.sine(seconds: 3, amplitude: 1, hz: 997)
        let t = K.judge(try K.frames(K.noise(seconds: 2, rms: 0.05) + clipped + clean), K.short)
        let clip = t.filter { $0.kind == .clipping }
        #expect(clip.count == 2, "\(t)")
        if clip.count == 2 {
            #expect(clip[0].started && abs(K.at(clip[0]) - 2) <= 0.55 && clip[0].value > 0.3)
            #expect(!clip[1].started && abs(K.at(clip[1]) - 5) <= 0.55)
        }
    }

    @Test func clockDriftBeyondTheLimit() throws {
        var c = K.short
        c.driftWindowSeconds = 4
        // The sample clock 1 % slow against the monotonic clock: −9901 ppm.
        let t = K.judge(try K.frames(K.noise(seconds: 8, rms: 0.01), clockScale: 1.01), c)
        let drift = try #require(t.first { $0.kind == .clockDrift })
        #expect(drift.started && abs(drift.value + 9901) < 300, "\(drift.value)")
        // Within the tolerance of a real device (100 ppm): nothing.
        #expect(K.judge(try K.frames(K.noise(seconds: 8, rms: 0.01), clockScale: 1.0001), c).isEmpty)
    }

    @Test func noDataByTimerAndItsEnd() throws {
        var j = HealthJudge(config: K.short, sampleRate: K.rate, startMonotonicNs: 0)
        let frames = try K.frames(K.noise(seconds: 1, rms: 0.01))
        for h in frames { #expect(j.frame(h).isEmpty) }
        let last = frames.last!.lastSampleMonotonicNs
        #expect(j.tick(nowMonotonicNs: last + 900_000_000, nowWallNs: 0).isEmpty)
        let start = j.tick(nowMonotonicNs: last + 1_000_000_000, nowWallNs: K.t0 + 5_000_000_000)
        #expect(start.count == 1 && start.first?.kind == .noData && start.first?.started == true)
        #expect(j.active == [.noData])
        #expect(j.tick(nowMonotonicNs: last + 3_000_000_000, nowWallNs: 0).isEmpty, "reported once")
        var next = frames[0]
        next.lastSampleMonotonicNs = last + 3_100_000_000
        let end = j.frame(next)
        #expect(end.first?.kind == .noData && end.first?.started == false && j.active.isEmpty)
    }

    @Test func discontinuityRestartsTheQualification() throws {
        var frames = try K.frames([Float](repeating: 0, count: 3 * K.rate))
        // A gap at 1.5 s: 1.5 + 1.5 s of zeros never make 2 s without a gap.
        frames[150].flags |= FrameFlags.discontinuity
        #expect(K.judge(frames, K.short).isEmpty)
    }
}

/// Defaults on healthy material: speech (espeak-ng), drums (hydrogen-drumkits), noise at low levels (sox),
/// music-like tones (sox), each looped to 2 minutes of audio.
@Suite(.serialized) struct HealthDefaultsTests {
    typealias K = HealthTestKit

    /// Audio per material (looped). The floor baseline is learned over 60 s here (valid after 30 s) instead
    /// of the default 600 s so it is in play within the run; every threshold is the default.
    static let minutes = 2.0

    /// `sox ARGS…` into a 48 kHz mono float WAV, read back.
    static func sox(_ dir: URL, _ name: String, _ args: [String]) throws -> [Float] {
        let sox = try #require(Subprocess.which("sox"), "sox is needed (apt-get install sox)")
        let path = dir.appendingPathComponent(name + ".wav").path
        let r = try Subprocess.run(sox, args.map { $0 == "OUT" ? path : $0 })
        #expect(r.status == 0, "sox \(args): \(r.output)")
        return try readWAV(path)
    }

    static func readWAV(_ path: String) throws -> [Float] {
        let wav = try WAVFile(path: path)
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 16_384 * wav.bytesPerFrame, alignment: 16)
        defer { scratch.deallocate() }
        var out: [Float] = []
        var buf = [Float](repeating: 0, count: 16_384)
        while true {
            let n = try buf.withUnsafeMutableBufferPointer { try wav.read(maxFrames: 16_384, channel: 0, scratch: scratch, into: $0.baseAddress!) }
            if n == 0 { break }
            out += buf[0..<n]
        }
        return out
    }

    static func looped(_ x: [Float]) -> [Float] {
        let n = Int(minutes * 60 * Double(K.rate))
        guard !x.isEmpty else { return [] }
        return (0..<n).map { x[$0 % x.count] }
    }

    func expectQuiet(_ name: String, _ samples: [Float]) throws {
        var config = HealthMonitor.Configuration()
        config.floorBaselineSeconds = 60
        var j = HealthJudge(config: config, sampleRate: K.rate, startMonotonicNs: 0)
        let t = try K.frames(Self.looped(samples)).flatMap { j.frame($0) }
        let e = j.extremes
        print("health margins, \(name): constant \(e.maxConstantSeconds) s, |mean| \(e.maxAbsMean), clip share \(e.maxClipShare), "
              + "clip run \(e.maxClipRun), floor min \(e.minFloorDb) dBFS, below baseline \(e.minFloorBelowBaselineDb) dB, drift \(e.maxAbsDriftPPM) ppm")
        #expect(j.floorBaselineDb != nil || e.minFloorDb == .infinity, "\(name): the baseline was learned")
        #expect(t.isEmpty, "\(name): \(t.map { "\($0.kind.rawValue) \($0.started ? "start" : "end") at \(K.at($0)) s value \($0.value)" })")
    }

    @Test func healthyMaterialRaisesNothing() throws {
        let dir = try makeHealthTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        // Speech: espeak-ng, with its pauses, resampled to 48 kHz.
        let espeak = try #require(Subprocess.which("espeak-ng"), "espeak-ng is needed (apt-get install espeak-ng)")
        let raw = dir.appendingPathComponent("speech22k.wav").path
        let said = try Subprocess.run(espeak, ["-w", raw, "The microphone on the roof hears the street, the birds and the rain. "
            + "Nobody should be woken at night by a false alarm. Quiet rooms, loud music and speech are all healthy."])
        #expect(said.status == 0, "\(said.output)")
        try expectQuiet("speech", try Self.sox(dir, "speech", [raw, "-r", "48000", "-c", "1", "-e", "floating-point", "OUT"]))
        // Drums: a kit's samples one after the other, 0.3 s of digital silence between hits, normalised to 0 dBFS.
        let kit = URL(fileURLWithPath: "/usr/share/hydrogen/data/drumkits/Millo-Drums_v.1")
        let flacs = try FileManager.default.contentsOfDirectory(atPath: kit.path).filter { $0.hasSuffix(".flac") && !$0.contains("empty") }.sorted()
        #expect(flacs.count >= 5, "hydrogen-drumkits is needed (apt-get install hydrogen-drumkits)")
        var drums: [Float] = []
        for (i, f) in flacs.enumerated() {
            drums += try Self.sox(dir, "drum\(i)", [kit.appendingPathComponent(f).path, "-r", "48000", "-c", "1", "-b", "16", "OUT", "gain", "-n"])
            drums += [Float](repeating: 0, count: K.rate * 3 / 10)
        }
        try expectQuiet("drums", drums)
        // Noise: pink at −60 dBFS (street far away), brown at −85 dBFS in 16 bit (a quiet room).
        try expectQuiet("pink -60", try Self.sox(dir, "pink", ["-n", "-r", "48000", "-b", "16", "OUT", "synth", "20", "pinknoise", "gain", "-60"]))
        try expectQuiet("brown -85", try Self.sox(dir, "brown", ["-n", "-r", "48000", "-b", "16", "OUT", "synth", "20", "brownnoise", "gain", "-85"]))
        // Music-like: plucked chords and a bass line normalised to 0 dBFS (peaks at full scale, not clipped).
        try expectQuiet("music", try Self.sox(dir, "music", ["-n", "-r", "48000", "-b", "16", "OUT", "synth", "2", "pluck", "C2", "pluck", "E4",
                                                            "pluck", "G4", "sine", "55", "remix", "-", "gain", "-n"]))
    }
}

func makeHealthTempDir() throws -> URL {
    let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("earshot-health-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}
