#if canImport(Glibc)
import Glibc
#endif
public import EarshotPipeline
import EarshotDSP
import EarshotRealtime
public import Logging
public import Prometheus
import Synchronization

/// Counters owned by other components (capture, socket publisher, sinks), handed to
/// ``MetricsSink/update(_:)`` periodically by the daemon. Totals since the daemon started.
public struct MetricsSnapshot: Sendable, Equatable {
    public var xruns: Int
    public var reconnects: Int
    /// Samples lost because the DSP thread fell behind the capture ring.
    public var ringOverrunSamples: Int
    public var socketClients: Int
    public var deviceUp: Bool
    /// Frames each sink lost because it fell behind, by sink name.
    public var sinkDroppedFrames: [String: Int]
    /// Samples the DSP input guard replaced (non-finite → 0) or clamped (beyond ±1000).
    public var nonFiniteSamples: Int
    public var clampedSamples: Int
    /// Whether each sink's last start succeeded, by sink name.
    public var sinkUp: [String: Bool]
    /// Failed sink starts (on reload) since the daemon started, by sink name.
    public var sinkFailures: [String: Int]
    /// Socket connections refused (`max_clients`, per-uid limit) and closed for never subscribing.
    public var socketRefused: Int
    public var socketIdleClosed: Int
    /// What `stats` counts too: socket connections accepted, messages dropped from subscriber queues,
    /// subscribers disconnected for stalling, malformed commands; alerts raised and onset alerts suppressed.
    public var connectionsTotal = 0
    public var socketDroppedMessages = 0
    public var socketStalledDisconnects = 0
    public var protocolErrors = 0
    public var levelAlerts = 0
    public var onsetAlerts = 0
    public var onsetAlertsSuppressed = 0
    /// Input health (``HealthMonitor``): whether each fault kind is active, and its starts so far; empty
    /// without the health sink.
    public var health: [String: Bool] = [:]
    public var healthEvents: [String: Int] = [:]
    /// The MQTT sink's counters (``MQTTSink/counters``) by name; empty without MQTT (``updateMQTT(_:_:)``).
    public var mqtt: [String: Int] = [:]
    /// The clips sink's counters (``ClipSink/counters``) by name; empty without clips (``updateClips(_:_:)``).
    public var clips: [String: Int] = [:]

    public init(xruns: Int = 0, reconnects: Int = 0, ringOverrunSamples: Int = 0, socketClients: Int = 0,
                deviceUp: Bool = false, sinkDroppedFrames: [String: Int] = [:], nonFiniteSamples: Int = 0,
                clampedSamples: Int = 0, sinkUp: [String: Bool] = [:], sinkFailures: [String: Int] = [:],
                socketRefused: Int = 0, socketIdleClosed: Int = 0) {
        self.xruns = xruns; self.reconnects = reconnects; self.ringOverrunSamples = ringOverrunSamples
        self.socketClients = socketClients; self.deviceUp = deviceUp; self.sinkDroppedFrames = sinkDroppedFrames
        self.nonFiniteSamples = nonFiniteSamples; self.clampedSamples = clampedSamples
        self.sinkUp = sinkUp; self.sinkFailures = sinkFailures
        self.socketRefused = socketRefused; self.socketIdleClosed = socketIdleClosed
    }
}

