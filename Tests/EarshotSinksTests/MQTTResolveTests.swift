import EarshotPipeline
import Foundation
import Logging
import Synchronization
import Testing

@testable import EarshotSinks

/// Issue 9 (shutdown bound with MQTT): the broker's name is resolved on a helper thread with a deadline, so a
/// resolver that hangs (DNS server unreachable) never holds `stop()` (SIGTERM, reloads) and never piles up
/// lookup threads. The resolver here is the real sink's, with `getaddrinfo` replaced by one that blocks until
/// the test releases it; everything else (the sink's thread, the deadline, the retry) is the real path.
@Suite("MQTTSink: name resolution never holds stop")
struct MQTTResolveTests {
    final class BlockingResolver: Sendable {
        let calls = Atomic<Int>(0)
        let gate = DispatchSemaphore(value: 0)
        var resolver: MQTTResolver {
            MQTTResolver { [self] _, _ in
                calls.add(1, ordering: .relaxed)
                gate.wait()
                return .failure(MQTTResolveFailure("released by the test"))
            }
        }
    }

    func sink(_ blocking: BlockingResolver, dir: String) throws -> MQTTSink {
        var c = MQTTSink.Configuration()
        c.broker = "mqtt://broker.dns-is-down.example:1883"
        c.spool.directory = dir
        let sink = MQTTSink(configuration: c, logger: Logger(label: "mqtt-resolve-test"))
        sink.resolver = blocking.resolver
        try sink.start(bus: FrameBus(capacity: 64, nMels: 2, nMFCC: 1),
                       stream: StreamInfo(sampleRate: 48_000, nFFT: 1024, hop: 480, nMels: 2, nMFCC: 1, melBandEdgesHz: [],
                                          levelUnit: "dBFS", levelOffsetDb: 0, device: "test", onsetLookAheadMs: 0))
        return sink
    }

    func counter(_ sink: MQTTSink, _ name: String) -> Int { sink.counters.first { $0.0 == name }?.1 ?? -1 }

    @Test func stopWhileTheLookupHangsIsImmediate() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("earshot-dns-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let blocking = BlockingResolver()
        defer { blocking.gate.signal() }
        let sink = try sink(blocking, dir: dir)
        Thread.sleep(forTimeInterval: 0.3)
        #expect(blocking.calls.load(ordering: .relaxed) == 1)
        let t0 = Date()
        sink.stop()
        let elapsed = Date().timeIntervalSince(t0)
        #expect(elapsed < 0.5, "stop took \(elapsed) s while the lookup hung")
        print("mqtt stop while getaddrinfo hangs: \(String(format: "%.0f", elapsed * 1000)) ms")
    }

    /// A lookup with no answer fails the attempt at the connect timeout (counted, logged as a connect failure);
    /// the retry waits for the same lookup instead of starting a second thread; once it answers, the next
    /// attempt starts a fresh lookup.
    @Test func aHungLookupTimesOutAndIsNotStartedTwice() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("earshot-dns-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let blocking = BlockingResolver()
        let sink = try sink(blocking, dir: dir)
        defer { sink.stop() }
        let timeout = MQTTSink.Configuration.Limits.connectTimeoutSeconds
        let t0 = Date()
        while counter(sink, "mqtt_connect_failures") < 1 && Date().timeIntervalSince(t0) < timeout + 3 {
            Thread.sleep(forTimeInterval: 0.05)
        }
        let failedAfter = Date().timeIntervalSince(t0)
        #expect(counter(sink, "mqtt_connect_failures") == 1)
        #expect(failedAfter >= timeout - 0.1 && failedAfter < timeout + 1, "failed after \(failedAfter) s")
        // The retry (after the 1 s backoff) finds the first lookup still running and waits for it.
        Thread.sleep(forTimeInterval: 1.5)
        #expect(blocking.calls.load(ordering: .relaxed) == 1)
        #expect(counter(sink, "mqtt_connected") == 0)
        // It answers (a failure): that attempt fails at once, and the next one starts a new lookup.
        blocking.gate.signal()
        let t1 = Date()
        while blocking.calls.load(ordering: .relaxed) < 2 && Date().timeIntervalSince(t1) < 4 { Thread.sleep(forTimeInterval: 0.05) }
        #expect(counter(sink, "mqtt_connect_failures") == 2)
        #expect(blocking.calls.load(ordering: .relaxed) == 2)
        let t2 = Date()
        sink.stop()
        #expect(Date().timeIntervalSince(t2) < 0.5)
        blocking.gate.signal()
    }
}
