public import EarshotPipeline
public import EarshotSinks
public import Logging

/// What the registry's entries build a sink from (the sinks built before it are in ``latency``/``rolling``).
public struct SinkBuildContext {
    public var config: EarshotConfig
    public var options: DaemonOptions
    public var logger: Logger
    /// Where sinks publish non-frame messages (rolling results, alerts, …): the daemon's ``MessageFanout``,
    /// which forwards to the socket publisher (if any) and to every sink registered on it.
    public var publisher: (any MessagePublisher)?
    /// The fan-out itself: a sink that consumes messages (alerts for clips, everything for MQTT) conforms to
    /// ``MessagePublisher`` and is added here by its entry (``register(_:)``); stopping the sink set removes it.
    public var messages: MessageFanout
    public var latency: LatencyTracker?
    public var rolling: RollingAggregator?
    /// Told the active input-health faults after each change (the daemon refreshes `hello` with it).
    public var onHealthChange: (@Sendable ([HealthMessage.Kind]) -> Void)?
    /// The pipeline's raw-sample tap for the clips sink (nil: the pipeline was built with clips off).
    public var clipTap: ClipTap?

    public init(config: EarshotConfig, options: DaemonOptions, logger: Logger, publisher: (any MessagePublisher)?,
                messages: MessageFanout = MessageFanout()) {
        self.config = config; self.options = options; self.logger = logger; self.publisher = publisher
        self.messages = messages
    }

    /// Makes `sink` receive every message published through ``publisher`` from now on.
    public func register(_ sink: any MessagePublisher) { messages.add(sink) }
}

/// The one place the daemon's sink set is defined: each entry builds its sink from the configuration (nil:
/// not part of this configuration's set) and says which configuration value a reload hands it
/// (``Sink/applyReload(_:)``). The set is built in ``entries`` order (the latency tracker first: every other
/// sink gets a hand-off recorder from it; rolling before metrics, which reads it). The socket publisher is
/// not an entry: it outlives sink restarts (its clients stay connected).
///
/// Adding a sink: its file in `Sources/EarshotSinks/` (conforming to ``Sink``), one `Entry` below and its
/// name in ``entries``.
public enum SinkRegistry {
    public struct Entry: Sendable {
        public let name: String
        public let build: @Sendable (inout SinkBuildContext) -> (any Sink)?
        public let configuration: @Sendable (EarshotConfig, DaemonOptions) -> any Sendable
    }

    public static let entries: [Entry] = [latency, rolling, alerts, metrics, stdout, health, mqtt, clips]

    public static let latency = Entry(name: "latency", build: { ctx in
        let t = LatencyTracker(configuration: ctx.config.latencyConfiguration, logger: ctx.logger)
        ctx.latency = t
        return t
    }, configuration: { c, _ in c.latencyConfiguration })

    public static let rolling = Entry(name: "rolling", build: { ctx in
        let r = RollingAggregator(configuration: ctx.config.rollingConfiguration, publisher: ctx.publisher)
        ctx.rolling = r
        return r
    }, configuration: { c, _ in c.rollingConfiguration })

    public static let alerts = Entry(name: "alerts", build: { ctx in
        AlertSink(configuration: ctx.config.alertConfiguration, logger: ctx.logger, publisher: ctx.publisher)
    }, configuration: { c, _ in c.alertConfiguration })

    public static let metrics = Entry(name: "metrics", build: { ctx in
        guard ctx.config.metrics.enabled else { return nil }
        return MetricsSink(configuration: ctx.config.metricsSinkConfiguration(environment: ctx.options.environment),
                           logger: ctx.logger, rolling: ctx.rolling, latency: ctx.latency)
    }, configuration: { c, o in c.metricsSinkConfiguration(environment: o.environment) })

    public static let stdout = Entry(name: "stdout", build: { ctx in
        guard let format = ctx.options.stdout else { return nil }
        var encoder = ctx.config.frameEncoder(features: ctx.options.stdoutFeatures)
        encoder.timing = ctx.options.timing
        return StdoutSink(format: format, encoder: encoder)
    }, configuration: { _, _ in StdoutConfiguration() })

