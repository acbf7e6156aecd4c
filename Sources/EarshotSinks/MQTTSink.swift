#if canImport(Glibc)
import Glibc
#endif
import CMosquitto
import Prometheus
public import EarshotPipeline
import EarshotRealtime
public import Logging
import Synchronization

public struct MQTTSinkError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Publishes every non-frame message (rolling windows, alerts, status events, health, clips, stats, …) and
/// optionally decimated frame levels to an MQTT broker through Eclipse Mosquitto's `libmosquitto`
/// (README "MQTT"; topics and payloads in ``MQTTMessages``).
///
/// - ``publish(_:line:wallNs:)`` (from the ``MessageFanout``) copies the line into a bounded inbox and
///   returns; everything else happens on the sink's own thread `es-mqtt`: routing, the on-disk spool, the
///   connection (`mosquitto_connect` after a bounded TCP probe, then `mosquitto_loop` with a 50 ms timeout),
///   reconnects with exponential backoff (one log line per state change, not per attempt).
/// - QoS-1 messages go through the ``MQTTSpool`` (appended, published in order at most `drain_per_s` per
///   second, released on PUBACK): nothing within the spool bounds is lost across broker outages or daemon
///   restarts; delivery is at-least-once (a message whose PUBACK was lost is sent again; consumers drop
///   repeats by topic and `t`). QoS-0 messages (decimated levels, stats) are dropped (counted) while
///   disconnected.
/// - A spool that cannot be written (full or read-only disk) does not stop delivery: the messages it refuses
///   are held in memory, in order after everything spooled (bounded: ``Configuration/Limits/heldMessages``,
///   the oldest not yet sent dropped and counted), published from there like spooled ones (same order, same
///   PUBACK release, sent again after a reconnect) and written to the spool once it takes writes again; only
///   a daemon stop or crash (or a reload that restarts the sink) loses them. The failure is logged at error when it starts, summarised while it
///   lasts (after 1, 2, 4, … minutes, at most hourly), and a notice says when writes succeed again.
/// - Availability: `<base>/status` retained `online` after each connect, `offline` on a clean stop and as the
///   Last Will (a box that dies or loses power shows offline once the broker notices).
/// - `stop()` is bounded: the thread sends `offline`, disconnects and ends within about 1.5 s.
public final class MQTTSink: ConfigurableSink, MessagePublisher, @unchecked Sendable {
    /// The `mqtt.*` section.
    public struct Configuration: Sendable, Equatable {
        /// `mqtt://HOST[:PORT]` (default port 1883) or `mqtts://HOST[:PORT]` (TLS, 8883); nil: no MQTT.
        public var broker: String?
        /// Topic level for this box; nil: the host name.
        public var node: String?
        /// The instance (`$EARSHOT_INSTANCE`; `earshot` otherwise); set by the daemon, not a YAML key.
        public var instance = "earshot"
        public var topicPrefix = "earshot"
        public var keepaliveSeconds = 30
        /// Publish every Nth frame's levels on `<base>/levels` (QoS 0); 0: none.
        public var levelsEvery = 0
        public var reconnectInitialSeconds = 1.0
        /// Cap of the doubling backoff; at least `reconnectInitialSeconds`.
        public var reconnectMaxSeconds = 30.0
        /// PEM CA certificate(s) for `mqtts://`; nil: the system's CA store.
        public var caFile: String?
        public var certFile: String?
        public var keyFile: String?
        /// A file with the user name on its first line and the password on its second; it must not be
        /// readable by group or others.
        public var credentialsFile: String?
        public var spool = Spool()
        public var homeassistant = HomeAssistant()
        /// Rolling windows and their weighting (for the discovery documents); set by the daemon.
        public var windowsSeconds: [Double] = [1, 10, 60]
        public var weighting = "laf"
        public var version = ""

        public struct Spool: Sendable, Equatable {
            /// nil: `$STATE_DIRECTORY/mqtt-spool` (systemd), else `/var/lib/earshot/mqtt-spool`.
            public var directory: String?
            public var maxMB = 64.0
            public var maxAgeSeconds = 604_800.0
            /// Messages per second sent from the spool (a backlog after an outage drains at this rate).
            public var drainPerSecond = 50.0
            public init() {}
        }

        public struct HomeAssistant: Sendable, Equatable {
            public var enabled = false
            public var prefix = "homeassistant"
            public init() {}
        }

        public init() {}

        public var enabled: Bool { broker != nil }

        public enum Limits {
            public static let keepaliveSeconds = 5...3600
            public static let levelsEvery = 0...1_000_000
            public static let reconnectSeconds = SinkRange(0, 3600, lowerExclusive: true)
            public static let spoolMaxMB = SinkRange(0.01, 1_048_576)
            public static let spoolMaxAgeSeconds = SinkRange(1, 31_536_000)
            public static let drainPerSecond = SinkRange(0.01, 100_000)  // 1e-300 never published a spooled message
            /// Messages waiting for the sink's thread; more are dropped and counted.
            public static let inboxMessages = 8192
            public static let inboxBytes = 16 << 20
            /// The longest spool record (the spool's read buffer grows to it at most).
            public static let spoolRecordBytes = MQTTSpool.maxRecordBytes
            /// QoS-1 messages sent and not yet acknowledged.
            public static let maxInflight = 20
            /// QoS-1 messages held in memory while the spool cannot be written (full or read-only disk); beyond
            /// either bound the oldest not yet sent is dropped and counted (`mqtt_dropped_memory`).
            public static let heldMessages = 4096
            public static let heldBytes = 4 << 20
            /// The first summary of a spool write failure that lasts; then doubling, at most ``spoolSummaryMaxSeconds``.
            public static let spoolSummarySeconds = 60.0
            public static let spoolSummaryMaxSeconds = 3600.0
            /// Writes must succeed this long before the failure is reported over (a disk at the edge of full that
            /// takes one record and refuses the next is one failure, not a log line each time).
            public static let spoolRecoverySeconds = 10.0
            /// Seconds the TCP connection to the broker may take.
            public static let connectTimeoutSeconds = 5.0
        }

        /// The parsed broker URL.
        public struct Endpoint: Sendable, Equatable {
            public var host: String
            public var port: Int
            public var tls: Bool
        }

