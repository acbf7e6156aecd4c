import EarshotPipeline
import EarshotRealtime
import Synchronization

/// The thread, bus consumer and drain loop shared by the sinks that read frames (stdout, rolling, alerts,
/// latency, metrics): `start` attaches a consumer and runs `es-<name>`, which copies each frame out of the
/// ``FrameBus``, records its hand-off, counts losses and hands it to the sink; `stop` lets it drain what is
/// queued, calls the sink's last `afterDrain(stopping: true)`, joins it and detaches.
final class BusReader: @unchecked Sendable {
    let threadName: String
    let running = Atomic<Bool>(false)
    let droppedFrames = Atomic<Int>(0)
    private var thread: RealtimeThread.Handle?
    private var consumer: FrameBus.Consumer?

    init(threadName: String) { self.threadName = threadName }

    var isRunning: Bool { running.load(ordering: .acquiring) }
    var dropped: Int { droppedFrames.load(ordering: .relaxed) }

    /// - Parameters:
    ///   - recorder: hand-off recorder (nil: none).
    ///   - onFrame: called on the sink thread for every frame.
    ///   - afterDrain: called after each drain (and once more with `stopping: true` before the thread ends);
    ///     returns how long to wait for the next frame, ms.
    func start(bus: FrameBus, recorder: StageRecorder?, onFrame: @escaping @Sendable (FrameCopy) -> Void,
               afterDrain: @escaping @Sendable (_ stopping: Bool) -> Int32 = { _ in 200 }) throws {
        guard let consumer = bus.attach() else { throw SinkError.tooManyConsumers }
        self.consumer = consumer
        running.store(true, ordering: .releasing)
        let (h, _) = RealtimeThread.start(name: threadName, fifoPriority: 0) { [self] in
            let frame = FrameCopy(nMels: bus.nMels, nMFCC: bus.nMFCC)
            var stopping = false
            while true {
                while case .frame(let lost) = consumer.next(into: frame) {
                    recorder?.record(frame.header, dequeuedAtNs: Clock.monotonicNanoseconds())
                    if lost > 0 { droppedFrames.add(lost, ordering: .relaxed) }
                    onFrame(frame)
                }
                let waitMs = afterDrain(stopping)
                if stopping { return }
                if !running.load(ordering: .acquiring) { stopping = true; continue }  // one last drain
                consumer.notifier.wait(timeoutMilliseconds: waitMs)
            }
        }
        thread = h
    }

    /// Idempotent.
    func stop() {
        guard running.exchange(false, ordering: .acquiringAndReleasing) else { return }
        consumer?.notifier.notify()
        if let thread { RealtimeThread.join(thread) }
        thread = nil
        consumer?.detach()
        consumer = nil
    }
}
