import EarshotPipeline
import Foundation
import Logging
import Testing

@testable import EarshotSinks

#if canImport(Glibc)
import Glibc
#endif

private typealias K = SinkTestKit2

/// Sends `chunks` (with a pause between them) to 127.0.0.1:`port` and reads until the server closes.
private func exchange(port: Int, _ chunks: [String], pauseMs: UInt32 = 30, halfClose: Bool = false) throws -> String {
    let fd = try connectTo(port: port)
    defer { close(fd) }
    for (i, c) in chunks.enumerated() {
        if i > 0 { usleep(pauseMs * 1000) }
        _ = c.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
    }
    if halfClose { shutdown(fd, Int32(SHUT_WR)) }
    var out = [UInt8]()
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        out += buf[0..<n]
    }
    return String(decoding: out, as: UTF8.self)
}

private func connectTo(port: Int) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #expect(fd >= 0)
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_port = in_port_t(UInt16(port).bigEndian)
    a.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    try #require(rc == 0)
    var tv = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    return fd
}

/// The value of the sample line starting with `prefix ` (name plus labels).
private func value(_ text: String, _ prefix: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(prefix + " ") {
        return Double(line.dropFirst(prefix.count + 1))
    }
    return nil
}

private func tempPath(_ name: String) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("earshot-metrics-\(UUID().uuidString.prefix(8))")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent(name).path
}

@Suite("MetricsSink")
struct MetricsSinkTests {
    @Test func disabledByDefaultAndDoesNothing() throws {
        #expect(MetricsSink.Configuration().enabled == false)
        let sink = MetricsSink(configuration: .init(), logger: K.LogStore().logger())
        let bus = FrameBus(capacity: 16, nMels: K.nMels, nMFCC: 2)
        try sink.start(bus: bus, stream: K.stream())
        #expect(sink.httpPort == nil)
        K.publish([K.header(seq: 0, level: -10)], on: bus)
        sink.stop()
        #expect(value(String(decoding: sink.render(), as: UTF8.self), "earshot_frames_total") == 0)
    }

    /// `earshot_frames_total` counts frames analysed, including frames this (batch) reader lost: it advances
    /// by the `seq` step, so the total matches the DSP's count even when the sink fell behind.
    @Test func framesTotalCountsSeqStepsIncludingLostFrames() {
        let sink = MetricsSink(configuration: .init(enabled: true, listen: "127.0.0.1:0"), logger: K.LogStore().logger())
        for seq in [10, 11, 12, 20, 21] as [Int64] { sink.observe(K.header(seq: seq, level: -30)) }
        #expect(value(String(decoding: sink.render(), as: UTF8.self), "earshot_frames_total") == 12)
    }