/// Prometheus exposition of the daemon's health and levels (off by default): `GET /metrics` on a loopback
/// `host:port` (``MetricsHTTPServer``) and/or a node_exporter textfile-collector file rewritten atomically
/// (a fresh `O_EXCL|O_NOFOLLOW` temp file in the same directory, `fsync`, `renameat`) every ``Configuration/textfileIntervalSeconds``.
///
/// The sink owns its ``registry`` (swift-prometheus' `PrometheusCollectorRegistry`) and never calls
/// `MetricsSystem.bootstrap`. Metrics (also in `docs/metrics.md`):
/// - `earshot_frames_total` (counter): frames analysed (read by this sink).
/// - `earshot_xruns_total` (counter): ALSA capture overruns recovered.
/// - `earshot_discontinuities_total` (counter): frames flagged as following a gap.
/// - `earshot_sink_dropped_frames_total{sink}` (counter): frames a sink lost by falling behind.
/// - `earshot_sanitized_samples_total{kind}` (counter): samples the DSP input guard changed (`nonfinite`, `clamped`).
/// - `earshot_socket_clients` (gauge): connected socket subscribers.
/// - `earshot_onsets_total` (counter): onsets detected.
/// - `earshot_level_db{weighting}` (gauge): the latest frame's level for `laf`, `las`, `lcf`, `lzf`,
///   `rms_dbfs`, in the level unit (calibration applied).
/// - `earshot_rolling_leq_db{window}` (gauge): Leq of the latest closed rolling window (`window="1s"`, …).
/// - `earshot_rolling_level_db{window,quantity}` (gauge): the latest closed window's integrated levels,
///   `quantity` = `laeq`, `lceq`, `lzeq`, `lafmax`, `lafmin`, `lasmax`, `lcpeak` (level unit).
/// - `earshot_band_leq_db{window,band_hz}` (gauge): band Leq of the latest closed window (with `levels.bands`).
/// - `earshot_stage_latency_seconds{stage}` (histogram): per-stage latency (`capture`, `dsp`,
///   `sink:<name>`, `end_to_end`), exact bucket counts kept by the ``LatencyTracker``.
/// - `earshot_over_budget_total{stage}` (counter): frames over the stage's latency budget.
/// - `earshot_device_up` (gauge): 1 while the capture device is open and delivering.
/// - `earshot_reconnects_total` (counter): capture device reopen attempts that succeeded.
/// - `earshot_ring_overrun_samples_total` (counter): samples dropped by the capture → DSP ring.
/// - `earshot_sink_up{sink}` (gauge): 1 while the sink runs, 0 after it failed to (re)start on a reload.
/// - `earshot_sink_failures_total{sink}` (counter): failed sink (re)starts on reload.
/// - `earshot_socket_connections_total`, `earshot_socket_dropped_messages_total`,
///   `earshot_socket_stalled_disconnects_total`, `earshot_protocol_errors_total` (counters): as in `stats`.
/// - `earshot_alerts_total{alert}` (counter): level and onset alerts raised;
///   `earshot_onset_alerts_suppressed_total` (counter): onset alerts held back by the rate limit.
/// - `earshot_health{kind}` (gauge): 1 while the input-health fault `kind` is active (`silence`, `dc_offset`,
///   `low_floor`, `clipping`, `clock_drift`, `no_data`); `earshot_health_events_total{kind}` (counter): its starts.
/// - `earshot_build_info{version,swift}` (gauge): always 1.
/// - `earshot_calibration_timestamp_seconds` (gauge) and `earshot_calibration_info{date,reference_db}` (gauge,
///   always 1): when `levels.calibration_date` is set (`earshot calibrate --write`).
///
/// Every series carries the configured constant labels (``Configuration/constantLabels``: the daemon sets
/// `instance` and `device`), so several instances on one box, or several boxes' textfiles, never collide.
/// `earshot_level_db{weighting="rms_dbfs"}` stays in dBFS when levels are calibrated (it is a frame RMS of
/// the digital signal, not a sound level).
///
/// Threading: frames are read on `es-metrics` (counter increments and gauge stores: atomics, no
/// allocation); `update(_:)` from any thread; HTTP on `es-metrics-http`.
public final class MetricsSink: ConfigurableSink, @unchecked Sendable {
    /// Mirrors the daemon's `metrics.*` section.
    public struct Configuration: Sendable, Equatable {
        public var enabled: Bool
        /// `host:port` (`[::1]:9464` for IPv6; port 0 = any free port); nil disables HTTP.
        public var listen: String?
        /// node_exporter textfile path (`*.prom`); nil disables it.
        public var textfile: String?
        public var textfileIntervalSeconds: Double
        /// Labels put on every series (`metrics.labels`; the daemon adds `instance` and `device`).
        public var constantLabels: [String: String] = [:]
        /// `earshot_build_info` labels (`version`, …).
        public var buildInfo: [String: String] = [:]
        /// `earshot_calibration_timestamp_seconds` and `earshot_calibration_info{date,reference_db}` (nil: none).
        public var calibration: CalibrationInfo? = nil

