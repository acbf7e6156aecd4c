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

    /// Starts a joinable thread named `name` (cut to 15 bytes) running `body`.
    ///
    /// - Parameters:
    ///   - name: thread name shown by `top -H` and `/proc/PID/task/*/comm`.
    ///   - fifoPriority: 1…99 to request `SCHED_FIFO` (best effort), 0 for the default policy.
    /// - Returns: the pthread handle to `join`, and the scheduling result.
    public static func start(
        name: String, fifoPriority: Int32 = 0, _ body: @escaping @Sendable () -> Void
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
        return (Handle(thread: thread), result)
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