    @Test func scrapeOverHTTP() throws {
        let logs = K.LogStore()
        let rolling = RollingAggregator(configuration: .init(windowsSeconds: [1]), publisher: nil)
        let latency = LatencyTracker(configuration: .init(dspMs: 1), logger: logs.logger())
        let sink = MetricsSink(configuration: .init(enabled: true, listen: "127.0.0.1:0"), logger: logs.logger(),
                               rolling: rolling, latency: latency)
        let bus = FrameBus(capacity: 1024, nMels: K.nMels, nMFCC: 2)
        try rolling.start(bus: bus, stream: K.stream(levelOffsetDb: 94, unit: "dB SPL"))
        try sink.start(bus: bus, stream: K.stream(levelOffsetDb: 94, unit: "dB SPL"))
        let port = try #require(sink.httpPort)
        #expect(port > 0)
        var frames = (Int64(0)..<150).map { K.header(seq: $0, level: -30) }
        frames[10] = K.withOnset(frames[10], strength: 7)
        frames[149].flags = FrameFlags.discontinuity
        frames[149].features.las = -50
        K.publish(frames, on: bus)
        defer { sink.stop(); rolling.stop() }
        // Wait until both sinks have consumed everything.
        let deadline = Date().addingTimeInterval(5)
        while (value(String(decoding: sink.render(), as: UTF8.self), "earshot_frames_total") ?? 0) < 150
            || rolling.latest(windowSeconds: 1) == nil, Date() < deadline { usleep(2000) }
        latency.dspStage.record(nanoseconds: 500_000)
        latency.dspStage.record(nanoseconds: 2_000_000)
        sink.update(MetricsSnapshot(xruns: 3, reconnects: 1, ringOverrunSamples: 4800, socketClients: 2, deviceUp: true,
                                    sinkDroppedFrames: ["socket": 5, "alerts": 0]))
        sink.update(MetricsSnapshot(xruns: 4, reconnects: 1, ringOverrunSamples: 4800, socketClients: 1, deviceUp: true,
                                    sinkDroppedFrames: ["socket": 7, "alerts": 0], nonFiniteSamples: 3, clampedSamples: 1))

        let response = try exchange(port: port, ["GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"])
        #expect(response.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(response.contains("Content-Type: text/plain; version=0.0.4"))
        let body = String(response[response.range(of: "\r\n\r\n")!.upperBound...])
        #expect(value(body, "earshot_frames_total") == 150)
        #expect(value(body, "earshot_onsets_total") == 1)
        #expect(value(body, "earshot_discontinuities_total") == 1)
        #expect(value(body, "earshot_xruns_total") == 4)
        #expect(value(body, "earshot_reconnects_total") == 1)
        #expect(value(body, "earshot_ring_overrun_samples_total") == 4800)
        #expect(value(body, "earshot_socket_clients") == 1)
        #expect(value(body, "earshot_device_up") == 1)
        #expect(value(body, #"earshot_sink_dropped_frames_total{sink="socket"}"#) == 7)
        #expect(value(body, #"earshot_sink_dropped_frames_total{sink="alerts"}"#) == 0)
        #expect(value(body, #"earshot_sanitized_samples_total{kind="nonfinite"}"#) == 3)
        #expect(value(body, #"earshot_sanitized_samples_total{kind="clamped"}"#) == 1)
        #expect(value(body, #"earshot_level_db{weighting="laf"}"#) == 64)  // −30 dBFS + 94
        #expect(value(body, #"earshot_level_db{weighting="las"}"#) == 44)
        #expect(value(body, #"earshot_rolling_leq_db{window="1s"}"#) == 64)
        #expect(value(body, #"earshot_over_budget_total{stage="dsp"}"#) == 1)
        #expect(value(body, #"earshot_stage_latency_seconds_bucket{stage="dsp",le="0.0005"}"#) == 1)
        #expect(value(body, #"earshot_stage_latency_seconds_bucket{stage="dsp",le="+Inf"}"#) == 2)
        #expect(value(body, #"earshot_stage_latency_seconds_count{stage="dsp"}"#) == 2)
        #expect(abs((value(body, #"earshot_stage_latency_seconds_sum{stage="dsp"}"#) ?? 0) - 0.0025) < 1e-9)
        #expect(body.contains("# TYPE earshot_stage_latency_seconds histogram"))
        #expect(body.contains("# TYPE earshot_frames_total counter"))
        #expect(body.contains("# HELP earshot_level_db "))
        let full = body.components(separatedBy: "\n").filter { !$0.isEmpty && !$0.hasPrefix("#") }
        for line in full { #expect(line.wholeMatch(of: /[a-z_]+(\{[^}]*\})? -?[0-9.e+-]+|[a-z_]+(\{[^}]*\})? [+-]Inf/) != nil, "\(line)") }
    }

    @Test func robustAgainstPartialGarbageAndWrongPaths() throws {
        let sink = MetricsSink(configuration: .init(enabled: true, listen: "127.0.0.1:0"), logger: K.LogStore().logger())
        let bus = FrameBus(capacity: 16, nMels: K.nMels, nMFCC: 2)
        try sink.start(bus: bus, stream: K.stream())
        defer { sink.stop() }
        let port = try #require(sink.httpPort)
        // A request split into pieces (partial reads), with a query string.
        let split = try exchange(port: port, ["GE", "T /metrics?x=1 HT", "TP/1.0\r\nHost: a\r\n", "\r\n"])
        #expect(split.hasPrefix("HTTP/1.1 200 OK"))
        #expect(split.contains("earshot_frames_total"))
        #expect(try exchange(port: port, ["GET / HTTP/1.1\r\n\r\n"]).hasPrefix("HTTP/1.1 404"))
        #expect(try exchange(port: port, ["POST /metrics HTTP/1.1\r\n\r\n"]).hasPrefix("HTTP/1.1 405"))
        #expect(try exchange(port: port, ["\u{1}\u{2}garbage\u{FF}\n\n"]).hasPrefix("HTTP/1.1 400"))
        let huge = "GET /metrics HTTP/1.1\r\nX: " + String(repeating: "a", count: 20_000)
        #expect(try exchange(port: port, [huge]).hasPrefix("HTTP/1.1 431"))
        // A client that connects and says nothing stays connected while others are served, and one that
        // disconnects mid-request gets nothing.
        let idle = try connectTo(port: port)
        defer { close(idle) }
        #expect(try exchange(port: port, ["GET /met"], halfClose: true) == "")
        let head = try exchange(port: port, ["HEAD /metrics HTTP/1.1\r\n\r\n"])
        #expect(head.hasPrefix("HTTP/1.1 200") && !head.contains("earshot_frames_total"))
        // Still serving.
        #expect(try exchange(port: port, ["GET /metrics HTTP/1.1\r\n\r\n"]).contains("earshot_device_up"))
    }

    @Test func textfileIsWrittenAtomically() throws {
        let path = tempPath("earshot.prom")
        let sink = MetricsSink(configuration: .init(enabled: true, listen: nil, textfile: path, textfileIntervalSeconds: 0.005),
                               logger: K.LogStore().logger())
        let bus = FrameBus(capacity: 1024, nMels: K.nMels, nMFCC: 2)
        try sink.start(bus: bus, stream: K.stream())
        #expect(sink.httpPort == nil)
        K.publish((Int64(0)..<20).map { K.header(seq: $0, level: -30) }, on: bus)
        // Reads racing the rewrites always see a whole file (rename is atomic).
        var reads = 0
        let deadline = Date().addingTimeInterval(2)
        while reads < 200 && Date() < deadline {
            if let text = try? String(contentsOfFile: path, encoding: .utf8) {
                reads += 1
                #expect(text.hasSuffix("\n") && text.contains("earshot_ring_overrun_samples_total"))
            }
        }
        #expect(reads >= 50)
        sink.stop()
        let final = try String(contentsOfFile: path, encoding: .utf8)
        #expect(value(final, "earshot_frames_total") == 20)
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))
    }

    /// Issue 9 item 11: the old writer opened `<textfile>.tmp` with `O_CREAT|O_TRUNC` and followed a symlink
    /// planted there, overwriting the file it pointed to. Now the victim stays untouched, the textfile is
    /// written, a symlink planted at the textfile itself is replaced (not written through), and no temp file
    /// is left behind.
    @Test func plantedSymlinksAreNotFollowed() throws {
        let dir = tempPath("textfile-dir")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/earshot.prom"
        let victim = tempPath("victim")
        try "precious\n".write(toFile: victim, atomically: false, encoding: .utf8)
        #expect(symlink(victim, path + ".tmp") == 0)
        let sink = MetricsSink(configuration: .init(enabled: true, listen: nil, textfile: path, textfileIntervalSeconds: 60),
                               logger: K.LogStore().logger())
        try sink.writeTextfile()
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "precious\n")
        #expect(try String(contentsOfFile: path, encoding: .utf8).contains("earshot_device_up"))
        // A symlink at the target itself: renameat replaces the link, the victim keeps its content.
        try FileManager.default.removeItem(atPath: path)
        #expect(symlink(victim, path) == 0)
        try sink.writeTextfile()
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "precious\n")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: path + ".tmp") == victim)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect(attributes[.type] as? FileAttributeType == .typeRegular)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".tmp") && $0.hasPrefix(".") }
        #expect(leftovers.isEmpty)
    }

    @Test func parseListenAddresses() {
        #expect(MetricsHTTPServer.parseListen("127.0.0.1:9464")! == ("127.0.0.1", 9464))
        #expect(MetricsHTTPServer.parseListen("[::1]:9464")! == ("::1", 9464))
        #expect(MetricsHTTPServer.parseListen("localhost:0")! == ("localhost", 0))
        #expect(MetricsHTTPServer.parseListen("::1:9464") == nil)
        #expect(MetricsHTTPServer.parseListen("host") == nil)
        #expect(MetricsHTTPServer.parseListen("h:70000") == nil)
        #expect(throws: MetricsServerError.self) { try MetricsHTTPServer(listen: "nonsense:1") { [] } }
    }
}

