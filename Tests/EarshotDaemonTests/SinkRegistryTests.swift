@testable import EarshotDaemon
import EarshotPipeline
import EarshotSinks
import Logging
import Testing

/// The sink set comes from the configuration through one registry; reloads go to each sink's
/// `applyReload`, which says whether it took the change live.
@Suite("Sink registry")
struct SinkRegistryTests {
    static let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    static func build(_ config: EarshotConfig, _ options: DaemonOptions = DaemonOptions()) -> [any Sink] {
        var ctx = SinkBuildContext(config: config, options: options, logger: logger, publisher: nil)
        return SinkRegistry.build(&ctx)
    }

    @Test func setFollowsTheConfiguration() {
        #expect(Self.build(EarshotConfig()).map(\.name) == ["latency", "rolling", "alerts", "health"])
        var off = EarshotConfig()
        off.health.enabled = false
        #expect(Self.build(off).map(\.name) == ["latency", "rolling", "alerts"])
        var c = EarshotConfig()
        c.metrics.enabled = true
        var o = DaemonOptions()
        o.stdout = .ndjson
        let sinks = Self.build(c, o)
        #expect(sinks.map(\.name) == ["latency", "rolling", "alerts", "metrics", "stdout", "health"])
        #expect(sinks.map(\.configSection) == ["budgets", "rolling", "alerts", "metrics", "", "health"])
        // Every sink but the tracker records its hand-off.
        #expect(sinks.map { $0.latencyRecorder?.stage } == [nil, "sink:rolling", "sink:alerts", "sink:metrics", "sink:stdout", "sink:health"])
        let metrics = sinks.compactMap { $0 as? MetricsSink }.first
        #expect(metrics?.configuration.constantLabels == ["instance": "earshot", "device": "default"])
        #expect(metrics?.configuration.buildInfo["version"] == EarshotVersion.string)
    }

    @Test func reloadIsLiveForThresholdsAndBudgets() throws {
        var c = EarshotConfig()
        c.metrics.enabled = true
        var o = DaemonOptions()
        o.stdout = .ndjson
        let sinks = Self.build(c, o)
        #expect(SinkRegistry.applyReload(to: sinks, config: c, options: o).isEmpty, "an unchanged configuration is live")
        var next = c
        next.alerts.level.thresholdDB = -42
        next.alerts.onset.maxPerMinute = 3
        next.budgets.dspMs = 7
        #expect(SinkRegistry.applyReload(to: sinks, config: next, options: o).isEmpty)
        let alerts = try #require(sinks.compactMap { $0 as? AlertSink }.first)
        #expect(alerts.configuration.level.thresholdDB == -42 && alerts.configuration.onset.maxPerMinute == 3)
        let latency = try #require(sinks.compactMap { $0 as? LatencyTracker }.first)
        #expect(latency.configuration.dspMs == 7)
    }

    @Test func reloadRestartsWhatCannotChangeLive() {
        var c = EarshotConfig()
        c.metrics.enabled = true
        let sinks = Self.build(c)
        var windows = c
        windows.rolling.windowsSeconds = [5]
        #expect(SinkRegistry.applyReload(to: sinks, config: windows, options: DaemonOptions()) == ["rolling"])
        var listen = c
        listen.metrics.listen = "127.0.0.1:9999"
        #expect(SinkRegistry.applyReload(to: sinks, config: listen, options: DaemonOptions()) == ["metrics"])
        var weighting = c
        weighting.alerts.level.weighting = .las
        // The level-alert weighting is also the rolling weighting: rolling restarts, alerts take it live.
        #expect(SinkRegistry.applyReload(to: sinks, config: weighting, options: DaemonOptions()) == ["rolling"])
        var instance = DaemonOptions()
        instance.environment["EARSHOT_INSTANCE"] = "north"
        #expect(SinkRegistry.applyReload(to: sinks, config: c, options: instance) == ["metrics"], "labels changed")
    }

    @Test func contractDefaults() {
        final class Minimal: Sink, @unchecked Sendable {
            let name = "minimal"
            func start(bus: FrameBus, stream: StreamInfo) throws {}
            func stop() {}
            var dropped: Int { 0 }
        }
        let m = Minimal()
        #expect(m.configSection == "" && m.counters.isEmpty && m.latencyRecorder == nil)
        #expect(!m.applyReload(1), "a sink without reload support is restarted")
        let alerts = AlertSink(configuration: .init(), logger: Self.logger, publisher: nil)
        #expect(alerts.counters.map(\.0) == ["level_alerts", "onset_alerts", "onset_alerts_suppressed"])
        #expect(!alerts.applyReload(LatencyTracker.Configuration()), "another sink's configuration is not applied")
    }
}

/// Non-frame messages reach the socket and every message-consuming sink through one fan-out.
@Suite("Message fan-out")
struct MessageFanoutTests {
    final class Recorder: MessagePublisher, @unchecked Sendable {
        var lines: [(StreamKind, String)] = []
        func publish(_ stream: StreamKind, line: [UInt8], wallNs: Int64) {
            lines.append((stream, String(decoding: line, as: UTF8.self)))
        }
    }

    @Test func forwardsToEachTargetInOrderUntilRemoved() {
        let fanout = MessageFanout()
        let a = Recorder(), b = Recorder()
        fanout.add(a); fanout.add(b); fanout.add(a)
        #expect(fanout.count == 2, "a target is added once")
        fanout.publish(.alert, line: Array("{\"type\":\"alert\"}\n".utf8), wallNs: 1)
        fanout.remove(a)
        fanout.publish(.status, line: Array("{\"type\":\"status\"}\n".utf8), wallNs: 2)
        #expect(a.lines.map(\.0) == [.alert])
        #expect(b.lines.map(\.0) == [.alert, .status])
        #expect(b.lines.last?.1 == "{\"type\":\"status\"}\n")
    }

    @Test func theRegistryContextRegistersConsumers() {
        let fanout = MessageFanout()
        let ctx = SinkBuildContext(config: EarshotConfig(), options: DaemonOptions(), logger: SinkRegistryTests.logger,
                                   publisher: fanout, messages: fanout)
        let r = Recorder()
        ctx.register(r)
        ctx.publisher?.publish(.rolling, line: Array("x\n".utf8), wallNs: 0)
        #expect(r.lines.count == 1)
    }
}
