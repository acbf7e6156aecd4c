#if canImport(Glibc)
import Glibc
#endif
import EarshotTestKit
import Foundation
import Testing

/// Issue 13: the MQTT sink against a real `mosquitto` broker started by each test on a free port, with
/// `mosquitto_sub` as the consumer and the daemon's own socket as the reference for the same windows.
///
/// The outage is 10 s by default; the issue's 30 s run: `EARSHOT_MQTT_OUTAGE_S=30 swift test --skip-build
/// --filter MQTTBroker/brokerOutage`.
extension EndToEnd {
    @Suite("MQTTBroker: payloads, outage and spool, credentials, TLS, Last Will, Home Assistant", .serialized)
    struct MQTTBroker {
        static let base = "earshot/testbox/earshot"

        static func mqttYAML(port: Int, dir: URL, scheme: String = "mqtt", extra: String = "", spool: String = "") -> String {
            """
            mqtt:
              broker: \(scheme)://127.0.0.1:\(port)
              node: testbox
              keepalive_s: 5
              reconnect_initial_s: 0.2
              reconnect_max_s: 1
            \(extra.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
              spool:
                directory: \(dir.path)/mqtt-spool
            \(spool.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
            """
        }

        /// A socket client on `rig` subscribed to `streams` (the reference).
        final class SocketReference {
            let fd: Int32
            let log: StreamLog
            let readers: PollingReaders
            init(_ rig: PublishingRig, streams: String = #"["rolling","alert","stats"]"#) throws {
                fd = connectUnix(rig.socketPath)
                try #require(fd >= 0)
                log = StreamLog(name: "reference", keepDetail: true)
                readers = PollingReaders(fds: [fd], logs: [log], threads: 1)
                _ = sendAll(fd, Array(#"{"op":"subscribe","streams":\#(streams)}"#.utf8) + [0x0A])
            }
            func stop() { readers.stop(); close(fd) }
            func rolling(window: Double) -> [[String: Any]] {
                log.messages(type: "rolling").filter { dbl($0["window_s"]) == window }
            }
            var lastStats: [String: Any]? { log.messages(type: "stats").last }
        }

        static func t(_ m: [String: Any]) -> Double { dbl(m["t"]) ?? -1 }

        // MARK: payloads, discovery, Last Will

        /// Rolling windows and alerts arrive on their topics with node/instance/t/level_unit and the socket's
        /// values for the same windows; decimated levels on `levels`; `status` is retained `online`; the Home
        /// Assistant documents are retained and valid; SIGKILL makes the broker publish `offline` (Last
        /// Will); a restart with discovery off removes the documents; SIGTERM publishes `offline` itself.
        @Test(.enabled(if: mqttTestsEnabled, "mosquitto not installed (CI=true fails instead)"))
        func payloadsMatchTheSocketAndLastWill() throws {
            let dir = try makeTemporaryDirectory("earshot-mqtt-payloads")
            defer { try? FileManager.default.removeItem(at: dir) }
            let broker = try MosquittoBroker(dir: dir)
            try broker.start()
            defer { broker.stop() }
            let sub = try MQTTSubscriber(port: broker.port)
            defer { sub.stop() }
            let metricsPort = freeTCPPort()
            let yaml = "rolling:\n  windows_s: [1, 2]\nmetrics:\n  enabled: true\n  listen: 127.0.0.1:\(metricsPort)\n"
                + Self.mqttYAML(port: broker.port, dir: dir, extra: "levels_every: 10\nhomeassistant:\n  enabled: true")
            let rig = try PublishingRig("mqtt-payloads", samples: burstSignal(quiet: 1, burst: 1), extraYAML: yaml)
            defer { rig.cleanup() }
            let daemon = try rig.start()
            let ref = try SocketReference(rig)
            defer { ref.stop() }
            #expect(waitFor(10) { sub.messages(topic: Self.base + "/rolling/2").count >= 3 && ref.rolling(window: 2).count >= 4 },
                    "\(daemon.stderr)")
            Thread.sleep(forTimeInterval: 0.5)

            // Rolling: every socket window after the first MQTT one is on MQTT with the same values.
            for w in [1.0, 2.0] {
                let topic = Self.base + "/rolling/" + (w == 1 ? "1" : "2")
                let mqtt = sub.messages(topic: topic).compactMap(\.json)
                let byT = Dictionary(mqtt.map { (Self.t($0), $0) }, uniquingKeysWith: { a, _ in a })
                let first = mqtt.map(Self.t).min() ?? .infinity
                let last = mqtt.map(Self.t).max() ?? -1
                let reference = ref.rolling(window: w).filter { Self.t($0) >= first && Self.t($0) <= last }
                #expect(reference.count >= 2, "window \(w): \(reference.count) reference windows")
                for r in reference {
                    guard let m = byT[Self.t(r)] else { Issue.record("window \(w) t=\(Self.t(r)) not on MQTT"); continue }
                    for (k, v) in r { #expect((m[k] as? NSObject) == (v as? NSObject), "window \(w) \(k): mqtt \(String(describing: m[k])) socket \(v)") }
                    #expect(m["node"] as? String == "testbox" && m["instance"] as? String == "earshot")
                    #expect(m["level_unit"] as? String == "dBFS")
                }
            }
            // Alerts (the burst crosses -20 dBFS every 2 s): those on the socket are on MQTT, same fields.
            #expect(waitFor(6) { !ref.log.messages(type: "alert").isEmpty })
            let refAlerts = ref.log.messages(type: "alert")
            // (An alert raised just now may still be on its way to the broker: wait for it, bounded.)
            waitFor(3) {
                let onMQTT = Set(sub.messages(topic: Self.base + "/alert").compactMap(\.json).map { "\(Self.t($0)) \($0["state"] ?? "")" })
                return refAlerts.allSatisfy { onMQTT.contains("\(Self.t($0)) \($0["state"] ?? "")") }
            }
            let alerts = sub.messages(topic: Self.base + "/alert").compactMap(\.json)
            #expect(!refAlerts.isEmpty)
            for r in refAlerts {
                let match = alerts.first { Self.t($0) == Self.t(r) && $0["state"] as? String == r["state"] as? String }
                #expect(match != nil, "alert \(r) not on MQTT")
                if let match { for (k, v) in r { #expect((match[k] as? NSObject) == (v as? NSObject), "alert \(k)") } }
            }
            // Levels: every 10th frame, QoS 0.
            let levels = sub.messages(topic: Self.base + "/levels").compactMap(\.json)
            #expect(levels.count >= 10, "\(levels.count) level messages")
            #expect(levels.allSatisfy { (int($0["seq"]) ?? 1) % 10 == 0 && dbl($0["laf"]) != nil && $0["level_unit"] as? String == "dBFS" })
            // Availability: retained online (a new subscriber gets it).
            #expect(sub.messages(topic: Self.base + "/status").last?.payload == "online")
            let late = try MQTTSubscriber(port: broker.port, topics: [Self.base + "/status", "homeassistant/#"])
            defer { late.stop() }
            #expect(waitFor(5) { late.messages.count >= 6 })
            #expect(late.messages(topic: Self.base + "/status").first.map { $0.retained && $0.payload == "online" } == true)
            // Home Assistant discovery: retained, valid against HA's MQTT sensor schema.
            let docs = late.messages.filter { $0.topic.hasPrefix("homeassistant/sensor/") }
            #expect(Set(docs.map(\.topic)) == Set(["laeq_1s", "laeq_2s", "laf", "health", "last_alert", "onsets_per_minute"].map {
                "homeassistant/sensor/earshot_testbox_earshot_\($0)/config"
            }), "\(docs.map(\.topic))")
            for d in docs {
                #expect(d.retained)
                let problems = HomeAssistantSchema.problems(d.json ?? [:], levelUnit: "dBFS")
                #expect(problems.isEmpty, "\(d.topic): \(problems)")
                #expect((d.json?["availability_topic"] as? String) == Self.base + "/status")
            }

            // /metrics: connected, messages published, nothing dropped or spooled.
            #expect(waitFor(8) {
                (EndToEnd.SupervisorHardening.scrape(port: metricsPort) ?? "").split(separator: "\n")
                    .contains { $0.hasPrefix("earshot_mqtt_connected{") && $0.hasSuffix("} 1.0") }
            })
            let metrics = EndToEnd.SupervisorHardening.scrape(port: metricsPort) ?? ""
            #expect(metrics.contains("earshot_mqtt_published_total") && metrics.contains("reason=\"spool\"} 0"),
                    "\(metrics.split(separator: "\n").filter { $0.contains("mqtt") })")

