public import EarshotCapture

/// When the supervisor tells systemd `READY=1`, `WATCHDOG=1` and `STATUS=` (pure: every input is in
/// ``Observation``, the clock is the caller's).
///
/// - `READY=1` once: at the first frame, or after ``readyWithoutDeviceNs`` while the capture device is
///   still absent (the daemon is up and waiting for it, which is not a failed start).
/// - `WATCHDOG=1` every watchdog interval while frames flow (published within ``staleFrameNs``), or while
///   the capture thread is legitimately waiting for an absent or lost device (it retries with backoff). A
///   device that is "running" but yields no frames, or a DSP thread that stopped publishing, stops the pings.
/// - `STATUS=` every ``statusIntervalNs``.
public struct HealthPolicy: Sendable {
    /// What the supervisor sees at one tick.
    public struct Observation: Sendable {
        public var now: Int64
        public var frames: Int
        /// CLOCK_MONOTONIC of the last published frame (0: none yet).
        public var lastFrameNs: Int64
        public var captureState: CaptureState

        public init(now: Int64, frames: Int, lastFrameNs: Int64, captureState: CaptureState) {
            self.now = now; self.frames = frames; self.lastFrameNs = lastFrameNs; self.captureState = captureState
        }
    }

    /// What to send at this tick.
    public struct Actions: Sendable, Equatable {
        /// Send `READY=1` (`framesFlowing`: it was the first frame, not the device wait).
        public var ready: Bool = false
        public var readyBecauseFramesFlow: Bool = false
        public var watchdog: Bool = false
        public var status: Bool = false
    }

    public static let staleFrameNs: Int64 = 2_000_000_000
    public static let readyWithoutDeviceNs: Int64 = 5_000_000_000
    public static let statusIntervalNs: Int64 = 5_000_000_000

    /// systemd's watchdog ping interval (half of `WATCHDOG_USEC`), nil without a watchdog.
    public var watchdogIntervalNs: Int64?
    public let startNs: Int64
    public private(set) var readySent = false
    var lastWatchdogNs: Int64 = 0
    var lastStatusNs: Int64 = 0

    public init(startNs: Int64, watchdogIntervalNs: Int64?) {
        self.startNs = startNs
        self.watchdogIntervalNs = watchdogIntervalNs
    }

    /// Frames were published within ``staleFrameNs``.
    public static func framesFlowing(_ o: Observation) -> Bool {
        o.lastFrameNs != 0 && o.now - o.lastFrameNs < staleFrameNs
    }

    /// Whether the watchdog may be fed (see the type's description).
    public static func healthy(_ o: Observation) -> Bool {
        if framesFlowing(o) { return true }
        switch o.captureState {
        case .starting, .lost: return true
        case .running, .stopped: return false
        }
    }

    /// The actions for this tick; updates the policy's memory of what it sent.
    public mutating func tick(_ o: Observation) -> Actions {
        var a = Actions()
        if !readySent {
            let waitingForDevice = o.captureState != .running && o.now - startNs > Self.readyWithoutDeviceNs
            if o.frames > 0 || waitingForDevice {
                readySent = true
                a.ready = true
                a.readyBecauseFramesFlow = o.frames > 0
            }
        }
        if let interval = watchdogIntervalNs, readySent, o.now - lastWatchdogNs >= interval, Self.healthy(o) {
            a.watchdog = true
            lastWatchdogNs = o.now
        }
        if o.now - lastStatusNs >= Self.statusIntervalNs {
            a.status = true
            lastStatusNs = o.now
        }
        return a
    }
}

extension HealthPolicy {
    /// What `STATUS=` says.
    public struct StatusFields: Sendable, Equatable {
        public var device: String
        public var state: CaptureState
        /// The latest frame's LAF in `unit` (calibration applied), nil before the first frame.
        public var level: Float?
        public var unit: String
        public var frames: Int
        public var xruns: Int
        public var reconnects: Int
        /// nil without a socket.
        public var subscribers: Int?
        /// Input health: `ok` or the active faults joined by commas; nil without the health sink.
        public var health: String?

        public init(device: String, state: CaptureState, level: Float?, unit: String, frames: Int, xruns: Int,
                    reconnects: Int, subscribers: Int?) {
            self.device = device; self.state = state; self.level = level; self.unit = unit; self.frames = frames
            self.xruns = xruns; self.reconnects = reconnects; self.subscribers = subscribers
        }
    }

    /// `device=… state=… level=-38.2 dBFS frames=… xruns=… reconnects=… subscribers=… health=ok`
    public static func statusLine(_ f: StatusFields) -> String {
        var parts = ["device=\(f.device)", "state=\(f.state)"]
        if let level = f.level { parts.append("level=\(Self.oneDecimal(level)) \(f.unit)") }
        parts += ["frames=\(f.frames)", "xruns=\(f.xruns)", "reconnects=\(f.reconnects)"]
        if let s = f.subscribers { parts.append("subscribers=\(s)") }
        if let h = f.health { parts.append("health=\(h)") }
        return parts.joined(separator: " ")
    }

    static func oneDecimal(_ x: Float) -> String {
        guard x.isFinite else { return "\(x)" }
        let tenths = (Double(x) * 10).rounded()
        let sign = tenths < 0 ? "-" : ""
        let a = abs(tenths)
        return "\(sign)\(Int(a / 10)).\(Int(a.truncatingRemainder(dividingBy: 10)))"
    }
}

/// When to report samples the DSP input guard changed (non-finite → 0, beyond ±1000 clamped): once when it
/// starts, then at most every ``intervalNs`` while it keeps happening, with the totals (pure).
public struct SanitizedSampleReporter: Sendable {
    public static let intervalNs: Int64 = 10_000_000_000
    var lastReported = 0
    var lastReportNs: Int64?

    public init() {}

    /// Whether to report now, given the totals so far (a total that went down — a rebuilt pipeline counts from
    /// 0 — starts over).
    public mutating func shouldReport(nonFinite: Int, clamped: Int, now: Int64) -> Bool {
        let total = nonFinite + clamped
        if total < lastReported { lastReported = 0 }
        guard total > lastReported else { return false }
        if let last = lastReportNs, now - last < Self.intervalNs { return false }
        lastReported = total
        lastReportNs = now
        return true
    }
}

extension HealthPolicy.StatusFields {
    /// These fields with `health` set.
    func with(health: String?) -> Self { var f = self; f.health = health; return f }
}