        public static func parseBroker(_ s: String) -> Endpoint? {
            let tls: Bool
            var rest: Substring
            if s.hasPrefix("mqtt://") { tls = false; rest = s.dropFirst(7) }
            else if s.hasPrefix("mqtts://") { tls = true; rest = s.dropFirst(8) }
            else { return nil }
            if rest.hasSuffix("/") { rest = rest.dropLast() }
            var host: Substring, port = tls ? 8883 : 1883
            if rest.hasPrefix("[") {
                guard let close = rest.firstIndex(of: "]") else { return nil }
                host = rest[rest.index(after: rest.startIndex)..<close]
                let after = rest[rest.index(after: close)...]
                if !after.isEmpty {
                    guard after.hasPrefix(":"), let p = Int(after.dropFirst()) else { return nil }
                    port = p
                }
            } else if let colon = rest.lastIndex(of: ":") {
                host = rest[..<colon]
                guard let p = Int(rest[rest.index(after: colon)...]) else { return nil }
                port = p
            } else {
                host = rest
            }
            guard !host.isEmpty, host.utf8.count <= 253, !host.contains(where: { $0.isWhitespace || $0 == "/" || $0 == "@" }),
                  (1...65535).contains(port) else { return nil }
            return Endpoint(host: String(host), port: port, tls: tls)
        }

        /// A topic prefix or node: non-empty, at most 128 bytes, no `+`, `#`, whitespace or control characters
        /// (`/` is allowed in the prefix only).
        public static func isTopicText(_ s: String, allowSlash: Bool) -> Bool {
            !s.isEmpty && s.utf8.count <= 128 && !s.hasPrefix("/") && !s.hasSuffix("/")
                && s.unicodeScalars.allSatisfy { c in
                    c != "+" && c != "#" && (allowSlash || c != "/") && !c.properties.isWhitespace && c.value >= 0x20 && c.value != 0x7F
                }
        }

