#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import Testing

/// A daemon on a paced FIFO device (any looping signal) with a socket in a temporary directory.
final class PublishingRig {
    let dir: URL
    let device: PacedFIFODevice
    let config: URL
    let socketPath: String
    private(set) var daemon: DaemonProcess?

    /// - Parameter channels: interleaved float32 channels in `samples` (`capture.channels`).
    init(_ name: String, samples: [Float] = serviceTestSignal(), extraYAML: String = "", socketYAML: String = "",
         pace: Double = 1, channels: Int = 1) throws {
        dir = try makeTemporaryDirectory("earshot-pub-\(name)")
        device = try PacedFIFODevice(directory: dir, samples: samples, pace: pace, channels: channels)
        socketPath = dir.appendingPathComponent("earshot.sock").path
        config = dir.appendingPathComponent("earshot.yaml")
        try """
            capture:
              device: \(device.pcmName)
              format: FLOAT_LE
              channels: \(channels)
            socket:
              path: \(socketPath)
            \(socketYAML.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
            budgets:
              end_to_end_ms: null
            \(extraYAML)
            """.write(to: config, atomically: true, encoding: .utf8)
    }

    /// Starts `earshot run` and waits (≤ 15 s) for the socket and the first frames.
    func start(environment extra: [String: String] = [:], sourceLocation: SourceLocation = #_sourceLocation) throws -> DaemonProcess {
        var env = baseChildEnvironment()
        for (k, v) in device.environment { env[k] = v }
        for (k, v) in extra { env[k] = v }
        let d = try DaemonProcess(earshot: ["run", "--config", config.path], environment: env)
        daemon = d
        let up = d.wait(until: 15) { $0.stderr.contains("ready: frames are flowing") && FileManager.default.fileExists(atPath: socketPath) }
        try #require(up, "daemon did not come up; stderr: \(d.stderr)", sourceLocation: sourceLocation)
        return d
    }

    func cleanup() {
        daemon?.killAndReap()
        device.stop()
        try? FileManager.default.removeItem(at: dir)
    }
}

/// Connects a blocking `AF_UNIX` stream socket to `path`; returns the fd or -1.
func connectUnix(_ path: String) -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return -1 }
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &addr.sun_path) { p in
        _ = path.utf8CString.withUnsafeBytes { memcpy(p.baseAddress!, $0.baseAddress!, min(p.count - 1, $0.count)) }
    }
    let r = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    if r != 0 { close(fd); return -1 }
    return fd
}

/// Writes all of `bytes` (blocking, no SIGPIPE). Returns false on an error (EPIPE, ECONNRESET, …).
@discardableResult
func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    bytes.withUnsafeBytes { raw in
        var off = 0
        while off < raw.count {
            let n = send(fd, raw.baseAddress! + off, raw.count - off, Int32(MSG_NOSIGNAL))
            if n < 0 { if errno == EINTR { continue }; return false }
            off += n
        }
        return true
    }
}

/// Parses one NDJSON line into an object (nil if it is not a JSON object).
func jsonObject(_ line: some Collection<UInt8>) -> [String: Any]? {
    try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any]
}

func int(_ v: Any?) -> Int? { (v as? NSNumber)?.intValue }
func dbl(_ v: Any?) -> Double? { (v as? NSNumber)?.doubleValue }

/// What one subscriber received, checked line by line as it arrives (cheaply, on the reader thread).
final class StreamLog: @unchecked Sendable {
    let name: String
    /// Keep every non-frame message (rolling, stats, replies, …) and `(seq, t, laf)` of every frame.
    let keepDetail: Bool
    private let lock = NSLock()
    private var _lines = 0
    private var _invalid: [String] = []
    private var _types: [String: Int] = [:]
    private var _firstSeq: Int?
    private var _lastSeq: Int?
    private var _gaps: [(after: Int, got: Int)] = []
    private var _frames = 0
    private var _discontinuityFrames = 0
    private var _messages: [[String: Any]] = []
    private var _frameRecords: [(seq: Int, t: Double, laf: Double)] = []
    private var _eof = false
    private var _eofAt: Date?

    /// Parse every line with JSONSerialization (false: a cheap structural check of frame lines — starts with
    /// `{"type":"frame"`, ends with `}`, `seq` read by scanning — to keep the test process light when it reads
    /// many clients; other lines are still parsed).
    let fullJSON: Bool

    init(name: String, keepDetail: Bool = false, fullJSON: Bool = true) {
        self.name = name; self.keepDetail = keepDetail; self.fullJSON = fullJSON
    }

