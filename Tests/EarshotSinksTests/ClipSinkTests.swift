#if canImport(Glibc)
import Glibc
#endif
import EarshotPipeline
import EarshotProtocol
import Foundation
import Testing

@testable import EarshotSinks

/// The clips sink on a hand-fed tap: triggers, overlapping alerts extending one clip, exact samples.
@Suite struct ClipSinkTests {
    typealias K = SinkTestKit2

    @Test func triggersAreAlertStartsOnly() {
        func t(_ m: some ServerMessage) -> String? { ClipSink.trigger(m.line())?.kind }
        #expect(t(AlertMessage.level(state: .start, levelDb: -10, thresholdDb: -20, t: 5, seq: 1, decidedSeq: 2,
                                     durationSeconds: nil, maxDb: nil, weighting: "laf")) == "level")
        #expect(t(AlertMessage.level(state: .end, levelDb: -30, thresholdDb: -20, t: 5, seq: 1, decidedSeq: 2,
                                     durationSeconds: 1, maxDb: -5, weighting: "laf")) == nil)
        #expect(t(AlertMessage.onset(strength: 3, t: 5, seq: 1, suppressed: 0)) == "onset")
        #expect(t(AlertMessage.onsetSummary(suppressed: 1, emitted: 2, periodSeconds: 60, t: 5)) == nil)
        #expect(t(HealthMessage(kind: .silence, state: .start, t: 5, value: 1, threshold: 1, active: [.silence])) == "health")
        #expect(t(HealthMessage(kind: .silence, state: .end, t: 5, value: 1, threshold: 1, active: [])) == nil)
        #expect(t(ClipMessage(path: "/a", kind: "level", start: 1, end: 2, samples: 1, sampleRate: 1, alerts: 1)) == nil)
        #expect(ClipSink.trigger(Array("{\"type\":\"alert\",\"alert\":\"onset\",\"t\":1e300}".utf8)) == nil)
        #expect(ClipSink.trigger(Array("not json".utf8)) == nil)
    }

    /// Capture times jitter (a real device's period stamps): the clip still has exactly pre + post roll samples,
    /// contiguous, its start within the jitter of the ideal one (it used to drift by up to ±13 samples in length).
    @Test func jitteredCaptureTimesKeepTheExactLength() throws {
        let m = try Self.clip(jitterNs: { f in (f / 10) % 2 == 0 ? -150_000 : 150_000 })  // ±0.15 ms, by blocks of 10 frames
        #expect(m.message.samples == Int(1.3 * 48_000), "\(m.message)")
        #expect(m.values.count == m.message.samples)
        #expect(zip(m.values, m.values.dropFirst()).allSatisfy { $1 == $0 + 1 }, "not contiguous")
        #expect(abs(Int(m.values.first ?? 0) - 24_000) <= 8, "first \(m.values.prefix(1))")
    }

    /// One clip from alerts at 1.0 s (onset) and 1.3 s (level) over 3 s of frames whose sample i has value i,
    /// each frame's wall time offset by `jitterNs(frame)`.
    static func clip(jitterNs: (Int) -> Int64) throws
        -> (message: ClipMessage, values: [Float], t0: Int64, written: Int?, logLines: Int)
    {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clip-sink-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = ClipSink.Configuration()
        c.directory = dir.path; c.preRollSeconds = 0.5; c.postRollSeconds = 0.5; c.maxClipSeconds = 5; c.kinds = ["level", "onset"]
        let tap = ClipTap(sampleRate: K.sampleRate, hop: K.hop, seconds: 4)
        let logs = K.LogStore(), publisher = K.Publisher()
        let sink = ClipSink(configuration: c, logger: logs.logger(), publisher: publisher, tap: tap)
        let bus = FrameBus(capacity: 64, nMels: K.nMels, nMFCC: 2)
        try sink.start(bus: bus, stream: K.stream())
        let t0 = Int64(Date().timeIntervalSince1970 * 1000) * 1_000_000
        var chunk = [Float](repeating: 0, count: K.hop)
        func feed(_ frames: Range<Int>) {
            for f in frames {
                for k in 0..<K.hop { chunk[k] = Float(f * K.hop + k) }
                chunk.withUnsafeBufferPointer {
                    tap.record($0, firstSample: Int64(f * K.hop), wallNs: t0 + Int64(f) * K.hopNs + jitterNs(f), seq: Int64(f))
                }
            }
        }
        feed(0..<100)
        usleep(50_000)
        sink.publish(.alert, line: AlertMessage.onset(strength: 3, t: Double(t0) / 1e9 + 1.0, seq: 100, suppressed: 0).line(), wallNs: 0)
        sink.publish(.alert, line: AlertMessage.level(state: .start, levelDb: -10, thresholdDb: -20, t: Double(t0) / 1e9 + 1.3,
                                                     seq: 130, decidedSeq: 131, durationSeconds: nil, maxDb: nil, weighting: "laf").line(), wallNs: 0)
        for f in stride(from: 100, to: 300, by: 10) { feed(f..<(f + 10)); usleep(5_000) }
        var line: String?
        for _ in 0..<200 where line == nil {
            usleep(10_000)
            line = publisher.lines(.alert).first { $0.contains("\"type\":\"clip\"") }
        }
        sink.stop()
        let text = try #require(line, "\(logs.all.map(\.message))")
        let m = try ClipMessage.decode(ProtocolJSON.parse(Array(text.utf8.dropLast())))
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: m.path)))
        var values: [Float] = []
        for o in stride(from: 44, to: bytes.count - 3, by: 4) {
            let b0 = UInt32(bytes[o]), b1 = UInt32(bytes[o + 1]) << 8
            let b2 = UInt32(bytes[o + 2]) << 16, b3 = UInt32(bytes[o + 3]) << 24
            values.append(Float(bitPattern: b0 | b1 | b2 | b3))
        }
        return (m, values, t0, sink.counters.first { $0.0 == "clips_written" }?.1,
                logs.messages(containing: "clip written path=\(m.path) kind=onset").count)
    }

    @Test func overlappingAlertsExtendOneClipWithTheExactSamples() throws {
        let r = try Self.clip(jitterNs: { _ in 0 })
        let m = r.message
        #expect(m.kind == "onset" && m.alerts == 2)
        #expect(m.samples == Int(1.3 * 48_000), "\(m)")
        #expect(abs(m.start - (Double(r.t0) / 1e9 + 0.5)) < 1e-3)
        #expect(r.values.count == m.samples)
        #expect(r.values.enumerated().allSatisfy { $0.element == Float(24_000 + $0.offset) }, "first \(r.values.prefix(3))")
        #expect(URL(fileURLWithPath: m.path).lastPathComponent == ClipSink.utcName(r.t0 + 1_000_000_000) + "-earshot-onset.wav")
        #expect(r.written == 1)
        #expect(r.logLines == 1)
    }

    @Test func utcNames() {
        #expect(ClipSink.utcName(1_796_218_501_250_000_000) == "20261202T133501.250Z")
        #expect(ClipSink.safeInstance("porch/../x y") == "porch_.._x_y")
        #expect(ClipRetention.isClipName(ClipSink.utcName(0) + "-a-level.wav"))
    }
}