        public func validate() throws(SinkConfigError) {
            if let broker, Self.parseBroker(broker) == nil {
                throw SinkConfigError(field: "broker", message: "\"\(broker)\" is not mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
            }
            if let node, !Self.isTopicText(node, allowSlash: false) {
                throw SinkConfigError(field: "node", message: "\"\(node)\" must be 1-128 bytes without /, +, #, spaces or control characters")
            }
            guard Self.isTopicText(topicPrefix, allowSlash: true) else {
                throw SinkConfigError(field: "topic_prefix", message: "\"\(topicPrefix)\" must be 1-128 bytes without +, #, spaces or control characters, not starting or ending with /")
            }
            guard Self.isTopicText(homeassistant.prefix, allowSlash: true) else {
                throw SinkConfigError(field: "homeassistant.prefix", message: "\"\(homeassistant.prefix)\" is not a valid topic prefix")
            }
            try checkRange("keepalive_s", keepaliveSeconds, Limits.keepaliveSeconds)
            try checkRange("levels_every", levelsEvery, Limits.levelsEvery)
            try Limits.reconnectSeconds.check("reconnect_initial_s", reconnectInitialSeconds)
            try Limits.reconnectSeconds.check("reconnect_max_s", reconnectMaxSeconds)
            guard reconnectMaxSeconds >= reconnectInitialSeconds else {
                throw SinkConfigError(field: "reconnect_max_s", message: "must be at least mqtt.reconnect_initial_s",
                                      related: "reconnect_initial_s")
            }
            try Limits.spoolMaxMB.check("spool.max_mb", spool.maxMB)
            try Limits.spoolMaxAgeSeconds.check("spool.max_age_s", spool.maxAgeSeconds)
            try Limits.drainPerSecond.check("spool.drain_per_s", spool.drainPerSecond)
            for (field, path) in [("ca_file", caFile), ("cert_file", certFile), ("key_file", keyFile),
                                  ("credentials_file", credentialsFile), ("spool.directory", spool.directory)] {
                if let path, !path.hasPrefix("/") || path.hasSuffix("/") && field != "spool.directory" {
                    throw SinkConfigError(field: field, message: "\"\(path)\" must be an absolute path")
                }
            }
            if (certFile == nil) != (keyFile == nil) {
                throw SinkConfigError(field: certFile == nil ? "cert_file" : "key_file", message: "cert_file and key_file go together")
            }
            if enabled, (caFile != nil || certFile != nil), let broker, broker.hasPrefix("mqtt://") {
                throw SinkConfigError(field: "broker", message: "ca_file/cert_file are set but \(broker) is not mqtts://")
            }
            if enabled, let credentialsFile { _ = try Self.readCredentials(credentialsFile) }
        }

        /// Reads `path` (user name on the first line, password on the second). Refused when the file is
        /// readable or writable by group or others, or is not a regular file.
        public static func readCredentials(_ path: String) throws(SinkConfigError) -> (user: String, password: String?) {
            let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
            guard fd >= 0 else {
                throw SinkConfigError(field: "credentials_file", message: "cannot open \(path): \(String(cString: strerror(errno)))")
            }
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
                throw SinkConfigError(field: "credentials_file", message: "\(path) is not a regular file")
            }
            guard st.st_mode & 0o077 == 0 else {
                throw SinkConfigError(field: "credentials_file", message: "\(path) is accessible by group or others (mode \(octal(st.st_mode & 0o777))); run chmod 600 \(path)")
            }
            guard st.st_size <= 4096 else { throw SinkConfigError(field: "credentials_file", message: "\(path) is larger than 4096 bytes") }
            var buf = [UInt8](repeating: 0, count: 4096)
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, 4096) }
            guard n > 0 else { throw SinkConfigError(field: "credentials_file", message: "\(path) is empty") }
            // Lines split as bytes (a Swift `Character` "\r\n" is one grapheme: splitting the String at "\n" kept
            // CRLF files whole), one CR before each LF dropped. A user or password that is not valid UTF-8 or holds
            // a control character (NUL would cut it short in libmosquitto's C string) is refused, not altered.
            let lines = buf.prefix(n).split(separator: 0x0A, maxSplits: 2, omittingEmptySubsequences: false)
                .map { $0.last == 0x0D ? $0.dropLast() : $0 }
            func text(_ i: Int, _ what: String) throws(SinkConfigError) -> String? {
                guard i < lines.count, !lines[i].isEmpty else { return nil }
                guard let s = String(validating: lines[i], as: UTF8.self) else {
                    throw SinkConfigError(field: "credentials_file", message: "\(path): the \(what) is not valid UTF-8")
                }
                guard !lines[i].contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) else {
                    throw SinkConfigError(field: "credentials_file", message: "\(path): the \(what) contains a control character")
                }
                return s
            }
            guard let user = try text(0, "user name (first line)") else {
                throw SinkConfigError(field: "credentials_file", message: "\(path): the first line must be the user name")
            }
            return (user, try text(1, "password (second line)"))
        }

        static func octal(_ m: UInt32) -> String {
            let d = String(m, radix: 8)
            return String(repeating: "0", count: max(0, 4 - d.count)) + d
        }

        /// The node's topic level: `node`, or the host name.
        public var resolvedNode: String {
            if let node { return node }
            var buf = [CChar](repeating: 0, count: 256)
            guard gethostname(&buf, 255) == 0 else { return "earshot" }
            return MQTTMessages.topicLevel(String(cString: buf))
        }

        /// The spool directory: `spool.directory`, `$STATE_DIRECTORY/mqtt-spool` (the first entry), or
        /// `/var/lib/earshot/mqtt-spool`.
        public func resolvedSpoolDirectory(environment: [String: String]) -> String {
            if let d = spool.directory { return d }
            if let s = environment["STATE_DIRECTORY"]?.split(separator: ":").first, s.hasPrefix("/") { return s + "/mqtt-spool" }
            return "/var/lib/earshot/mqtt-spool"
        }
    }

    public let name = "mqtt"
    public var configSection: String { "mqtt" }
    public let configuration: Configuration
    let logger: Logger
    /// Where the spool lives (``Configuration/resolvedSpoolDirectory(environment:)``).
    public let spoolDirectory: String
    public var latencyRecorder: StageRecorder?
    /// How the broker's name is resolved (tests substitute one that blocks; set before ``start(bus:stream:)``).
    var resolver = MQTTResolver.system

    let reader = BusReader(threadName: "es-mqtt-levels")
    let running = Atomic<Bool>(false)
    private var thread: RealtimeThread.Handle?
    private let inbox = Mutex<(messages: [(line: [UInt8], wallNs: Int64, levels: Bool)], bytes: Int)>(([], 0))

    // Counters (written by the sink's thread, read anywhere).
    let _connected = Atomic<Int>(0)
    let _connects = Atomic<Int>(0)
    let _connectFailures = Atomic<Int>(0)
    let _published = Atomic<Int>(0)
    let _inboxDropped = Atomic<Int>(0)
    let _qos0Dropped = Atomic<Int>(0)
    let _spoolDropped = Atomic<Int>(0)
    let _spoolBytes = Atomic<Int>(0)
    let _spoolMessages = Atomic<Int>(0)
    let _latencyLastMs = Atomic<Int>(0)
    let _latencyMaxMs = Atomic<Int>(0)
    let _spoolFailing = Atomic<Int>(0)
    let _unspooled = Atomic<Int>(0)
    let _held = Atomic<Int>(0)
    let _heldDropped = Atomic<Int>(0)

    public init(configuration: Configuration, logger: Logger, environment: [String: String] = [:]) {
        self.configuration = configuration
        self.logger = logger
        spoolDirectory = configuration.resolvedSpoolDirectory(environment: environment)
    }

    deinit { stop() }

    public var dropped: Int { reader.dropped }
    public var isConnected: Bool { _connected.load(ordering: .relaxed) == 1 }

    /// `mqtt_connected` (0/1), `mqtt_connects`, `mqtt_connect_failures`, `mqtt_published`,
    /// `mqtt_dropped_inbox`, `mqtt_dropped_qos0`, `mqtt_dropped_spool`, `mqtt_dropped_memory`, `mqtt_spool_bytes`,
    /// `mqtt_spool_messages`, `mqtt_spool_failing` (0/1), `mqtt_unspooled`, `mqtt_held_messages`,
    /// `mqtt_publish_latency_ms_last`, `mqtt_publish_latency_ms_max`.
    public var counters: [(String, Int)] {
        [("mqtt_connected", _connected.load(ordering: .relaxed)), ("mqtt_connects", _connects.load(ordering: .relaxed)),
         ("mqtt_connect_failures", _connectFailures.load(ordering: .relaxed)), ("mqtt_published", _published.load(ordering: .relaxed)),
         ("mqtt_dropped_inbox", _inboxDropped.load(ordering: .relaxed)), ("mqtt_dropped_qos0", _qos0Dropped.load(ordering: .relaxed)),
         ("mqtt_dropped_spool", _spoolDropped.load(ordering: .relaxed)), ("mqtt_dropped_memory", _heldDropped.load(ordering: .relaxed)),
         ("mqtt_spool_bytes", _spoolBytes.load(ordering: .relaxed)),
         ("mqtt_spool_messages", _spoolMessages.load(ordering: .relaxed)), ("mqtt_spool_failing", _spoolFailing.load(ordering: .relaxed)),
         ("mqtt_unspooled", _unspooled.load(ordering: .relaxed)), ("mqtt_held_messages", _held.load(ordering: .relaxed)),
         ("mqtt_publish_latency_ms_last", _latencyLastMs.load(ordering: .relaxed)),
         ("mqtt_publish_latency_ms_max", _latencyMaxMs.load(ordering: .relaxed))]
    }

    /// Queues a copy of `line` for the sink's thread and returns (bounded: a full inbox drops, counted).
    public func publish(_ stream: StreamKind, line: [UInt8], wallNs: Int64) {
        enqueue(line, wallNs: wallNs, levels: false)
    }

    func enqueue(_ line: [UInt8], wallNs: Int64, levels: Bool) {
        let ok = inbox.withLock { box in
            guard box.messages.count < Configuration.Limits.inboxMessages,
                  box.bytes + line.count <= Configuration.Limits.inboxBytes else { return false }
            box.messages.append((line, wallNs, levels))
            box.bytes += line.count
            return true
        }
        if !ok { _inboxDropped.add(1, ordering: .relaxed) }
    }

    public func start(bus: FrameBus, stream: StreamInfo) throws {
        guard thread == nil, let endpoint = configuration.broker.flatMap(Configuration.parseBroker) else {
            throw MQTTSinkError("mqtt.broker is not set or not a valid URL")
        }
        guard CEarshot_mosquitto_load() == 1 else { throw MQTTSinkError(String(cString: CEarshot_mosquitto_error())) }
        var credentials: (user: String, password: String?)?
        if let path = configuration.credentialsFile {
            do { credentials = try Configuration.readCredentials(path) } catch { throw MQTTSinkError("mqtt.\(error.field): \(error.message)") }
        }
        let spool = try MQTTSpool(directory: spoolDirectory, maxBytes: Int(configuration.spool.maxMB * 1_048_576),
                                  maxAgeNs: Int64(configuration.spool.maxAgeSeconds * 1e9))
        let node = configuration.resolvedNode
        let instance = MQTTMessages.topicLevel(configuration.instance)
        let client = MQTTClientLoop(sink: self, endpoint: endpoint, credentials: credentials, spool: spool, node: node,
                                    instance: instance, levelUnit: stream.levelUnit)
        running.store(true, ordering: .releasing)
        if configuration.levelsEvery > 0 {
            let every = Int64(configuration.levelsEvery)
            let offset = Double(stream.levelOffsetDb), unit = stream.levelUnit
            try reader.start(bus: bus, recorder: latencyRecorder, onFrame: { [self] frame in
                let h = frame.header
                guard h.seq % every == 0 else { return }
                enqueue(MQTTMessages.levels(h, node: node, instance: instance, levelUnit: unit, offsetDb: offset),
                        wallNs: h.wallNs, levels: true)
            })
        }
        logger.info("mqtt publishing", metadata: [
            "broker": "\(configuration.broker ?? "")", "topics": "\(MQTTMessages.base(prefix: configuration.topicPrefix, node: node, instance: instance))/#",
            "spool": "\(spoolDirectory)", "spooled_messages": "\(spool.pendingMessages)",
        ])
        let (h, _) = RealtimeThread.start(name: "es-mqtt", fifoPriority: 0) { client.run() }
        thread = h
    }

    /// Sends `offline`, disconnects and joins the thread (bounded: about 1.5 s). Idempotent.
    public func stop() {
        reader.stop()
        guard running.exchange(false, ordering: .acquiringAndReleasing) else { return }
        if let thread { RealtimeThread.join(thread) }
        thread = nil
    }

    func takeInbox() -> [(line: [UInt8], wallNs: Int64, levels: Bool)] {
        inbox.withLock { box in
            let m = box.messages
            box.messages.removeAll(keepingCapacity: true)
            box.bytes = 0
            return m
        }
    }
}