/// `promtool` on `$PATH` (Debian: `apt-get install prometheus`).
private let promtoolPath: String? = {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let p = "\(dir)/promtool"
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    return nil
}()
/// Under CI=true the promtool check runs (and fails without promtool); elsewhere it is skipped without it.
private let promtoolEnabled = promtoolPath != nil || ProcessInfo.processInfo.environment["CI"] == "true"

/// Issue 10 item 6: labels, build info, the `stats` counters, budget bucket edges, dBFS rms, promtool.
@Suite("MetricsSink exposition")
struct MetricsExpositionTests {
    /// A sink with every kind of series filled in, rendered.
    static func renderedFull(labels: [String: String] = ["instance": "kitchen", "device": "hw:CARD=Mic,DEV=0"],
                             calibration: Float = 94) throws -> String {
        let logs = K.LogStore()
        let rolling = RollingAggregator(configuration: .init(windowsSeconds: [1, 10]), publisher: nil)
        let latency = LatencyTracker(configuration: .init(dspMs: 3, sinksMs: 7.5, endToEndMs: 250), logger: logs.logger())
        var c = MetricsSink.Configuration(enabled: true, listen: "127.0.0.1:0")
        c.constantLabels = labels
        c.buildInfo = ["version": "0.1.0", "swift": "6.3"]
        c.calibration = CalibrationInfo(date: "2026-12-02T12:40:20Z", referenceDb: 94, offsetDb: 120.37)  // checked by promtool too
        let sink = MetricsSink(configuration: c, logger: logs.logger(), rolling: rolling, latency: latency)
        let bus = FrameBus(capacity: 256, nMels: K.nMels, nMFCC: 2)
        let stream = K.stream(levelOffsetDb: calibration, unit: calibration == 0 ? "dBFS" : "dB SPL")
        try rolling.start(bus: bus, stream: stream)
        try sink.start(bus: bus, stream: stream)
        K.publish((0..<150).map { K.header(seq: $0, level: -30) }, on: bus)
        latency.dspStage.record(nanoseconds: 2_000_000)
        latency.dspStage.record(nanoseconds: 4_000_000)
        rolling.stop()
        sink.stop()
        var m = MetricsSnapshot(xruns: 2, socketClients: 1, deviceUp: true, sinkDroppedFrames: ["socket": 1],
                                sinkUp: ["metrics": true], sinkFailures: ["metrics": 0])
        m.connectionsTotal = 5; m.socketDroppedMessages = 6; m.socketStalledDisconnects = 1; m.protocolErrors = 3
        m.levelAlerts = 4; m.onsetAlerts = 2; m.onsetAlertsSuppressed = 8
        sink.update(m)
        return String(decoding: sink.render(), as: UTF8.self)
    }

