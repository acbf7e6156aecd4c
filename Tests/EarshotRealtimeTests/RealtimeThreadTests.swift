#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing

@testable import EarshotRealtime

@Suite struct RealtimeThreadTests {
    /// The calling thread's scheduling policy.
    static func policy() -> Int32 {
        var policy: Int32 = -1
        var param = sched_param()
        _ = pthread_getschedparam(pthread_self(), &policy, &param)
        return policy
    }

    /// Runs `body` on a thread started with `batchIfNotFIFO` and returns the policy the body saw (once `start`
    /// has returned, so the creator's change has landed: a fixed sleep lost that race on a loaded box).
    static func policyOfThread(batchIfNotFIFO: Bool, fifoPriority: Int32 = 0) -> Int32 {
        let seen = Atomic<Int32>(-1)
        let started = Atomic<Bool>(false)
        let (h, _) = RealtimeThread.start(name: "test-policy", fifoPriority: fifoPriority, batchIfNotFIFO: batchIfNotFIFO) {
            for _ in 0..<10_000 where !started.load(ordering: .acquiring) { usleep(1_000) }
            seen.store(RealtimeThreadTests.policy(), ordering: .releasing)
        }
        started.store(true, ordering: .releasing)
        RealtimeThread.join(h)
        return seen.load(ordering: .acquiring)
    }

    @Test func batchIfNotFIFORunsTheThreadAsSchedBatch() {
        #expect(Self.policyOfThread(batchIfNotFIFO: false) == Int32(SCHED_OTHER))
        #expect(Self.policyOfThread(batchIfNotFIFO: true) == RealtimeThread.schedBatch)
    }

    @Test func aFIFOThreadStaysFIFOOrFallsBackToBatch() {
        // With CAP_SYS_NICE (or an rtprio limit) the thread is SCHED_FIFO; without, the fallback is SCHED_BATCH.
        let p = Self.policyOfThread(batchIfNotFIFO: true, fifoPriority: 1)
        #expect(p == Int32(SCHED_FIFO) || p == RealtimeThread.schedBatch)
    }

    @Test func useBatchPolicyOnThisThreadChangesOnlySchedOther() {
        let changed = Atomic<Int32>(-1)
        let after = Atomic<Int32>(-1)
        let (h, _) = RealtimeThread.start(name: "test-policy") {
            changed.store(RealtimeThread.useBatchPolicyOnThisThread() ? 1 : 0, ordering: .relaxed)
            after.store(RealtimeThreadTests.policy(), ordering: .relaxed)
            // Already SCHED_BATCH: nothing to change.
            if RealtimeThread.useBatchPolicyOnThisThread() { changed.store(2, ordering: .relaxed) }
        }
        RealtimeThread.join(h)
        #expect(changed.load(ordering: .relaxed) == 1)
        #expect(after.load(ordering: .relaxed) == RealtimeThread.schedBatch)
    }
}