/// The sink's thread: the libmosquitto client, the spool pump and the reconnect policy. Everything here
/// runs on `es-mqtt` (libmosquitto's callbacks run inside `mosquitto_loop` on the same thread).
final class MQTTClientLoop: @unchecked Sendable {
    unowned let sink: MQTTSink
    let config: MQTTSink.Configuration
    let endpoint: MQTTSink.Configuration.Endpoint
    let credentials: (user: String, password: String?)?
    let spool: MQTTSpool
    let node: String, instance: String, levelUnit: String, base: String
    var logger: Logger { sink.logger }

    var mosq: OpaquePointer?
    var connected = false
    /// Set by the callbacks: the connection ended (reason), to be torn down by the loop.
    var lost: String?
    var lastLibraryError: String?
    var connectStartedNs: Int64 = 0
    var nextAttemptNs: Int64 = 0
    var backoffSeconds: Double
    /// The failure reason last logged (a repeat is not logged again).
    var loggedFailure: String?
    /// Sent and not yet released, in publish order: spooled records (positions) and held ones (`held`).
    struct InFlight {
        var mid: Int32
        var start = MQTTSpool.Position(segment: 0, offset: 0), end = MQTTSpool.Position(segment: 0, offset: 0)
        var enqueuedNs: Int64
        var acked: Bool
        /// A message from ``held`` (its head), not from the spool.
        var held = false
    }
    var inflight: [InFlight] = []
    /// QoS-1 messages the spool could not take (full or read-only disk), in order after everything spooled;
    /// the first `heldSent` are in flight. While any is held, new messages are held too (order).
    var held: [(topic: String, payload: [UInt8], retain: Bool, enqueuedNs: Int64)] = []
    var heldBytes = 0
    var heldSent = 0
    /// No further held message is sent until those in flight are acknowledged, then the held ones are moved
    /// to the spool if it takes writes again (set once a second while held messages are in flight: with
    /// messages always in flight, ``flushHeld()`` would otherwise never find a moment to run).
    var heldPaused = false
    /// Held messages dropped unsent because they were older than `spool.max_age_s` (counted with the spool's).
    var heldExpired = 0
    /// The spool write failure being reported: since when, when the next summary is due and the counters
    /// when it started.
    struct SpoolFailure {
        var sinceNs: Int64
        var nextSummaryNs: Int64
        var summaryInterval: Double
        var unspooledAtStart: Int
        var droppedAtStart: Int
        /// Since when writes succeed again (reported over after ``MQTTSink/Configuration/Limits/spoolRecoverySeconds``).
        var okSinceNs: Int64?
    }
    var spoolFailure: SpoolFailure?
    var tokens = 0.0
    var lastTokenNs: Int64 = 0
    var lastHousekeepingNs: Int64 = 0
    /// The broker's name lookup (``resolved()``): the one in flight or last started, whether an attempt waits
    /// on it, and until when.
    var resolution: MQTTResolution?
    var resolving = false
    var resolveDeadlineNs: Int64 = 0

    static let libraryReady: Bool = { mosquitto_lib_init() == MOSQ_ERR_SUCCESS.rawValue }()

    init(sink: MQTTSink, endpoint: MQTTSink.Configuration.Endpoint, credentials: (user: String, password: String?)?,
         spool: MQTTSpool, node: String, instance: String, levelUnit: String) {
        self.sink = sink; self.config = sink.configuration; self.endpoint = endpoint; self.credentials = credentials
        self.spool = spool; self.node = node; self.instance = instance; self.levelUnit = levelUnit
        base = MQTTMessages.base(prefix: config.topicPrefix, node: node, instance: instance)
        backoffSeconds = config.reconnectInitialSeconds
    }

    static func wallNs() -> Int64 { Clock.monotonicNanoseconds() &+ Clock.wallMinusMonotonicNanoseconds() }

    func run() {
        _ = Self.libraryReady
        if let problem = spool.cursorProblem {
            logger.warning("mqtt spool cursor not used: \(problem); resending from the oldest spooled message (at-least-once)",
                           metadata: ["spool": "\(spool.directory)", "spooled_messages": "\(spool.pendingMessages)"])
        }
        noteSpoolState()
        while sink.running.load(ordering: .acquiring) {
            let now = Clock.monotonicNanoseconds()
            route(sink.takeInbox())
            if mosq == nil && now >= nextAttemptNs { connect() }
            if let m = mosq {
                let rc = mosquitto_loop(m, 50, 1)
                if rc != MOSQ_ERR_SUCCESS.rawValue && lost == nil { lost = connected ? describe(rc) : connectFailure(rc) }
                if lost == nil && !connected && now - connectStartedNs > Int64(MQTTSink.Configuration.Limits.connectTimeoutSeconds * 2e9) {
                    lost = "no CONNACK from the broker within \(Int(MQTTSink.Configuration.Limits.connectTimeoutSeconds * 2)) s"
                }
                if let reason = lost { teardown(reason: reason) }
            } else {
                usleep(50_000)
            }
            if connected { pump() }
            if now - lastHousekeepingNs >= 1_000_000_000 {
                lastHousekeepingNs = now
                spool.expire(nowNs: Self.wallNs())
                expireHeld(nowNs: Self.wallNs())
                spool.retryCursor()
                if heldSent > 0 && held.count > 0 { heldPaused = true }  // flushHeld once these are acknowledged
                flushHeld()
                noteSpoolState()
                updateGauges()
            }
        }
        route(sink.takeInbox())
        shutdown()
        flushHeld()
        if !held.isEmpty {
            logger.error("mqtt stopped with \(held.count) QoS-1 messages held in memory (the spool could not be written): they are lost",
                         metadata: ["spool": "\(spool.directory)"])
        }
        updateGauges()
        spool.close()
    }