        public init(enabled: Bool = false, listen: String? = "127.0.0.1:9464", textfile: String? = nil,
                    textfileIntervalSeconds: Double = 15) {
            self.enabled = enabled; self.listen = listen; self.textfile = textfile
            self.textfileIntervalSeconds = textfileIntervalSeconds
        }

        /// Labels the series already use (a constant label must not repeat one) and Prometheus' reserved ones.
        public static let reservedLabels: Set<String> = [
            "weighting", "window", "stage", "sink", "kind", "server", "reason", "le", "quantile", "alert",
            "version", "swift", "date", "reference_db",
        ]

        static func isLabelName(_ s: String) -> Bool {
            guard let first = s.utf8.first, !s.isEmpty else { return false }
            func letter(_ c: UInt8) -> Bool { (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F }
            return letter(first) && s.utf8.allSatisfy { letter($0) || ($0 >= 0x30 && $0 <= 0x39) }
        }
    }

    public let name = "metrics"
    /// The listener and textfile are set up at start: a change restarts it.
    public var configSection: String { "metrics" }
    public let configuration: Configuration
    public let registry = PrometheusCollectorRegistry()
    let logger: Logger
    let rolling: RollingAggregator?
    let latency: LatencyTracker?
    /// Set before ``start(bus:stream:)`` to record this sink's hand-off latency.
    public var latencyRecorder: StageRecorder?

    let frames: Counter
    /// `seq` of the last frame observed (sink thread only): `frames` advances by the seq step, so frames
    /// this batch reader lost (counted in its dropped frames) still count as analysed.
    nonisolated(unsafe) var lastSeq: Int64 = -1
    let discontinuities: Counter
    let onsets: Counter
    let xruns: Counter
    let reconnects: Counter
    let ringOverrun: Counter
    let sanitized: (nonFinite: Counter, clamped: Counter)
    let socketClients: Gauge
    let deviceUp: Gauge
    let levels: [(LevelWeighting, Gauge)]
    let rollingLeq: [(Double, Gauge)]
    /// `earshot_rolling_level_db` by window and quantity; band gauges made on first use (sink thread).
    let rollingLevels: [(Double, [(KeyPath<RollingLevels, Double>, Gauge)])]
    let bandGauges = Mutex<[String: Gauge]>([:])

    /// Totals last copied into counters, to turn absolute totals into increments.
    struct Mirror {
        var totals: [String: Int] = [:]
        var counters: [String: Counter] = [:]
        var gauges: [String: Gauge] = [:]
    }
    let mirror = Mutex(Mirror())

    let reader = BusReader(threadName: "es-metrics")
    var server: MetricsHTTPServer?
    var levelOffset: Float = 0
    /// When the textfile is due next (sink thread only).
    var nextTextfileNs: Int64 = 0
    let textfileErrors = Atomic<Int>(0)

