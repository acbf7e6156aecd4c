#if canImport(Glibc)
import Glibc
#endif
import EarshotProtocol
import Foundation
import Testing

@testable import EarshotSinks

/// Issue 13: the MQTT sink's pure parts — topic routing and payload splicing, the spool's bounds and
/// restart behaviour, configuration checks. The broker end to end is in EarshotEndToEndTests (MQTTBroker).
@Suite("MQTTSink: routing, spool, configuration")
struct MQTTSinkTests {
    static let base = "earshot/box/inst"

    func route(_ line: String, unit: String = "dBFS") -> MQTTMessages.Routed? {
        MQTTMessages.route(line: Array((line + "\n").utf8), wallNs: 1_795_454_030_500_000_000, base: Self.base, node: "box",
                           instance: "inst", levelUnit: unit)
    }

    func object(_ bytes: [UInt8]) throws -> [String: ProtocolJSON] {
        try #require(try ProtocolJSON.parse(bytes).objectValue)
    }

    @Test func everyMessageTypeGetsItsTopicAndTheSplicedFields() throws {
        let rolling = try #require(route(#"{"type":"rolling","window_s":10,"t":1795454020,"leq":-24.8,"level_unit":"dB SPL"}"#))
        #expect(rolling.topic == Self.base + "/rolling/10" && rolling.qos == 1 && !rolling.retain)
        let r = try object(rolling.payload)
        #expect(r["node"]?.stringValue == "box" && r["instance"]?.stringValue == "inst")
        #expect(r["t"]?.doubleValue == 1795454020 && r["level_unit"]?.stringValue == "dB SPL" && r["leq"]?.doubleValue == -24.8)
        #expect(r.count == 7)  // nothing duplicated

        #expect(route(#"{"type":"rolling","window_s":0.5,"t":1}"#)?.topic == Self.base + "/rolling/0.5")
        let alert = try #require(route(#"{"type":"alert","alert":"onset","t":2}"#))
        #expect(alert.topic == Self.base + "/alert" && alert.qos == 1 && !alert.retain)
        #expect(route(#"{"type":"status","event":"xrun","t":2}"#)?.topic == Self.base + "/event")
        let health = try #require(route(#"{"type":"health","state":"ok"}"#))
        #expect(health.topic == Self.base + "/health" && health.retain && health.qos == 1)
        let h = try object(health.payload)
        #expect(h["t"]?.doubleValue == 1795454030.5 && h["level_unit"]?.stringValue == "dBFS")  // added when missing
        #expect(route(#"{"type":"clip","path":"/x.wav","t":3}"#)?.topic == Self.base + "/clip")
        let stats = try #require(route(#"{"type":"stats","t":3,"frames":1}"#))
        #expect(stats.topic == Self.base + "/stats" && stats.qos == 0)
        // Not routable: frames (from the bus instead), junk, no type, a type that is not a topic word.
        let bads: [String] = [#"{"type":"frame","seq":1}"#, "not json", "[1,2]", #"{"t":1}"#, #"{"type":"a/b"}"#,
                              ##"{"type":"#"}"##, #"{"type":"rolling","window_s":-1}"#, #"{"type":"rolling"}"#, ""]
        for bad in bads {
            #expect(route(bad) == nil, "\(bad)")
        }
    }

    @Test func topicLevelsAreSanitized() {
        #expect(MQTTMessages.topicLevel("porch/mic+1 #a") == "porch_mic_1__a")
        #expect(MQTTMessages.topicLevel("") == "_")
        #expect(MQTTMessages.topicLevel(String(repeating: "x", count: 500)).utf8.count == 64)
    }

    @Test func discoveryDocumentsForCalibratedLevelsUseSoundPressure() throws {
        let docs = MQTTMessages.discovery(haPrefix: "homeassistant", base: Self.base, node: "box", instance: "inst",
                                          windows: [1, 10, 60], weighting: "laf", levelUnit: "dB SPL", levels: true, version: "0.1.0")
        #expect(docs.map(\.key) == ["laeq_1s", "laeq_10s", "laeq_60s", "laf", "health", "last_alert", "onsets_per_minute"])
        for d in docs {
            let o = try object(d.payload)
            #expect(d.topic == "homeassistant/sensor/earshot_box_inst_\(d.key)/config")
            #expect(o["unique_id"]?.stringValue == "earshot_box_inst_\(d.key)")
            #expect(o["availability_topic"]?.stringValue == Self.base + "/status")
            #expect(o["device"]?["identifiers"]?.arrayValue?.first?.stringValue == "earshot_box_inst")
            if d.key.hasPrefix("laeq") || d.key == "laf" {
                #expect(o["device_class"]?.stringValue == "sound_pressure" && o["unit_of_measurement"]?.stringValue == "dBA")
                #expect(o["state_class"]?.stringValue == "measurement")
            }
        }
        let dbfs = MQTTMessages.discovery(haPrefix: "ha", base: Self.base, node: "box", instance: "inst", windows: [1],
                                          weighting: "lzf", levelUnit: "dBFS", levels: false, version: "")
        let leq = try object(dbfs[0].payload)
        #expect(leq["device_class"] == nil && leq["unit_of_measurement"]?.stringValue == "dBFS" && leq["name"]?.stringValue == "LZeq 1 s")
        #expect(!dbfs.map(\.key).contains("laf"))
    }

    // MARK: spool

    func tempDir() throws -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("earshot-spool-\(UUID().uuidString)").path
        return d
    }