    func updateGauges() {
        sink._spoolDropped.store(spool.dropped + heldExpired, ordering: .relaxed)
        sink._spoolBytes.store(spool.pendingBytes, ordering: .relaxed)
        sink._spoolMessages.store(spool.pendingMessages, ordering: .relaxed)
        sink._connected.store(connected ? 1 : 0, ordering: .relaxed)
        sink._held.store(held.count, ordering: .relaxed)
        sink._spoolFailing.store(spool.writeErrno != 0 ? 1 : 0, ordering: .relaxed)
    }

    // MARK: spool write failures

    /// A QoS-1 message: into the spool, or (the spool cannot be written, or messages are already held) held
    /// in memory after everything spooled.
    func enqueueQoS1(topic: String, payload: [UInt8], retain: Bool, nowNs: Int64) {
        if held.isEmpty {
            if case .failed = spool.append(topic: topic, payload: payload, retain: retain, nowNs: nowNs) {} else { return }
            if spoolFailure == nil { noteSpoolState() }  // the failure starts with this message (counted in it)
        }
        sink._unspooled.add(1, ordering: .relaxed)
        held.append((topic, payload, retain, nowNs))
        heldBytes += topic.utf8.count + payload.count
        // Bounded: the oldest not yet sent goes (those in flight are released by their PUBACK).
        while held.count > heldSent && (held.count > MQTTSink.Configuration.Limits.heldMessages
                                         || heldBytes > MQTTSink.Configuration.Limits.heldBytes) {
            let h = held.remove(at: heldSent)
            heldBytes -= h.topic.utf8.count + h.payload.count
            sink._heldDropped.add(1, ordering: .relaxed)
        }
    }

    var maxAgeNs: Int64 { Int64(config.spool.maxAgeSeconds * 1e9) }

    func dropHeld(at i: Int) {
        let h = held.remove(at: i)
        heldBytes -= h.topic.utf8.count + h.payload.count
    }

    /// Drops the held messages not yet sent that are older than `spool.max_age_s` (the spool's age bound
    /// applies to them too), oldest first.
    func expireHeld(nowNs: Int64) {
        while heldSent < held.count, held[heldSent].enqueuedNs < nowNs &- maxAgeNs {
            dropHeld(at: heldSent)
            heldExpired += 1
        }
    }

    /// Moves held messages into the spool, oldest first, while it takes them (only when none is in flight:
    /// a held message sent before a spooled one must stay before it).
    func flushHeld() {
        guard heldSent == 0 else { return }
        heldPaused = false  // also when the last held message was just acknowledged: the next one may go
        guard !held.isEmpty else { return }
        var moved = 0
        for h in held {
            if case .failed = spool.append(topic: h.topic, payload: h.payload, retain: h.retain, nowNs: h.enqueuedNs) { break }
            moved += 1
        }
        guard moved > 0 else { return }
        for h in held.prefix(moved) { heldBytes -= h.topic.utf8.count + h.payload.count }
        held.removeFirst(moved)
    }

    /// Logs a spool write failure when it starts (error), a summary while it lasts, and its end (notice).
    func noteSpoolState() {
        let e = spool.writeErrno
        let now = Clock.monotonicNanoseconds()
        let unspooled = sink._unspooled.load(ordering: .relaxed), dropped = sink._heldDropped.load(ordering: .relaxed)
        let limits = MQTTSink.Configuration.Limits.self
        if e != 0 {
            spoolFailure?.okSinceNs = nil
            guard var f = spoolFailure else {
                spoolFailure = SpoolFailure(sinceNs: now, nextSummaryNs: now + Int64(limits.spoolSummarySeconds * 1e9),
                                            summaryInterval: limits.spoolSummarySeconds, unspooledAtStart: unspooled, droppedAtStart: dropped)
                logger.error("mqtt spool write failed: \(String(cString: strerror(e))); QoS-1 messages are held in memory (at most \(limits.heldMessages)) and published from there while the broker is connected, without surviving a restart", metadata: [
                    "spool": "\(spool.directory)", "held_messages": "\(held.count)",
                ])
                updateGauges()
                return
            }
            guard now >= f.nextSummaryNs else { return }
            f.summaryInterval = min(f.summaryInterval * 2, limits.spoolSummaryMaxSeconds)
            f.nextSummaryNs = now + Int64(f.summaryInterval * 1e9)
            spoolFailure = f
            logger.error("mqtt spool write still failing: \(String(cString: strerror(e))); \(unspooled - f.unspooledAtStart) messages held in memory instead so far, \(dropped - f.droppedAtStart) of them dropped (memory bound)", metadata: [
                "spool": "\(spool.directory)", "held_messages": "\(held.count)", "failing_s": "\((now - f.sinceNs) / 1_000_000_000)",
            ])
        } else if var f = spoolFailure {
            guard let ok = f.okSinceNs else { f.okSinceNs = now; spoolFailure = f; updateGauges(); return }
            guard now - ok >= Int64(limits.spoolRecoverySeconds * 1e9) else { return }
            spoolFailure = nil
            logger.notice("mqtt spool writable again (for \(Int(limits.spoolRecoverySeconds)) s) after failing for \((ok - f.sinceNs) / 1_000_000_000) s; \(unspooled - f.unspooledAtStart) messages were held in memory instead, \(dropped - f.droppedAtStart) of them dropped (memory bound)", metadata: [
                "spool": "\(spool.directory)", "held_messages": "\(held.count)",
            ])
            updateGauges()
        }
    }