    static let framePrefix = Array(#"{"type":"frame","seq":"#.utf8)
    static let discontinuityKey = Array(#""discontinuity":"#.utf8)

    private func contains(_ hay: ArraySlice<UInt8>, _ needle: [UInt8]) -> Bool {
        guard hay.count >= needle.count else { return false }
        var i = hay.startIndex
        let last = hay.endIndex - needle.count
        while i <= last {
            if hay[i] == needle[0], hay[i..<(i + needle.count)].elementsEqual(needle) { return true }
            i += 1
        }
        return false
    }

    func consume(_ line: ArraySlice<UInt8>) {
        if !fullJSON, !keepDetail, line.starts(with: Self.framePrefix), line.last == 0x7D {
            var seq = 0, i = line.startIndex + Self.framePrefix.count, digits = 0
            while i < line.endIndex, line[i] >= 0x30, line[i] <= 0x39 { seq = seq * 10 + Int(line[i] - 0x30); i += 1; digits += 1 }
            lock.lock(); defer { lock.unlock() }
            _lines += 1
            _types["frame", default: 0] += 1
            _frames += 1
            guard digits > 0, i < line.endIndex, line[i] == 0x2C else {
                if _invalid.count < 5 { _invalid.append(String(decoding: line.prefix(300), as: UTF8.self)) }
                return
            }
            if contains(line, Self.discontinuityKey) { _discontinuityFrames += 1 }
            if let last = _lastSeq, seq != last + 1 { if _gaps.count < 20 { _gaps.append((last, seq)) } }
            if _firstSeq == nil { _firstSeq = seq }
            _lastSeq = seq
            return
        }
        let obj = jsonObject(line)
        lock.lock(); defer { lock.unlock() }
        _lines += 1
        guard let obj, let type = obj["type"] as? String else {
            if _invalid.count < 5 { _invalid.append(String(decoding: line.prefix(300), as: UTF8.self)) }
            _types["<invalid>", default: 0] += 1
            return
        }
        _types[type, default: 0] += 1
        if type == "frame" {
            _frames += 1
            guard let seq = int(obj["seq"]) else {
                if _invalid.count < 5 { _invalid.append("frame without seq: " + String(decoding: line.prefix(300), as: UTF8.self)) }
                return
            }
            if obj["discontinuity"] != nil { _discontinuityFrames += 1 }
            if let last = _lastSeq, seq != last + 1 { if _gaps.count < 20 { _gaps.append((last, seq)) } }
            if _firstSeq == nil { _firstSeq = seq }
            _lastSeq = seq
            if keepDetail { _frameRecords.append((seq, dbl(obj["t"]) ?? .nan, dbl(obj["laf"]) ?? .nan)) }
        } else if keepDetail || type != "onset" {
            _messages.append(obj)
        }
    }

    func markEOF() { lock.lock(); if !_eof { _eof = true; _eofAt = Date() }; lock.unlock() }

    var lines: Int { lock.lock(); defer { lock.unlock() }; return _lines }
    var invalid: [String] { lock.lock(); defer { lock.unlock() }; return _invalid }
    var types: [String: Int] { lock.lock(); defer { lock.unlock() }; return _types }
    var firstSeq: Int? { lock.lock(); defer { lock.unlock() }; return _firstSeq }
    var lastSeq: Int? { lock.lock(); defer { lock.unlock() }; return _lastSeq }
    var gaps: [(after: Int, got: Int)] { lock.lock(); defer { lock.unlock() }; return _gaps }
    var frames: Int { lock.lock(); defer { lock.unlock() }; return _frames }
    var discontinuityFrames: Int { lock.lock(); defer { lock.unlock() }; return _discontinuityFrames }
    var messages: [[String: Any]] { lock.lock(); defer { lock.unlock() }; return _messages }
    var frameRecords: [(seq: Int, t: Double, laf: Double)] { lock.lock(); defer { lock.unlock() }; return _frameRecords }
    var eof: Bool { lock.lock(); defer { lock.unlock() }; return _eof }
    var eofAt: Date? { lock.lock(); defer { lock.unlock() }; return _eofAt }

    func messages(type: String) -> [[String: Any]] { messages.filter { $0["type"] as? String == type } }
    var stats: [[String: Any]] { messages(type: "stats") }

    /// A one-line summary for failure messages.
    var summary: String {
        "\(name): lines=\(lines) types=\(types) seq=\(firstSeq.map(String.init) ?? "-")…\(lastSeq.map(String.init) ?? "-") gaps=\(gaps.prefix(5)) invalid=\(invalid)"
    }
}

/// Reads a set of sockets with `poll(2)` on a few threads, feeding each socket's lines to its ``StreamLog``.
/// Sockets are never written by the reader.
final class PollingReaders: @unchecked Sendable {
    private let running = Atomic<Bool>(true)
    private let finished = Atomic<Int>(0)
    private let threadCount: Int

    /// - Parameters: fds and their logs (same order); `threads` reader threads share them round robin.
    init(fds: [Int32], logs: [StreamLog], threads: Int) {
        threadCount = min(threads, fds.count)
        for k in 0..<threadCount {
            let mine = stride(from: k, to: fds.count, by: threadCount).map { (fds[$0], logs[$0]) }
            let t = Thread { [self] in readLoop(mine) }
            t.name = "pub-reader-\(k)"
            t.start()
        }
    }

    private func readLoop(_ clients: [(Int32, StreamLog)]) {
        var pending = [[UInt8]](repeating: [], count: clients.count)
        var open = [Bool](repeating: true, count: clients.count)
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        var fds = clients.map { pollfd(fd: $0.0, events: Int16(POLLIN), revents: 0) }
        while running.load(ordering: .acquiring), open.contains(true) {
            for i in fds.indices { fds[i].fd = open[i] ? clients[i].0 : -1; fds[i].revents = 0 }
            let r = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), 50) }
            if r <= 0 { continue }
            for i in fds.indices where open[i] && fds[i].revents != 0 {
                let n = buf.withUnsafeMutableBytes { recv(clients[i].0, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if n < 0 { if errno == EAGAIN || errno == EINTR { continue } }
                if n <= 0 { open[i] = false; clients[i].1.markEOF(); continue }
                var start = 0
                for j in 0..<n where buf[j] == 0x0A {
                    if pending[i].isEmpty {
                        clients[i].1.consume(buf[start..<j])
                    } else {
                        pending[i].append(contentsOf: buf[start..<j])
                        clients[i].1.consume(pending[i][...])
                        pending[i].removeAll(keepingCapacity: true)
                    }
                    start = j + 1
                }
                if start < n { pending[i].append(contentsOf: buf[start..<n]) }
            }
        }
        finished.add(1, ordering: .releasing)
    }

    /// Stops the threads and waits (≤ 2 s) for them.
    func stop() {
        running.store(false, ordering: .releasing)
        let deadline = Date().addingTimeInterval(2)
        while finished.load(ordering: .acquiring) < threadCount, Date() < deadline { usleep(5_000) }
    }
}

/// Polls `condition` every 20 ms for up to `timeout` seconds.
@discardableResult
func waitFor(_ timeout: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        usleep(20_000)
    }
    return condition()
}