    /// - Parameters:
    ///   - configuration: where to expose the metrics.
    ///   - logger: textfile write failures (rate limited to the first and every 100th).
    ///   - rolling: source of `earshot_rolling_leq_db`, if running.
    ///   - latency: source of the latency histogram and over-budget counters, if running.
    public init(configuration: Configuration, logger: Logger, rolling: RollingAggregator? = nil,
                latency: LatencyTracker? = nil) {
        self.configuration = configuration
        self.logger = logger
        self.rolling = rolling
        self.latency = latency
        let registry = self.registry
        func d(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "earshot", metricName: name, unitName: unit, helpText: help)
        }
        frames = registry.makeCounter(descriptor: d("frames", "total", "Frames analysed."))
        discontinuities = registry.makeCounter(descriptor: d("discontinuities", "total", "Frames following a gap in the sample stream."))
        onsets = registry.makeCounter(descriptor: d("onsets", "total", "Onsets detected."))
        xruns = registry.makeCounter(descriptor: d("xruns", "total", "ALSA capture overruns recovered."))
        reconnects = registry.makeCounter(descriptor: d("reconnects", "total", "Capture device reconnects."))
        ringOverrun = registry.makeCounter(descriptor: d("ring_overrun_samples", "total", "Samples dropped by the capture to DSP ring."))
        let sanitizedDescriptor = d("sanitized_samples", "total", "Samples the DSP input guard replaced (non-finite) or clamped (beyond ±1000).")
        sanitized = (registry.makeCounter(descriptor: sanitizedDescriptor, labels: [("kind", "nonfinite")]),
                     registry.makeCounter(descriptor: sanitizedDescriptor, labels: [("kind", "clamped")]))
        socketClients = registry.makeGauge(descriptor: d("socket_clients", "", "Connected socket subscribers."))
        deviceUp = registry.makeGauge(descriptor: d("device_up", "", "1 while the capture device delivers audio."))
        let levelDescriptor = d("level", "db", "Level of the latest frame in the level unit, by weighting.")
        levels = LevelWeighting.allCases.map { w in
            (w, registry.makeGauge(descriptor: levelDescriptor, labels: [("weighting", w.rawValue)]))
        }
        let leqDescriptor = d("rolling_leq", "db", "Leq of the latest closed rolling window.")
        rollingLeq = (rolling?.configuration.windowsSeconds ?? []).map { w in
            (w, registry.makeGauge(descriptor: leqDescriptor, labels: [("window", MetricsSink.windowLabel(w))]))
        }
        let levelDescriptorW = d("rolling_level", "db", "Integrated levels of the latest closed rolling window, by quantity.")
        let quantities: [(String, KeyPath<RollingLevels, Double>)] = [
            ("laeq", \.laeq), ("lceq", \.lceq), ("lzeq", \.lzeq), ("lafmax", \.lafmax), ("lafmin", \.lafmin),
            ("lasmax", \.lasmax), ("lcpeak", \.lcpeak)]
        rollingLevels = (rolling?.configuration.windowsSeconds ?? []).map { w in
            (w, quantities.map { q in
                (q.1, registry.makeGauge(descriptor: levelDescriptorW, labels: [("window", MetricsSink.windowLabel(w)), ("quantity", q.0)]))
            })
        }
    }

    /// A band's nominal mid-band frequency as a label value (`"31.5"`, `"1000"`).
    static func bandLabel(_ hz: Double) -> String {
        let w = ByteWriter(capacity: 32)
        w.significant(hz, digits: 4)
        return String(decoding: w.bytes, as: UTF8.self)
    }

    static func windowLabel(_ seconds: Double) -> String {
        let w = ByteWriter(capacity: 32)
        w.significant(seconds, digits: 6)
        return String(decoding: w.bytes, as: UTF8.self) + "s"
    }

    public var dropped: Int { reader.dropped }

    /// The port `/metrics` is served on (the bound one when configured with port 0), nil without HTTP.
    public var httpPort: Int? { server?.port }

    /// Starts reading frames, the HTTP server and the textfile writer. Does nothing when disabled.
    public func start(bus: FrameBus, stream: StreamInfo) throws {
        guard configuration.enabled else { return }
        try configuration.validate()
        levelOffset = stream.levelOffsetDb
        if let listen = configuration.listen {
            let server = try MetricsHTTPServer(listen: listen) { [weak self] in self?.render() ?? [] }
            server.start()
            self.server = server
        }
        let intervalNs = Int64(configuration.textfileIntervalSeconds * 1e9)
        nextTextfileNs = Clock.monotonicNanoseconds()
        do {
            try reader.start(bus: bus, recorder: latencyRecorder, onFrame: { [self] frame in observe(frame.header) },
                             afterDrain: { [self] stopping in
                guard configuration.textfile != nil else { return 200 }
                let now = Clock.monotonicNanoseconds()
                if now >= nextTextfileNs || stopping {
                    writeTextfileLogged()
                    nextTextfileNs = now + intervalNs
                }
                return Int32(max(1, min(200, (nextTextfileNs - now) / 1_000_000)))
            })
        } catch {
            server?.stop()
            server = nil
            throw error
        }
    }