    /// Input health (``HealthMonitor``), on unless `health.enabled` is false.
    public static let health = Entry(name: "health", build: { ctx in
        guard ctx.config.health.enabled else { return nil }
        return HealthMonitor(configuration: ctx.config.health, logger: ctx.logger, publisher: ctx.publisher,
                             onChange: ctx.onHealthChange)
    }, configuration: { c, _ in c.health })
    public static let mqtt = Entry(name: "mqtt", build: { ctx in
        let c = ctx.config.mqttConfiguration(environment: ctx.options.environment)
        guard c.enabled else { return nil }
        let sink = MQTTSink(configuration: c, logger: ctx.logger, environment: ctx.options.environment)
        ctx.register(sink)
        return sink
    }, configuration: { c, o in c.mqttConfiguration(environment: o.environment) })

    /// Event clips (``ClipSink``), when `clips.directory` is set: raw samples from the pipeline's tap
    /// (``SinkBuildContext/clipTap``), triggers from the fan-out.
    public static let clips = Entry(name: "clips", build: { ctx in
        let c = ctx.config.clipsConfiguration(environment: ctx.options.environment)
        guard c.directory != nil else { return nil }
        let sink = ClipSink(configuration: c, logger: ctx.logger, publisher: ctx.publisher, tap: ctx.clipTap)
        ctx.register(sink)
        return sink
    }, configuration: { c, o in c.clipsConfiguration(environment: o.environment) })

    /// Builds the sink set for `context` (not started), each sink but the tracker with its hand-off recorder.
    public static func build(_ context: inout SinkBuildContext) -> [any Sink] {
        var out: [any Sink] = []
        for entry in entries {
            guard let sink = entry.build(&context) else { continue }
            if !(sink is LatencyTracker), let tracker = context.latency {
                sink.latencyRecorder = tracker.makeRecorder(sink: sink.name)
            }
            out.append(sink)
        }
        return out
    }

    /// Hands each running sink its configuration from `config`. Returns the names of the sinks that could
    /// not take it live (they must be restarted).
    public static func applyReload(to sinks: [any Sink], config: EarshotConfig, options: DaemonOptions) -> [String] {
        var restart: [String] = []
        for sink in sinks {
            guard let entry = entries.first(where: { $0.name == sink.name }) else { continue }
            if !sink.applyReload(entry.configuration(config, options)) { restart.append(sink.name) }
        }
        return restart
    }
}

/// `--stdout` has no configuration section: a reload never changes it.
struct StdoutConfiguration: Sendable, Equatable {}

extension EarshotConfig {
    /// Constant labels on every metric: `instance` (`$EARSHOT_INSTANCE`, which earshot@.service sets to the
    /// instance name; `earshot` otherwise) and `device` (`capture.device`); `metrics.labels` adds others
    /// and may override these two. Both values are cut to the label value limit (at a character boundary):
    /// they come from the environment and a device name, not from `metrics.labels`' checked list.
    static func metricsLabels(device: String, environment: [String: String]) -> [String: String] {
        let instance = environment["EARSHOT_INSTANCE"].flatMap { $0.isEmpty ? nil : $0 } ?? "earshot"
        return ["instance": clampedLabelValue(instance), "device": clampedLabelValue(device)]
    }

    static func clampedLabelValue(_ s: String) -> String {
        let limit = MetricsSink.Configuration.Limits.labelValueBytes
        guard s.utf8.count > limit else { return s }
        var out = ""
        for ch in s {
            guard out.utf8.count + ch.utf8.count <= limit else { break }
            out.append(ch)
        }
        return out
    }

    public func metricsSinkConfiguration(environment: [String: String]) -> MetricsSink.Configuration {
        var c = metricsConfiguration
        c.constantLabels = Self.metricsLabels(device: capture.device, environment: environment)
            .merging(metrics.labels) { _, configured in configured }
        c.buildInfo = EarshotVersion.buildInfo
        c.calibration = calibrationInfo
        return c
    }
}
