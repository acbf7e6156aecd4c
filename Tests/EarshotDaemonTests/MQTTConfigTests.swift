import Foundation
import Logging
import Testing

@testable import EarshotDaemon
import EarshotSinks

/// Issue 13: the `mqtt` section through the one configuration model, the registry and the reload plan.
@Suite("MQTT configuration")
struct MQTTConfigTests {
    func load(_ yaml: String, environment: [String: String] = [:]) throws -> Result<EarshotConfig, ConfigError> {
        let dir = try TempDir()
        defer { dir.cleanUp() }
        let file = try dir.write("earshot.yaml", yaml)
        do {
            return .success(try EarshotConfig.load(configPath: file, environment: environment, overrides: [],
                                                   options: ConfigValidationOptions(checkSystem: false)))
        } catch let e as ConfigError {
            return .failure(e)
        }
    }

    @Test func yamlEnvironmentAndErrorsNameTheKey() throws {
        let ok = try load("mqtt:\n  broker: mqtts://broker.example:8884\n  node: porch\n  spool:\n    max_mb: 8\n  homeassistant:\n    enabled: true\n")
        let c = try ok.get()
        #expect(c.mqtt.broker == "mqtts://broker.example:8884" && c.mqtt.node == "porch" && c.mqtt.spool.maxMB == 8)
        #expect(c.mqtt.homeassistant.enabled)
        let env = try load("", environment: ["EARSHOT_MQTT_TOPIC_PREFIX": "site/north"]).get()
        #expect(env.mqtt.topicPrefix == "site/north")
        for (yaml, key, text) in [
            ("mqtt:\n  broker: tcp://x\n", "mqtt.broker", "mqtt://HOST[:PORT]"),
            ("mqtt:\n  topic_prefix: a/#\n", "mqtt.topic_prefix", "without +, #"),
            ("mqtt:\n  spool:\n    drain_per_s: 0\n", "mqtt.spool.drain_per_s", "out of range"),
            ("mqtt:\n  broker: mqtt://x\n  ca_file: /etc/ca.pem\n", "mqtt.broker", "not mqtts://"),
        ] {
            guard case .failure(let e) = try load(yaml) else { Issue.record("accepted: \(yaml)"); continue }
            #expect(e.key == key && e.description.contains(text), "\(yaml): \(e)")
        }
    }

    @Test func registryBuildsTheSinkOnlyWithABrokerAndRegistersIt() throws {
        let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        var c = EarshotConfig()
        var ctx = SinkBuildContext(config: c, options: DaemonOptions(), logger: logger, publisher: nil)
        #expect(!SinkRegistry.build(&ctx).contains { $0.name == "mqtt" })
        c.mqtt.broker = "mqtt://127.0.0.1:1"
        var o = DaemonOptions()
        o.environment = ["EARSHOT_INSTANCE": "porch", "STATE_DIRECTORY": "/var/lib/earshot/porch"]
        let fanout = MessageFanout()
        ctx = SinkBuildContext(config: c, options: o, logger: logger, publisher: fanout, messages: fanout)
        let sinks = SinkRegistry.build(&ctx)
        let mqtt = try #require(sinks.first { $0.name == "mqtt" } as? MQTTSink)
        #expect(fanout.count == 1, "the sink receives every fanout message")
        #expect(mqtt.configuration.instance == "porch" && mqtt.configSection == "mqtt")
        #expect(mqtt.spoolDirectory == "/var/lib/earshot/porch/mqtt-spool")
        #expect(mqtt.counters.map(\.0).allSatisfy { $0.hasPrefix("mqtt_") })
        #expect(SinkRegistry.applyReload(to: sinks, config: c, options: o).isEmpty, "unchanged: live")
        var changed = c
        changed.mqtt.topicPrefix = "other"
        #expect(SinkRegistry.applyReload(to: sinks, config: changed, options: o) == ["mqtt"])
    }

    @Test func turningMQTTOnOrOffByReloadRestartsTheSinks() {
        var on = EarshotConfig()
        on.mqtt.broker = "mqtt://127.0.0.1:1883"
        #expect(ReloadPlan(from: EarshotConfig(), to: on).restartSinks)
        #expect(ReloadPlan(from: on, to: EarshotConfig()).restartSinks)
    }
}