    /// Stops the threads (writing the textfile one last time). Idempotent.
    public func stop() {
        reader.stop()
        server?.stop()
        server = nil
    }

    /// Per-frame updates (atomics only).
    func observe(_ h: FrameHeader) {
        let step = lastSeq >= 0 && h.seq > lastSeq ? h.seq - lastSeq : 1
        lastSeq = h.seq
        frames.increment(by: step)
        if h.isDiscontinuity { discontinuities.increment() }
        if h.hasOnset { onsets.increment() }
        // rms_dbfs is a property of the digital signal: dBFS whatever the calibration.
        for (w, g) in levels { g.set(to: Double(w.dbfs(h) + (w == .rmsDbfs ? 0 : levelOffset))) }
    }

    /// Copies the other components' totals into the metrics. Thread-safe; call every few seconds.
    public func update(_ s: MetricsSnapshot) {
        socketClients.set(to: Double(s.socketClients))
        deviceUp.set(to: s.deviceUp ? 1.0 : 0.0)
        mirror.withLock { m in
            Self.advance(xruns, key: "xruns", to: s.xruns, &m)
            Self.advance(reconnects, key: "reconnects", to: s.reconnects, &m)
            Self.advance(ringOverrun, key: "ring_overrun", to: s.ringOverrunSamples, &m)
            Self.advance(sanitized.nonFinite, key: "sanitized:nonfinite", to: s.nonFiniteSamples, &m)
            Self.advance(sanitized.clamped, key: "sanitized:clamped", to: s.clampedSamples, &m)
            for (sink, n) in s.sinkDroppedFrames {
                advanceLabelled("sink_dropped_frames", "Frames a sink lost because it fell behind.",
                                labels: [("sink", sink)], to: n, &m)
            }
            for (sink, up) in s.sinkUp {
                setLabelledGauge("sink_up", "1 while the sink runs, 0 after it failed to start on a reload.",
                                 labels: [("sink", sink)], key: sink, to: up, &m)
            }
            for (sink, n) in s.sinkFailures {
                advanceLabelled("sink_failures", "Failed sink starts on reload.", labels: [("sink", sink)], to: n, &m)
            }
            advanceLabelled("socket_connections", "Socket connections accepted.", labels: [], to: s.connectionsTotal, &m)
            advanceLabelled("socket_dropped_messages", "Messages dropped from slow subscribers' queues.",
                            labels: [], to: s.socketDroppedMessages, &m)
            advanceLabelled("socket_stalled_disconnects", "Subscribers disconnected for stalling past socket.stall_limit_s.",
                            labels: [], to: s.socketStalledDisconnects, &m)
            advanceLabelled("protocol_errors", "Malformed or unknown commands from socket clients.",
                            labels: [], to: s.protocolErrors, &m)
            if !s.mqtt.isEmpty { updateMQTT(s.mqtt, &m) }
            if !s.clips.isEmpty { updateClips(s.clips, &m) }
            advanceLabelled("alerts", "Alerts raised.", labels: [("alert", "level")], to: s.levelAlerts, &m)
            advanceLabelled("alerts", "Alerts raised.", labels: [("alert", "onset")], to: s.onsetAlerts, &m)
            advanceLabelled("onset_alerts_suppressed", "Onset alerts held back by alerts.onset rate limits.",
                            labels: [], to: s.onsetAlertsSuppressed, &m)
            for (kind, on) in s.health {
                setLabelledGauge("health", "1 while the input-health fault is active.", labels: [("kind", kind)],
                                 key: "health:" + kind, to: on, &m)
            }
            for (kind, n) in s.healthEvents {
                advanceLabelled("health_events", "Input-health faults started.", labels: [("kind", kind)], to: n, &m)
            }
            let closed = [("socket", "refused", s.socketRefused), ("socket", "idle", s.socketIdleClosed),
                          ("metrics", "evicted", server?.evicted ?? 0)]
            for (server, reason, n) in closed {
                advanceLabelled("connections_closed",
                                "Connections refused at a limit or closed before they subscribed or sent a request.",
                                labels: [("server", server), ("reason", reason)], to: n, &m)
            }
        }
    }

