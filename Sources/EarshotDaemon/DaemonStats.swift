public import EarshotSinks
import EarshotProtocol

/// Every count the daemon reports, gathered once per tick from the pipeline, the socket and the sinks, and
/// the two views of it: the `stats` message's ordered counters and the metrics snapshot (pure: the same
/// numbers in both, so `/metrics` exports what `stats` counts).
public struct DaemonStats: Sendable, Equatable {
    public struct Socket: Sendable, Equatable {
        public var clients = 0, connectionsTotal = 0, droppedMessages = 0, stalledDisconnects = 0
        public var protocolErrors = 0, refused = 0, idleClosed = 0, droppedFrames = 0
        public init() {}
    }

    public var frames = 0, xruns = 0, reconnects = 0, discontinuities = 0, ringOverrunSamples = 0
    public var captureGapSamples = 0, nonFiniteSamples = 0, clampedSamples = 0
    public var deviceUp = false
    /// nil without a socket (`--no-socket`).
    public var socket: Socket?
    /// Frames each running sink lost by falling behind, in sink order.
    public var sinkDroppedFrames: [(name: String, dropped: Int)] = []
    public var sinkUp: [String: Bool] = [:]
    public var sinkFailures: [String: Int] = [:]
    /// What each running sink contributes (``Sink/counters``), in sink order: appended to `stats` as they
    /// are; the ones the metrics know by name (the alert counters) are exported too.
    public var sinkCounters: [(sink: String, counters: [(String, Int)])] = []

    public init() {}

    public static func == (a: DaemonStats, b: DaemonStats) -> Bool {
        a.counters.elementsEqual(b.counters, by: ==) && a.metricsSnapshot == b.metricsSnapshot
    }

    /// The counters of a `stats` message, in order.
    public var counters: [(String, Int)] {
        var c: [(String, Int)] = [
            ("frames", frames), ("xruns", xruns), ("reconnects", reconnects), ("discontinuities", discontinuities),
            ("ring_overrun_samples", ringOverrunSamples), ("capture_gap_samples", captureGapSamples),
            ("nonfinite_samples", nonFiniteSamples), ("clamped_samples", clampedSamples),
        ]
        if let s = socket {
            c += [("subscribers", s.clients), ("connections_total", s.connectionsTotal),
                  ("socket_dropped_messages", s.droppedMessages), ("socket_stalled_disconnects", s.stalledDisconnects),
                  ("protocol_errors", s.protocolErrors), ("socket_refused", s.refused), ("socket_idle_closed", s.idleClosed)]
        }
        for sink in sinkDroppedFrames { c.append(("dropped_frames_\(sink.name)", sink.dropped)) }
        c.append(("sink_failures", sinkFailures.values.reduce(0, +)))
        if let s = socket { c.append(("dropped_frames_socket", s.droppedFrames)) }
        for s in sinkCounters { c += s.counters }
        return c
    }

    /// The same numbers for ``MetricsSink/update(_:)``.
    public var metricsSnapshot: MetricsSnapshot {
        var dropped: [String: Int] = [:]
        for sink in sinkDroppedFrames { dropped[sink.name] = sink.dropped }
        if let s = socket { dropped["socket"] = s.droppedFrames }
        var m = MetricsSnapshot(
            xruns: xruns, reconnects: reconnects, ringOverrunSamples: ringOverrunSamples,
            socketClients: socket?.clients ?? 0, deviceUp: deviceUp, sinkDroppedFrames: dropped,
            nonFiniteSamples: nonFiniteSamples, clampedSamples: clampedSamples, sinkUp: sinkUp,
            sinkFailures: sinkFailures, socketRefused: socket?.refused ?? 0, socketIdleClosed: socket?.idleClosed ?? 0)
        m.connectionsTotal = socket?.connectionsTotal ?? 0
        m.socketDroppedMessages = socket?.droppedMessages ?? 0
        m.socketStalledDisconnects = socket?.stalledDisconnects ?? 0
        m.protocolErrors = socket?.protocolErrors ?? 0
        let named = Dictionary(sinkCounters.flatMap(\.counters), uniquingKeysWith: { a, _ in a })
        m.levelAlerts = named["level_alerts"] ?? 0
        m.onsetAlerts = named["onset_alerts"] ?? 0
        m.onsetAlertsSuppressed = named["onset_alerts_suppressed"] ?? 0
        for kind in HealthMessage.Kind.allCases {
            if let on = named["health_\(kind.rawValue)"] { m.health[kind.rawValue] = on != 0 }
            if let n = named["health_events_\(kind.rawValue)"] { m.healthEvents[kind.rawValue] = n }
        }
        m.mqtt = named.filter { $0.key.hasPrefix("mqtt_") }
        m.clips = named.filter { $0.key.hasPrefix("clip") }
        return m
    }
}
