/// What happened on the capture thread, for a supervisor to log off the real-time thread.
public enum CaptureEventKind: UInt8, Sendable, BitwiseCopyable, CustomStringConvertible {
    /// The device was opened and started (first time). `value` = period frames.
    case opened
    /// An overrun (`-EPIPE`) was recovered. `value` = total xruns so far.
    case xrun
    /// The device reported suspend (`-ESTRPIPE`) and was resumed or re-prepared.
    case suspended
    /// The device was lost (error in `errno`, `ETIMEDOUT` for a stall); it was closed and will be reopened.
    case lost
    /// The device was reopened after a loss. `value` = reconnects so far; the gap is in the next stamp.
    case recovered
    /// Opening failed; the next attempt follows in `value` milliseconds. `errno` says why.
    case retrying
    /// `SCHED_FIFO` was requested: `value` = 1 applied / 0 not, `errno` = pthread error.
    case schedulingApplied
    /// `mlockall` was requested: `errno` = 0 on success.
    case memoryLocked
    /// The first period after (re)open: `value` = the ``CaptureTimestampSource`` raw value in use.
    case timestampSource
    /// The thread stopped.
    case stopped

    public var description: String {
        switch self {
        case .opened: "opened"
        case .xrun: "xrun"
        case .suspended: "suspended"
        case .lost: "lost"
        case .recovered: "recovered"
        case .retrying: "retrying"
        case .schedulingApplied: "schedulingApplied"
        case .memoryLocked: "memoryLocked"
        case .timestampSource: "timestampSource"
        case .stopped: "stopped"
        }
    }
}

/// One capture-thread event, passed through an `SPSCRing<CaptureEvent>` (the capture thread never logs).
public struct CaptureEvent: BitwiseCopyable, Sendable, Equatable {
    public var kind: CaptureEventKind
    /// Positive errno, or 0.
    public var errno: Int32
    /// CLOCK_MONOTONIC when it happened.
    public var monotonicNs: Int64
    /// Kind-specific value (see ``CaptureEventKind``).
    public var value: Int64

    public init(kind: CaptureEventKind, errno: Int32 = 0, monotonicNs: Int64, value: Int64 = 0) {
        self.kind = kind
        self.errno = errno
        self.monotonicNs = monotonicNs
        self.value = value
    }
}

/// Lifecycle state of a ``CaptureThread``.
public enum CaptureState: UInt8, Sendable, CustomStringConvertible {
    /// Not yet running: starting, or waiting for a device that was absent at start.
    case starting
    /// Periods are flowing.
    case running
    /// The device was lost; reopening with backoff.
    case lost
    /// `stop()` was called (or never started).
    case stopped

    public var description: String {
        switch self {
        case .starting: "starting"
        case .running: "running"
        case .lost: "lost"
        case .stopped: "stopped"
        }
    }
}
