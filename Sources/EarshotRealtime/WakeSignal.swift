#if canImport(Glibc)
import Glibc
#endif

/// A counting wake-up between two threads (a POSIX semaphore): the capture thread posts once per period,
/// the DSP thread waits.
///
/// `signal()` is async-signal-safe and lock-free in user space (one futex syscall only when a thread is
/// waiting), so it is allowed once per period on the capture thread.
public final class WakeSignal: @unchecked Sendable {
    private let sem: UnsafeMutablePointer<sem_t>

    public init() {
        sem = .allocate(capacity: 1)
        sem_init(sem, 0, 0)
    }

    deinit {
        sem_destroy(sem)
        sem.deallocate()
    }

    /// Wakes one waiter (or lets the next wait return at once).
    @inline(__always)
    public func signal() { sem_post(sem) }

    /// Waits until signalled or until `timeoutNanoseconds` pass. Returns `false` on timeout.
    @discardableResult
    public func wait(timeoutNanoseconds: Int64) -> Bool {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let total = Int64(ts.tv_nsec) + timeoutNanoseconds
        ts.tv_sec += Int(total / 1_000_000_000)
        ts.tv_nsec = Int(total % 1_000_000_000)
        while true {
            if sem_timedwait(sem, &ts) == 0 { return true }
            if errno == EINTR { continue }
            return false
        }
    }

    /// Consumes pending signals without waiting.
    public func drain() {
        while sem_trywait(sem) == 0 {}
    }
}