    /// Sets the labelled 0/1 gauge `earshot_<name>{labels}` (made on first use, kept under `key`).
    func setLabelledGauge(_ name: String, _ help: String, labels: [(String, String)], key: String, to on: Bool, _ m: inout Mirror) {
        let g = m.gauges[key] ?? registry.makeGauge(
            descriptor: MetricNameDescriptor(namespace: "earshot", metricName: name, unitName: "", helpText: help),
            labels: labels)
        m.gauges[key] = g
        g.set(to: on ? 1.0 : 0.0)
    }

    /// Moves the labelled counter `earshot_<name>_total{labels}` (made on first use) to the absolute `total`.
    func advanceLabelled(_ name: String, _ help: String, labels: [(String, String)], to total: Int, _ m: inout Mirror) {
        let key = ([name] + labels.map { "\($0.0)=\($0.1)" }).joined(separator: ":")
        let c = m.counters[key] ?? registry.makeCounter(
            descriptor: MetricNameDescriptor(namespace: "earshot", metricName: name, unitName: "total", helpText: help),
            labels: labels)
        m.counters[key] = c
        Self.advance(c, key: key, to: total, &m)
    }

    /// Moves `counter` to the absolute `total` (a smaller total, e.g. after a component restart, resets it).
    static func advance(_ counter: Counter, key: String, to total: Int, _ m: inout Mirror) {
        let last = m.totals[key] ?? 0
        if total < last { counter.reset(); if total > 0 { counter.increment(by: Int64(total)) } }
        else if total > last { counter.increment(by: Int64(total - last)) }
        m.totals[key] = total
    }

    /// Pulls the rolling and latency figures into their metrics.
    func refreshDerived() -> LatencySnapshot? {
        if let rolling {
            for (w, g) in rollingLeq {
                if let r = rolling.latest(windowSeconds: w) { g.set(to: r.leq) }
            }
            for (w, gauges) in rollingLevels {
                guard let levels = rolling.latest(windowSeconds: w)?.levels else { continue }
                for (q, g) in gauges { g.set(to: levels[keyPath: q]) }
            }
            for r in rolling.latest() {
                guard let bands = r.bands else { continue }
                let window = MetricsSink.windowLabel(r.windowSeconds)
                bandGauges.withLock { gauges in
                    for (i, f) in bands.centerHz.enumerated() where i < bands.leq.count {
                        let label = MetricsSink.bandLabel(f)
                        let key = window + "|" + label
                        let g = gauges[key] ?? registry.makeGauge(
                            descriptor: MetricNameDescriptor(namespace: "earshot", metricName: "band_leq", unitName: "db",
                                                             helpText: "Band Leq (IEC 61260-1 octave or 1/3-octave) of the latest closed rolling window."),
                            labels: [("window", window), ("band_hz", label)])
                        gauges[key] = g
                        g.set(to: bands.leq[i])
                    }
                }
            }
        }
        guard let latency else { return nil }
        let snap = latency.snapshot()
        mirror.withLock { m in
            for s in snap.stages {
                let key = "over_budget:" + s.stage
                let c = m.counters[key] ?? registry.makeCounter(
                    descriptor: MetricNameDescriptor(namespace: "earshot", metricName: "over_budget", unitName: "total",
                                                     helpText: "Frames over the stage's latency budget."),
                    labels: [("stage", s.stage)])
                m.counters[key] = c
                Self.advance(c, key: key, to: s.overBudget, &m)
            }
        }
        return snap
    }