    @Test func spoolHandsOutInOrderReleasesOnAckAndResumesAfterRestart() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var spool: MQTTSpool? = try MQTTSpool(directory: dir + "/a/b", maxBytes: 1 << 20, maxAgeNs: 3_600_000_000_000)
        for i in 0..<100 { spool!.append(topic: "t/\(i)", payload: Array("{\"i\":\(i)}".utf8), retain: i == 5, nowNs: 1) }
        #expect(spool!.pendingMessages == 100)
        var got: [MQTTSpool.Record] = []
        while let (r, expired) = spool!.next(nowNs: 2) { #expect(!expired); got.append(r) }
        #expect(got.map(\.topic) == (0..<100).map { "t/\($0)" })
        #expect(got[5].retain && !got[4].retain && got[7].payload == Array("{\"i\":7}".utf8))
        for r in got.prefix(40) { spool!.acknowledge(through: r.start, end: r.end) }
        #expect(spool!.pendingMessages == 60)
        // Unacknowledged ones come again after a rewind (a lost connection) and after a restart.
        spool!.rewind()
        #expect(spool!.next(nowNs: 2)?.record.topic == "t/40")
        // One process per spool directory.
        #expect(throws: MQTTSinkError.self) { _ = try MQTTSpool(directory: dir + "/a/b", maxBytes: 1 << 20, maxAgeNs: 1) }
        spool = nil
        let reopened = try MQTTSpool(directory: dir + "/a/b", maxBytes: 1 << 20, maxAgeNs: 3_600_000_000_000)
        #expect(reopened.pendingMessages == 60)
        #expect(reopened.next(nowNs: 2)?.record.topic == "t/40")
        #expect(reopened.dropped == 0)
    }

