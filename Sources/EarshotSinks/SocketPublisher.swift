#if canImport(Glibc)
import Glibc
#endif
public import EarshotPipeline
import EarshotRealtime
public import Logging
import Synchronization

/// The NDJSON subscriber socket (protocol v1, `docs/protocol.md`): a listening Unix stream socket served by
/// one I/O thread (`es-socket`) running an `epoll` loop over the listener, every client, the frame bus
/// consumer's eventfd and an internal eventfd for ``publish(_:line:wallNs:)``, ``updateStream(_:)`` and
/// ``stop()``.
///
/// - Each frame is serialized once and the bytes are shared by every subscriber; a `fields` filter costs one
///   extra encoding per frame per distinct field set, `every: N` costs nothing.
/// - Every client has a bounded output queue (`queueMessages` data messages and `queueBytes`, or its share of
///   `queueBytesTotal` when that is smaller). When it is full the oldest data messages are dropped, counted,
///   and reported to the client with `{"type":"dropped","count":N,"stream":S}` once its queue has room again.
///   A client that makes no write progress for `stallLimitSeconds` is disconnected. Writes are non-blocking
///   `sendmsg` batches, so no client can slow another one, the DSP thread or a publisher.
/// - Work per client is bounded: one buffered read, a slice of commands (16) or of a backfill replay (256
///   lines) per loop iteration and at most one slice per 5 ms. A connection without a subscription for
///   `idleTimeoutSeconds` is closed; one uid (`SO_PEERCRED`) may hold `maxClientsPerUID` connections.
/// - Thread rules: `start`/`stop`/`updateStream` from a control thread; `publish` from any thread (bounded
///   queue under a short lock, never waits on I/O); the counters from anywhere. Never call from a real-time
///   thread. The logger is only used on the calling control thread and on the I/O thread.
public final class SocketPublisher: Sink, MessagePublisher, @unchecked Sendable {
    /// Fixed memory bounds of the socket loop, public so the daemon's memory estimate uses the same numbers.
    public enum Limits {
        /// Rolling lines kept for `backfill_s`, at most.
        public static let maxBackfillLines = 200_000
        /// Bytes read from one client and held until its lines have run.
        public static let readBufferBytes = 65_536
        /// The smallest share of `queue_bytes_total` a client gets, however many clients there are.
        public static let minQueueShare = 65_536
    }

    /// Settings (from the `socket.*` and `rolling.backfill_s` configuration).
    public struct Configuration: Sendable, Equatable {
        public var path: String
        public var mode: UInt32
        /// Group owning the socket; nil keeps the daemon's group. An unknown group is logged, not fatal.
        public var group: String?
        public var maxClients: Int
        /// Data messages queued per client before the oldest are dropped.
        public var queueMessages: Int
        /// Bytes queued per client before the oldest data messages are dropped.
        public var queueBytes: Int
        /// Seconds a client with queued output may make no write progress before it is disconnected.
        public var stallLimitSeconds: Double
        /// Longest accepted command line (bytes, newline excluded).
        public var maxLineBytes: Int
        /// Seconds of `rolling` lines kept for `backfill_s`.
        public var backfillSeconds: Double
        /// Features in `frame` lines (and in the `hello` catalogue).
        public var features: Set<Feature>
        /// Messages ``publish(_:line:wallNs:)`` may have pending for the I/O thread before it drops.
        public var publishQueueMessages: Int
        /// Connections one peer uid (`SO_PEERCRED`) may hold; more are refused with `too_many_clients`.
        public var maxClientsPerUID: Int
        /// Seconds a connection may stay without any subscription (never subscribed, or unsubscribed from
        /// everything) before it is closed with `idle_timeout`; 0 disables.
        public var idleTimeoutSeconds: Double
        /// Bytes all client queues together may hold: each client may queue at most its share
        /// (`queueBytesTotal / clients`, at least 64 KiB) when that is below `queueBytes`.
        public var queueBytesTotal: Int

        public init(
            path: String = "/run/earshot/earshot.sock", mode: UInt32 = 0o660, group: String? = nil,
            maxClients: Int = 128, queueMessages: Int = 4096, queueBytes: Int = 16 << 20,
            stallLimitSeconds: Double = 10, maxLineBytes: Int = 65_536, backfillSeconds: Double = 600,
            features: Set<Feature> = Set(Feature.allCases), publishQueueMessages: Int = 8192,
            maxClientsPerUID: Int = 64, idleTimeoutSeconds: Double = 10, queueBytesTotal: Int = 64 << 20
        ) {
            self.path = path; self.mode = mode; self.group = group; self.maxClients = maxClients
            self.queueMessages = queueMessages; self.queueBytes = queueBytes
            self.stallLimitSeconds = stallLimitSeconds; self.maxLineBytes = maxLineBytes
            self.backfillSeconds = backfillSeconds; self.features = features
            self.publishQueueMessages = publishQueueMessages
            self.maxClientsPerUID = maxClientsPerUID; self.idleTimeoutSeconds = idleTimeoutSeconds
            self.queueBytesTotal = queueBytesTotal
        }
    }