    /// The Prometheus text exposition (what `/metrics` returns and the textfile holds).
    public func render() -> [UInt8] {
        let snap = refreshDerived()
        var out = registry.emitToBuffer()
        if let snap {
            let w = ByteWriter(capacity: 4096)
            w.ascii("# HELP earshot_stage_latency_seconds Per-stage pipeline latency.\n")
            w.ascii("# TYPE earshot_stage_latency_seconds histogram\n")
            let bounds = latency?.bucketBoundsSeconds ?? LatencyTracker.standardBucketBoundsSeconds
            for s in snap.stages {
                for (b, n) in zip(bounds, s.cumulativeBucketCounts) {
                    w.ascii("earshot_stage_latency_seconds_bucket{stage="); w.jsonString(s.stage)
                    w.ascii(",le=\""); w.significant(b, digits: 6); w.ascii("\"} "); w.int(Int64(n)); w.byte(0x0A)
                }
                w.ascii("earshot_stage_latency_seconds_bucket{stage="); w.jsonString(s.stage)
                w.ascii(",le=\"+Inf\"} "); w.int(Int64(s.total.count)); w.byte(0x0A)
                w.ascii("earshot_stage_latency_seconds_sum{stage="); w.jsonString(s.stage)
                w.ascii("} "); w.significant(s.sumSeconds, digits: 9); w.byte(0x0A)
                w.ascii("earshot_stage_latency_seconds_count{stage="); w.jsonString(s.stage)
                w.ascii("} "); w.int(Int64(s.total.count)); w.byte(0x0A)
            }
            out.append(contentsOf: w.bytes)
        }
        if !configuration.buildInfo.isEmpty {
            let w = ByteWriter(capacity: 256)
            w.ascii("# HELP earshot_build_info Build information; always 1.\n# TYPE earshot_build_info gauge\nearshot_build_info{")
            for (i, (k, v)) in configuration.buildInfo.sorted(by: { $0.key < $1.key }).enumerated() {
                if i > 0 { w.byte(0x2C) }
                w.append(k); w.ascii("=\""); w.append(Self.escapeLabelValue(v)); w.byte(0x22)
            }
            w.ascii("} 1\n")
            out.append(contentsOf: w.bytes)
        }
        if let calibration = configuration.calibration, let t = calibration.unixSeconds {
            out.append(contentsOf: Self.calibrationLines(calibration, unixSeconds: t))
        }
        return Self.addingConstantLabels(out, configuration.constantLabels)
    }

    /// `earshot_calibration_timestamp_seconds` (when the microphone was calibrated, for
    /// `time() - earshot_calibration_timestamp_seconds > 365 * 86400` alerts) and
    /// `earshot_calibration_info{date,reference_db}` (always 1).
    static func calibrationLines(_ c: CalibrationInfo, unixSeconds t: Int64) -> [UInt8] {
        let w = ByteWriter(capacity: 512)
        w.ascii("# HELP earshot_calibration_timestamp_seconds When levels.calibration_db was measured (UNIX time).\n")
        w.ascii("# TYPE earshot_calibration_timestamp_seconds gauge\nearshot_calibration_timestamp_seconds ")
        w.int(t); w.byte(0x0A)
        w.ascii("# HELP earshot_calibration_info The microphone calibration: date (UTC) and calibrator level (dB SPL); always 1.\n")
        w.ascii("# TYPE earshot_calibration_info gauge\nearshot_calibration_info{date=\"")
        w.append(escapeLabelValue(c.date)); w.ascii("\",reference_db=\"")
        if let r = c.referenceDb { w.significant(r, digits: 6) }
        w.ascii("\"} 1\n")
        return Array(w.bytes)
    }