    /// Routes inbox messages: QoS 1 into the spool, QoS 0 straight out (or dropped while disconnected).
    func route(_ batch: [(line: [UInt8], wallNs: Int64, levels: Bool)]) {
        let now = Self.wallNs()
        for item in batch {
            if item.levels {
                publishQoS0(topic: base + "/levels", payload: item.line)
                continue
            }
            guard let r = MQTTMessages.route(line: item.line, wallNs: item.wallNs, base: base, node: node, instance: instance,
                                             levelUnit: levelUnit) else { continue }
            if r.qos == 0 { publishQoS0(topic: r.topic, payload: r.payload) }
            else { enqueueQoS1(topic: r.topic, payload: r.payload, retain: r.retain, nowNs: now) }
        }
        if !batch.isEmpty { noteSpoolState(); updateGauges() }
    }

    func publishQoS0(topic: String, payload: [UInt8]) {
        guard connected, let m = mosq else { sink._qos0Dropped.add(1, ordering: .relaxed); return }
        let rc = payload.withUnsafeBytes { mosquitto_publish(m, nil, topic, Int32($0.count), $0.baseAddress, 0, false) }
        if rc == MOSQ_ERR_SUCCESS.rawValue { sink._published.add(1, ordering: .relaxed) }
        else { sink._qos0Dropped.add(1, ordering: .relaxed) }
    }

    /// Sends spooled records, then held ones, in order, while fewer than `maxInflight` are unacknowledged and
    /// the drain rate allows.
    func pump() {
        let nowMono = Clock.monotonicNanoseconds()
        let rate = config.spool.drainPerSecond
        if lastTokenNs == 0 { lastTokenNs = nowMono; tokens = min(rate, 1) }
        tokens = min(max(rate, 1), tokens + rate * Double(nowMono - lastTokenNs) / 1e9)
        lastTokenNs = nowMono
        let now = Self.wallNs()
        while connected, let m = mosq, inflight.count < MQTTSink.Configuration.Limits.maxInflight, tokens >= 1 {
            guard let (rec, expired) = spool.next(nowNs: now) else {
                // The spool is sent up to its end: the held messages come next.
                guard heldSent < held.count, !heldPaused else { break }
                let h = held[heldSent]
                if h.enqueuedNs < now &- maxAgeNs {  // older than spool.max_age_s, like an expired spool record
                    dropHeld(at: heldSent)
                    heldExpired += 1
                    continue
                }
                var mid: Int32 = 0
                let rc = h.payload.withUnsafeBytes { mosquitto_publish(m, &mid, h.topic, Int32($0.count), $0.baseAddress, 1, h.retain) }
                guard rc == MOSQ_ERR_SUCCESS.rawValue else { lost = describe(rc); return }
                tokens -= 1
                heldSent += 1
                inflight.append(InFlight(mid: mid, enqueuedNs: h.enqueuedNs, acked: false, held: true))
                continue
            }
            if expired {
                inflight.append(InFlight(mid: -1, start: rec.start, end: rec.end, enqueuedNs: rec.enqueuedNs, acked: true))
                releaseAcknowledged()
                continue
            }
            var mid: Int32 = 0
            let rc = rec.payload.withUnsafeBytes { mosquitto_publish(m, &mid, rec.topic, Int32($0.count), $0.baseAddress, 1, rec.retain) }
            guard rc == MOSQ_ERR_SUCCESS.rawValue else { lost = describe(rc); return }
            tokens -= 1
            inflight.append(InFlight(mid: mid, start: rec.start, end: rec.end, enqueuedNs: rec.enqueuedNs, acked: false))
        }
    }

    func acknowledged(mid: Int32) {
        guard let i = inflight.firstIndex(where: { $0.mid == mid && !$0.acked }) else { return }
        inflight[i].acked = true
        let ms = max(0, Int((Self.wallNs() &- inflight[i].enqueuedNs) / 1_000_000))
        sink._latencyLastMs.store(ms, ordering: .relaxed)
        if ms > sink._latencyMaxMs.load(ordering: .relaxed) { sink._latencyMaxMs.store(ms, ordering: .relaxed) }
        sink._published.add(1, ordering: .relaxed)
        releaseAcknowledged()
    }

    func releaseAcknowledged() {
        while let first = inflight.first, first.acked {
            inflight.removeFirst()
            if first.held {
                let h = held.removeFirst()
                heldBytes -= h.topic.utf8.count + h.payload.count
                heldSent -= 1
                if heldPaused && heldSent == 0 { flushHeld() }
            } else {
                spool.acknowledge(through: first.start, end: first.end)
            }
        }
    }

    // MARK: connection

    func describe(_ rc: Int32) -> String {
        var text = String(cString: mosquitto_strerror(rc))
        if rc == MOSQ_ERR_TLS.rawValue || rc == MOSQ_ERR_ERRNO.rawValue, let e = lastLibraryError { text += " (\(e))" }
        return text
    }