            // Last Will: SIGKILL → the broker publishes offline (the kernel closes the socket).
            daemon.signal(SIGKILL)
            _ = daemon.wait(timeout: 5)
            #expect(waitFor(10) { sub.messages(topic: Self.base + "/status").last?.payload == "offline" },
                    "\(sub.messages(topic: Self.base + "/status").map(\.payload))")

            // Discovery off: the retained documents are removed (empty retained payloads).
            let noHA = "rolling:\n  windows_s: [1, 2]\nmetrics:\n  enabled: true\n  listen: 127.0.0.1:\(metricsPort)\n"
                + Self.mqttYAML(port: broker.port, dir: dir, extra: "levels_every: 10")
            try String(contentsOf: rig.config, encoding: .utf8).replacingOccurrences(of: yaml, with: noHA)
                .write(to: rig.config, atomically: true, encoding: .utf8)
            let second = try rig.start()
            #expect(waitFor(10) {
                Set(late.messages.filter { $0.topic.hasPrefix("homeassistant/") && $0.payload.isEmpty }.map(\.topic)).isSuperset(of: Set(docs.map(\.topic)))
            }, "\(late.messages.map(\.topic))")
            #expect(waitFor(5) { sub.messages(topic: Self.base + "/status").last?.payload == "online" })
            // A clean stop publishes offline itself (bounded: the daemon exits within TimeoutStopSec).
            second.signal(SIGTERM)
            #expect(second.wait(timeout: 5) == .exited(0), "\(second.stderr.suffix(1500))")
            #expect(waitFor(3) { sub.messages(topic: Self.base + "/status").last?.payload == "offline" })
            #expect(second.stderr.contains("mqtt stopped"))
        }

        // MARK: outage: nothing lost, in order, none twice; daemon killed mid-outage

        /// Broker stopped for `EARSHOT_MQTT_OUTAGE_S` (10) s while audio flows; in the middle of it the daemon
        /// is SIGKILLed and restarted. After the broker is back, every rolling window and alert of both runs
        /// arrives, in order, none twice.
        @Test(.enabled(if: mqttTestsEnabled, "mosquitto not installed (CI=true fails instead)"))
        func brokerOutageLosesNothing() throws {
            let outage = Double(ProcessInfo.processInfo.environment["EARSHOT_MQTT_OUTAGE_S"] ?? "") ?? 10
            let dir = try makeTemporaryDirectory("earshot-mqtt-outage")
            defer { try? FileManager.default.removeItem(at: dir) }
            let broker = try MosquittoBroker(dir: dir)
            try broker.start()
            defer { broker.stop() }
            let topics = [Self.base + "/rolling/#", Self.base + "/alert"]
            var sub = try MQTTSubscriber(port: broker.port, topics: topics, persistentID: "earshot-test-outage")
            let rig = try PublishingRig("mqtt-outage", samples: burstSignal(quiet: 1, burst: 1),
                                        extraYAML: "rolling:\n  windows_s: [1]\n" + Self.mqttYAML(port: broker.port, dir: dir))
            defer { rig.cleanup() }
            var daemon = try rig.start()
            var ref = try SocketReference(rig)
            var refs = [ref]
            defer { for r in refs { r.stop() } }
            #expect(waitFor(8) { sub.messages(topic: Self.base + "/rolling/1").count >= 2 }, "\(daemon.stderr)")
            var received: [MQTTReceived] = sub.messages
            sub.stop()
            broker.stop()
            let outageStart = Date()
            Thread.sleep(forTimeInterval: outage / 2)
            // Kill the daemon in the middle of the outage; a new one resumes from the spool.
            daemon.signal(SIGKILL)
            _ = daemon.wait(timeout: 5)
            daemon = try rig.start()
            ref = try SocketReference(rig)
            refs.append(ref)
            Thread.sleep(until: outageStart.addingTimeInterval(outage))
            try broker.start()
            sub = try MQTTSubscriber(port: broker.port, topics: topics, persistentID: "earshot-test-outage")
            defer { sub.stop() }
            let lastBefore = Date()
            let expectedLast = ref.rolling(window: 1).map(Self.t).max() ?? 0
            #expect(waitFor(20) { (sub.messages(topic: Self.base + "/rolling/1").compactMap(\.json).map(Self.t).max() ?? 0) >= expectedLast },
                    "spool did not drain: \(daemon.stderr)")
            Thread.sleep(forTimeInterval: 1)
            received += sub.messages
            let drainSeconds = Date().timeIntervalSince(lastBefore)

            let mqttRolling = received.filter { $0.topic == Self.base + "/rolling/1" }.compactMap(\.json).map(Self.t)
            let refRolling = Set(refs.flatMap { $0.rolling(window: 1).map(Self.t) })
            let first = mqttRolling.min() ?? 0, last = mqttRolling.max() ?? 0
            let expected = refRolling.filter { $0 >= first && $0 <= last }.sorted()
            #expect(expected.count >= Int(outage) - 2, "\(expected.count) reference windows")
            #expect(Set(expected).isSubset(of: Set(mqttRolling)), "missing windows: \(Set(expected).subtracting(mqttRolling).sorted())")
            #expect(mqttRolling == mqttRolling.sorted() && Set(mqttRolling).count == mqttRolling.count,
                    "order/duplicates: \(mqttRolling)")
            let refAlerts = refs.flatMap { $0.log.messages(type: "alert") }.map { "\(Self.t($0)) \($0["state"] ?? "")" }
                .filter { (Double($0.split(separator: " ")[0]) ?? 0) >= first && (Double($0.split(separator: " ")[0]) ?? 0) <= last }
            let mqttAlerts = received.filter { $0.topic == Self.base + "/alert" }.compactMap(\.json).map { "\(Self.t($0)) \($0["state"] ?? "")" }
            #expect(!refAlerts.isEmpty)
            #expect(Set(refAlerts).isSubset(of: Set(mqttAlerts)), "missing alerts: \(Set(refAlerts).subtracting(mqttAlerts))")
            #expect(Set(mqttAlerts).count == mqttAlerts.count, "duplicate alerts: \(mqttAlerts)")
            print("mqtt outage \(outage) s: \(mqttRolling.count) windows, \(mqttAlerts.count) alerts delivered after \(String(format: "%.1f", drainSeconds)) s")
        }

        /// With `spool.max_mb` small, an outage drops the oldest spooled windows: what arrives is the newest,
        /// in order, and the drop count in `stats` equals the windows missing.
        @Test(.enabled(if: mqttTestsEnabled, "mosquitto not installed (CI=true fails instead)"))
        func smallSpoolDropsTheOldestAndCountsThem() throws {
            let dir = try makeTemporaryDirectory("earshot-mqtt-spool")
            defer { try? FileManager.default.removeItem(at: dir) }
            let broker = try MosquittoBroker(dir: dir)
            try broker.start()
            defer { broker.stop() }
            let topic = Self.base + "/rolling/0.1"
            var sub = try MQTTSubscriber(port: broker.port, topics: [topic], persistentID: "earshot-test-spool")
            let rig = try PublishingRig("mqtt-spool", extraYAML: "rolling:\n  windows_s: [0.1]\n"
                                        + Self.mqttYAML(port: broker.port, dir: dir, spool: "max_mb: 0.01"))
            defer { rig.cleanup() }
            let daemon = try rig.start()
            let ref = try SocketReference(rig)
            defer { ref.stop() }
            #expect(waitFor(8) { sub.messages(topic: topic).count >= 5 }, "\(daemon.stderr)")
            var received = sub.messages
            sub.stop()
            broker.stop()
            Thread.sleep(forTimeInterval: 6)  // ~60 windows of ~700 bytes: several times the 10 KiB spool
            try broker.start()
            sub = try MQTTSubscriber(port: broker.port, topics: [topic], persistentID: "earshot-test-spool")
            defer { sub.stop() }
            let expectedLast = ref.rolling(window: 0.1).map(Self.t).max() ?? 0
            #expect(waitFor(15) { (sub.messages(topic: topic).compactMap(\.json).map(Self.t).max() ?? 0) >= expectedLast })
            // A stats message taken after the drain.
            let statsBefore = ref.log.messages(type: "stats").count
            #expect(waitFor(7) { ref.log.messages(type: "stats").count > statsBefore })
            received += sub.messages
            let got = received.compactMap(\.json).map(Self.t)
            #expect(got == got.sorted() && Set(got).count == got.count, "order/duplicates")
            let all = ref.rolling(window: 0.1).map(Self.t).filter { $0 >= (got.min() ?? 0) && $0 <= (got.max() ?? 0) }
            let missing = Set(all).subtracting(got)
            let dropped = int(ref.lastStats?["mqtt_dropped_spool"]) ?? -1
            #expect(missing.count > 0 && dropped == missing.count, "dropped \(dropped), missing \(missing.count) of \(all.count): missing \(missing.sorted()), got \(got), stats \(ref.lastStats ?? [:])")
            // The missing ones are the oldest of the outage: everything after the last missing one arrived.
            if let lastMissing = missing.max() {
                #expect(all.filter { $0 > lastMissing }.allSatisfy { got.contains($0) })
            }
        }

        // MARK: spool on a full disk

        /// A 64 KiB tmpfs mounted at `dir`/fs for the spool (root mounts it); nil, after recording an issue under
        /// CI=true or printing why, where it cannot be mounted.
        static func smallSpoolDisk(in dir: URL) throws -> (SmallTmpfs, URL)? {
            let fsDir = dir.appendingPathComponent("fs")
            try FileManager.default.createDirectory(at: fsDir, withIntermediateDirectories: false)
            guard let fs = SmallTmpfs(at: fsDir.path, kib: 64) else {
                #expect(ProcessInfo.processInfo.environment["CI"] != "true", "cannot mount a tmpfs (needs root) under CI=true")
                print("skipped: cannot mount a tmpfs here (not root or no mount permission)")
                return nil
            }
            return (fs, fsDir)
        }

        /// Issue 9 hardening: the spool directory on a genuinely full file system (a 64 KiB tmpfs filled after
        /// the daemon started; root mounts it, CI=true fails without it). QoS-1 messages still reach the broker
        /// in order with none missing — also across a 3 s broker outage while the disk is full (held in memory,
        /// sent after the reconnect); exactly one error line when it starts; `stats` and `/metrics` show it;
        /// freeing the space logs a notice and the spool takes writes again; drained segments are unlinked;
        /// the cursor keeps its 40 bytes throughout. Then a daemon started on a fresh spool on an already full
        /// disk: one error line, no empty cursor file, windows delivered, the cursor written once there is room.
        @Test(.enabled(if: mqttTestsEnabled, "mosquitto not installed (CI=true fails instead)"))
        func aFullSpoolDiskStillDeliversInOrderAndRecovers() throws {
            let dir = try makeTemporaryDirectory("earshot-mqtt-full")
            defer { try? FileManager.default.removeItem(at: dir) }
            guard let (fs, fsDir) = try Self.smallSpoolDisk(in: dir) else { return }
            defer { fs.unmount() }
            let spoolDir = fsDir.path + "/mqtt-spool"
            func cursorBytes() -> Int { ((try? FileManager.default.attributesOfItem(atPath: spoolDir + "/cursor"))?[.size] as? Int) ?? -1 }
            func segments() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: spoolDir)) ?? []).filter { $0.hasSuffix(".spool") } }
            let broker = try MosquittoBroker(dir: dir)
            try broker.start()
            defer { broker.stop() }
            let topic = Self.base + "/rolling/0.25"
            let topics = [topic, Self.base + "/alert"]
            var sub = try MQTTSubscriber(port: broker.port, topics: topics, persistentID: "earshot-test-full")
            let metricsPort = freeTCPPort()
            let rig = try PublishingRig("mqtt-full", samples: burstSignal(quiet: 1, burst: 1), extraYAML: """
                rolling:
                  windows_s: [0.25]
                metrics:
                  enabled: true
                  listen: 127.0.0.1:\(metricsPort)

                """ + Self.mqttYAML(port: broker.port, dir: fsDir))
            defer { rig.cleanup() }
            let daemon = try rig.start()
            let ref = try SocketReference(rig)
            defer { ref.stop() }
            #expect(waitFor(8) { sub.messages(topic: topic).count >= 4 }, "\(daemon.stderr)")
            #expect(cursorBytes() == 40)
            func stats(_ condition: @escaping ([String: Any]) -> Bool) -> [String: Any]? {
                var found: [String: Any]?
                _ = waitFor(15) {
                    found = ref.log.messages(type: "stats").last
                    return found.map(condition) ?? false
                }
                return found
            }

            // The disk fills up while the broker is connected.
            fs.fill()
            #expect(daemon.wait(until: 10) { $0.stderr.contains("mqtt spool write failed") }, "\(daemon.stderr)")
            let countBefore = sub.messages(topic: topic).count
            #expect(waitFor(8) { sub.messages(topic: topic).count >= countBefore + 8 }, "windows keep arriving while the disk is full")
            let full = stats { int($0["mqtt_spool_failing"]) == 1 && (int($0["mqtt_unspooled"]) ?? 0) > 0 }
            #expect(full.map { int($0["mqtt_spool_failing"]) == 1 && (int($0["mqtt_unspooled"]) ?? 0) > 0 } == true, "\(full ?? [:])")
            let metrics = EndToEnd.SupervisorHardening.scrape(port: metricsPort) ?? ""
            #expect(metrics.split(separator: "\n").contains { $0.hasPrefix("earshot_mqtt_spool_failing{") && $0.hasSuffix("} 1.0") }
                    && metrics.contains("earshot_mqtt_unspooled_total"), "\(metrics.split(separator: "\n").filter { $0.contains("mqtt") })")

            // A broker outage while the disk is still full: the held messages wait in memory and are sent after.
            var received = sub.messages
            sub.stop()
            broker.stop()
            Thread.sleep(forTimeInterval: 3)
            try broker.start()
            sub = try MQTTSubscriber(port: broker.port, topics: topics, persistentID: "earshot-test-full")
            let afterOutage = ref.rolling(window: 0.25).map(Self.t).max() ?? 0
            #expect(waitFor(15) { (sub.messages(topic: topic).compactMap(\.json).map(Self.t).max() ?? 0) >= afterOutage },
                    "held messages not delivered after the reconnect: \(daemon.stderr)")
            #expect(cursorBytes() == 40)

            // Room again: a notice, the spool is used again (nothing more held), drained segments unlinked.
            fs.free()
            #expect(daemon.wait(until: 20) { $0.stderr.contains("mqtt spool writable again") }, "\(daemon.stderr)")
            let healed = stats { int($0["mqtt_spool_failing"]) == 0 && int($0["mqtt_held_messages"]) == 0 }
            #expect(healed.map { int($0["mqtt_spool_failing"]) == 0 } == true, "\(healed ?? [:])")
            let unspooled = int(healed?["mqtt_unspooled"]) ?? -1
            #expect(waitFor(10) { segments().isEmpty }, "drained segments left: \(segments())")
            let later = stats { Self.t($0) > (healed.map(Self.t) ?? .infinity) }
            #expect(int(later?["mqtt_unspooled"]) == unspooled, "messages still bypass the spool after recovery: \(later ?? [:])")
            #expect(int(later?["mqtt_dropped_spool"]) == 0 && int(later?["mqtt_dropped_memory"]) == 0, "\(later ?? [:])")
            let expectedLast = ref.rolling(window: 0.25).map(Self.t).max() ?? 0
            #expect(waitFor(10) { (sub.messages(topic: topic).compactMap(\.json).map(Self.t).max() ?? 0) >= expectedLast })
            received += sub.messages
            #expect(cursorBytes() == 40)

            // Exactly one error line at the onset (a summary, "still failing", would come only after a minute).
            let onset = daemon.stderr.split(separator: "\n").filter { $0.contains("mqtt spool write failed") }
            #expect(onset.count == 1 && onset[0].contains("No space left on device") && onset[0].contains(" error "), "\(onset)")
            let notice = daemon.stderr.split(separator: "\n").filter { $0.contains("mqtt spool writable again") }
            #expect(notice.count == 1 && notice[0].contains("\(unspooled) messages were held in memory instead, 0 of them dropped"), "\(notice), stats \(unspooled)")

            // Every window of the run arrived, in order (at-least-once: a repeat only right after a reconnect).
            let got = received.filter { $0.topic == topic }.compactMap(\.json).map(Self.t)
            let all = ref.rolling(window: 0.25).map(Self.t).filter { $0 >= (got.min() ?? 0) && $0 <= (got.max() ?? 0) }
            #expect(all.count >= 40, "\(all.count) windows")
            #expect(Set(all).subtracting(got).isEmpty, "missing windows: \(Set(all).subtracting(got).sorted())")
            #expect(zip(got, got.dropFirst()).allSatisfy { $0 <= $1 }, "out of order: \(got)")
            daemon.signal(SIGTERM)
            #expect(daemon.wait(timeout: 5) == .exited(0), "\(daemon.stderr.suffix(1500))")
            #expect(cursorBytes() == 40)

            // A daemon started with a fresh spool on a disk that is already full: one error line at start, no empty
            // cursor left behind, windows still delivered; the cursor gets its 40 bytes once there is room.
            try FileManager.default.removeItem(atPath: spoolDir)
            fs.fill()
            let second = try rig.start()
            #expect(second.wait(until: 10) { $0.stderr.contains("mqtt spool write failed") }, "\(second.stderr)")
            #expect(cursorBytes() == -1, "an empty cursor was left: \(cursorBytes()) bytes")
            let before = sub.messages(topic: topic).count
            #expect(waitFor(10) { sub.messages(topic: topic).count >= before + 8 }, "no windows from a daemon started on a full disk")
            fs.free()
            #expect(waitFor(10) { cursorBytes() == 40 })
            #expect(second.wait(until: 20) { $0.stderr.contains("mqtt spool writable again") }, "\(second.stderr)")
            #expect(second.stderr.split(separator: "\n").filter { $0.contains("mqtt spool write failed") }.count == 1)
            second.signal(SIGTERM)
            #expect(second.wait(timeout: 5) == .exited(0), "\(second.stderr.suffix(1500))")
            print("full spool disk: \(unspooled) messages published from memory, \(got.count) windows delivered, \(Set(got).count) distinct")
        }

        /// The held messages go back to the spool once it takes writes again even while messages are always in
        /// flight: a broker whose acknowledgements arrive 250 ms late (a relay that delays every byte from the
        /// broker) and a window every 100 ms keep several QoS-1 messages unacknowledged at all times. The sink
        /// used to move held messages to the spool only at a moment with none in flight — which never came — so
        /// after the disk recovered they stayed in memory (lost on a crash) and `mqtt_spool_failing` stayed 1.
        @Test(.enabled(if: mqttTestsEnabled, "mosquitto not installed (CI=true fails instead)"))
        func heldMessagesReturnToTheSpoolWhileMessagesAreInFlight() throws {
            let dir = try makeTemporaryDirectory("earshot-mqtt-heldflush")
            defer { try? FileManager.default.removeItem(at: dir) }
            guard let (fs, fsDir) = try Self.smallSpoolDisk(in: dir) else { return }
            defer { fs.unmount() }
            let broker = try MosquittoBroker(dir: dir)
            try broker.start()
            defer { broker.stop() }
            let relay = try DelayingTCPRelay(to: broker.port, delayFromServer: 0.25)
            defer { relay.stop() }
            let topic = Self.base + "/rolling/0.1"
            let sub = try MQTTSubscriber(port: broker.port, topics: [topic], persistentID: "earshot-test-heldflush")
            let rig = try PublishingRig("mqtt-heldflush", samples: burstSignal(quiet: 1, burst: 1), extraYAML: """
                rolling:
                  windows_s: [0.1]

                """ + Self.mqttYAML(port: relay.port, dir: fsDir))
            defer { rig.cleanup() }
            let daemon = try rig.start()
            let ref = try SocketReference(rig)
            defer { ref.stop() }
            #expect(waitFor(10) { sub.messages(topic: topic).count >= 10 }, "\(daemon.stderr)")

            fs.fill()
            #expect(daemon.wait(until: 10) { $0.stderr.contains("mqtt spool write failed") }, "\(daemon.stderr)")
            #expect(waitFor(15) { (int(ref.lastStats?["mqtt_held_messages"]) ?? 0) > 0 && (int(ref.lastStats?["mqtt_unspooled"]) ?? 0) >= 20 },
                    "\(ref.lastStats ?? [:])")
            fs.free()
            // Within a few housekeeping rounds: nothing held, the spool is not failing, messages keep arriving.
            #expect(waitFor(15) { int(ref.lastStats?["mqtt_held_messages"]) == 0 && int(ref.lastStats?["mqtt_spool_failing"]) == 0 },
                    "held messages stayed in memory: \(ref.lastStats ?? [:])")
            let before = sub.messages(topic: topic).count
            #expect(waitFor(10) { sub.messages(topic: topic).count >= before + 10 }, "\(daemon.stderr)")
            let got = sub.messages(topic: topic).compactMap(\.json).map(Self.t)
            #expect(zip(got, got.dropFirst()).allSatisfy { $0 <= $1 }, "out of order: \(got)")
            #expect(int(ref.lastStats?["mqtt_dropped_memory"]) == 0 && int(ref.lastStats?["mqtt_dropped_spool"]) == 0, "\(ref.lastStats ?? [:])")
            daemon.signal(SIGTERM)
            #expect(daemon.wait(timeout: 5) == .exited(0), "\(daemon.stderr.suffix(1500))")
        }

        /// `mqtt.spool.max_age_s` bounds the messages held in memory too: with the disk full and the broker down,
        /// held messages older than 1 s are dropped (counted in `mqtt_dropped_spool`, like expired spool records)
        /// instead of being kept and published late.
        @Test(.enabled(if: mqttTestsEnabled, "mosquitto not installed (CI=true fails instead)"))
        func heldMessagesExpireLikeSpooledOnes() throws {
            let dir = try makeTemporaryDirectory("earshot-mqtt-heldage")
            defer { try? FileManager.default.removeItem(at: dir) }
            guard let (fs, fsDir) = try Self.smallSpoolDisk(in: dir) else { return }
            defer { fs.unmount() }
            let broker = try MosquittoBroker(dir: dir)
            try broker.start()
            defer { broker.stop() }
            let rig = try PublishingRig("mqtt-heldage", samples: burstSignal(quiet: 1, burst: 1), extraYAML: """
                rolling:
                  windows_s: [0.1]

                """ + Self.mqttYAML(port: broker.port, dir: fsDir, spool: "max_age_s: 1"))
            defer { rig.cleanup() }
            let daemon = try rig.start()
            let ref = try SocketReference(rig)
            defer { ref.stop() }
            #expect(waitFor(10) { int(ref.lastStats?["mqtt_connected"]) == 1 }, "\(daemon.stderr)")
            // Broker first, so the segment being written stays (nothing is acknowledged and unlinked, which
            // would free room on the full disk for the next write).
            broker.stop()
            Thread.sleep(forTimeInterval: 0.3)
            fs.fill()
            #expect(daemon.wait(until: 10) { $0.stderr.contains("mqtt spool write failed") }, "\(daemon.stderr)")
            // 10 windows a second are held; those older than 1 s go, so about 10-20 stay held, never ~40.
            #expect(waitFor(15) { (int(ref.lastStats?["mqtt_dropped_spool"]) ?? 0) >= 10 }, "\(ref.lastStats ?? [:])")
            Thread.sleep(forTimeInterval: 2)
            let held = int(ref.lastStats?["mqtt_held_messages"]) ?? -1
            #expect(held >= 0 && held <= 25, "held \(held): \(ref.lastStats ?? [:])")
            #expect(int(ref.lastStats?["mqtt_dropped_memory"]) == 0, "\(ref.lastStats ?? [:])")
            daemon.signal(SIGTERM)
            #expect(daemon.wait(timeout: 5) == .exited(0), "\(daemon.stderr.suffix(1500))")
        }

        // MARK: credentials

        /// A wrong password: one clear log line (not one per attempt), retries with backoff counted in
        /// `stats`, the socket keeps publishing. A group-readable credentials file is refused by check-config.
        @Test(.enabled(if: mqttTestsEnabled, "mosquitto not installed (CI=true fails instead)"))
        func wrongPasswordIsLoggedOnceAndRetried() throws {
            let dir = try makeTemporaryDirectory("earshot-mqtt-auth")
            defer { try? FileManager.default.removeItem(at: dir) }
            let passwd = dir.appendingPathComponent("passwd").path
            try runTool("mosquitto_passwd", ["-c", "-b", passwd, "earshot", "right-secret"])
            let broker = try MosquittoBroker(dir: dir, allowAnonymous: false, extra: "password_file \(passwd)")
            try broker.start()
            defer { broker.stop() }
            let creds = dir.appendingPathComponent("mqtt-credentials").path
            try "earshot\nwrong-secret\n".write(toFile: creds, atomically: true, encoding: .utf8)
            chmod(creds, 0o600)
            let rig = try PublishingRig("mqtt-auth", extraYAML: Self.mqttYAML(port: broker.port, dir: dir, extra: "credentials_file: \(creds)"))
            defer { rig.cleanup() }
            let daemon = try rig.start()
            let ref = try SocketReference(rig)
            defer { ref.stop() }
            #expect(waitFor(12) { (int(ref.lastStats?["mqtt_connect_failures"]) ?? 0) >= 3 }, "\(daemon.stderr)")
            let refusals = daemon.stderr.split(separator: "\n").filter { $0.contains("broker refused the connection") }
            #expect(refusals.count == 1, "\(refusals)")
            #expect(refusals.first?.contains("not authorised") == true && refusals.first?.contains("retrying with backoff") == true, "\(refusals)")
            #expect(int(ref.lastStats?["mqtt_connected"]) == 0)
            #expect(ref.rolling(window: 1).count >= 3, "the socket kept publishing")
            #expect(daemon.isRunning)

            // Group-readable credentials: refused with a clear error (exit 78).
            chmod(creds, 0o640)
            let check = try DaemonProcess.run(["check-config", rig.config.path])
            #expect(check.termination == .exited(78), "\(check)")
            #expect(check.stderr.contains("mqtt.credentials_file") && check.stderr.contains("chmod 600"), "\(check.stderr)")
        }

        // MARK: TLS

        /// mqtts:// with the CA the test generated works; a broker signed by another CA is refused with a
        /// clear log line.
        @Test(.enabled(if: mqttTestsEnabled, "mosquitto not installed (CI=true fails instead)"))
        func tlsWithTheRightCAWorksAndAWrongCAIsRefused() throws {
            let dir = try makeTemporaryDirectory("earshot-mqtt-tls")
            defer { try? FileManager.default.removeItem(at: dir) }
            let good = try makeTestCA(in: dir, name: "good")
            let other = try makeTestCA(in: dir, name: "other")
            let broker = try MosquittoBroker(dir: dir, extra: "cafile \(good.ca)\ncertfile \(good.cert)\nkeyfile \(good.key)")
            try broker.start()
            defer { broker.stop() }
            let sub = try MQTTSubscriber(port: broker.port, topics: [Self.base + "/#"], extra: ["--cafile", good.ca])
            defer { sub.stop() }
            do {
                let rig = try PublishingRig("mqtt-tls", extraYAML: Self.mqttYAML(port: broker.port, dir: dir, scheme: "mqtts", extra: "ca_file: \(good.ca)"))
                defer { rig.cleanup() }
                let daemon = try rig.start()
                #expect(waitFor(8) { !sub.messages(topic: Self.base + "/rolling/1").isEmpty }, "\(daemon.stderr)")
                #expect(daemon.stderr.contains("mqtt connected") && daemon.stderr.contains("tls=true"), "\(daemon.stderr)")
            }
            let rig = try PublishingRig("mqtt-tls-wrong", extraYAML: Self.mqttYAML(port: broker.port, dir: dir.appendingPathComponent("w"), scheme: "mqtts", extra: "ca_file: \(other.ca)"))
            defer { rig.cleanup() }
            let daemon = try rig.start()
            #expect(waitFor(6) { daemon.stderr.contains("TLS handshake failed") }, "\(daemon.stderr)")
            let lines = daemon.stderr.split(separator: "\n").filter { $0.contains("TLS handshake failed") }
            #expect(lines.count == 1 && lines[0].contains("certificate verify failed"), "\(lines)")
            #expect(!daemon.stderr.contains("mqtt connected"))
        }
    }
}

