#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// socat (and jq) are installed; under CI=true the one-liner test runs, and fails without them.
let oneLinerToolsAvailable = findExecutable("socat") != nil && findExecutable("jq") != nil
let oneLinerTestEnabled = oneLinerToolsAvailable || ProcessInfo.processInfo.environment["CI"] == "true"

/// Every shell and Python example that talks to the socket, in README.md and docs/*.md, run as written (the
/// socket path replaced) against a live daemon fed through the ALSA `file` plugin; and the daemon-dependent
/// values of docs/protocol.md's examples compared with what this daemon sends.
@Suite(.serialized) struct OneLinerTests {
    static let root = EarshotBinary.packageRoot
    static let socketPattern = try! NSRegularExpression(pattern: #"/run/earshot/(?:[A-Za-z0-9_-]+/)?earshot\.sock"#)

    /// One runnable example: where it is, and its text (shell, or a Python program).
    struct Example: CustomStringConvertible {
        var file: String
        var line: Int
        var shell: String?
        var python: String?
        var text: String { shell ?? python ?? "" }
        var description: String { "\(file):\(line): \(text)" }
    }

    /// Fenced `sh` and `python` blocks of README.md and docs/*.md whose commands mention the socket path:
    /// each shell command (continuation lines joined, comments dropped) and each Python block as a whole.
    static func examples() throws -> [Example] {
        var files = ["README.md"]
        let docs = root.appendingPathComponent("docs")
        files += try FileManager.default.contentsOfDirectory(atPath: docs.path).filter { $0.hasSuffix(".md") }.sorted().map { "docs/" + $0 }
        var out: [Example] = []
        for file in files {
            let lines = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
            var fence: String? = nil
            var blockStart = 0
            var block: [String] = []
            var pending = ""
            var pendingLine = 0
            for (i, raw) in lines.enumerated() {
                let line = String(raw)
                if fence == nil {
                    if line == "```sh" || line == "```bash" || line == "```python" { fence = line; block = []; blockStart = i + 2 }
                    continue
                }
                if line == "```" {
                    if fence == "```python", block.joined().contains("earshot.sock") {
                        out.append(Example(file: file, line: blockStart, python: block.joined(separator: "\n")))
                    }
                    fence = nil
                    continue
                }
                block.append(line)
                guard fence != "```python" else { continue }
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                if pending.isEmpty && (trimmed.isEmpty || trimmed.hasPrefix("#")) { continue }
                if pending.isEmpty { pendingLine = i + 1 }
                if trimmed.hasSuffix("\\") { pending += String(trimmed.dropLast()) + " "; continue }
                pending += trimmed
                if pending.contains("earshot.sock") { out.append(Example(file: file, line: pendingLine, shell: pending)) }
                pending = ""
            }
        }
        return out
    }

    /// What each example must print (a few seconds of it, on a daemon that has just started). Keyed by a
    /// piece of the example's text; every example must match exactly one key.
    static let checks: [(key: String, check: @Sendable (_ lines: [String]) -> String?)] = [
        (#"<<< '{"op":"subscribe","streams":["frame","onset","alert","status"]}'"#, { lines in
            let types = lines.compactMap { jsonObject(Array($0.utf8))?["type"] as? String }
            return types.first == "hello" && types.contains("subscribed") && types.filter({ $0 == "frame" }).count > 50
                && types.contains("onset") ? nil : "expected hello, subscribed, frames and onsets; got \(Set(types))"
        }),
        (#""every":10,"fields":["laf"]"#, { lines in
            let pairs = lines.map { $0.split(separator: " ") }
            return pairs.count >= 3 && pairs.allSatisfy { $0.count == 2 && Double($0[0]) != nil && Double($0[1]) != nil }
                ? nil : "expected lines of \"t laf\""
        }),
        (#""backfill_s":600"#, { lines in
            let objs = lines.compactMap { jsonObject(Array($0.utf8)) }
            return objs.count >= 1 && objs.count == lines.count && objs.allSatisfy { Set($0.keys) == ["t", "leq", "l90"] }
                ? nil : "expected {t, leq, l90} objects"
        }),
        (#"jq -c 'select(.type=="onset")'"#, { lines in
            let objs = lines.compactMap { jsonObject(Array($0.utf8)) }
            return objs.count >= 3 && objs.count == lines.count && objs.allSatisfy { $0["type"] as? String == "onset" && $0["strength"] != nil }
                ? nil : "expected onset lines"
        }),
        ("head -1 | jq .", { lines in
            let obj = jsonObject(Array(lines.joined(separator: "\n").utf8))
            return obj?["type"] as? String == "hello" && lines.count > 10 ? nil : "expected the hello message, pretty-printed"
        }),
        ("print(json.loads(f.readline())[\"n_mels\"])", { lines in
            guard lines.first == "64" else { return "expected n_mels (64) first" }
            let rest = lines.dropFirst().map { $0.split(separator: " ") }
            return rest.count >= 50 && rest.allSatisfy { $0.count == 2 && Int($0[0]) != nil && Double($0[1]) != nil }
                ? nil : "expected \"seq laf\" lines"
        }),
        (#"{ echo '{"op":"subscribe","streams":["onset","alert"]}'; cat; }"#, { lines in
            let types = lines.compactMap { jsonObject(Array($0.utf8))?["type"] as? String }
            return types.first == "hello" && types.contains("subscribed") && !types.contains("frame") ? nil : "expected hello, subscribed; got \(types)"
        }),
        (#"f.write(b'{"op":"subscribe","streams":["rolling"]}\n')"#, { lines in
            return lines.count >= 2 && lines[0].contains("'type': 'subscribed'") && lines.dropFirst().allSatisfy { $0.contains("'type': 'rolling'") }
                ? nil : "expected the subscribed reply, then rolling dicts"
        }),
        ("earshot spectrogram --socket", { lines in
            lines.contains { $0.contains("1200x600 PNG") && $0.contains("plot x=") } ? nil : "expected the PNG summary line"
        }),
        ("earshot top --socket", { lines in
            lines.filter { $0.contains("LAF -") && $0.contains("LAS -") && $0.contains("xruns") }.count >= 2
                && !lines.joined().contains("\u{1B}[") ? nil : "expected plain status lines"
        }),
        ("earshot tail --socket", { lines in
            lines.first?.hasPrefix("connected: earshot ") == true && lines.contains { $0.contains(" LAF ") } ? nil : "expected the live view"
        }),
    ]

    @Test(.enabled(if: oneLinerTestEnabled, "socat or jq is missing (CI=true makes this a failure)"))
    func everyOneLinerWorksAgainstALiveDaemon() throws {
        for tool in ["socat", "jq", "python3"] { try #require(findExecutable(tool) != nil, "\(tool) is not installed") }
        let examples = try Self.examples()
        #expect(examples.count >= 9, "\(examples)")
        let rig = try PublishingRig("oneliners")
        defer { rig.cleanup() }
        let binDir = URL(fileURLWithPath: try EarshotBinary.require()).deletingLastPathComponent().path
        for example in examples {
            let matching = Self.checks.filter { example.text.contains($0.key) }
            guard matching.count == 1 else {
                Issue.record("no single check for \(example) (add one to OneLinerTests.checks)")
                continue
            }
            let text = Self.socketPattern.stringByReplacingMatches(
                in: example.text, range: NSRange(example.text.startIndex..., in: example.text), withTemplate: rig.socketPath)
            var env = baseChildEnvironment()
            env["PATH"] = binDir + ":" + (env["PATH"] ?? "/usr/bin:/bin")
            // A daemon per example, stopped after 4 s: the streams end the way they end for a user (the daemon
            // closes the connection), so every program in the pipeline flushes its output (jq buffers it when
            // not writing to a terminal). `timeout` only guards against a hang.
            let daemon = try rig.start()
            if text.contains("backfill_s") { usleep(2_500_000) }  // a few 1 s rolling windows to replay
            let arguments = example.shell != nil ? ["30", "bash", "-c", text] : ["30", "python3", "-c", text]
            let p = try DaemonProcess(executable: try #require(findExecutable("timeout")), arguments: arguments, environment: env)
            usleep(4_000_000)
            // `earshot spectrogram --seconds 3` ends by itself once its window is full: give a slow start
            // (a loaded box) time to fill it before the daemon goes away.
            if text.contains("earshot spectrogram") { _ = p.wait(timeout: 15) }
            daemon.signal(SIGTERM)
            #expect(daemon.wait(timeout: 10) == .exited(0))
            // `earshot tail`/`top` reconnect when the daemon goes away (by design): stop them as a user would.
            let reconnects = text.contains("earshot tail") || text.contains("earshot top")
            var termination = p.wait(timeout: reconnects ? 2 : 15)
            if termination == nil && reconnects { p.signal(SIGTERM); termination = p.wait(timeout: 5) }
            if termination == nil { p.killAndReap() }
            let lines = p.lines
            if let problem = matching[0].check(lines) {
                Issue.record("\(example)\n\(problem); stdout (\(lines.count) lines): \(lines.prefix(5)); stderr: \(p.stderr.prefix(500))")
            }
        }
    }

    /// The values of docs/protocol.md's `hello` and `stats` examples that come from the daemon's defaults
    /// are what a daemon with the default configuration sends.
    @Test func docExamplesMatchALiveDaemon() throws {
        let doc = try String(contentsOf: Self.root.appendingPathComponent("docs/protocol.md"), encoding: .utf8)
        var examples: [String: [String: Any]] = [:]
        var pending = ""
        var inJSON = false
        for line in doc.split(separator: "\n") {
            if line == "```json" { inJSON = true; continue }
            if line == "```" { inJSON = false; pending = ""; continue }
            guard inJSON else { continue }
            pending += line
            if let o = jsonObject(Array(pending.utf8)) {
                if let t = o["type"] as? String, examples[t] == nil { examples[t] = o }
                pending = ""
            }
        }
        let docHello = try #require(examples["hello"]), docStats = try #require(examples["stats"])

        let rig = try PublishingRig("docvalues")
        defer { rig.cleanup() }
        _ = try rig.start()
        let fd = connectUnix(rig.socketPath)
        try #require(fd >= 0)
        defer { close(fd) }
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        sendAll(fd, Array(#"{"op":"subscribe","streams":["stats"]}"#.utf8) + [0x0A])
        var buffer: [UInt8] = []
        var hello: [String: Any]? = nil, stats: [String: Any]? = nil
        let deadline = Date().addingTimeInterval(12)
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while stats == nil, Date() < deadline {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            buffer += chunk[..<n]
            while let nl = buffer.firstIndex(of: 0x0A) {
                let o = jsonObject(buffer[..<nl])
                buffer.removeFirst(nl + 1)
                if o?["type"] as? String == "hello" { hello = o }
                if o?["type"] as? String == "stats" { stats = o }
            }
        }
        let live = try #require(hello), liveStats = try #require(stats, "no stats within 12 s")
        #expect(Set(live.keys) == Set(docHello.keys))
        for key in ["protocol", "sample_rate", "n_fft", "hop", "n_mels", "n_mfcc", "onset_lookahead_ms", "level_unit", "streams"] {
            #expect("\(live[key] ?? "nil")" == "\(docHello[key] ?? "nil")", "hello.\(key)")
        }
        let liveLimits = try #require(live["limits"] as? [String: Any]), docLimits = try #require(docHello["limits"] as? [String: Any])
        #expect(Set(liveLimits.keys) == Set(docLimits.keys))
        for (k, v) in liveLimits { #expect("\(v)" == "\(docLimits[k] ?? "nil")", "hello.limits.\(k)") }
        // Every stage and counter the example shows is one a default daemon sends, and the other way round.
        #expect(Set(liveStats.keys) == Set(docStats.keys), "stats keys: live \(liveStats.keys.sorted()) doc \(docStats.keys.sorted())")
        let liveStages = Set((liveStats["over_budget"] as? [String: Any] ?? [:]).keys)
        #expect(liveStages == Set((docStats["over_budget"] as? [String: Any] ?? [:]).keys))
        #expect(Set((docStats["latency_ms"] as? [String: Any] ?? [:]).keys) == liveStages)
    }
}