    /// Checks that a TCP connection to one of `addresses` can be made within the connect timeout (libmosquitto's
    /// own connect would wait for the kernel's SYN timeout, minutes); returns the address that answered, or why
    /// none did.
    func probe(_ addresses: [MQTTAddress]) -> Result<MQTTAddress, MQTTResolveFailure> {
        var failure = "no address for \(endpoint.host)"
        for a in addresses {
            let fd = socket(a.family, a.socketType | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), a.proto)
            guard fd >= 0 else { failure = String(cString: strerror(errno)); continue }
            defer { close(fd) }
            let rc = a.address.withUnsafeBytes { Glibc.connect(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count)) }
            if rc == 0 { return .success(a) }
            guard errno == EINPROGRESS else { failure = String(cString: strerror(errno)); continue }
            let deadline = Clock.monotonicNanoseconds() + Int64(MQTTSink.Configuration.Limits.connectTimeoutSeconds * 1e9)
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            while Clock.monotonicNanoseconds() < deadline && sink.running.load(ordering: .acquiring) {
                if poll(&pfd, 1, 100) > 0 { break }
            }
            guard pfd.revents != 0 else { failure = "connection timed out"; continue }
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            if err == 0 { return .success(a) }
            failure = String(cString: strerror(err))
        }
        return .failure(MQTTResolveFailure(failure))
    }

    /// Resolves the broker's name on a helper thread (``MQTTResolution``) and waits for it without blocking:
    /// called on every turn of the loop while an attempt is due, it returns the addresses once the lookup has
    /// answered, nil while it runs (the loop goes on, so a stop or reload is never held), and fails the
    /// attempt when there is no answer within the connect timeout. A lookup still running from an attempt
    /// that timed out is waited for again rather than a second one started.
    func resolved() -> [MQTTAddress]? {
        let now = Clock.monotonicNanoseconds()
        if !resolving {
            resolving = true
            connectStartedNs = now
            resolveDeadlineNs = now + Int64(MQTTSink.Configuration.Limits.connectTimeoutSeconds * 1e9)
            if resolution == nil || resolution?.result != nil {
                resolution = MQTTResolution(resolver: sink.resolver, host: endpoint.host, port: endpoint.port)
            }
        }
        let target = "cannot connect to \(endpoint.host):\(endpoint.port): cannot resolve \(endpoint.host)"
        guard let outcome = resolution?.result else {
            if now >= resolveDeadlineNs {
                resolving = false
                fail("\(target): no answer within \(Int(MQTTSink.Configuration.Limits.connectTimeoutSeconds)) s")
            }
            return nil
        }
        resolving = false
        resolution = nil
        switch outcome {
        case .success(let addresses): return addresses
        case .failure(let f): fail("\(target): \(f.reason)"); return nil
        }
    }

    func connect() {
        guard let addresses = resolved() else { return }
        connectStartedNs = Clock.monotonicNanoseconds()
        lost = nil
        lastLibraryError = nil
        let address: MQTTAddress
        switch probe(addresses) {
        case .success(let a): address = a
        case .failure(let f): fail("cannot connect to \(endpoint.host):\(endpoint.port): \(f.reason)"); return
        }
        let clientID = "earshot-\(node)-\(instance)"
        guard let m = mosquitto_new(clientID, true, Unmanaged.passUnretained(self).toOpaque()) else {
            fail("mosquitto_new failed: \(String(cString: strerror(errno)))"); return
        }
        mosq = m
        mosquitto_log_callback_set(m) { _, obj, level, text in
            guard let obj, let text, level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING) != 0 else { return }
            Unmanaged<MQTTClientLoop>.fromOpaque(obj).takeUnretainedValue().lastLibraryError = String(cString: text)
        }
        mosquitto_connect_callback_set(m) { _, obj, rc in
            guard let obj else { return }
            Unmanaged<MQTTClientLoop>.fromOpaque(obj).takeUnretainedValue().onConnect(rc)
        }
        mosquitto_disconnect_callback_set(m) { _, obj, rc in
            guard let obj else { return }
            let me = Unmanaged<MQTTClientLoop>.fromOpaque(obj).takeUnretainedValue()
            if me.lost == nil { me.lost = rc == 0 ? "disconnected" : "connection lost" }
        }
        mosquitto_publish_callback_set(m) { _, obj, mid in
            guard let obj else { return }
            Unmanaged<MQTTClientLoop>.fromOpaque(obj).takeUnretainedValue().acknowledged(mid: mid)
        }
        let status = base + "/status"
        _ = mosquitto_will_set(m, status, 7, "offline", 1, true)
        if let credentials { _ = mosquitto_username_pw_set(m, credentials.user, credentials.password) }
        if endpoint.tls {
            let rc: Int32
            if let ca = config.caFile {
                rc = mosquitto_tls_set(m, ca, nil, config.certFile, config.keyFile, nil)
            } else {
                _ = mosquitto_int_option(m, MOSQ_OPT_TLS_USE_OS_CERTS, 1)
                rc = mosquitto_tls_set(m, nil, "/etc/ssl/certs", config.certFile, config.keyFile, nil)
            }
            guard rc == MOSQ_ERR_SUCCESS.rawValue else { fail("TLS setup failed: \(describe(rc))"); return }
        }
        // The address that answered, as text: libmosquitto does not resolve again. With TLS it must get the name
        // (it checks the certificate against it), and resolves it again right after the lookup above succeeded.
        let host = endpoint.tls ? endpoint.host : (address.numericHost ?? endpoint.host)
        let rc = mosquitto_connect(m, host, Int32(endpoint.port), Int32(config.keepaliveSeconds))
        if rc != MOSQ_ERR_SUCCESS.rawValue { fail(connectFailure(rc)) }
    }

    /// Why a connection that was not yet established failed (the TLS handshake may fail in
    /// `mosquitto_connect` or in the first `mosquitto_loop`: the same words either way).
    func connectFailure(_ rc: Int32) -> String {
        var reason = describe(rc)
        if endpoint.tls && (rc == MOSQ_ERR_TLS.rawValue || lastLibraryError?.contains("SSL") == true || lastLibraryError?.contains("certificate") == true) {
            reason = "TLS handshake failed: \(lastLibraryError ?? reason)"
        }
        return "cannot connect to \(endpoint.host):\(endpoint.port): \(reason)"
    }

    func onConnect(_ rc: Int32) {
        guard rc == 0 else {
            lost = "broker refused the connection: \(String(cString: mosquitto_connack_string(rc)))"
                + (rc == 4 || rc == 5 ? " (check mqtt.credentials_file)" : "")
            return
        }
        connected = true
        sink._connects.add(1, ordering: .relaxed)
        backoffSeconds = config.reconnectInitialSeconds
        loggedFailure = nil
        spool.rewind()
        inflight.removeAll()
        heldSent = 0
        heldPaused = false
        var about: Logger.Metadata = [
            "broker": "\(endpoint.host):\(endpoint.port)", "tls": "\(endpoint.tls)", "spooled_messages": "\(spool.pendingMessages)",
        ]
        if !held.isEmpty { about["held_messages"] = "\(held.count)" }
        logger.notice("mqtt connected", metadata: about)
        guard let m = mosq else { return }
        let online = Array("online".utf8)
        _ = online.withUnsafeBytes { mosquitto_publish(m, nil, base + "/status", 6, $0.baseAddress, 1, true) }
        let docs = MQTTMessages.discovery(
            haPrefix: config.homeassistant.prefix, base: base, node: node, instance: instance, windows: config.windowsSeconds,
            weighting: config.weighting, levelUnit: levelUnit, levels: config.levelsEvery > 0, version: config.version)
        if config.homeassistant.enabled {
            for d in docs { _ = d.payload.withUnsafeBytes { mosquitto_publish(m, nil, d.topic, Int32($0.count), $0.baseAddress, 1, true) } }
        } else {
            // Removes what an earlier run with discovery on published (an empty retained message deletes it).
            let all = Set(MQTTMessages.discoveryKeys(windows: config.windowsSeconds + [1, 10, 60], levels: true))
            for key in all.sorted() {
                let topic = "\(config.homeassistant.prefix)/sensor/earshot_\(MQTTMessages.objectID(node))_\(MQTTMessages.objectID(instance))_\(key)/config"
                _ = mosquitto_publish(m, nil, topic, 0, nil, 1, true)
            }
        }
        updateGauges()
    }

    /// A connection attempt failed before it was established.
    func fail(_ reason: String) {
        sink._connectFailures.add(1, ordering: .relaxed)
        if let m = mosq { mosquitto_destroy(m); mosq = nil }
        scheduleRetry(reason: reason)
    }

    func scheduleRetry(reason: String) {
        if loggedFailure != reason {
            loggedFailure = reason
            logger.warning("mqtt \(reason); retrying with backoff", metadata: [
                "broker": "\(endpoint.host):\(endpoint.port)", "retry_max_s": "\(MQTTMessages.formatWindow(config.reconnectMaxSeconds))",
            ])
        }
        nextAttemptNs = Clock.monotonicNanoseconds() + Int64(backoffSeconds * 1e9)
        backoffSeconds = min(backoffSeconds * 2, max(config.reconnectMaxSeconds, config.reconnectInitialSeconds))
        updateGauges()
    }

    /// Ends the connection (lost or refused): unacknowledged records go back to the spool's head.
    func teardown(reason: String) {
        let wasConnected = connected
        connected = false
        if let m = mosq { mosquitto_destroy(m); mosq = nil }
        inflight.removeAll()
        heldSent = 0
        heldPaused = false
        spool.rewind()
        lost = nil
        if wasConnected {
            let keeping = spool.writeErrno == 0 ? "spooling" : "holding QoS-1 messages in memory (the spool cannot be written)"
            logger.warning("mqtt disconnected: \(reason); \(keeping)", metadata: ["broker": "\(endpoint.host):\(endpoint.port)"])
            loggedFailure = nil
            nextAttemptNs = Clock.monotonicNanoseconds() + Int64(backoffSeconds * 1e9)
            updateGauges()
        } else {
            sink._connectFailures.add(1, ordering: .relaxed)
            scheduleRetry(reason: reason)
        }
    }

    /// Clean stop: `offline` (retained), then disconnect; at most ~1.5 s.
    func shutdown() {
        guard let m = mosq else { return }
        if connected {
            // Last acknowledgements and the offline message, bounded.
            let deadline = Clock.monotonicNanoseconds() + 1_000_000_000
            pump()
            var offlineMid: Int32 = -2
            let offline = Array("offline".utf8)
            _ = offline.withUnsafeBytes { mosquitto_publish(m, &offlineMid, base + "/status", 7, $0.baseAddress, 1, true) }
            while Clock.monotonicNanoseconds() < deadline && lost == nil {
                if mosquitto_loop(m, 50, 1) != MOSQ_ERR_SUCCESS.rawValue { break }
                if inflight.isEmpty { break }
            }
            _ = mosquitto_disconnect(m)
            _ = mosquitto_loop(m, 50, 1)
        }
        mosquitto_destroy(m)
        mosq = nil
        connected = false
        heldSent = 0
        heldPaused = false
        logger.info("mqtt stopped", metadata: ["spooled_messages": "\(spool.pendingMessages)"])
    }
}

