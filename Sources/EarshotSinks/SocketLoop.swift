#if canImport(Glibc)
import Glibc
#endif
import CEarshotSupport
import EarshotPipeline
import EarshotProtocol
import EarshotRealtime
import Logging
import Synchronization

/// The I/O thread's state and `epoll` loop of a ``SocketPublisher``. Everything here runs on that thread.
final class SocketLoop: @unchecked Sendable {
    let shared: SocketShared
    let logger: Logger
    let daemonVersion: String
    let latencyRecorder: StageRecorder?
    let config: SocketPublisher.Configuration
    let listener: SocketListener
    var consumer: FrameBus.Consumer
    var stream: StreamInfo

    @exclusivity(unchecked) var clients: [Int32: SocketClient] = [:]
    var nextClientID = 1
    /// Full-feature encoder and the `fields` encoders made on demand.
    var encoder: EncoderRef
    var fieldEncoders: [Set<Feature>: EncoderRef] = [:]
    /// The current frame's line per `fields` set (emptied after every frame).
    @exclusivity(unchecked) var filtered: [Set<Feature>: OutMessage] = [:]
    /// Frame lines for reuse (``frameMessage(_:)``).
    @exclusivity(unchecked) var framePool: [OutMessage] = []
    static let framePoolSize = 16
    var hello: OutMessage
    /// `rolling` lines kept for `backfill_s`, oldest first.
    var backfill: [(wallNs: Int64, message: OutMessage)] = []
    var backfillHead = 0
    /// Lines removed from the front of `backfill` so far: `backfill[i]` is line number `backfillBase + i`.
    var backfillBase = 0
    var frame: FrameCopy
    /// One spectrum read from the bus's spectrum tap (grown to its bins on first use).
    var spectrumBuffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: 1)
    let writer = ByteWriter(capacity: 1 << 16)
    let readBuffer: UnsafeMutableRawBufferPointer
    /// Accepting is paused until this time after `EMFILE`/`ENFILE`.
    var acceptPausedUntilNs: Int64 = 0
    /// What a client can make happen at will is logged at most every 10 s per kind (a client looping on
    /// connect made ~13,000 lines/s); the counters (`refused`, `protocol_errors`, stalled disconnects) have
    /// every occurrence, each logged line how many were not logged before it.
    var refusedLog = LogRateLimiter(), refusedUIDLog = LogRateLimiter()
    var tooLongLog = LogRateLimiter(), stalledLog = LogRateLimiter()
    let stallLimitNs: Int64
    let idleTimeoutNs: Int64
    /// Connections per peer uid (refused connections are not counted).
    var clientsPerUID: [uid_t: Int] = [:]
    /// Bytes one client may queue: `queueBytes`, or its share of `queueBytesTotal` when that is smaller.
    var queueBytesShare: Int
    /// When `malloc_trim` last ran, and the queue bytes of the clients gone since.
    var lastTrimNs: Int64 = 0
    var freedSinceTrim = 0
    static let closingGraceNs: Int64 = 2_000_000_000
    static let maxBackfillLines = SocketPublisher.Limits.maxBackfillLines
    /// Commands executed per client per loop iteration; the rest wait, buffered, for the next iteration.
    static let commandsPerIteration = 16
    /// Backfill lines queued per client per loop iteration.
    static let replayLinesPerIteration = 256
    /// A client's next slice of commands or replay comes at least this long after its previous one (at most
    /// 3,200 commands and 51,200 backfill lines per second per client).
    static let sliceIntervalNs: Int64 = 5_000_000
    /// A client's commands are not read while it has this many bytes of unread replies queued.
    static let maxReplyBytes = 65_536
    /// Smallest per-client share of `queueBytesTotal`.
    static let minQueueShare = SocketPublisher.Limits.minQueueShare

    init(shared: SocketShared, configuration: SocketPublisher.Configuration, logger: Logger, daemonVersion: String,
         latencyRecorder: StageRecorder?, listener: SocketListener, consumer: FrameBus.Consumer, stream: StreamInfo) {
        self.shared = shared
        self.logger = logger
        self.daemonVersion = daemonVersion
        self.latencyRecorder = latencyRecorder
        self.config = configuration
        self.listener = listener
        self.consumer = consumer
        self.stream = stream
        encoder = EncoderRef(FrameEncoder(features: config.features, levelOffsetDb: stream.levelOffsetDb, levelUnit: stream.levelUnit))
        hello = OutMessage(Self.helloLine(stream: stream, config: config, version: daemonVersion, health: shared.health.withLock { $0 }), stream: nil)
        frame = FrameCopy(nMels: consumer.bus.nMels, nMFCC: consumer.bus.nMFCC)
        readBuffer = .allocate(byteCount: SocketPublisher.Limits.readBufferBytes, alignment: 8)
        stallLimitNs = Int64(max(0, config.stallLimitSeconds) * 1e9)
        idleTimeoutNs = Int64(min(max(0, config.idleTimeoutSeconds), 1e9) * 1e9)
        queueBytesShare = max(1, min(config.queueBytes, config.queueBytesTotal))
        epollFD = CEarshot_epoll_create()
        precondition(epollFD >= 0, "epoll_create1 failed: \(errno)")
    }

    deinit { close(epollFD); readBuffer.deallocate(); spectrumBuffer.deallocate() }

    // MARK: loop

    /// Wait timeout without clients (no frame wake-ups then either).
    static let idleDrainMilliseconds: Int32 = 1000
    /// When the idle drain was due (0: a client was connected when the loop went to sleep).
    var idleDueNs: Int64 = 0
    /// The loop's epoll set: the wake-up and the listener (level-triggered), the bus consumer's eventfd
    /// (edge-triggered and never read, see ``watchBus(_:)``) and every client (level-triggered, with the
    /// events it needs now, changed with `EPOLL_CTL_MOD` only when they change). A steady frame stream costs
    /// one `epoll_wait` and one `sendmsg` per wake-up: no registration of every descriptor per wait as with
    /// `poll`, no eventfd `read`, no `epoll_ctl`.
    let epollFD: Int32
    /// The consumer notifier's descriptor while it is in the epoll set (only with clients), else -1.
    var watchedNotifierFD: Int32 = -1
    var listenerWatched = false
    static let readable = UInt32(POLLIN), writable = UInt32(POLLOUT), hangUp = UInt32(POLLHUP | POLLERR)
    static let edgeTriggered: UInt32 = 1 << 31  // EPOLLET
    static let maxEvents = 64

    func watch(_ fd: Int32, _ events: UInt32, op: Int32) {
        if CEarshot_epoll_ctl(epollFD, op, fd, events) != 0 {
            logger.error("epoll_ctl(\(op), fd \(fd)) failed: \(String(cString: strerror(errno)))")
        }
    }

    /// Puts the bus consumer's eventfd in the epoll set while there are clients, edge-triggered: every
    /// eventfd `write` of the DSP stage (one per drain, and only while this consumer is parked) makes a new
    /// edge whether or not the count was read, so it is never read (the count cannot reach its 2^64 − 2
    /// limit). A count left from before it is added reports one edge at once: harmless (the loop drains the
    /// bus after every wait), whereas resetting it could drop a real wake-up written after the consumer parked.
    func watchBus(_ want: Bool) {
        let fd = consumer.notifier.fileDescriptor
        if want, watchedNotifierFD != fd {
            unwatchBus()
            watch(fd, Self.readable | Self.edgeTriggered, op: EPOLL_CTL_ADD)
            watchedNotifierFD = fd
        } else if !want {
            unwatchBus()
        }
    }

    func unwatchBus() {
        if watchedNotifierFD >= 0 { watch(watchedNotifierFD, 0, op: EPOLL_CTL_DEL) }
        watchedNotifierFD = -1
    }

    func run() {
        // Woken by the DSP thread for each frame: do not preempt it (see RealtimeThread.useBatchPolicyOnThisThread).
        RealtimeThread.useBatchPolicyOnThisThread()
        let readyFDs = UnsafeMutablePointer<Int32>.allocate(capacity: Self.maxEvents)
        let readyEvents = UnsafeMutablePointer<UInt32>.allocate(capacity: Self.maxEvents)
        defer { readyFDs.deallocate(); readyEvents.deallocate() }
        watch(shared.wake.fileDescriptor, Self.readable, op: EPOLL_CTL_ADD)
        while shared.running.load(ordering: .acquiring) {
            let now = Clock.monotonicNanoseconds()
            // With no client, frames are not waited for (no wake-up per frame): the bus is drained on the
            // loop's timeout or the next event.
            watchBus(!clients.isEmpty)
            let accepting = now >= acceptPausedUntilNs
            if accepting != listenerWatched {
                watch(listener.fd, Self.readable, op: accepting ? EPOLL_CTL_ADD : EPOLL_CTL_DEL)
                listenerWatched = accepting
            }
            // Without clients nothing waits for this thread but the bus, which holds ~10 s: drain it once a
            // second (the hand-off is then counted from when that drain was due, like a batch sink's).
            var timeoutMs: Int32 = clients.isEmpty ? Self.idleDrainMilliseconds : 100
            for c in clients.values {
                var ev: UInt32 = 0
                var pending = false  // buffered commands or a replay to continue: wake for its next slice
                if c.inputClosed {
                    // The client shut down its sending side: keep serving it until it closes (EPOLLHUP) or a
                    // write fails. Its last buffered commands still run.
                    if c.closingDeadlineNs == nil, acceptsCommands(c), c.input.hasWholeLine { pending = true }
                    if c.closingDeadlineNs == nil, replayCanRun(c) { pending = true }
                } else if c.closingDeadlineNs != nil {
                    ev |= Self.readable  // read and discard
                } else {
                    if acceptsCommands(c) {
                        // One read is buffered at most: read more only once every whole line in it has run.
                        if c.input.hasWholeLine { pending = true } else { ev |= Self.readable }
                    }
                    if replayCanRun(c) { pending = true }
                }
                if pending {
                    let wait = c.nextSliceNs &- now
                    timeoutMs = min(timeoutMs, wait <= 0 ? 0 : Int32(min(100, (wait + 999_999) / 1_000_000)))
                }
                if !c.isEmpty { ev |= Self.writable }
                // EPOLLHUP/EPOLLERR are reported whatever the mask (as poll's POLLHUP/POLLERR were).
                if ev != c.watched { watch(c.fd, ev, op: EPOLL_CTL_MOD); c.watched = ev }
            }
            if !accepting {  // accepting resumes when the pause ends, not at the next idle drain (up to 1 s later)
                timeoutMs = min(timeoutMs, Int32(max(0, min(1000, (acceptPausedUntilNs &- now + 999_999) / 1_000_000))))
            }
            idleDueNs = clients.isEmpty ? now &+ Int64(timeoutMs) &* 1_000_000 : 0
            let r = CEarshot_epoll_wait(epollFD, readyFDs, readyEvents, Int32(Self.maxEvents), timeoutMs)
            if r < 0 && errno != EINTR {
                logger.error("epoll_wait failed: \(String(cString: strerror(errno)))")
                usleep(10_000)
                continue
            }
            var woken = false, incoming = false
            for i in 0..<max(0, Int(r)) {
                let fd = readyFDs[i]
                if fd == shared.wake.fileDescriptor {
                    woken = true
                } else if fd == watchedNotifierFD {
                    shared.busWakeups.add(1, ordering: .relaxed)  // edge-triggered, nothing to read
                } else if listenerWatched, fd == listener.fd {
                    incoming = true
                } else if let c = clients[fd] {
                    c.revents = readyEvents[i]
                }
            }
            let after = Clock.monotonicNanoseconds()
            if woken { shared.wake.consume(); drainInbox(now: after) }
            // Always look at the bus: a wake-up may have come while frames were still queued.
            drainBus(now: after)
            if incoming { acceptAll(now: after) }
            for c in clients.values where c.revents != 0 {
                let re = c.revents
                c.revents = 0
                guard clients[c.fd] === c else { continue }
                if re & Self.writable != 0 { c.blocked = false }
                if c.inputClosed {
                    // EPOLLHUP on a half-closed Unix socket: the peer closed its end too.
                    if re & Self.hangUp != 0 { disconnect(c, reason: "closed"); continue }
                } else if re & Self.readable != 0 || re & Self.hangUp != 0 {
                    if !readInput(c, now: after, hangUp: re & Self.hangUp != 0) {
                        disconnect(c, reason: "closed"); continue
                    }
                }
            }
            // Bounded work per client: a slice (a few commands, or part of a backfill replay) per iteration and
            // at most one per `sliceIntervalNs`, so a client with endless requests costs a bounded share of
            // the thread and the loop still sleeps between frames.
            for c in clients.values {  // (commands and replays never disconnect: no client here is gone)
                guard c.closingDeadlineNs == nil, after >= c.nextSliceNs else { continue }
                var worked = false
                if replayCanRun(c) { replayStep(c, now: after); worked = true }
                if acceptsCommands(c), c.input.hasWholeLine { runCommands(c, now: after); worked = true }
                if worked { c.nextSliceNs = after + Self.sliceIntervalNs }
            }
            flushAll(now: after)
            // Give the memory of departed clients' queues back to the system (glibc keeps freed heap for
            // reuse otherwise), at most once a second.
            if freedSinceTrim > 1 << 20, after &- lastTrimNs > 1_000_000_000 {
                _ = CEarshot_malloc_trim()
                lastTrimNs = after
                freedSinceTrim = 0
            }
        }
        shutdown()
    }

    func shutdown() {
        for c in Array(clients.values) { disconnect(c, reason: "shutdown", log: false) }
        listener.close()
        logger.info("socket closed", metadata: ["path": "\(config.path)"])
    }

    // MARK: clients

    func acceptAll(now: Int64) {
        while true {
            // accept4 is not visible without _GNU_SOURCE; the daemon does not fork, so CLOEXEC right after is fine.
            let fd = accept(listener.fd, nil, nil)
            if fd >= 0 {
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            }
            if fd < 0 {
                let err = errno
                if err == EINTR || err == ECONNABORTED { continue }
                if err == EAGAIN || err == EWOULDBLOCK { return }
                if err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM {
                    acceptPausedUntilNs = now + 100_000_000
                    logger.warning("accept failed, pausing 100 ms: \(String(cString: strerror(err)))")
                    return
                }
                logger.error("accept failed: \(String(cString: strerror(err)))")
                return
            }
            // Level-triggered; the events are narrowed to what the client needs at the top of the next loop.
            if CEarshot_epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, Self.readable | Self.writable) != 0 {
                logger.warning("connection closed: cannot watch it: \(String(cString: strerror(errno)))")
                close(fd)
                continue
            }
            shared.connectionsTotal.add(1, ordering: .relaxed)
            let c = SocketClient(fd: fd, id: nextClientID, maxLineBytes: config.maxLineBytes, nowNs: now)
            nextClientID += 1
            c.watched = Self.readable | Self.writable
            clients[fd] = c
            c.enqueue(hello, maxMessages: config.queueMessages, maxBytes: queueBytesShare, nowNs: now)
            let uid = Self.peerUID(fd)
            let fromUID = uid.map { clientsPerUID[$0, default: 0] } ?? 0
            if clients.count > config.maxClients {
                sendError(c, ProtocolError(code: .tooManyClients, message: "server has \(config.maxClients) clients"), now: now)
                c.closingDeadlineNs = now + Self.closingGraceNs
                shared.refused.add(1, ordering: .relaxed)
                if let unlogged = refusedLog.admit(nowNs: now) {
                    logger.warning("client refused: too many clients", metadata: [
                        "max": "\(config.maxClients)", "refused_unlogged": "\(unlogged)"])
                }
            } else if let uid, fromUID >= config.maxClientsPerUID {
                sendError(c, ProtocolError(
                    code: .tooManyClients,
                    message: "uid \(uid) has \(fromUID) connections (limit \(config.maxClientsPerUID) per uid)"), now: now)
                c.closingDeadlineNs = now + Self.closingGraceNs
                shared.refused.add(1, ordering: .relaxed)
                if let unlogged = refusedUIDLog.admit(nowNs: now) {
                    logger.warning("client refused: too many connections from one uid", metadata: [
                        "uid": "\(uid)", "max": "\(config.maxClientsPerUID)", "refused_unlogged": "\(unlogged)",
                    ])
                }
            } else {
                if let uid { c.uid = uid; clientsPerUID[uid] = fromUID + 1 }
                updateQueueShare(now: now)
                logger.debug("client connected", metadata: ["client": "\(c.id)"])
            }
            updateClientCount()
        }
    }

    /// The uid of the process at the other end (`SO_PEERCRED`).
    static func peerUID(_ fd: Int32) -> uid_t? {
        var uid: UInt32 = 0
        return CEarshot_peer_uid(fd, &uid) == 0 ? uid : nil
    }

    /// Recomputes the per-client byte share of `queueBytesTotal` and trims queues above it.
    func updateQueueShare(now: Int64) {
        let counted = max(1, clients.count)
        let share = max(1, min(config.queueBytes, max(Self.minQueueShare, config.queueBytesTotal / counted)))
        let shrank = share < queueBytesShare
        queueBytesShare = share
        guard shrank else { return }
        for c in clients.values where c.queuedBytes > share {
            let d = c.trim(toBytes: share)
            if d > 0 { shared.droppedTotal.add(d, ordering: .relaxed) }
        }
    }

    /// True when the client's next commands may run: no fatal error, no replay in progress, and its unread
    /// replies are below the back-pressure limits.
    func acceptsCommands(_ c: SocketClient) -> Bool {
        c.closingDeadlineNs == nil && c.replayNext == nil
            && c.queuedCount - c.dataCount < config.queueMessages && c.replyBytes < Self.maxReplyBytes
    }

    /// A client that read nothing for `stall_limit_s` with output queued: its queued stream messages are
    /// dropped and an `error` (`stalled`) line is queued behind what it has partly received, then it gets
    /// ``closingGraceNs`` to read it (best effort: a client that never reads again just sees the close).
    func stalled(_ c: SocketClient, now: Int64) {
        shared.disconnectedStalled.add(1, ordering: .relaxed)
        if let unlogged = stalledLog.admit(nowNs: now) {
            logger.warning("client disconnected: stalled", metadata: [
                "client": "\(c.id)", "queued": "\(c.queuedCount)", "limit_s": "\(config.stallLimitSeconds)",
                "disconnected_unlogged": "\(unlogged)",
            ])
        }
        let queued = c.queuedCount
        c.dropQueuedData()
        sendError(c, ProtocolError(
            code: .stalled,
            message: "read nothing for \(config.stallLimitSeconds) s with \(queued) messages queued; closing the connection"),
            now: now)
        c.input.reset()
        c.closingDeadlineNs = now + Self.closingGraceNs
        c.closingReason = "stalled"
        updateClientCount()
        if !c.blocked, case .failed = c.flush(nowNs: now) { disconnect(c, reason: "stalled", log: false) }
    }

    /// Publishes the number of clients being served (`clients`, `subscribers` in `stats`): a connection that
    /// is closing — refused, or after a fatal error, with its error line still to go out — is not counted.
    func updateClientCount() {
        var n = 0
        for c in clients.values where c.closingDeadlineNs == nil { n += 1 }
        shared.clients.store(n, ordering: .relaxed)
    }

    func disconnect(_ c: SocketClient, reason: String, log: Bool = true) {
        clients[c.fd] = nil
        watch(c.fd, 0, op: EPOLL_CTL_DEL)
        close(c.fd)
        updateClientCount()
        if c.subscriptions.contains(.spectrum) { updateSpectrumDemand() }
        if let uid = c.uid {
            let left = clients.isEmpty ? 0 : clientsPerUID[uid, default: 1] - 1
            clientsPerUID[uid] = left > 0 ? left : nil
            if clients.isEmpty { clientsPerUID.removeAll() }
        }
        updateQueueShare(now: 0)
        freedSinceTrim += c.queuedBytes + c.input.count
        if log { logger.debug("client disconnected", metadata: ["client": "\(c.id)", "reason": "\(reason)"]) }
    }

    /// Reads what is available (one read: at most 64 KiB, buffered until its commands have run). Returns
    /// false when the connection is gone. End of input with the connection still open (the client shut down
    /// its sending side, as `echo … | socat` does) is not the end: the client is served until it closes;
    /// a last command without its newline still runs.
    func readInput(_ c: SocketClient, now: Int64, hangUp: Bool = false) -> Bool {
        let n = recv(c.fd, readBuffer.baseAddress, readBuffer.count, Int32(MSG_DONTWAIT))
        if n == 0 {
            if hangUp { return false }
            c.inputClosed = true
            if c.closingDeadlineNs == nil, c.input.count > 0, !c.input.endsWithNewline {
                withUnsafeBytes(of: UInt8(0x0A)) { c.input.append($0) }
            }
            logger.debug("client shut down its sending side", metadata: ["client": "\(c.id)"])
            return true
        }
        if n < 0 {
            let err = errno
            return err == EAGAIN || err == EWOULDBLOCK || err == EINTR
        }
        if c.closingDeadlineNs != nil { return true }  // discarding input after a fatal error
        c.input.append(UnsafeRawBufferPointer(start: readBuffer.baseAddress, count: n))
        // A partial line is checked at once (whole lines are checked when they run): the buffer never holds
        // more than one read plus `maxLineBytes`.
        if !c.input.hasWholeLine, c.input.count > config.maxLineBytes { lineTooLong(c, length: c.input.count, now: now) }
        return true
    }

    /// Executes up to ``commandsPerIteration`` buffered command lines (fewer when a replay starts or the
    /// replies back up); the rest wait for the next loop iteration.
    func runCommands(_ c: SocketClient, now: Int64) {
        var budget = Self.commandsPerIteration
        while budget > 0, acceptsCommands(c) {
            switch c.input.next() {
            case .needMore: return
            case .tooLong(let length): lineTooLong(c, length: length, now: now); return
            case .line(let line):
                budget -= 1
                line.withUnsafeBufferPointer { handleLine(c, $0, now: now) }
            }
        }
    }

    func lineTooLong(_ c: SocketClient, length: Int, now: Int64) {
        shared.protocolErrors.add(1, ordering: .relaxed)
        sendError(c, ProtocolError(
            code: .lineTooLong,
            message: "command line longer than \(config.maxLineBytes) bytes; closing the connection"), now: now)
        c.input.reset()
        c.closingDeadlineNs = now + Self.closingGraceNs
        updateClientCount()
        if let unlogged = tooLongLog.admit(nowNs: now) {
            logger.notice("client disconnected: command line too long", metadata: [
                "client": "\(c.id)", "bytes": "\(length)", "disconnected_unlogged": "\(unlogged)"])
        }
    }

    func handleLine(_ c: SocketClient, _ line: UnsafeBufferPointer<UInt8>, now: Int64) {
        if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { return }  // blank lines (JSON whitespace) are ignored
        switch ProtocolCommand.parse(line, enabledFeatures: config.features) {
        case .failure(let e):
            shared.protocolErrors.add(1, ordering: .relaxed)
            sendError(c, e, now: now)
        case .success(let cmd):
            execute(cmd, c, now: now)
        }
    }

    func sendError(_ c: SocketClient, _ e: ProtocolError, now: Int64) {
        reply(c, e, now: now)
    }

    /// Queues a reply or notice (never dropped).
    func reply(_ c: SocketClient, _ message: some ServerMessage, now: Int64) {
        c.enqueue(OutMessage(message.line(), stream: nil), maxMessages: config.queueMessages, maxBytes: queueBytesShare, nowNs: now)
    }

    func execute(_ cmd: ProtocolCommand, _ c: SocketClient, now: Int64) {
        switch cmd {
        case .ping(let id):
            reply(c, PongMessage(id: id, t: Double(Clock.wallNanoseconds()) / 1e9), now: now)
        case .unsubscribe(let streams, let id):
            c.subscriptions.subtract(streams)
            if streams.contains(.spectrum) { updateSpectrumDemand() }
            reply(c, UnsubscribedMessage(streams: c.subscriptions, id: id), now: now)
        case .subscribe(let streams, let every, let fields, let backfillSeconds, let id):
            c.subscriptions.formUnion(streams)
            if streams.contains(.frame) || streams.contains(.spectrum) { c.every = every ?? 1 }
            if streams.contains(.frame) { c.fields = fields == config.features ? nil : fields }
            if c.subscriptions.contains(.spectrum) { updateSpectrumDemand() }
            var replayCount = 0
            if let s = backfillSeconds, s > 0, streams.contains(.rolling), let first = backfillStart(seconds: min(s, config.backfillSeconds)) {
                // Queued a slice per loop iteration by `replayStep`, after this reply.
                replayCount = backfillBase + backfill.count - first
                c.replayNext = first
            }
            reply(c, SubscribedMessage(streams: c.subscriptions, every: c.every, fields: c.fields, backfill: replayCount, id: id),
                  now: now)
            if replayCanRun(c) { replayStep(c, now: now) }
        }
    }

    // MARK: data

    func deliver(_ m: OutMessage, to c: SocketClient, now: Int64) {
        let d = c.enqueue(m, maxMessages: config.queueMessages, maxBytes: queueBytesShare, nowNs: now)
        if d > 0 { shared.droppedTotal.add(d, ordering: .relaxed) }
    }

    func drainBus(now: Int64) {
        var budget = 4096  // bound the time spent before serving sockets again
        while budget > 0, case .frame(let lost) = consumer.next(into: frame) {
            budget -= 1
            if lost > 0 { busLost(lost, before: frame.header.seq) }
            shared.frames.add(1, ordering: .relaxed)
            // Idle (no client when the loop went to sleep): counted from when the idle drain was due.
            latencyRecorder?.record(frame.header, dequeuedAtNs: Clock.monotonicNanoseconds(), dueNs: idleDueNs)
            if clients.isEmpty { continue }
            var header = frame.header
            let hasOnset = header.hasOnset
            header.hasOnset = false
            var shared: OutMessage? = nil
            if !filtered.isEmpty { filtered.removeAll(keepingCapacity: true) }
            var onset: OutMessage? = nil
            for c in clients.values where c.closingDeadlineNs == nil {
                if c.wantsFrames, c.every == 1 || header.seq % Int64(c.every) == 0 {
                    let m: OutMessage
                    if let f = c.fields {
                        if let cached = filtered[f] {
                            m = cached
                        } else {
                            let enc = fieldEncoders[f] ?? {
                                let e = EncoderRef(FrameEncoder(features: f, levelOffsetDb: stream.levelOffsetDb, levelUnit: stream.levelUnit))
                                fieldEncoders[f] = e
                                return e
                            }()
                            m = encodeFrame(header, with: enc)
                            filtered[f] = m
                        }
                    } else {
                        if shared == nil { shared = encodeFrame(header, with: encoder) }
                        m = shared!
                    }
                    deliver(m, to: c, now: now)
                }
                if hasOnset, c.wantsOnsets {
                    if onset == nil {
                        writer.reset()
                        encoder.value.encodeOnsetJSON(frame.header, into: writer)
                        onset = OutMessage(Array(writer.bytes), stream: .onset)
                    }
                    deliver(onset!, to: c, now: now)
                }
            }
        }
        if budget == 0 { shared.wake.notify() }  // come back soon for the rest
        if !filtered.isEmpty { filtered.removeAll(keepingCapacity: true) }  // no line held past its frame
        drainSpectra(now: now)
    }

    /// The loop fell more than the whole bus behind and `lost` frames before `seq` are gone: counted, and
    /// owed to every frame subscriber as a `dropped` notice (as many as its `every` would have delivered), so a
    /// client never sees a seq gap without one.
    func busLost(_ lost: Int, before seq: Int64) {
        shared.busDropped.add(lost, ordering: .relaxed)
        let first = seq &- Int64(lost)
        for c in clients.values where c.closingDeadlineNs == nil && c.subscriptions.contains(.frame) {
            let e = Int64(max(c.every, 1))
            // Multiples of `every` in [first, seq): the frames this client would have received.
            let n = Int((seq + e - 1) / e - (max(first, 0) + e - 1) / e)
            if n > 0 { c.pendingDropped[.frame, default: 0] += n }
        }
    }

    func encodeFrame(_ header: FrameHeader, with enc: EncoderRef) -> OutMessage {
        writer.reset()
        enc.value.encodeJSON(header, logmel: UnsafeBufferPointer(frame.logmel), mfcc: UnsafeBufferPointer(frame.mfcc), into: writer)
        return frameMessage(writer.bytes)
    }

    /// A `frame` message holding `bytes`: a line of ``framePool`` that no client queue and no caller holds
    /// any more, refilled in place (with one subscriber reading along: the lines of the previous drain), or
    /// a new one (kept in the pool while it has room). No allocation per frame in the steady state.
    func frameMessage(_ bytes: UnsafeBufferPointer<UInt8>) -> OutMessage {
        for i in framePool.indices where isKnownUniquelyReferenced(&framePool[i]) {
            framePool[i].refill(bytes)
            return framePool[i]
        }
        let m = OutMessage(Array(bytes), stream: .frame)
        if framePool.count < Self.framePoolSize { framePool.append(m) }
        return m
    }

    func drainInbox(now: Int64) {
        let (messages, newStream, streamAt, newConsumer) = shared.inbox.withLock { box in
            let m = box.messages
            box.messages.removeAll(keepingCapacity: true)
            let s = box.stream
            box.stream = nil
            let at = box.streamAt
            box.streamAt = 0
            let c = box.consumer
            box.consumer = nil
            return (m, s, at, c)
        }
        if let newConsumer {
            // Configuration reload rebuilt the pipeline: deliver what the old bus still holds, then read the
            // new bus from now on.
            drainBus(now: now)
            unwatchBus()  // the loop watches the new consumer's eventfd from its next iteration
            consumer.detach()
            consumer.bus.spectrumTap?.every = 0
            consumer = newConsumer
            frame = FrameCopy(nMels: newConsumer.bus.nMels, nMFCC: newConsumer.bus.nMFCC)
            updateSpectrumDemand()
        }
        // Messages published before a stream change are in the old stream's terms: they go out first.
        let before = newStream == nil ? 0 : min(max(streamAt, 0), messages.count)
        deliver(messages[..<before], now: now)
        if let newStream { applyStream(newStream, now: now) }
        if shared.healthChanged.exchange(false, ordering: .acquiring) {
            hello = OutMessage(Self.helloLine(stream: stream, config: config, version: daemonVersion,
                                              health: shared.health.withLock { $0 }), stream: nil)
        }
        deliver(messages[before...], now: now)
    }

    /// Published messages (rolling, alert, status, stats) to the clients subscribed to their stream.
    func deliver(_ messages: ArraySlice<(StreamKind, [UInt8], Int64)>, now: Int64) {
        for (kind, line, wallNs) in messages {
            let m = OutMessage(line, stream: kind)
            if kind == .rolling { remember(m, wallNs: wallNs) }
            for c in clients.values where c.closingDeadlineNs == nil && c.subscriptions.contains(kind) {
                if kind == .rolling, c.replayNext != nil { continue }  // reaches it through the replay, in order
                deliver(m, to: c, now: now)
            }
        }
    }

    func applyStream(_ info: StreamInfo, now: Int64) {
        stream = info
        encoder = EncoderRef(FrameEncoder(features: config.features, levelOffsetDb: info.levelOffsetDb, levelUnit: info.levelUnit))
        fieldEncoders.removeAll()
        hello = OutMessage(Self.helloLine(stream: info, config: config, version: daemonVersion, health: shared.health.withLock { $0 }), stream: nil)
        for c in clients.values where c.closingDeadlineNs == nil {
            c.enqueue(hello, maxMessages: config.queueMessages, maxBytes: queueBytesShare, nowNs: now)
        }
        logger.info("socket stream updated; hello resent", metadata: ["clients": "\(clients.count)"])
    }

    func remember(_ m: OutMessage, wallNs: Int64) {
        backfill.append((wallNs, m))
        let newest = wallNs
        let horizon = newest &- Int64(config.backfillSeconds * 1e9)
        while backfillHead < backfill.count,
              backfill[backfillHead].wallNs < horizon || backfill.count - backfillHead > Self.maxBackfillLines {
            backfillHead += 1
        }
        // Compact once the dead lines are as many as the live ones (at least 64): rolling lines come ~1.1 per
        // second, so waiting for 1024 dead ones kept every line of the last ~15 minutes alive beyond backfill_s
        // (the soak's slow RSS creep: ~1 kB per line, released all at once every ~15 min).
        if backfillHead >= 64, backfillHead * 2 > backfill.count {
            backfill.removeFirst(backfillHead)
            backfillBase += backfillHead
            backfillHead = 0
        }
    }

    /// Line number of the oldest rolling line whose time is within `seconds` of the newest one (at most half
    /// a queue back), or nil when there is none.
    func backfillStart(seconds: Double) -> Int? {
        guard backfillHead < backfill.count else { return nil }
        let horizon = backfill[backfill.count - 1].wallNs &- Int64(seconds * 1e9)
        var i = backfill.count
        let limit = max(1, config.queueMessages / 2)
        while i > backfillHead, backfill[i - 1].wallNs >= horizon, backfill.count - (i - 1) <= limit { i -= 1 }
        return i < backfill.count ? backfillBase + i : nil
    }

    /// A replay continues while the client's queue is less than half full; otherwise it waits for the
    /// client to read (POLLOUT), so a client that does not read costs nothing and loses nothing to it.
    func replayCanRun(_ c: SocketClient) -> Bool {
        c.replayNext != nil && c.closingDeadlineNs == nil
            && c.dataCount < max(1, config.queueMessages / 2) && c.queuedBytes < queueBytesShare / 2
    }

    /// Queues the next ``replayLinesPerIteration`` lines of the client's backfill replay. The replay runs to
    /// the newest line kept, so live lines that arrived meanwhile follow in order; then it ends.
    func replayStep(_ c: SocketClient, now: Int64) {
        guard let next = c.replayNext else { return }
        var i = next - backfillBase
        if i < backfillHead {
            // Lines aged out of the history while the replay waited for this client: say so, as for any loss.
            c.pendingDropped[.rolling, default: 0] += backfillHead - i
            i = backfillHead
        }
        let room = max(1, config.queueMessages - c.dataCount)
        let end = min(backfill.count, i + min(Self.replayLinesPerIteration, room))
        while i < end {
            deliver(backfill[i].message, to: c, now: now)
            i += 1
        }
        c.replayNext = i < backfill.count ? backfillBase + i : nil
    }

    func flushAll(now: Int64) {
        // A disconnect below removes the client from `clients`, not from the copy being iterated.
        for c in clients.values {
            if !c.isEmpty, !c.blocked {  // a full socket is retried once poll reports POLLOUT
                switch c.flush(nowNs: now) {
                case .failed(let err):
                    disconnect(c, reason: String(cString: strerror(err)))
                    continue
                case .wouldBlock: c.blocked = true
                case .drained: break
                }
            }
            if let deadline = c.closingDeadlineNs {
                if c.isEmpty || now >= deadline { disconnect(c, reason: c.closingReason, log: c.closingReason != "stalled") }
                continue
            }
            if !c.pendingDropped.isEmpty, c.dataCount < config.queueMessages {
                // Report drops once there is room again (notices are replies: never dropped themselves).
                for k in StreamKind.allCases {
                    guard let n = c.pendingDropped[k] else { continue }
                    reply(c, DroppedMessage(count: n, stream: k), now: now)
                }
                c.pendingDropped.removeAll()
                if !c.blocked {
                    switch c.flush(nowNs: now) {
                    case .failed(let err): disconnect(c, reason: String(cString: strerror(err))); continue
                    case .wouldBlock: c.blocked = true
                    case .drained: break
                    }
                }
            }
            if idleTimeoutNs > 0, let since = c.idleSinceNs, now &- since > idleTimeoutNs {
                shared.idleClosed.add(1, ordering: .relaxed)
                sendError(c, ProtocolError(
                    code: .idleTimeout,
                    message: "no subscription for \(config.idleTimeoutSeconds) s; closing the connection"), now: now)
                c.closingDeadlineNs = now + Self.closingGraceNs
                c.closingReason = "idle"
                updateClientCount()
                logger.debug("client disconnected: idle", metadata: ["client": "\(c.id)"])
                continue
            }
            if stallLimitNs >= 0, c.isStalled(nowNs: now, limitNs: stallLimitNs) { stalled(c, now: now) }
        }
    }

    // MARK: hello

    static func helloLine(stream s: StreamInfo, config: SocketPublisher.Configuration, version: String,
                          health: [String]? = nil) -> [UInt8] {
        var m = HelloMessage(
            daemonVersion: version, sampleRate: s.sampleRate, nFFT: s.nFFT, hop: s.hop, nMels: s.nMels, nMFCC: s.nMFCC,
            melBandEdgesHz: s.melBandEdgesHz.map(Double.init), levelUnit: s.levelUnit, device: s.device,
            onsetLookAheadMs: s.onsetLookAheadMs, features: config.features,
            limits: .init(
                maxLineBytes: config.maxLineBytes, queueMessages: config.queueMessages, queueBytes: config.queueBytes,
                stallLimitSeconds: config.stallLimitSeconds, backfillSeconds: config.backfillSeconds,
                maxClients: config.maxClients, maxClientsPerUID: config.maxClientsPerUID,
                queueBytesTotal: config.queueBytesTotal, idleTimeoutSeconds: config.idleTimeoutSeconds))
        m.health = health.map { $0.isEmpty ? "ok" : $0.joined(separator: ",") }
        m.calibration = s.calibration
        return m.line()
    }
}

/// A ``FrameEncoder`` used through a class reference: its methods then run on the stored value (a `let`),
/// whereas a `FrameEncoder` read from a `var` or a dictionary was copied for every frame (a retain and a
/// release of each of its arrays).
final class EncoderRef {
    let value: FrameEncoder
    init(_ value: FrameEncoder) { self.value = value }
}
