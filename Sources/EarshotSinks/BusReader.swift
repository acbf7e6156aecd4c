import EarshotPipeline
import EarshotRealtime
import Synchronization

/// The thread, bus consumer and drain loop shared by the sinks that read frames (stdout, rolling, alerts,
/// latency, metrics): `start` attaches a consumer and runs `es-<name>`, which copies each frame out of the
/// ``FrameBus``, records its hand-off, counts losses and hands it to the sink; `stop` lets it drain what is
/// queued, calls the sink's last `afterDrain(stopping: true)`, joins it and detaches.
///
/// Two kinds of delivery:
/// - ``Delivery/stream``: the DSP thread wakes the reader when a frame is published while it waits (a
///   parked consumer, see ``FrameBus``): every frame is handed over at once (stdout).
/// - ``Delivery/batch(intervalMilliseconds:)``: the reader wakes on its own timer and takes every frame
///   queued since (rolling windows, alerts, latency, metrics), so it costs one wake-up per interval instead
///   of one per frame; the DSP thread wakes it early only when half the bus is queued for it (a burst). Its hand-off latency (the `sink:<name>`
///   stage) is measured from when the frame was *due*, i.e. the later of the frame being ready and the
///   batch's scheduled wake-up: the deliberate batching delay is not counted against the sink's budget,
///   a late wake-up or a slow sink still is.
/// - ``Delivery/onDemand(backstopMilliseconds:)``: a batch reader (backstop timer, half-ring wake-up) that
///   the DSP stage also wakes, at the end of the drain that published it, for a frame matching the
///   ``FrameWakeFilter`` the sink asks for after each drain (`wakeFilter`; alerts: a frame that could start
///   or end an alert). A frame matching the filter is due when it is ready, the others at the backstop.
final class BusReader: @unchecked Sendable {
    enum Delivery: Sendable, Equatable {
        case stream
        case batch(intervalMilliseconds: Int32)
        case onDemand(backstopMilliseconds: Int32)
    }

    /// Default batch interval: 10 frames at the default 10 ms hop.
    static let defaultBatchMilliseconds: Int32 = 100

    let threadName: String
    let delivery: Delivery
    let running = Atomic<Bool>(false)
    let droppedFrames = Atomic<Int>(0)
    /// Times the thread woke up and drained (tests; the cost of this reader in context switches).
    let drains = Atomic<Int>(0)
    /// Times the thread went to wait, everything queued read and (on demand) its wake filter set (tests).
    let waits = Atomic<Int>(0)
    private var thread: RealtimeThread.Handle?
    private(set) var consumer: FrameBus.Consumer?
    /// The consumer's position when ``stop()`` detached it (a replacement on the same bus resumes there).
    private(set) var stoppedAt: Int?
    /// Where the next ``start(bus:recorder:onFrame:afterDrain:wakeFilter:)`` attaches (nil: the next frame).
    var resumeAt: Int?

    init(threadName: String, delivery: Delivery = .batch(intervalMilliseconds: BusReader.defaultBatchMilliseconds)) {
        self.threadName = threadName
        self.delivery = delivery
    }

    var isRunning: Bool { running.load(ordering: .acquiring) }
    var dropped: Int { droppedFrames.load(ordering: .relaxed) }

    /// - Parameters:
    ///   - recorder: hand-off recorder (nil: none).
    ///   - onFrame: called on the sink thread for every frame.
    ///   - afterDrain: called after each drain (and once more with `stopping: true` before the thread ends);
    ///     returns how long to wait for the next frame, ms (a batch reader waits at most its interval).
    ///   - wakeFilter: ``Delivery/onDemand(backstopMilliseconds:)`` only: called after `afterDrain` on the
    ///     sink thread; the frames that should wake the reader from now on.
    func start(bus: FrameBus, recorder: StageRecorder?, onFrame: @escaping @Sendable (FrameCopy) -> Void,
               afterDrain: @escaping @Sendable (_ stopping: Bool) -> Int32 = { _ in 200 },
               wakeFilter: (@Sendable () -> FrameWakeFilter)? = nil) throws {
        let batchMs: Int32? = switch delivery {
        case .stream: nil
        case .batch(let ms), .onDemand(let ms): max(1, ms)
        }
        let wakeFilter: (@Sendable () -> FrameWakeFilter)? = if case .onDemand = delivery { wakeFilter ?? { .never } } else { nil }
        guard let consumer = bus.attach(wakes: batchMs == nil, resumeAt: resumeAt) else { throw SinkError.tooManyConsumers }
        self.consumer = consumer
        running.store(true, ordering: .releasing)
        let (h, _) = RealtimeThread.start(name: threadName, fifoPriority: 0) { [self] in
            let frame = FrameCopy(nMels: bus.nMels, nMFCC: bus.nMFCC)
            var stopping = false
            // A batch reader: when its current batch was due (frames ready before it are handed off "at" it).
            var dueNs: Int64 = 0
            // On demand: the filter in force (frames matching it were due when ready).
            var filter = FrameWakeFilter.never
            var woken = true
            while true {
                if woken { drains.add(1, ordering: .relaxed) }
                woken = false
                while case .frame(let lost) = consumer.next(into: frame) {
                    if let recorder {
                        // Batch: counted from max(ready, due) (see the type's documentation).
                        recorder.record(frame.header, dequeuedAtNs: Clock.monotonicNanoseconds(),
                                        dueNs: filter.matches(frame.header) ? 0 : dueNs)
                    }
                    if lost > 0 { droppedFrames.add(lost, ordering: .relaxed) }
                    onFrame(frame)
                }
                var waitMs = afterDrain(stopping)
                if stopping { return }
                if !running.load(ordering: .acquiring) { stopping = true; continue }  // one last drain
                if let wakeFilter {
                    filter = wakeFilter()
                    // Frames the producer may have judged by the previous filter: read them before waiting.
                    if consumer.setWakeFilter(filter) { continue }
                }
                if let batchMs {
                    waitMs = min(max(waitMs, 0), batchMs)
                    dueNs = Clock.monotonicNanoseconds() &+ Int64(waitMs) &* 1_000_000
                }
                waits.add(1, ordering: .releasing)
                consumer.notifier.wait(timeoutMilliseconds: waitMs)
                woken = true
            }
        }
        thread = h
    }

    /// Wakes the reader for one drain (any thread; e.g. a reload that changes what its wake filter must be).
    func wake() { consumer?.notifier.notify() }

    /// Idempotent.
    func stop() {
        guard running.exchange(false, ordering: .acquiringAndReleasing) else { return }
        consumer?.notifier.notify()
        if let thread { RealtimeThread.join(thread) }
        thread = nil
        stoppedAt = consumer?.position
        consumer?.detach()
        consumer = nil
    }
}