    /// `value` escaped for a label value in the text exposition (backslash, double quote, newline).
    static func escapeLabelValue(_ value: String) -> String {
        var out = ""
        for c in value.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// Adds `labels` (sorted by name) first on every sample line of a text exposition; comments are kept.
    static func addingConstantLabels(_ text: [UInt8], _ labels: [String: String]) -> [UInt8] {
        guard !labels.isEmpty else { return text }
        let inner = Array(labels.sorted(by: { $0.key < $1.key })
            .map { "\($0.key)=\"\(escapeLabelValue($0.value))\"" }.joined(separator: ",").utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.count + text.count / 2)
        var lineStart = 0
        while lineStart < text.count {
            var end = lineStart
            while end < text.count && text[end] != 0x0A { end += 1 }
            let line = text[lineStart..<end]
            if line.isEmpty || line.first == 0x23 {  // "#"
                out.append(contentsOf: line)
            } else {
                var i = line.startIndex
                while i < line.endIndex && line[i] != 0x7B && line[i] != 0x20 { i += 1 }  // "{" or " "
                out.append(contentsOf: line[line.startIndex..<i])
                out.append(0x7B)
                out.append(contentsOf: inner)
                if i < line.endIndex && line[i] == 0x7B {
                    let next = line.index(after: i)
                    if next < line.endIndex && line[next] != 0x7D { out.append(0x2C) }
                    out.append(contentsOf: line[next...])
                } else {
                    out.append(0x7D)
                    out.append(contentsOf: line[i...])
                }
            }
            if end < text.count { out.append(0x0A) }
            lineStart = end + 1
        }
        return out
    }

    /// Writes the textfile now, without following or reusing anything another user may have planted: a new
    /// temp file `.<name>.<pid>.<n>.tmp` in the same directory (hidden and not `*.prom`, so node_exporter
    /// ignores it) created with `O_CREAT|O_EXCL|O_NOFOLLOW` relative to the directory, written, `fsync`ed,
    /// then `renameat` over `<name>` (which replaces a symlink there rather than writing through it).
    public func writeTextfile() throws(MetricsServerError) {
        guard let path = configuration.textfile else { return }
        let body = render()
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        guard !name.isEmpty else { throw MetricsServerError(operation: "textfile \(path) has no file name", errno: EINVAL) }
        let dirFD = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirFD >= 0 else { throw MetricsServerError(operation: "open directory \(dir)", errno: errno) }
        defer { close(dirFD) }
        var tmp = ""
        var fd: Int32 = -1
        for _ in 0..<8 {
            let n = Self.textfileSerial.add(1, ordering: .relaxed).newValue
            tmp = ".\(name).\(getpid()).\(n).tmp"
            fd = openat(dirFD, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
            if fd >= 0 || errno != EEXIST { break }
        }
        guard fd >= 0 else { throw MetricsServerError(operation: "create \(dir)/\(tmp)", errno: errno) }
        var off = 0
        while off < body.count {
            let n = body.withUnsafeBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno; close(fd); unlinkat(dirFD, tmp, 0)
                throw MetricsServerError(operation: "write \(dir)/\(tmp)", errno: e)
            }
            off += n
        }
        if fsync(fd) != 0 {
            let e = errno; close(fd); unlinkat(dirFD, tmp, 0)
            throw MetricsServerError(operation: "fsync \(dir)/\(tmp)", errno: e)
        }
        close(fd)
        guard renameat(dirFD, tmp, dirFD, name) == 0 else {
            let e = errno; unlinkat(dirFD, tmp, 0)
            throw MetricsServerError(operation: "rename \(dir)/\(tmp) → \(path)", errno: e)
        }
    }

    /// Makes temp file names unique within the process (with the pid, across processes).
    private static let textfileSerial = Atomic<Int>(0)

    func writeTextfileLogged() {
        do throws(MetricsServerError) {
            try writeTextfile()
        } catch {
            let n = textfileErrors.add(1, ordering: .relaxed).newValue
            if n == 1 || n % 100 == 0 { logger.error("metrics textfile failed: \(error) (failures=\(n))") }
        }
    }
}