/// Home Assistant's MQTT sensor discovery schema, as documented (home-assistant.io/integrations/sensor.mqtt,
/// /integrations/sensor#device-class, developers.home-assistant.io/docs/core/entity/sensor): what a
/// discovery payload must hold and which device classes, units and state classes are accepted.
enum HomeAssistantSchema {
    /// Sensor device classes (SensorDeviceClass) and, for the classes relevant to levels, their units.
    static let deviceClasses: Set<String> = [
        "apparent_power", "aqi", "area", "atmospheric_pressure", "battery", "blood_glucose_concentration", "carbon_dioxide",
        "carbon_monoxide", "conductivity", "current", "data_rate", "data_size", "date", "distance", "duration", "energy",
        "energy_distance", "energy_storage", "enum", "frequency", "gas", "humidity", "illuminance", "irradiance", "moisture",
        "monetary", "nitrogen_dioxide", "nitrogen_monoxide", "nitrous_oxide", "ozone", "ph", "pm1", "pm10", "pm25",
        "power_factor", "power", "precipitation", "precipitation_intensity", "pressure", "reactive_power", "signal_strength",
        "sound_pressure", "speed", "sulphur_dioxide", "temperature", "timestamp", "volatile_organic_compounds",
        "volatile_organic_compounds_parts", "voltage", "volume", "volume_flow_rate", "volume_storage", "water", "weight",
        "wind_direction", "wind_speed",
    ]
    /// UnitOfSoundPressure: `dB`, `dBA`.
    static let soundPressureUnits: Set<String> = ["dB", "dBA"]
    static let stateClasses: Set<String> = ["measurement", "measurement_angle", "total", "total_increasing"]
    /// Keys of the MQTT sensor platform used here (abbreviations not used).
    static let knownKeys: Set<String> = [
        "name", "unique_id", "object_id", "default_entity_id", "state_topic", "value_template", "availability_topic",
        "payload_available", "payload_not_available", "device_class", "unit_of_measurement", "state_class",
        "suggested_display_precision", "json_attributes_topic", "device", "expire_after", "force_update", "icon", "qos",
    ]

