#if canImport(Glibc)
import Glibc
#endif
internal import CEarshotSupport

/// Starts named pthreads for real-time work (capture, DSP) and applies best-effort scheduling.
///
/// Real-time work runs on its own pthread, not on a Swift Task: a Task shares the cooperative pool and
/// can be delayed by unrelated work.
public enum RealtimeThread {
    /// What `start` managed to apply; logged by the caller from a non-RT thread.
    public struct SchedulingResult: Sendable, Equatable {
        public var requestedPriority: Int32
        public var fifoApplied: Bool
        public var error: Int32
    }

    /// A started thread, to pass to ``join(_:)``.
    public struct Handle: @unchecked Sendable {
        let thread: pthread_t
    }

    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    /// `SCHED_BATCH` (Linux `<sched.h>`; not exported by the Glibc module).
    static let schedBatch: Int32 = 3

    /// Starts a joinable thread named `name` (cut to 15 bytes) running `body`.
    ///
    /// - Parameters:
    ///   - name: thread name shown by `top -H` and `/proc/PID/task/*/comm`.
    ///   - fifoPriority: 1…99 to request `SCHED_FIFO` (best effort), 0 for the default policy.
    ///   - batchIfNotFIFO: when the thread does not get `SCHED_FIFO` (not requested, or refused), run it as
    ///     `SCHED_BATCH` (see ``useBatchPolicyOnThisThread()``).
    /// - Returns: the pthread handle to `join`, and the scheduling result.
    public static func start(
        name: String, fifoPriority: Int32 = 0, batchIfNotFIFO: Bool = false, _ body: @escaping @Sendable () -> Void
    ) -> (thread: Handle, scheduling: SchedulingResult) {
        let box = Unmanaged.passRetained(Box(body))
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { arg in
            let box = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
            box.body()
            return nil
        }, box.toOpaque())
        precondition(rc == 0, "pthread_create failed: \(rc)")
        var truncated = Array(name.utf8.prefix(15))
        truncated.append(0)
        _ = truncated.withUnsafeBufferPointer { p in
            p.baseAddress!.withMemoryRebound(to: CChar.self, capacity: p.count) { CEarshot_pthread_setname(thread, $0) }
        }
        var result = SchedulingResult(requestedPriority: fifoPriority, fifoApplied: false, error: 0)
        if fifoPriority > 0 {
            var param = sched_param()
            param.sched_priority = fifoPriority
            let err = pthread_setschedparam(thread, Int32(SCHED_FIFO), &param)
            result.fifoApplied = err == 0
            result.error = err
        }
        if batchIfNotFIFO, !result.fifoApplied {
            var param = sched_param()
            param.sched_priority = 0
            _ = pthread_setschedparam(thread, schedBatch, &param)
        }
        return (Handle(thread: thread), result)
    }

    /// Runs the calling thread as `SCHED_BATCH` if it is `SCHED_OTHER` (a `SCHED_FIFO`/`SCHED_RR` thread is
    /// left alone). Returns whether the policy was changed.
    ///
    /// Why (measured, `bench/README.md`, issue 10 round 2): the live path is a chain of wake-ups — capture
    /// wakes DSP, DSP wakes the socket thread — and a `SCHED_OTHER` thread woken on the waker's CPU preempts
    /// it. The capture thread was preempted between the two periods of every 20 ms chunk, so the DSP thread
    /// ran, slept and was woken again for the second period, and so was the socket thread: two wake-ups per
    /// chunk on each thread plus an involuntary switch. A `SCHED_BATCH` thread does not preempt the thread
    /// that woke it; it still gets its fair share of the CPU, and an idle CPU still runs it at once. Cost:
    /// when both share a CPU, the woken thread starts when the waker blocks (tens of µs here), and on a CPU
    /// busy with other `SCHED_OTHER` work it waits for that work's time slice instead of preempting it.
    /// Configure `SCHED_FIFO` priorities for a hard latency bound (unchanged by this).
    @discardableResult
    public static func useBatchPolicyOnThisThread() -> Bool {
        let me = pthread_self()
        var policy: Int32 = 0
        var param = sched_param()
        guard pthread_getschedparam(me, &policy, &param) == 0, policy == Int32(SCHED_OTHER) else { return false }
        param.sched_priority = 0
        return pthread_setschedparam(me, schedBatch, &param) == 0
    }

    /// Waits for `thread` to finish.
    public static func join(_ handle: Handle) {
        pthread_join(handle.thread, nil)
    }

    /// Lets `thread` go: its resources are freed when it finishes, without a join.
    public static func detach(_ handle: Handle) {
        pthread_detach(handle.thread)
    }

    /// Locks current and future pages in RAM (best effort). Returns errno or 0.
    public static func lockMemory() -> Int32 {
        mlockall(MCL_CURRENT | MCL_FUTURE) == 0 ? 0 : errno
    }
}