extension MetricsSink {
    /// `/metrics` for the MQTT sink: `earshot_mqtt_connected`, `earshot_mqtt_spool_bytes`,
    /// `earshot_mqtt_spool_messages`, `earshot_mqtt_spool_failing`, `earshot_mqtt_held_messages`,
    /// `earshot_mqtt_publish_latency_{last,max}_seconds` (gauges); `earshot_mqtt_connects_total`,
    /// `earshot_mqtt_connect_failures_total`, `earshot_mqtt_published_total`, `earshot_mqtt_unspooled_total`,
    /// `earshot_mqtt_dropped_total{reason="inbox"|"qos0"|"spool"|"memory"}` (counters). Called under the mirror lock.
    func updateMQTT(_ c: [String: Int], _ m: inout Mirror) {
        let gauges: [(String, String, String, Double)] = [
            ("mqtt_connected", "", "1 while connected to the MQTT broker.", Double(c["mqtt_connected"] ?? 0)),
            ("mqtt_spool_bytes", "", "Bytes of QoS-1 messages waiting in the MQTT spool.", Double(c["mqtt_spool_bytes"] ?? 0)),
            ("mqtt_spool_messages", "", "QoS-1 messages waiting in the MQTT spool (not yet acknowledged).", Double(c["mqtt_spool_messages"] ?? 0)),
            ("mqtt_spool_failing", "", "1 while the MQTT spool cannot be written (full or read-only disk).", Double(c["mqtt_spool_failing"] ?? 0)),
            ("mqtt_held_messages", "", "QoS-1 messages held in memory because the MQTT spool could not be written.", Double(c["mqtt_held_messages"] ?? 0)),
            ("mqtt_publish_latency_last", "seconds", "Enqueue to PUBACK of the last acknowledged MQTT message.",
             Double(c["mqtt_publish_latency_ms_last"] ?? 0) / 1000),
            ("mqtt_publish_latency_max", "seconds", "Longest enqueue to PUBACK of an MQTT message (outages included).",
             Double(c["mqtt_publish_latency_ms_max"] ?? 0) / 1000),
        ]
        for (name, unit, help, value) in gauges {
            let key = "gauge:" + name
            let g = m.gauges[key] ?? registry.makeGauge(
                descriptor: MetricNameDescriptor(namespace: "earshot", metricName: name, unitName: unit, helpText: help))
            m.gauges[key] = g
            g.set(to: value)
        }
        advanceLabelled("mqtt_connects", "Connections established to the MQTT broker.", labels: [], to: c["mqtt_connects"] ?? 0, &m)
        advanceLabelled("mqtt_connect_failures", "Failed or lost MQTT connection attempts.", labels: [], to: c["mqtt_connect_failures"] ?? 0, &m)
        advanceLabelled("mqtt_published", "MQTT messages published (QoS 1: acknowledged).", labels: [], to: c["mqtt_published"] ?? 0, &m)
        advanceLabelled("mqtt_unspooled", "QoS-1 MQTT messages held in memory instead of the spool while it could not be written (full or read-only disk).",
                        labels: [], to: c["mqtt_unspooled"] ?? 0, &m)
        for reason in ["inbox", "qos0", "spool", "memory"] {
            advanceLabelled("mqtt_dropped", "MQTT messages dropped: inbox full, QoS 0 while disconnected, spool bounds, memory bound while the spool cannot be written.",
                            labels: [("reason", reason)], to: c["mqtt_dropped_" + reason] ?? 0, &m)
        }
    }
}