    public let name = "socket"
    public let configuration: Configuration
    public let daemonVersion: String
    let logger: Logger

    /// What the publisher and its I/O thread share: counters, the inbox, the wake-up, the running flag.
    let shared = SocketShared()

    /// Clients being served (connected and not closing after a fatal error or a refusal).
    public var clients: Int { shared.clients.load(ordering: .relaxed) }
    /// Connections accepted since start.
    public var connectionsTotal: Int { shared.connectionsTotal.load(ordering: .relaxed) }
    /// Data messages dropped from client queues (all clients, all streams).
    public var droppedTotal: Int { shared.droppedTotal.load(ordering: .relaxed) }
    /// Clients disconnected because they stopped reading.
    public var disconnectedStalled: Int { shared.disconnectedStalled.load(ordering: .relaxed) }
    /// Commands answered with an error.
    public var protocolErrors: Int { shared.protocolErrors.load(ordering: .relaxed) }
    /// Frames the bus consumer lost (the I/O thread fell more than the bus capacity behind).
    public var dropped: Int { shared.busDropped.load(ordering: .relaxed) }
    /// Messages ``publish(_:line:wallNs:)`` dropped because the I/O thread's inbox was full.
    public var publishDropped: Int { shared.publishDropped.load(ordering: .relaxed) }
    /// Connections refused (`max_clients` or the per-uid limit).
    public var refused: Int { shared.refused.load(ordering: .relaxed) }
    /// Connections closed because they held no subscription for `idleTimeoutSeconds`.
    public var idleClosed: Int { shared.idleClosed.load(ordering: .relaxed) }
    /// Frames taken from the bus.
    public var frames: Int { shared.frames.load(ordering: .relaxed) }

    /// Records the DSP → socket hand-off of every frame (set before ``start(bus:stream:)``).
    public var latencyRecorder: StageRecorder?

    // Owned by the control thread until start, then by the I/O thread.
    var listener: SocketListener?
    var consumer: FrameBus.Consumer?
    var thread: RealtimeThread.Handle?
    var loop: SocketLoop?

    /// - Parameters:
    ///   - configuration: socket path, permissions and limits.
    ///   - logger: used off the real-time threads only.
    ///   - daemonVersion: sent in `hello`.
    public init(configuration: Configuration, logger: Logger, daemonVersion: String) {
        self.configuration = configuration
        self.logger = logger
        self.daemonVersion = daemonVersion
    }

    deinit { stop() }

    /// Binds the socket (or takes systemd's), attaches to `bus` and starts the I/O thread.
    /// - Throws: ``SocketPublisherError`` (e.g. "another earshot is listening on PATH").
    public func start(bus: FrameBus, stream: StreamInfo) throws {
        guard !shared.running.load(ordering: .acquiring), thread == nil else {
            throw SocketPublisherError(.alreadyStarted, "socket publisher already started")
        }
        let (listener, warning) = try SocketListener.open(
            path: configuration.path, mode: configuration.mode, group: configuration.group)
        if let warning { logger.warning("\(warning)") }
        guard let consumer = bus.attach() else {
            listener.close()
            throw SocketPublisherError(.tooManyConsumers, "too many sinks attached to the frame bus (max \(FrameBus.maxConsumers))")
        }
        self.listener = listener
        self.consumer = consumer
        let loop = SocketLoop(shared: shared, configuration: configuration, logger: logger, daemonVersion: daemonVersion,
                              latencyRecorder: latencyRecorder, listener: listener, consumer: consumer, stream: stream)
        self.loop = loop
        shared.running.store(true, ordering: .releasing)
        logger.info("socket listening", metadata: [
            "path": "\(configuration.path)", "systemd": "\(listener.ownedPath == nil)",
        ])
        let (h, _) = RealtimeThread.start(name: "es-socket", fifoPriority: 0) { [loop] in loop.run() }
        thread = h
    }

