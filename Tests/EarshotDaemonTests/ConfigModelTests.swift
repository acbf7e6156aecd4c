import EarshotCapture
import EarshotDSP
import EarshotSinks
import Foundation
import Logging
import Testing

@testable import EarshotDaemon

private let noSystem = ConfigValidationOptions(checkSystem: false)

/// One value of a key at or just beside a documented bound.
private struct Probe: CustomStringConvertible {
    var key: String
    var value: Double
    var text: String
    var inside: Bool
    var description: String { "\(key)=\(text)" }
}

/// Every numeric key of the schema at its bounds: min, max, just below min, just above max (for an
/// exclusive minimum, the minimum itself is outside and a hair above it inside).
private func probes() -> [Probe] {
    var out: [Probe] = []
    for key in ConfigSchema.keys {
        guard let b = key.bounds else { continue }
        func text(_ v: Double) -> String { key.integral ? String(Int(v)) : String(v) }
        func add(_ v: Double, _ inside: Bool) { out.append(Probe(key: key.path, value: v, text: text(v), inside: inside)) }
        let step: (Double) -> Double = { v in key.integral ? 1 : Swift.max(abs(v) * 1e-6, 1e-6) }
        if let lo = b.min {
            if b.minExclusive {
                add(lo, false)
                add(lo + step(lo), true)
            } else {
                add(lo, true)
                add(lo - step(lo), false)
            }
        }
        if let hi = b.max {
            add(hi, true)
            add(hi + step(hi), false)
        }
    }
    return out
}

/// What check-config says about `key=text` on top of the defaults (the same path as --set, the file, the
/// environment and reload: ConfigBuilder + validated()).
private func checkConfig(_ key: String, _ text: String) -> ConfigError? {
    var builder = ConfigBuilder()
    do {
        try builder.set(key, to: text, origin: .commandLine(argument: "\(key)=\(text)"))
        _ = try builder.validated(noSystem)
        return nil
    } catch {
        return error
    }
}

/// What the library types say about the same value set directly (no schema check on the way).
private func library(_ key: String, _ value: Double) -> LibraryProblem? {
    var c = EarshotConfig()
    ConfigSchema.byPath[key]!.setUnchecked!(&c, value)
    return c.libraryProblem()
}

@Suite("One configuration model")
struct ConfigModelTests {
    @Test func everyNumericKeyHasBoundsAndAnUncheckedSetter() {
        for key in ConfigSchema.keys where key.kind.hasPrefix("integer") || key.kind.hasPrefix("number") {
            #expect(key.bounds != nil, "\(key.path) has no documented bounds")
            #expect(key.setUnchecked != nil, "\(key.path)")
        }
        #expect(probes().count > 150)
    }