/// Open file descriptors of process `pid` (entries of `/proc/<pid>/fd`).
func openFDCount(_ pid: pid_t) -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
}

/// `python3` on `$PATH`, if any.
func findExecutable(_ name: String) -> String? {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let p = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    return nil
}

/// A python3 that can import `module`: the one on `$PATH` first, then Debian's `/usr/bin/python3` (where
/// `.ci/run` installs python3-pil & co. — a pyenv or venv first on `$PATH` may not have them).
func findPython(with module: String) -> String? {
    for py in [findExecutable("python3"), "/usr/bin/python3"].compactMap({ $0 })
    where FileManager.default.isExecutableFile(atPath: py) {
        if let p = try? DaemonProcess(executable: py, arguments: ["-c", "import \(module)"], environment: baseChildEnvironment()),
           p.wait(timeout: 20) == .exited(0) { return py }
    }
    return nil
}

/// python3 with numpy is installed (the example client needs it).
let pythonNumpyAvailable: Bool = {
    guard let py = findExecutable("python3"),
          let p = try? DaemonProcess(executable: py, arguments: ["-c", "import numpy"], environment: baseChildEnvironment())
    else { return false }
    return p.wait(timeout: 20) == .exited(0)
}()

/// The example-client test must run (and fail without python3/numpy) under CI=true; elsewhere it is skipped.
let pythonExampleEnabled = pythonNumpyAvailable || ProcessInfo.processInfo.environment["CI"] == "true"

// MARK: - Signals

/// `quiet` s of noise at `noiseDBFS` (RMS), `burst` s of a 1 kHz sine at `toneDBFS` (RMS), `quiet` s of noise.
func burstSignal(quiet: Double = 2, burst: Double = 2, noiseDBFS: Double = -50, toneDBFS: Double = -10, rate: Int = 48_000) -> [Float] {
    var g = TestAudio.LCG(x: 99)
    let q = Int(quiet * Double(rate)), b = Int(burst * Double(rate))
    let noiseAmp = pow(10, noiseDBFS / 20) * sqrt(3.0)  // uniform in [-a, a] has RMS a/√3
    let toneAmp = pow(10, toneDBFS / 20) * sqrt(2.0)
    return (0..<(2 * q + b)).map { i in
        if i >= q && i < q + b { return Float(toneAmp * sin(2 * .pi * 1000 * Double(i - q) / Double(rate))) }
        return Float(noiseAmp * g.next())
    }
}

/// The number after `key=` in a `key=value …` log line.
func logValue(_ line: some StringProtocol, _ key: String) -> Double? {
    line.split(separator: " ").first { $0.hasPrefix(key + "=") }.flatMap { Double($0.dropFirst(key.count + 1)) }
}