    /// Closes every connection and the listener, removes the socket path (if we created it). Idempotent.
    public func stop() {
        guard shared.running.exchange(false, ordering: .acquiringAndReleasing) else { return }
        shared.wake.notify()
        if let thread { RealtimeThread.join(thread) }
        thread = nil
        loop = nil
        listener = nil
        consumer?.detach()
        consumer = nil
    }

    /// Queues a message for the subscribers of `stream` (rolling, alert, status, stats). Any thread; never
    /// waits for I/O. When the inbox is full the message is dropped and counted in ``publishDropped``.
    /// - Parameters:
    ///   - line: one NDJSON object including the trailing `\n`.
    ///   - wallNs: the message's time `t` (rolling lines are kept for `backfill_s` by it).
    public func publish(_ stream: StreamKind, line: [UInt8], wallNs: Int64) {
        let limit = configuration.publishQueueMessages
        let wasEmpty: Bool? = shared.inbox.withLock { box in box.queue(stream, line, wallNs: wallNs, limit: limit) }
        switch wasEmpty {
        case .none: shared.publishDropped.add(1, ordering: .relaxed)
        case .some(true): shared.wake.notify()
        case .some(false): break
        }
    }

    /// Moves to another frame bus (a reload rebuilt the pipeline with a new frame shape) and sends a fresh
    /// `hello`; clients stay connected. Messages published before this call reach the clients before the
    /// new `hello`, those published after it after it.
    public func switchBus(_ bus: FrameBus, stream info: StreamInfo) throws {
        guard let consumer = bus.attach() else {
            throw SocketPublisherError(.tooManyConsumers, "too many sinks attached to the frame bus (max \(FrameBus.maxConsumers))")
        }
        shared.inbox.withLock { box in
            box.consumer?.detach()
            box.consumer = consumer
            box.change(stream: info)
        }
        self.consumer = consumer
        shared.wake.notify()
    }

    /// The input-health state `hello` reports from now on (the active fault kinds; nil: not judged). Clients
    /// already connected follow the `health` messages instead of a new `hello`.
    public func update(health active: [String]?) {
        shared.health.withLock { $0 = active }
        shared.healthChanged.store(true, ordering: .releasing)
        shared.wake.notify()
    }

    /// Replaces the stream description (configuration reload) and sends a fresh `hello` to every client,
    /// after the messages published before this call.
    public func updateStream(_ info: StreamInfo) {
        shared.inbox.withLock { $0.change(stream: info) }
        shared.wake.notify()
    }
}

/// The state the socket publisher (control side, any thread) and its I/O thread (``SocketLoop``) share, and
/// nothing else: relaxed counters the loop writes and `stats`/metrics read, the cross-thread inbox the
/// publisher fills and the loop drains, the loop's wake-up and its running flag.
final class SocketShared: Sendable {
    let clients = Atomic<Int>(0)
    let connectionsTotal = Atomic<Int>(0)
    let droppedTotal = Atomic<Int>(0)
    let disconnectedStalled = Atomic<Int>(0)
    let protocolErrors = Atomic<Int>(0)
    let busDropped = Atomic<Int>(0)
    let publishDropped = Atomic<Int>(0)
    let frames = Atomic<Int>(0)
    /// Loop iterations the bus consumer's eventfd woke (tests: frames wake the loop, no timeout needed).
    let busWakeups = Atomic<Int>(0)
    let refused = Atomic<Int>(0)
    let idleClosed = Atomic<Int>(0)
    let running = Atomic<Bool>(false)
    /// Active input-health faults for `hello` (nil: not judged), and whether they changed since the loop
    /// last built its `hello`.
    let health = Mutex<[String]?>(nil)
    let healthChanged = Atomic<Bool>(false)

    struct Inbox {
        var messages: [(StreamKind, [UInt8], Int64)] = []
        var stream: StreamInfo? = nil
        /// How many of `messages` were queued before `stream` was set: they are in the old stream's terms (an
        /// alert that a rebuild ended as `reconfigured`, rolling windows it closed) and go out before the new
        /// `hello`, the rest after it.
        var streamAt = 0
        var consumer: FrameBus.Consumer? = nil

        /// Queues one message unless `limit` are queued; returns whether the queue was empty (nil: dropped).
        mutating func queue(_ kind: StreamKind, _ line: [UInt8], wallNs: Int64, limit: Int) -> Bool? {
            guard messages.count < limit else { return nil }
            messages.append((kind, line, wallNs))
            return messages.count == 1
        }

        /// A new stream description: its `hello` goes out after the messages queued so far.
        mutating func change(stream info: StreamInfo) {
            stream = info
            streamAt = messages.count
        }
    }
    let inbox = Mutex(Inbox())
    let wake = EventNotifier()
}