    static func samples(_ body: String) -> [Substring] {
        body.split(separator: "\n").filter { !$0.hasPrefix("#") }
    }

    @Test func everySeriesCarriesTheConstantLabels() throws {
        let body = try Self.renderedFull()
        let lines = Self.samples(body)
        #expect(lines.count > 40)
        for line in lines {
            #expect(line.contains(#"{device="hw:CARD=Mic,DEV=0",instance="kitchen""#), "\(line)")
        }
        #expect(body.contains(#"earshot_level_db{device="hw:CARD=Mic,DEV=0",instance="kitchen",weighting="laf"} 64"#), "\(body)")
        #expect(body.contains(#"earshot_frames_total{device="hw:CARD=Mic,DEV=0",instance="kitchen"} 150"#))
        // Without labels nothing changes.
        let plain = try Self.renderedFull(labels: [:])
        #expect(plain.contains("earshot_frames_total 150"))
    }

    @Test func statsCountersBuildInfoAndDBFSRMS() throws {
        let body = try Self.renderedFull(labels: [:])
        for (series, v) in [
            ("earshot_socket_connections_total", 5), ("earshot_socket_dropped_messages_total", 6),
            ("earshot_socket_stalled_disconnects_total", 1), ("earshot_protocol_errors_total", 3),
            (#"earshot_alerts_total{alert="level"}"#, 4), (#"earshot_alerts_total{alert="onset"}"#, 2),
            ("earshot_onset_alerts_suppressed_total", 8),
        ] {
            #expect(body.contains("\(series) \(v)\n"), "\(series) \(v) missing")
        }
        #expect(body.contains(#"earshot_build_info{swift="6.3",version="0.1.0"} 1"#))
        // Calibrated by +94 dB: weighted levels are dB SPL, rms_dbfs stays dBFS.
        #expect(body.contains(#"earshot_level_db{weighting="laf"} 64"#))
        #expect(body.contains(#"earshot_level_db{weighting="rms_dbfs"} -30"#), "\(body)")
        // Budgets are bucket edges: le="0.003" counts the 2 ms value, not the 4 ms one.
        #expect(body.contains(#"earshot_stage_latency_seconds_bucket{stage="dsp",le="0.003"} 1"#), "\(body)")
        #expect(body.contains(#"earshot_stage_latency_seconds_bucket{stage="dsp",le="0.0075"} 2"#))
        #expect(body.contains(#"earshot_stage_latency_seconds_bucket{stage="dsp",le="0.25"} 2"#))
    }

    @Test func labelValuesAreEscapedAndBadNamesRefused() throws {
        let body = try Self.renderedFull(labels: ["instance": "a\"b\\c\nd"])
        #expect(body.contains(#"earshot_frames_total{instance="a\"b\\c\nd"} 150"#), "\(body.prefix(600))")
        for bad in ["le", "stage", "__x", "9a", "a-b", ""] {
            var c = MetricsSink.Configuration(enabled: true, listen: "127.0.0.1:0")
            c.constantLabels = [bad: "v"]
            #expect(throws: SinkConfigError.self, "\(bad)") { try c.validate() }
        }
        var ok = MetricsSink.Configuration()
        ok.constantLabels = ["instance": "x", "device": "y", "site_2": "z"]
        try ok.validate()
    }

    /// The whole exposition (labels, escaping, histogram with budget edges, build info) passes
    /// `promtool check metrics`; a broken one does not (the check can fail).
    @Test(.enabled(if: promtoolEnabled, "promtool not installed (apt-get install prometheus)"))
    func promtoolAcceptsTheExposition() throws {
        let promtool = try #require(promtoolPath, "promtool missing under CI=true")
        func check(_ text: String) throws -> (Int32, String) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: promtool)
            p.arguments = ["check", "metrics"]
            let input = Pipe(), output = Pipe()
            p.standardInput = input
            p.standardOutput = output
            p.standardError = output
            try p.run()
            input.fileHandleForWriting.write(Data(text.utf8))
            try input.fileHandleForWriting.close()
            let out = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            return (p.terminationStatus, out)
        }
        let body = try Self.renderedFull(labels: ["instance": "kitchen \"1\"", "device": "hw:1"])
        let (status, out) = try check(body)
        // promtool exits 0 when the syntax is valid; lint findings (naming advice) print without failing it.
        #expect(status == 0, "promtool: \(out)")
        #expect(!out.contains("error"), "promtool: \(out)")
        // Control: a duplicated constant label is invalid exposition and promtool says so.
        let broken = body.replacingOccurrences(of: #"instance="kitchen \"1\"""#, with: #"instance="a",instance="b""#)
        let (badStatus, badOut) = try check(broken)
        #expect(badStatus != 0, "promtool accepted a duplicated label: \(badOut)")
    }
}
