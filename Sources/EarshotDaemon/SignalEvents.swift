#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import EarshotRealtime

/// SIGTERM/SIGINT/SIGHUP turned into a pollable descriptor (self-pipe through an eventfd) plus pending
/// bits, so the supervisor handles them in its loop instead of in a signal handler.
public enum SignalEvents {
    public struct Pending: OptionSet, Sendable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        public static let terminate = Pending(rawValue: 1)
        public static let reload = Pending(rawValue: 2)
    }

    nonisolated(unsafe) static var fd: Int32 = -1
    static let pending = Atomic<Int>(0)
    nonisolated(unsafe) static var notifier: EventNotifier?

    /// Installs the handlers (idempotent) and returns the descriptor to poll for `POLLIN`.
    public static func install() -> Int32 {
        if fd >= 0 { return fd }
        notifier = EventNotifier()
        fd = notifier!.fileDescriptor
        let handler: @convention(c) (Int32) -> Void = { sig in
            let bit = sig == SIGHUP ? Pending.reload.rawValue : Pending.terminate.rawValue
            SignalEvents.pending.bitwiseOr(bit, ordering: .sequentiallyConsistent)
            var one: UInt64 = 1
            _ = write(SignalEvents.fd, &one, 8)
        }
        // SIGXCPU (a CPU-time limit reached) stops cleanly like SIGTERM; the signals the daemon has no use
        // for, whose default action ends the process without a log line, socket cleanup or clip flush, are
        // ignored (attack run: `kill -USR1` ended it at once).
        setHandler(handler, for: [SIGTERM, SIGINT, SIGHUP, SIGXCPU])
        for sig in [SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF] { signal(sig, SIG_IGN) }
        return fd
    }

    /// Installs `handler` (SA_RESTART) for `signals` and ignores SIGPIPE (`earshot top` uses it for its own set).
    public static func setHandler(_ handler: @convention(c) (Int32) -> Void, for signals: [Int32]) {
        for sig in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = handler
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(sig, &action, nil)
        }
        signal(SIGPIPE, SIG_IGN)
    }

    /// Takes and clears the pending signals.
    public static func take() -> Pending {
        var v: UInt64 = 0
        _ = read(fd, &v, 8)
        return Pending(rawValue: pending.exchange(0, ordering: .sequentiallyConsistent))
    }
}
