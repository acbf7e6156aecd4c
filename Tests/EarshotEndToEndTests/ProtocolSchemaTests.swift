#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// The JSON Schema of the protocol (clients/python/earshot_client/schema/protocol-v1.json) against what the real
/// daemon sends: every message type is provoked on a live daemon (paced FIFO), the raw lines are captured and
/// validated with python3 + jsonschema (`earshot_client/schema_check.py`, which also fails on a message type the
/// schema does not describe); mutated copies (a wrong type, a missing required key) must be rejected.
@Suite(.serialized)
struct ProtocolSchemaTests {
    static let allTypes = ["hello", "frame", "onset", "rolling", "alert", "status", "stats", "subscribed", "unsubscribed",
                           "pong", "dropped", "error", "health", "spectrum"]
    static let checker = EarshotBinary.packageRoot.appendingPathComponent("clients/python/earshot_client/schema_check.py").path
    static let jsonschemaAvailable: Bool = {
        guard let py = findExecutable("python3"),
              let p = try? DaemonProcess(executable: py, arguments: ["-c", "import jsonschema"], environment: baseChildEnvironment())
        else { return false }
        return p.wait(timeout: 20) == .exited(0)
    }()
    static let enabled = jsonschemaAvailable || ProcessInfo.processInfo.environment["CI"] == "true"

    /// Raw lines of one connection, read on a background thread.
    final class LineReader: @unchecked Sendable {
        let fd: Int32
        private let lock = NSLock()
        private var _lines: [String] = []
        private var paused = true
        private var stop = false
        init(fd: Int32, paused: Bool = false) {
            self.fd = fd
            self.paused = paused
            var tv = timeval(tv_sec: 0, tv_usec: 100_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            Thread { [self] in
                var buf = [UInt8](repeating: 0, count: 1 << 16)
                var partial: [UInt8] = []
                while true {
                    lock.lock(); let (p, s) = (self.paused, self.stop); lock.unlock()
                    if s { return }
                    if p { usleep(10_000); continue }
                    let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                    if n < 0 { if errno == EAGAIN || errno == EINTR { continue }; return }
                    if n == 0 { return }
                    for b in buf[0..<n] {
                        if b == 0x0A {
                            let line = String(decoding: partial, as: UTF8.self)
                            lock.lock(); _lines.append(line); lock.unlock()
                            partial.removeAll(keepingCapacity: true)
                        } else {
                            partial.append(b)
                        }
                    }
                }
            }.start()
        }
        var lines: [String] { lock.lock(); defer { lock.unlock() }; return _lines }
        func setPaused(_ p: Bool) { lock.lock(); paused = p; lock.unlock() }
        func close() { lock.lock(); stop = true; lock.unlock(); usleep(150_000); Glibc.close(fd) }
        func types() -> Set<String> {
            Set(lines.compactMap { (jsonObject(Array($0.utf8)))?["type"] as? String })
        }
    }

    /// Runs the checker on `lines`; returns (exit status, output).
    static func check(_ lines: [String], in dir: URL, name: String, requireTypes: [String] = []) throws -> (DaemonProcess.Termination?, String) {
        let python = try #require(findExecutable("python3"), "python3 is not installed")
        let file = dir.appendingPathComponent("\(name).ndjson")
        try (lines.joined(separator: "\n") + "\n").write(to: file, atomically: true, encoding: .utf8)
        var args = [checker, file.path]
        if !requireTypes.isEmpty { args += ["--require-types", requireTypes.joined(separator: ",")] }
        let p = try DaemonProcess(executable: python, arguments: args, environment: baseChildEnvironment())
        let t = p.wait(timeout: 60)
        if t == nil { p.killAndReap() }
        return (t, p.stdout + p.stderr)
    }