    /// The walk: for every key at its bounds, the libraries' validate() accepts exactly what check-config
    /// accepts, values outside the bounds are refused by both, and every refusal names a YAML key.
    @Test func libraryAcceptsExactlyWhatCheckConfigAccepts() {
        var acceptedSomewhere: Set<String> = []
        for p in probes() {
            let cc = checkConfig(p.key, p.text)
            let lib = library(p.key, p.value)
            #expect((cc == nil) == (lib == nil),
                    "\(p): check-config \(cc.map { "refuses: \($0)" } ?? "accepts"), library \(lib.map { "refuses: \($0.key): \($0.message)" } ?? "accepts")")
            if !p.inside {
                #expect(cc != nil, "\(p) is outside the documented range but check-config accepts it")
                #expect(lib != nil, "\(p) is outside the documented range but the library accepts it")
                // Out of range is reported on the key itself.
                #expect(cc?.key == p.key, "\(p): \(cc.map(String.init(describing:)) ?? "")")
                #expect(lib?.key == p.key, "\(p): library names \(lib?.key ?? "nothing")")
            }
            if let cc { #expect(cc.key.map { ConfigSchema.byPath[$0] != nil } == true, "\(p): \(cc)") }
            if let lib { #expect(ConfigSchema.byPath[lib.key] != nil, "\(p): library names \(lib.key)") }
            if cc == nil { acceptedSomewhere.insert(p.key) }
            // A documented bound is refused only because of another key (a relation, or the memory limit),
            // never on its own: the library's range is the documented one.
            if p.inside, let lib {
                #expect(lib.related != nil, "\(p) is inside the documented range but the library refuses it on its own: \(lib.key): \(lib.message)")
            }
        }
        // Each key accepts at least one of its bounds with the other keys at their defaults (hop and n_mels
        // are bounded tighter by other keys at the defaults: their edges are in crossFieldEdges).
        // capture.sample_rate (192 kHz) and analysis.fmax (near 0) at their bounds leave a mel band without an
        // FFT bin at the default n_fft / n_mels, a dead feature that is refused (issue 12; related key n_fft).
        let ranged = Set(ConfigSchema.keys.filter { $0.bounds != nil }.map(\.path))
            .subtracting(["analysis.hop", "analysis.n_mels", "capture.sample_rate", "analysis.fmax"])
        #expect(ranged.subtracting(acceptedSomewhere).isEmpty, "\(ranged.subtracting(acceptedSomewhere).sorted())")
    }

    /// The keys that are not numbers, at their bounds: list length and elements, path length, choices,
    /// booleans. check-config and the library agree on each.
    @Test func nonNumericKeysAtTheirBounds() throws {
        func windows(_ w: [Double]) -> String { w.map { String($0) }.joined(separator: ",") }
        let sixteen = (1...16).map(Double.init)
        let cases: [(String, String, (inout EarshotConfig) -> Void, Bool)] = [
            ("rolling.windows_s", windows(sixteen), { $0.rolling.windowsSeconds = sixteen }, true),
            ("rolling.windows_s", windows(sixteen + [17]), { $0.rolling.windowsSeconds = sixteen + [17] }, false),
            ("rolling.windows_s", "86400", { $0.rolling.windowsSeconds = [86_400] }, true),
            ("rolling.windows_s", "86400.5", { $0.rolling.windowsSeconds = [86_400.5] }, false),
            ("rolling.windows_s", "0", { $0.rolling.windowsSeconds = [0] }, false),
            ("rolling.windows_s", "10,10", { $0.rolling.windowsSeconds = [10, 10] }, false),
            ("rolling.windows_s", "[]", { $0.rolling.windowsSeconds = [] }, false),
            ("socket.path", "/" + String(repeating: "s", count: 106), { $0.socket.path = "/" + String(repeating: "s", count: 106) }, true),
            ("socket.path", "/" + String(repeating: "s", count: 107), { $0.socket.path = "/" + String(repeating: "s", count: 107) }, false),
            ("socket.path", "relative.sock", { $0.socket.path = "relative.sock" }, false),
            ("socket.mode", "\"0777\"", { $0.socket.mode = 0o777 }, true),
            ("socket.mode", "\"1777\"", { $0.socket.mode = 0o1777 }, false),
            ("socket.group", "\"a b\"", { $0.socket.group = "a b" }, false),
            ("metrics.textfile", "/var/lib/x.prom", { $0.metrics.textfile = "/var/lib/x.prom" }, true),
            ("metrics.textfile", "x.prom", { $0.metrics.textfile = "x.prom" }, false),
            ("capture.device", "\" \"", { $0.capture.device = " " }, false),
            ("metrics.labels", "site=north,rack=3", { $0.metrics.labels = ["site": "north", "rack": "3"] }, true),
            ("metrics.labels", "instance=porch", { $0.metrics.labels = ["instance": "porch"] }, true),
            ("metrics.labels", "le=x", { $0.metrics.labels = ["le": "x"] }, false),
            ("metrics.labels", "2site=x", { $0.metrics.labels = ["2site": "x"] }, false),
            ("metrics.labels", "site=" + String(repeating: "v", count: 257), { $0.metrics.labels = ["site": String(repeating: "v", count: 257)] }, false),
            ("metrics.labels", (1...16).map { "l\($0)=v" }.joined(separator: ","),
             { $0.metrics.labels = Dictionary(uniqueKeysWithValues: (1...16).map { ("l\($0)", "v") }) }, true),
            ("metrics.labels", (1...17).map { "l\($0)=v" }.joined(separator: ","),
             { $0.metrics.labels = Dictionary(uniqueKeysWithValues: (1...17).map { ("l\($0)", "v") }) }, false),
        ]
        for (key, text, set, accepted) in cases {
            let cc = checkConfig(key, text)
            var c = EarshotConfig()
            set(&c)
            let lib = c.libraryProblem()
            #expect((cc == nil) == accepted, "\(key)=\(text): \(cc.map(String.init(describing:)) ?? "accepted")")
            #expect((lib == nil) == accepted, "\(key)=\(text): library \(lib.map { "\($0.key): \($0.message)" } ?? "accepts")")
            if let lib { #expect(lib.key == key) }
        }
        // Every choice and boolean value is accepted, and nothing else.
        for key in ConfigSchema.keys where key.kind.hasPrefix("one of") || key.kind == "boolean" {
            let values = key.kind == "boolean" ? ["true", "false"]
                : key.kind.dropFirst("one of ".count).split(separator: ",").map { String($0.trimmingSpaces).replacingAll("\"", with: "") }
            for v in values { #expect(checkConfig(key.path, v) == nil, "\(key.path)=\(v)") }
            #expect(checkConfig(key.path, "nonsense") != nil, "\(key.path)")
        }
    }

    /// Cross-field bounds agree too: each relation at its edge and one past it.
    @Test(arguments: [
        ("analysis.hop", "1024", true), ("analysis.hop", "1026", false),
        ("analysis.hop", "48", true), ("analysis.hop", "47", false),
        ("analysis.n_mels", "127", true), ("analysis.n_mels", "128", false), ("analysis.n_mels", "514", false),
        ("analysis.n_mfcc", "64", true), ("analysis.n_mfcc", "65", false),
        ("analysis.fmax", "24000", true), ("analysis.fmax", "24000.5", false),
        ("analysis.fmin", "6421", true), ("analysis.fmin", "6422", false), ("analysis.fmin", "8000", false),
        ("analysis.n_fft", "45", false), ("analysis.n_fft", "1026", false), ("analysis.n_fft", "1050", true),
        ("capture.reconnect_max_s", "0.5", true), ("capture.reconnect_max_s", "0.4", false),
        ("capture.channel", "0", true), ("capture.channel", "1", false),
    ])
    func crossFieldEdges(_ key: String, _ text: String, _ accepted: Bool) throws {
        let cc = checkConfig(key, text)
        #expect((cc == nil) == accepted, "\(key)=\(text): \(cc.map(String.init(describing:)) ?? "accepted")")
        var c = EarshotConfig()
        if let v = Double(text) { ConfigSchema.byPath[key]!.setUnchecked!(&c, v) }
        #expect((c.libraryProblem() == nil) == accepted, "\(key)=\(text): library \(c.libraryProblem().map { "\($0.key): \($0.message)" } ?? "accepts")")
        if accepted {
            _ = try FrameAnalyzer(config: c.analyzerConfig)  // what check-config accepts, the DSP builds
        }
    }

    // MARK: the bug: post_max_frames 2

    @Test func postMaxFramesTwoIsRefusedEverywhereWithTheSameMessage() throws {
        let dir = try TempDir()
        defer { dir.cleanUp() }
        let file = try dir.write("earshot.yaml", "analysis:\n  onset:\n    post_max_frames: 2\n")
        let expected = "analysis.onset.post_max_frames: 2 is out of range: must be between 0 and 1"
        var messages: [String] = []
        for attempt in 0..<3 {
            do {
                switch attempt {
                case 0: _ = try EarshotConfig.load(configPath: file, environment: [:], options: noSystem)
                case 1: _ = try EarshotConfig.load(configPath: nil, environment: [:], overrides: ["analysis.onset.post_max_frames=2"], options: noSystem)
                default: _ = try EarshotConfig.load(configPath: nil, environment: ["EARSHOT_ANALYSIS_ONSET_POST_MAX_FRAMES": "2"], options: noSystem)
                }
                Issue.record("attempt \(attempt) accepted post_max_frames 2")
            } catch {
                #expect(error.exitCode == 78)
                messages.append("\(error)")
            }
        }
        #expect(messages == ["\(file):3: \(expected)", "--set analysis.onset.post_max_frames=2: \(expected)",
                             "environment EARSHOT_ANALYSIS_ONSET_POST_MAX_FRAMES: \(expected)"])
        // The reload path (Daemon.reload) loads through loadWithSource: the same refusal.
        #expect(throws: ConfigError.self) {
            _ = try EarshotConfig.loadWithSource(configPath: file, environment: [:], overrides: [], options: noSystem)
        }
        // And the library names the same key.
        var a = AnalyzerConfig()
        a.onset.postMaxFrames = 2
        #expect(throws: AnalyzerConfigError.self) { try a.validate() }
        do { try a.validate() } catch { #expect(EarshotConfig.yamlKey(analyzerField: error.field) == "analysis.onset.post_max_frames") }
        // 0 and 1 pass everywhere, and the analyzer builds.
        for v in ["0", "1"] {
            let c = try EarshotConfig.load(configPath: nil, environment: [:], overrides: ["analysis.onset.post_max_frames=\(v)"], options: noSystem)
            _ = try FrameAnalyzer(config: c.analyzerConfig)
        }
    }

    @Test func crossFieldLibraryErrorPointsAtTheLineTheUserWrote() throws {
        // The user set only capture.sample_rate; the conflict with the default fmax is reported there.
        let c = try #require(checkConfig("capture.sample_rate", "8000"))
        #expect(c.key == "capture.sample_rate")
        #expect(c.origin == .commandLine(argument: "capture.sample_rate=8000"))
    }

    // MARK: defaults have one definition

    @Test func defaultsAreTheLibraries() {
        let d = EarshotConfig.defaults
        var analyzer = AnalyzerConfig()
        analyzer.sampleRate = d.capture.sampleRate
        #expect(d.analyzerConfig == analyzer)
        var capture = CaptureConfig()
        capture.periodFrames = d.analysis.hop  // null period_frames = one hop
        #expect(d.captureConfig == capture)
        #expect(d.socketConfiguration == SocketPublisher.Configuration())
        #expect(d.alertConfiguration == AlertSink.Configuration())
        #expect(d.rollingConfiguration == RollingAggregator.Configuration())
        #expect(d.metricsConfiguration == MetricsSink.Configuration())
        #expect(d.latencyConfiguration == LatencyTracker.Configuration())
        #expect(d.libraryProblem() == nil)
    }

    // MARK: frame shape

    @Test func frameShapeIsSampleRateFFTHopAndBandCounts() {
        let base = AnalyzerConfig()
        var same = base
        same.onset.delta = 7; same.fMin = 100; same.fMax = 6000; same.rolloffPercent = 0.5; same.logMelFloorDb = -80
        same.onset.postMaxFrames = 0
        #expect(same.frameShape == base.frameShape)
        let changes: [(String, (inout AnalyzerConfig) -> Void)] = [
            ("sampleRate", { $0.sampleRate = 44_100 }), ("nFFT", { $0.nFFT = 2048 }), ("hop", { $0.hop = 240 }),
            ("nMels", { $0.nMels = 40 }), ("nMFCC", { $0.nMFCC = 20 }),
        ]
        for (name, change) in changes {
            var c = base
            change(&c)
            #expect(c.frameShape != base.frameShape, "\(name)")
        }
    }

    // MARK: operator items

    @Test func runtimeDirectoryMayBeMissingForCheckConfigOnly() throws {
        let name = "earshot-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        #expect(!FileManager.default.fileExists(atPath: "/run/\(name)"))
        #expect(ConfigBuilder.isRuntimeDirectory("/run/\(name)"))
        #expect(ConfigBuilder.isRuntimeDirectory("/run/\(name)/mic1"))  // RuntimeDirectory=earshot/%i
        #expect(!ConfigBuilder.isRuntimeDirectory("/run/\(name)/a/b"))
        #expect(!ConfigBuilder.isRuntimeDirectory("/rnu/\(name)"))
        #expect(!ConfigBuilder.isRuntimeDirectory("/tmp/\(name)"))
        #expect(!ConfigBuilder.isRuntimeDirectory("/run/../tmp/\(name)"))
        #expect(!ConfigBuilder.isRuntimeDirectory("/run"))
        // Under a regular file: broken, not a directory systemd will make.
        let dir = try TempDir()
        defer { dir.cleanUp() }
        if FileManager.default.isWritableFile(atPath: "/run") {
            let file = "/run/\(name).file"
            FileManager.default.createFile(atPath: file, contents: Data())
            defer { try? FileManager.default.removeItem(atPath: file) }
            #expect(!ConfigBuilder.isRuntimeDirectory("\(file)/x"))
        }
        func load(_ socket: String, missingOK: Bool) -> ConfigError? {
            do {
                _ = try EarshotConfig.load(configPath: nil, environment: [:], overrides: ["socket.path=\(socket)"],
                                           options: .init(checkSystem: true, runtimeDirectoryMayBeMissing: missingOK))
                return nil
            } catch { return error }
        }
        #expect(load("/run/\(name)/earshot.sock", missingOK: true) == nil)
        #expect(load("/run/\(name)/mic1/earshot.sock", missingOK: true) == nil)
        #expect(load("\(dir.path)/s.sock", missingOK: true) == nil)
        let run = try #require(load("/run/\(name)/earshot.sock", missingOK: false))  // `run` needs it
        #expect(run.code == .missingPath && run.key == "socket.path")
        for broken in ["/rnu/\(name)/earshot.sock", "/run/\(name)/a/b/earshot.sock", "\(dir.path)/missing/s.sock"] {
            let e = try #require(load(broken, missingOK: true), "\(broken)")
            #expect(e.code == .missingPath && e.key == "socket.path" && "\(e)".contains("does not exist"))
        }
    }

    @Test func commandLineStringsAreStrings() throws {
        for word in ["null", "Null", "~", "true", "0660", "1e3", "hw:CARD=USB,DEV=0", "a \"quoted\" name"] {
            var b = ConfigBuilder()
            try b.applyOverrides([ConfigBuilder.stringOverride("capture.device", word)])
            #expect(b.config.capture.device == word)
            #expect(try b.validated(noSystem).capture.device == word)
        }
        var b = ConfigBuilder()
        try b.applyOverrides([ConfigBuilder.stringOverride("socket.path", "/tmp/null")])
        #expect(b.config.socket.path == "/tmp/null")
        // A bare null in --set is YAML null, refused with a hint; a quoted one is the string.
        var plain = ConfigBuilder()
        #expect {
            try plain.applyOverrides(["capture.device=null"])
        } throws: { error in
            "\(error)".contains("capture.device: expected a string, got null (for the string, quote it: \"null\")")
        }
        try plain.applyOverrides(["capture.device='null'"])
        #expect(plain.config.capture.device == "null")
        // The environment takes the same quoted form.
        var env = ConfigBuilder()
        try env.applyEnvironment(["EARSHOT_CAPTURE_DEVICE": "\"null\""])
        #expect(env.config.capture.device == "null")
        #expect(throws: ConfigError.self) { try env.applyEnvironment(["EARSHOT_CAPTURE_DEVICE": "null"]) }
        // Quotes make a string, so a quoted number is not a number.
        #expect(throws: ConfigError.self) { try plain.applyOverrides(["analysis.hop=\"480\""]) }
    }

