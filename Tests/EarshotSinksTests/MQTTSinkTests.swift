#if canImport(Glibc)
import Glibc
#endif
import EarshotProtocol
import EarshotTestKit
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

    func segmentFiles(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".spool") }.sorted()
    }

    func fileSize(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? -1
    }

    /// Hands out and acknowledges everything as the sink does (at most 20 in flight, in order); returns the topics.
    @discardableResult
    func drainAll(_ spool: MQTTSpool, nowNs: Int64 = 2) -> [String] {
        var inflight: [MQTTSpool.Record] = [], topics: [String] = []
        while true {
            while inflight.count < 20, let (r, _) = spool.next(nowNs: nowNs) { inflight.append(r) }
            guard !inflight.isEmpty else { return topics }
            let r = inflight.removeFirst()
            topics.append(r.topic)
            spool.acknowledge(through: r.start, end: r.end)
        }
    }

    /// Issue 9 hardening: every fully acknowledged segment is unlinked — the one being appended to as well —
    /// after a drain with a reconnect (rewind) in the middle, and when a restart finds one acknowledged to its end.
    @Test func drainedSegmentsAreUnlinkedTheLastOneTooAndOnRestart() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let payload = [UInt8](repeating: 0x61, count: 200)
        do {
            let spool = try MQTTSpool(directory: dir, maxBytes: 64 * 1024, maxAgeNs: 1 << 62)  // 8 KiB segments
            for i in 0..<200 { spool.append(topic: "t/\(i)", payload: payload, retain: false, nowNs: 1) }
            #expect(segmentFiles(dir).count >= 5, "\(segmentFiles(dir))")
            // Half sent and acknowledged, ten more sent, then the connection drops (rewind) and it all drains.
            for _ in 0..<100 { let (r, _) = try #require(spool.next(nowNs: 2)); spool.acknowledge(through: r.start, end: r.end) }
            for _ in 0..<10 { _ = spool.next(nowNs: 2) }
            spool.rewind()
            let rest = drainAll(spool)
            #expect(rest == (100..<200).map { "t/\($0)" })
            #expect(segmentFiles(dir).isEmpty, "drained, yet \(segmentFiles(dir)) left")
            #expect(spool.pendingMessages == 0 && spool.pendingBytes == 0 && spool.dropped == 0)
            #expect(fileSize(dir + "/cursor") == 40)
            // The next record starts a new segment and comes out next.
            #expect(spool.append(topic: "after", payload: payload, retain: false, nowNs: 3) == .written)
            #expect(spool.next(nowNs: 4)?.record.topic == "after")
        }
        // Restart: the unacknowledged one is still there, the cursor is trusted, nothing else is pending.
        do {
            let spool = try MQTTSpool(directory: dir, maxBytes: 64 * 1024, maxAgeNs: 1 << 62)
            #expect(spool.cursorProblem == nil && spool.pendingMessages == 1)
            #expect(drainAll(spool) == ["after"])
            #expect(segmentFiles(dir).isEmpty)
        }
        // A spool an earlier version left (a drained segment kept, its cursor at the segment's end, no check
        // value): the restart unlinks the segment and resends nothing.
        let seg = dir + "/000000000007.spool"
        try Data("1\t0\told\t{}\n".utf8).write(to: URL(fileURLWithPath: seg))
        try Data(("7 11" + String(repeating: " ", count: 35) + "\n").utf8).write(to: URL(fileURLWithPath: dir + "/cursor"))
        let spool = try MQTTSpool(directory: dir, maxBytes: 64 * 1024, maxAgeNs: 1 << 62)
        #expect(spool.cursorProblem == nil && spool.pendingMessages == 0 && spool.next(nowNs: 2) == nil)
        #expect(segmentFiles(dir).isEmpty, "\(segmentFiles(dir))")
        #expect(spool.append(topic: "new", payload: payload, retain: false, nowNs: 3) == .written)
        #expect(segmentFiles(dir) == ["000000000008.spool"])
    }

    /// The cursor: 40 bytes from the moment the spool opens; an empty, short or damaged one on start is not
    /// trusted (reported) and the spool resends from its oldest segment — nothing lost, at most that segment's
    /// acknowledged part again; one pointing into the middle of a record resends from that record.
    @Test func anEmptyShortOrDamagedCursorResendsFromTheOldestSegmentAndLosesNothing() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cursor = dir + "/cursor"
        func fill() throws {
            let spool = try MQTTSpool(directory: dir, maxBytes: 1 << 20, maxAgeNs: 1 << 62)
            #expect(fileSize(cursor) == 40, "the cursor is written when the spool opens")
            for i in 0..<10 { spool.append(topic: "t/\(i)", payload: Array("{}".utf8), retain: false, nowNs: 1) }
            for _ in 0..<4 { let (r, _) = try #require(spool.next(nowNs: 2)); spool.acknowledge(through: r.start, end: r.end) }
        }
        func reopen() throws -> (problem: String?, topics: [String]) {
            let spool = try MQTTSpool(directory: dir, maxBytes: 1 << 20, maxAgeNs: 1 << 62)
            defer { spool.close() }
            #expect(fileSize(cursor) == 40)
            return (spool.cursorProblem, drainAll(spool))
        }
        try fill()
        #expect(try reopen() == (nil, (4..<10).map { "t/\($0)" }), "an intact cursor resumes at the first unacknowledged")
        let all = (0..<10).map { "t/\($0)" }
        let damages: [(String, Data, String)] = [
            ("empty", Data(), "empty"),
            ("short", Data("0 4".utf8), "bytes long"),
            ("wrong check", Data(("0 22 deadbeef" + String(repeating: " ", count: 26) + "\n").utf8), "damaged"),
        ]
        for (what, bytes, problem) in damages {
            try? FileManager.default.removeItem(atPath: dir)
            try fill()
            try bytes.write(to: URL(fileURLWithPath: cursor))
            let (found, topics) = try reopen()
            #expect(found?.contains(problem) == true, "\(what): \(found ?? "no problem reported")")
            #expect(topics == all, "\(what): resent from the oldest segment, nothing lost")
        }
        // A valid cursor in the middle of record 4 (offset of t/4 + 3): t/4 is sent again, not cut.
        try? FileManager.default.removeItem(atPath: dir)
        try fill()
        let segment = try #require(segmentFiles(dir).first)
        let text = try String(contentsOfFile: dir + "/" + segment, encoding: .utf8)
        let offset = text.split(separator: "\n").prefix(4).reduce(0) { $0 + $1.utf8.count + 1 } + 3
        let numbers = "\(Int(segment.dropLast(6))!) \(offset)"
        let line = "\(numbers) \(String(MQTTSpool.check(numbers), radix: 16))"
        try Data((line + String(repeating: " ", count: 39 - line.utf8.count) + "\n").utf8).write(to: URL(fileURLWithPath: cursor))
        #expect(try reopen() == (nil, (4..<10).map { "t/\($0)" }))
    }

    /// Records skipped as unreadable are dropped once (not again after a rewind) and leave `pendingMessages`
    /// right (it went stale: `stats` kept counting them); a corrupt segment at the head is released.
    @Test func skippedCorruptRecordsAreCountedOnceAndLeaveNoStalePendingCount() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let spool = try MQTTSpool(directory: dir, maxBytes: 1 << 20, maxAgeNs: 1 << 62)
            spool.append(topic: "a", payload: Array("{}".utf8), retain: false, nowNs: 1)
        }
        try appendToSegment(dir, "garbage\nmore garbage\n2\t0\tb\t{}\n")
        let spool = try MQTTSpool(directory: dir, maxBytes: 1 << 20, maxAgeNs: 1 << 62)
        #expect(spool.pendingMessages == 4)
        let a = try #require(spool.next(nowNs: 3))  // "a" in flight; the two bad lines are skipped after it
        let b = try #require(spool.next(nowNs: 3))
        #expect(a.record.topic == "a" && b.record.topic == "b" && spool.dropped == 2)
        #expect(spool.pendingMessages == 2, "the skipped lines are no longer pending")
        spool.rewind()  // a reconnect: handed out again, not counted again
        #expect(drainAll(spool, nowNs: 3) == ["a", "b"])
        #expect(spool.dropped == 2 && spool.pendingMessages == 0 && segmentFiles(dir).isEmpty)
        // A segment that is all garbage, with nothing before it in flight, is released as it is skipped.
        do {
            let s = try MQTTSpool(directory: dir + "/2", maxBytes: 1 << 20, maxAgeNs: 1 << 62)
            s.append(topic: "x", payload: Array("{}".utf8), retain: false, nowNs: 1)
            drainAll(s)
            s.append(topic: "y", payload: Array("{}".utf8), retain: false, nowNs: 1)
        }
        try FileManager.default.removeItem(atPath: dir + "/2/" + segmentFiles(dir + "/2")[0])
        try Data("junk\njunk\n".utf8).write(to: URL(fileURLWithPath: dir + "/2/000000000001.spool"))
        let s = try MQTTSpool(directory: dir + "/2", maxBytes: 1 << 20, maxAgeNs: 1 << 62)
        #expect(s.pendingMessages == 2 && s.next(nowNs: 3) == nil)
        #expect(s.dropped == 2 && s.pendingMessages == 0 && segmentFiles(dir + "/2").isEmpty)
    }

    /// The spool on a genuinely full file system (a 64 KiB tmpfs; root mounts it, CI=true fails without it):
    /// appends fail with ENOSPC without a partial record or a drop count, what was written drains intact, the
    /// cursor keeps its 40 bytes (written in place), and writes succeed again once there is room. A spool
    /// opened on a full disk reports the cursor it could not write and writes it when room comes back.
    @Test func aFullDiskRefusesAppendsCleanlyAndTheCursorKeepsItsBytes() throws {
        let base = try tempDir()
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: base) }
        guard let fs = SmallTmpfs(at: base, kib: 64) else {
            #expect(ProcessInfo.processInfo.environment["CI"] != "true", "cannot mount a tmpfs (needs root) under CI=true")
            print("skipped: cannot mount a tmpfs here (not root or no mount permission)")
            return
        }
        defer { fs.unmount() }
        let dir = base + "/spool"
        let payload = [UInt8](repeating: 0x62, count: 300)
        do {
            let spool = try MQTTSpool(directory: dir, maxBytes: 1 << 20, maxAgeNs: 1 << 62)
            #expect(spool.append(topic: "t/0", payload: payload, retain: false, nowNs: 1) == .written)
            fs.fill()
            var results: [MQTTSpool.AppendResult] = []
            for i in 1..<100 { results.append(spool.append(topic: "t/\(i)", payload: payload, retain: false, nowNs: 1)) }
            let written = 1 + (results.firstIndex { $0 != .written } ?? results.count)
            #expect(written < 100, "the full disk refused nothing")
            #expect(results.dropFirst(written - 1).allSatisfy { $0 == .failed(ENOSPC) }, "\(results)")
            #expect(spool.writeErrno == ENOSPC && spool.dropped == 0)
            #expect(drainAll(spool) == (0..<written).map { "t/\($0)" }, "what was written is whole and in order")
            #expect(fileSize(dir + "/cursor") == 40 && spool.cursorErrno == 0, "the cursor is rewritten in place")
            fs.free()
            #expect(spool.append(topic: "again", payload: payload, retain: false, nowNs: 1) == .written)
            #expect(spool.writeErrno == 0 && spool.next(nowNs: 2)?.record.topic == "again")
        }
        // Opened on a full disk: the new cursor cannot get its bytes (reported) and is not left empty (removed:
        // a missing cursor reads as an empty one); it is written once there is room.
        try FileManager.default.removeItem(atPath: dir)
        fs.fill()
        let spool = try MQTTSpool(directory: dir, maxBytes: 1 << 20, maxAgeNs: 1 << 62)
        #expect(spool.cursorErrno == ENOSPC && spool.writeErrno == ENOSPC)
        #expect(fileSize(dir + "/cursor") == -1, "no empty cursor file left behind")
        spool.retryCursor()
        #expect(spool.cursorErrno == ENOSPC && fileSize(dir + "/cursor") == -1)
        #expect(spool.append(topic: "t", payload: payload, retain: false, nowNs: 1) == .failed(ENOSPC))
        fs.free()
        spool.retryCursor()
        #expect(spool.cursorErrno == 0 && fileSize(dir + "/cursor") == 40)
        #expect(spool.append(topic: "t", payload: payload, retain: false, nowNs: 1) == .written && spool.writeErrno == 0)
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