    @Test func spoolDropsTheOldestBeyondItsSizeAndCountsThem() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spool = try MQTTSpool(directory: dir, maxBytes: 16_384, maxAgeNs: 3_600_000_000_000)
        let payload = [UInt8](repeating: 0x61, count: 200)
        for i in 0..<1000 { spool.append(topic: "t/\(i)", payload: payload, retain: false, nowNs: 1) }
        #expect(spool.pendingBytes <= 16_384)
        var topics: [String] = []
        while let (r, _) = spool.next(nowNs: 2) { topics.append(r.topic) }
        #expect(topics.last == "t/999")
        #expect(topics.count + spool.dropped == 1000, "kept \(topics.count), dropped \(spool.dropped)")
        let firstKept = Int(topics[0].dropFirst(2))!
        #expect(topics == (firstKept..<1000).map { "t/\($0)" }, "the newest, contiguous, in order")
    }

    @Test func spoolSkipsExpiredRecordsAndCutsATornTail() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let spool = try MQTTSpool(directory: dir, maxBytes: 1 << 20, maxAgeNs: 1_000)
            spool.append(topic: "old", payload: Array("{}".utf8), retain: false, nowNs: 0)
            spool.append(topic: "new", payload: Array("{}".utf8), retain: false, nowNs: 5_000)
            let a = try #require(spool.next(nowNs: 5_500))
            #expect(a.record.topic == "old" && a.expired)
            let b = try #require(spool.next(nowNs: 5_500))
            #expect(b.record.topic == "new" && !b.expired)
            #expect(spool.dropped == 1)
        }
        // A crash in the middle of a write leaves a partial line: it is cut off on the next open.
        try appendToSegment(dir, "12\t0\ttorn\t{\"x\"")
        let spool = try MQTTSpool(directory: dir, maxBytes: 1 << 20, maxAgeNs: 1 << 62)
        var topics: [String] = []
        while let (r, _) = spool.next(nowNs: 6_000) { topics.append(r.topic) }
        #expect(topics == ["old", "new"])
    }

    /// Appends `text` to the spool's (first) segment file, as a crash or a corrupting writer would leave it.
    func appendToSegment(_ dir: String, _ text: String) throws {
        let seg = try #require(try FileManager.default.contentsOfDirectory(atPath: dir).first { $0.hasSuffix(".spool") })
        let fh = try #require(FileHandle(forWritingAtPath: dir + "/" + seg))
        fh.seekToEndOfFile(); fh.write(Data(text.utf8)); fh.closeFile()
    }

    /// A corrupt spool (a record with an absurd time, a segment name no writer makes, a cursor past every
    /// segment) is read without a trap and without unlinking what it holds.
    @Test func corruptSpoolIsReadWithoutTrapOrLoss() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let spool = try MQTTSpool(directory: dir, maxBytes: 1 << 20, maxAgeNs: 1_000)
            spool.append(topic: "kept", payload: Array("{}".utf8), retain: false, nowNs: 5_000)
        }
        try appendToSegment(dir, "-9223372036854775808\t0\tneg\t{}\n")
        _ = FileManager.default.createFile(atPath: dir + "/9223372036854775807.spool", contents: Data())
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) where !name.hasSuffix(".spool") && name.contains("cursor") {
            try Data("999999 0\n".utf8).write(to: URL(fileURLWithPath: dir + "/" + name))
        }
        let spool = try MQTTSpool(directory: dir, maxBytes: 1 << 20, maxAgeNs: 1_000)
        var topics: [String] = []
        while let (r, _) = spool.next(nowNs: Int64.max) { topics.append(r.topic) }
        #expect(topics == ["kept"], "the negative-time record is dropped, the valid one is still sent")
        #expect(spool.dropped >= 1)
    }

    // MARK: configuration

    @Test func configurationChecks() throws {
        typealias C = MQTTSink.Configuration
        #expect(C.parseBroker("mqtt://broker.local") == C.Endpoint(host: "broker.local", port: 1883, tls: false))
        #expect(C.parseBroker("mqtts://10.0.0.2:8884") == C.Endpoint(host: "10.0.0.2", port: 8884, tls: true))
        #expect(C.parseBroker("mqtt://[::1]:1884") == C.Endpoint(host: "::1", port: 1884, tls: false))
        for bad in ["tcp://x:1", "mqtt://", "mqtt://x:0", "mqtt://x:70000", "mqtt://u@x", "mqtt://a b", "x:1883"] {
            #expect(C.parseBroker(bad) == nil, "\(bad)")
        }
        var c = C()
        c.broker = "mqtt://127.0.0.1:1883"
        #expect(throws: Never.self) { try c.validate() }
        c.topicPrefix = "a/#"
        #expect(throws: SinkConfigError.self) { try c.validate() }
        c.topicPrefix = "site/north"
        c.caFile = "/etc/ca.pem"
        #expect(throws: SinkConfigError.self) { try c.validate() }  // a CA with mqtt://
        c.broker = "mqtts://127.0.0.1"
        #expect(throws: Never.self) { try c.validate() }
        c.certFile = "/etc/c.pem"
        #expect(throws: SinkConfigError.self) { try c.validate() }  // cert without key
    }

    @Test func credentialsFilePermissionsAreChecked() throws {
        let dir = try tempDir()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/creds"
        try "user\nsecret\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o600)
        let ok = try MQTTSink.Configuration.readCredentials(path)
        #expect(ok.user == "user" && ok.password == "secret")
        chmod(path, 0o644)
        do {
            _ = try MQTTSink.Configuration.readCredentials(path)
            Issue.record("a world-readable credentials file was accepted")
        } catch {
            #expect(error.message.contains("accessible by group or others (mode 0644)") && error.message.contains("chmod 600"))
        }
    }
}