    // MARK: logging.level

    @Test func logLevelFollowsTheSwitchInExistingLoggers() throws {
        let levels = LogLevelSwitch(.info)
        let pipe = Pipe()
        let fd = pipe.fileHandleForWriting.fileDescriptor
        let logger = Logger(label: "t") { JournalLogHandler(label: $0, format: .journal, fileDescriptor: fd, levelSwitch: levels) }
        logger.debug("hidden")
        var c = EarshotConfig()
        c.logging.level = .debug
        #expect(c.applyLogging(to: levels) == .info)
        #expect(logger.logLevel == .debug)
        logger.debug("shown")
        c.logging.level = .error
        c.applyLogging(to: levels)
        logger.warning("hidden too")
        logger.error("shown too")
        try pipe.fileHandleForWriting.close()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(text == "<7>t: shown\n<3>t: shown too\n", "\(text)")
        // Setting a logger's level explicitly detaches it from the switch.
        var fixed = logger
        fixed.logLevel = .trace
        #expect(fixed.logLevel == .trace && levels.level == .error)
    }

    // MARK: shipped file and README against the schema

    @Test func shippedFileDocumentsEveryRange() throws {
        let text = try String(contentsOf: packageRoot.appendingPathComponent("config/earshot.yaml"), encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var section: [String] = []
        var problems: [String] = []
        var seen: Set<String> = []
        for (i, line) in lines.enumerated() {
            let trimmed = line.drop { $0 == " " }
            guard !trimmed.hasPrefix("#"), let colon = trimmed.firstIndex(of: ":") else { continue }
            let depth = (line.count - trimmed.count) / 2
            let name = String(trimmed[..<colon])
            section = Array(section.prefix(depth))
            let path = (section + [name]).joined(separator: ".")
            guard let key = ConfigSchema.byPath[path] else { section.append(name); continue }
            seen.insert(path)
            // The comment block right above the key.
            var comment = ""
            var j = i - 1
            while j >= 0, lines[j].drop(while: { $0 == " " }).hasPrefix("#") { comment = lines[j] + "\n" + comment; j -= 1 }
            if let range = key.rangeText, !comment.contains(range) {
                problems.append("config/earshot.yaml:\(i + 1): \(path): the comment above does not give the range \(range)")
            }
            // The value is the default (the whole file is checked to equal the defaults elsewhere; here
            // each line, so a mismatch names its line).
            var b = ConfigBuilder()
            try b.applyYAML(section.isEmpty ? line : (0..<section.count).map { String(repeating: "  ", count: $0) + section[$0] + ":" }.joined(separator: "\n") + "\n" + line, file: "earshot.yaml")
            if key.render(b.config) != key.render(.defaults) {
                problems.append("config/earshot.yaml:\(i + 1): \(path): \(key.render(b.config)) is not the default \(key.render(.defaults))")
            }
        }
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
        #expect(seen == Set(ConfigSchema.keys.map(\.path)), "missing: \(Set(ConfigSchema.keys.map(\.path)).subtracting(seen).sorted())")
    }

    @Test func readmeTableIsTheSchema() throws {
        let readme = try String(contentsOf: packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let begin = "<!-- config-table: generated from ConfigSchema; checked by ConfigModelTests -->\n"
        let end = "\n<!-- /config-table -->"
        let start = try #require(readme.range(of: begin), "README.md lacks the configuration table marker")
        let stop = try #require(readme.range(of: end, range: start.upperBound..<readme.endIndex))
        let table = String(readme[start.upperBound..<stop.lowerBound])
        let expected = ConfigSchema.referenceTable()
        if table != expected {
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("earshot-config-table.md")
            try? expected.write(to: out, atomically: true, encoding: .utf8)
            Issue.record("README.md configuration table differs from the schema; the expected table is in \(out.path)")
        }
        // Every key is in it once.
        for key in ConfigSchema.keys {
            #expect(table.components(separatedBy: "| `\(key.path)` |").count == 2, "\(key.path)")
        }
    }
}
