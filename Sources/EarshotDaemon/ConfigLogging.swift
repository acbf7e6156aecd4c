public import Logging
import Synchronization

/// The process-wide `logging.level`, shared by every ``JournalLogHandler`` made with it, so that a reload
/// changes the level of loggers that already exist (swift-log copies a handler into each `Logger`, so a
/// level stored in the handler could not change after start).
///
/// Not for the real-time threads (they do not log); reading it is one atomic load.
public final class LogLevelSwitch: Sendable {
    private let raw: Atomic<Int>

    public init(_ level: Logger.Level = .info) {
        raw = Atomic(Self.index(level))
    }

    /// The process-wide switch the executable's handlers follow.
    public static let shared = LogLevelSwitch()

    public var level: Logger.Level {
        Logger.Level.allCases[raw.load(ordering: .relaxed)]
    }

    /// Sets the level; returns the previous one.
    @discardableResult
    public func set(_ level: Logger.Level) -> Logger.Level {
        Logger.Level.allCases[raw.exchange(Self.index(level), ordering: .relaxed)]
    }

    private static func index(_ level: Logger.Level) -> Int {
        Logger.Level.allCases.firstIndex(of: level)!
    }
}

extension EarshotConfig {
    /// Applies `logging.level` to `levelSwitch` (at start, and after a reload is applied: the daemon's
    /// reload calls this once the new configuration is in place). Returns the previous level.
    @discardableResult
    public func applyLogging(to levelSwitch: LogLevelSwitch = .shared) -> Logger.Level {
        levelSwitch.set(logging.level)
    }
}