    @Test(.enabled(if: enabled, "python3 with jsonschema not installed (CI=true fails instead)"))
    func everyMessageTheDaemonSendsMatchesTheSchema() throws {
        try #require(Self.jsonschemaAvailable, "python3 -c 'import jsonschema' failed (apt-get install python3-jsonschema)")
        let alerts = """
            rolling:
              windows_s: [1]
            alerts:
              level:
                threshold_db: -30
                min_duration_ms: 50
              onset:
                enabled: true
                min_strength: 1
                min_interval_ms: 100
            health:
              no_data_s: 0.5
              clear_s: 0.5
            """
        let rig = try PublishingRig("schema", extraYAML: alerts, socketYAML: "queue_messages: 40")
        defer { rig.cleanup() }
        let daemon = try rig.start()

        // A: every stream the hello lists, plus each reply.
        let a = connectUnix(rig.socketPath)
        try #require(a >= 0)
        let readerA = LineReader(fd: a)
        // B: full frames (about 1.5 kB each, 150 kB/s) it does not read until A has everything else (5 s or
        // more): the kernel's socket buffer fills, then its queue (40 messages) overflows: `dropped`.
        let b = connectUnix(rig.socketPath)
        try #require(b >= 0)
        let readerB = LineReader(fd: b, paused: true)
        defer { readerA.close(); readerB.close() }
        #expect(sendAll(b, Array(#"{"op":"subscribe","streams":["frame"]}"#.utf8) + [0x0A]))

        #expect(daemon.wait(until: 5) { _ in readerA.types().contains("hello") })
        let hello = try #require(readerA.lines.first.flatMap { jsonObject(Array($0.utf8)) })
        let streams = try #require(hello["streams"] as? [String])
        let quoted = streams.map { "\"\($0)\"" }.joined(separator: ",")
        for cmd in [#"{"op":"subscribe","streams":[\#(quoted)],"backfill_s":60,"id":1}"#, #"{"op":"ping","id":"p"}"#,
                    #"{"op":"subscribe","streams":["frames"],"id":3}"#, #"{"op":"subscribe","streams":"frame"}"#] {
            #expect(sendAll(a, Array(cmd.utf8) + [0x0A]))
        }
        // A reload that changes a live setting: `status` event `reload`.
        usleep(1_500_000)
        let text = try String(contentsOf: rig.config, encoding: .utf8)
        try text.replacingOccurrences(of: "threshold_db: -30", with: "threshold_db: -31").write(to: rig.config, atomically: true, encoding: .utf8)
        daemon.signal(SIGHUP)
        // The source stops for 1.5 s: an input-health fault (no_data) starts, and ends once audio is back.
        usleep(500_000)
        rig.device.pause()
        usleep(1_500_000)
        rig.device.resume()
        // stats come every 5 s; rolling every 1 s.
        let all = Set(Self.allTypes).subtracting(["unsubscribed", "dropped"])
        #expect(daemon.wait(until: 15) { _ in readerA.types().isSuperset(of: all) }, "\(readerA.types())")
        readerB.setPaused(false)
        #expect(sendAll(a, Array(#"{"op":"unsubscribe","streams":["onset"],"id":9}"#.utf8) + [0x0A]))
        #expect(daemon.wait(until: 5) { _ in readerA.types().contains("unsubscribed") && readerB.types().contains("dropped") },
                "A: \(readerA.types()) B: \(readerB.types())")
        let lines = readerA.lines + readerB.lines
        let dir = rig.dir

        let (status, output) = try Self.check(lines, in: dir, name: "captured", requireTypes: Self.allTypes)
        #expect(status == .exited(0), "\(output.prefix(3000))")
        for t in Self.allTypes { #expect(output.contains("ok \(t) "), "\(t) not validated: \(output.prefix(2000))") }

        // Negative cases: each mutated message alone must fail, naming the key.
        func first(_ type: String) throws -> [String: Any] {
            try #require(lines.lazy.compactMap { jsonObject(Array($0.utf8)) }.first { $0["type"] as? String == type }, "no \(type)")
        }
        func serialize(_ o: [String: Any]) throws -> String {
            String(decoding: try JSONSerialization.data(withJSONObject: o), as: UTF8.self)
        }
        var frameWrongType = try first("frame"); frameWrongType["seq"] = "1200"
        var helloMissing = try first("hello"); helloMissing.removeValue(forKey: "n_mels")
        var rollingWrong = try first("rolling"); rollingWrong["complete"] = "yes"
        var statsMissing = try first("stats"); statsMissing.removeValue(forKey: "latency_ms")
        var droppedWrong = try first("dropped"); droppedWrong["count"] = 1.5
        var pongMissing = try first("pong"); pongMissing.removeValue(forKey: "t")
        var healthWrong = try first("health"); healthWrong["active"] = "no_data"
        for (name, bad, key) in [("frame", frameWrongType, "seq"), ("hello", helloMissing, "n_mels"),
                                 ("rolling", rollingWrong, "complete"), ("stats", statsMissing, "latency_ms"),
                                 ("dropped", droppedWrong, "count"), ("pong", pongMissing, "'t'"),
                                 ("health", healthWrong, "active")] {
            let (s, out) = try Self.check([try serialize(bad)], in: dir, name: "bad-\(name)")
            #expect(s == .exited(1), "mutated \(name) accepted: \(out)")
            #expect(out.contains(key), "\(name): \(out)")
        }
        // A message type the schema does not describe fails the check (a new message needs its schema).
        let (s, out) = try Self.check([#"{"type":"brand_new","t":1}"#], in: dir, name: "unknown-type")
        #expect(s == .exited(1) && out.contains("no definition"), "\(out)")

        daemon.signal(SIGTERM)
        #expect(daemon.wait(timeout: 5) == .exited(0), "\(daemon.stderr)")
    }
}
