import EarshotCapture
import EarshotProtocol
@testable import EarshotDaemon
import Testing

/// Capture events → log lines and status events, with rate limits, without a logger or a socket.
@Suite("Capture event reporter")
struct CaptureEventReporterTests {
    static let s: Int64 = 1_000_000_000

    @Test func xrunsAreRateLimitedWithTheSuppressedCount() {
        var r = CaptureEventReporter(device: "hw:1", realtimePriority: 0)
        var reports: [CaptureEventReporter.Report] = []
        for i in 0..<25 {  // one xrun every second for 25 s
            let now = 100 * Self.s + Int64(i) * Self.s
            if let rep = r.report(CaptureEvent(kind: .xrun, monotonicNs: now, value: Int64(i + 1)), now: now) { reports.append(rep) }
        }
        #expect(reports.count == 3, "\(reports.map(\.metadata))")
        #expect(reports.map { $0.metadata["xruns_total"] } == ["1", "11", "21"])
        #expect(reports.map { $0.metadata["suppressed"] } == ["0", "9", "9"])
        #expect(reports.allSatisfy { $0.level == .warning && $0.status?.name == "xrun" && $0.metadata["device"] == "hw:1" })
        #expect(reports[1].status == .xrun(xruns: 11, suppressed: 9))
    }

    @Test func lossRetriesAndRecovery() {
        var r = CaptureEventReporter(device: "usb", realtimePriority: 0)
        let lost = r.report(CaptureEvent(kind: .lost, errno: 19, monotonicNs: 10 * Self.s), now: 10 * Self.s)
        #expect(lost?.level == .error && lost?.status?.name == "device_lost")
        #expect(lost?.metadata["errno"] == "19" && lost?.metadata["error"] == "No such device")
        #expect(lost?.status == .deviceLost(error: "No such device", errno: 19))
        var logged: [String] = []
        for _ in 1...20 {
            if let rep = r.report(CaptureEvent(kind: .retrying, errno: 19, monotonicNs: 0, value: 500), now: 0) {
                logged.append(rep.metadata["attempts"] ?? "")
            }
        }
        #expect(logged == ["1", "2", "4", "8", "16"], "retries at growing intervals: \(logged)")
        let back = r.report(CaptureEvent(kind: .recovered, monotonicNs: 12 * Self.s + Self.s / 2, value: 1), now: 0)
        #expect(back?.level == .notice && back?.status == .deviceRecovered(downSeconds: 2.5, reconnects: 1))
        #expect(back?.metadata["down_s"] == "2.5")
        // A second loss counts its retries from 1 again.
        _ = r.report(CaptureEvent(kind: .lost, errno: 5, monotonicNs: 20 * Self.s), now: 0)
        #expect(r.report(CaptureEvent(kind: .retrying, monotonicNs: 0, value: 1000), now: 0)?.metadata["attempts"] == "1")
    }

    @Test func otherEvents() {
        var r = CaptureEventReporter(device: "d", realtimePriority: 40)
        #expect(r.report(CaptureEvent(kind: .opened, monotonicNs: 0, value: 480), now: 0)
                == .init(.info, "capture started", ["device": "d", "period_frames": "480"]))
        #expect(r.report(CaptureEvent(kind: .schedulingApplied, monotonicNs: 0, value: 1), now: 0)?.metadata["priority"] == "40")
        #expect(r.report(CaptureEvent(kind: .schedulingApplied, errno: 1, monotonicNs: 0, value: 0), now: 0)?.level == .warning)
        #expect(r.report(CaptureEvent(kind: .memoryLocked, monotonicNs: 0), now: 0)?.level == .info)
        #expect(r.report(CaptureEvent(kind: .memoryLocked, errno: 12, monotonicNs: 0), now: 0)?.level == .warning)
        #expect(r.report(CaptureEvent(kind: .timestampSource, monotonicNs: 0, value: Int64(CaptureTimestampSource.deviceTimestamp.rawValue)), now: 0) == nil)
        #expect(r.report(CaptureEvent(kind: .timestampSource, monotonicNs: 0, value: Int64(CaptureTimestampSource.clockAtRead.rawValue)), now: 0)?.level == .notice)
        #expect(r.report(CaptureEvent(kind: .suspended, monotonicNs: 0), now: 0)?.status == nil)
        #expect(r.report(CaptureEvent(kind: .stopped, monotonicNs: 0), now: 0)?.level == .debug)
    }

    @Test func statusEventsEncodeThroughTheProtocol() {
        var r = CaptureEventReporter(device: "usb", realtimePriority: 0)
        let lost = r.report(CaptureEvent(kind: .lost, errno: 19, monotonicNs: 0), now: 0)
        let line = StatusMessage(lost!.status!, t: 1, device: "a\"b\n").text
        #expect(line.contains(#""event":"device_lost""#) && line.contains(#""device":"a\"b\n""#) && line.contains(#""errno":19"#), "\(line)")
    }
}