    static func problems(_ doc: [String: Any], levelUnit: String) -> [String] {
        var out: [String] = []
        if doc.isEmpty { return ["not a JSON object"] }
        for k in doc.keys where !knownKeys.contains(k) { out.append("unknown key \(k)") }
        // Required: state_topic (sensor.mqtt); unique_id whenever a device is given; device needs identifiers
        // or connections.
        if (doc["state_topic"] as? String)?.isEmpty != false { out.append("state_topic missing") }
        if let device = doc["device"] as? [String: Any] {
            if (doc["unique_id"] as? String)?.isEmpty != false { out.append("device without unique_id") }
            if (device["identifiers"] as? [String])?.isEmpty != false && device["connections"] == nil { out.append("device without identifiers") }
        } else {
            out.append("no device")
        }
        if let t = doc["state_topic"] as? String, t.contains("+") || t.contains("#") { out.append("wildcard in state_topic") }
        if let dc = doc["device_class"] as? String {
            if !deviceClasses.contains(dc) { out.append("device_class \(dc) unknown") }
            if dc == "sound_pressure", !soundPressureUnits.contains(doc["unit_of_measurement"] as? String ?? "") {
                out.append("sound_pressure requires unit dB or dBA, got \(doc["unit_of_measurement"] ?? "none")")
            }
        }
        if levelUnit == "dBFS", doc["unit_of_measurement"] as? String == "dBFS", doc["device_class"] != nil {
            out.append("dBFS is not a unit of any device class")
        }
        if let sc = doc["state_class"] as? String {
            if !stateClasses.contains(sc) { out.append("state_class \(sc) unknown") }
            if doc["unit_of_measurement"] == nil && doc["device_class"] == nil { out.append("state_class on a sensor without unit (non-numeric)") }
        }
        if let p = doc["suggested_display_precision"], !(p is NSNumber) { out.append("suggested_display_precision not a number") }
        if doc["availability_topic"] == nil { out.append("no availability_topic") }
        return out
    }
}
