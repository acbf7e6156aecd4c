#if canImport(Glibc)
import Glibc
#endif

/// The signal that interrupts a system call blocked on the capture thread (`SIGRTMIN+4`), with a handler
/// that does nothing and is installed without `SA_RESTART`: a `read`, `open` or `poll` inside libasound
/// returns `EINTR`, and the capture thread looks at why it was woken (stop, reconfiguration, stall). Sent
/// only to the capture thread with `pthread_kill`; the process never receives it from outside.
enum CaptureInterrupt {
    static let signalNumber: Int32 = __libc_current_sigrtmin() + 4

    private static let installed: Bool = {
        var action = sigaction()
        let handler: @convention(c) (Int32) -> Void = { _ in }
        action.__sigaction_handler.sa_handler = handler
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0  // no SA_RESTART: blocked calls return EINTR
        return sigaction(signalNumber, &action, nil) == 0
    }()

    /// Installs the handler once per process.
    static func install() { _ = installed }

    /// Unblocks the signal on the calling thread (the capture thread, first thing): a thread inherits its
    /// creator's mask, and libdispatch worker threads, for one, block every signal.
    static func unblockOnThisThread() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, signalNumber)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }
}
