#if canImport(Glibc)
import Glibc
#endif
public import EarshotCapture
public import EarshotProtocol
import Foundation
public import Logging

/// Turns capture events into log lines and `status` events (pure: no I/O, no clock — the time is the
/// caller's `now`). Keeps the rate-limiting state: xruns are logged at most every ``xrunLogIntervalNs``
/// with the number suppressed since, a lost device's retries at growing intervals (1, 2, 4, 8, … attempts;
/// a busy device (`EBUSY`) as a warning naming the holder, when Linux tells, and a hint),
/// and the down time from `lost` to `recovered`.
public struct CaptureEventReporter: Sendable {
    /// One log line and, for subscribers, an optional `status` event.
    public struct Report: Sendable, Equatable {
        public var level: Logger.Level
        public var message: String
        public var metadata: [String: String]
        public var status: StatusMessage.Event?

        public init(_ level: Logger.Level, _ message: String, _ metadata: [String: String] = [:],
                    status: StatusMessage.Event? = nil) {
            self.level = level; self.message = message; self.metadata = metadata; self.status = status
        }
    }

    public static let xrunLogIntervalNs: Int64 = 10_000_000_000

    public var device: String
    public var realtimePriority: Int
    var lastXrunLogNs: Int64?
    var suppressedXruns = 0
    var retries = 0
    var deviceLostAtNs: Int64 = 0

    /// Who holds a busy device and what to do (``DeviceProbe/busyExplanation(device:)``: scans `/proc`);
    /// replaceable for tests.
    public var busyExplanation: @Sendable (String) -> String = { DeviceProbe.busyExplanation(device: $0) }

    public init(device: String, realtimePriority: Int) {
        self.device = device
        self.realtimePriority = realtimePriority
    }

    /// The report for `e` at `now` (CLOCK_MONOTONIC ns), or nil if it is rate-limited away.
    public mutating func report(_ e: CaptureEvent, now: Int64) -> Report? {
        let err = e.errno != 0 ? Self.describe(errno: e.errno) : ""
        switch e.kind {
        case .opened:
            return Report(.info, "capture started", ["device": device, "period_frames": "\(e.value)"])
        case .xrun:
            if let last = lastXrunLogNs, now - last < Self.xrunLogIntervalNs {
                suppressedXruns += 1
                return nil
            }
            let suppressed = suppressedXruns
            lastXrunLogNs = now
            suppressedXruns = 0
            // Subscribers get the same rate-limited notice (each gap is on its frame anyway).
            return Report(.warning, "capture overrun (xrun) recovered",
                          ["device": device, "xruns_total": "\(e.value)", "suppressed": "\(suppressed)"],
                          status: .xrun(xruns: Int(e.value), suppressed: suppressed))
        case .suspended:
            return Report(.warning, "capture device was suspended and resumed", ["device": device])
        case .lost:
            deviceLostAtNs = e.monotonicNs
            retries = 0
            return Report(.error, "capture device lost, reconnecting with backoff",
                          ["device": device, "error": err, "errno": "\(e.errno)"],
                          status: .deviceLost(error: err, errno: e.errno))
        case .recovered:
            let down = deviceLostAtNs > 0 ? Double(e.monotonicNs - deviceLostAtNs) / 1e9 : 0
            deviceLostAtNs = 0
            return Report(.notice, "capture device recovered",
                          ["device": device, "down_s": Self.fixed(down, 1), "reconnects_total": "\(e.value)"],
                          status: .deviceRecovered(downSeconds: down, reconnects: Int(e.value)))
        case .retrying:
            retries += 1
            // The loss was logged once; repeat the reason only at growing intervals.
            guard retries & (retries - 1) == 0 else { return nil }
            if e.errno == EBUSY {
                // Busy is not going away by itself: say who holds it and what to do, as a warning.
                return Report(.warning, "capture device busy, retrying with backoff",
                              ["device": device, "holder": busyExplanation(device), "attempts": "\(retries)",
                               "next_retry_ms": "\(e.value)"])
            }
            return Report(.info, "capture device still unavailable",
                          ["device": device, "error": err, "attempts": "\(retries)", "next_retry_ms": "\(e.value)"])
        case .schedulingApplied:
            if e.value == 1 {
                return Report(.info, "capture thread runs SCHED_FIFO", ["priority": "\(realtimePriority)"])
            }
            return Report(.warning, "SCHED_FIFO not applied (needs CAP_SYS_NICE or LimitRTPRIO)", ["error": err])
        case .memoryLocked:
            if e.errno == 0 { return Report(.info, "memory locked (mlockall)") }
            return Report(.warning, "mlockall failed (needs LimitMEMLOCK)", ["error": err])
        case .timestampSource:
            guard CaptureTimestampSource(rawValue: UInt8(truncatingIfNeeded: e.value)) == .clockAtRead else { return nil }
            return Report(.notice, "device gives no usable timestamps; timing periods at read time", ["device": device])
        case .stopped:
            return Report(.debug, "capture thread stopped")
        }
    }

    static func describe(errno: Int32) -> String { String(cString: strerror(errno)) }

    static func fixed(_ x: Double, _ decimals: Int) -> String { String(format: "%.\(decimals)f", x) }
}
