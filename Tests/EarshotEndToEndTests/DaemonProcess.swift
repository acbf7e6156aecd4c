#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

// MARK: - Locating the binary

enum EarshotBinary {
    /// The package root, from this file's path (Tests/EarshotEndToEndTests/DaemonProcess.swift).
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `$EARSHOT_BIN`, else `earshot` next to the test bundle (walking up from the test executable to the
    /// `.build/<config>` directory), else `<package>/.build/debug/earshot`.
    static func locate() -> String? {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["EARSHOT_BIN"], !env.isEmpty {
            return fm.isExecutableFile(atPath: env) ? env : nil
        }
        var starts: [URL] = []
        if let exe = try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe") { starts.append(URL(fileURLWithPath: exe)) }
        if let arg0 = CommandLine.arguments.first, arg0.hasPrefix("/") { starts.append(URL(fileURLWithPath: arg0)) }
        starts.append(Bundle.main.bundleURL)
        for start in starts {
            var dir = start.deletingLastPathComponent()
            for _ in 0..<6 {
                let candidate = dir.appendingPathComponent("earshot").path
                var isDir: ObjCBool = false
                if fm.fileExists(atPath: candidate, isDirectory: &isDir), !isDir.boolValue, fm.isExecutableFile(atPath: candidate) {
                    return candidate
                }
                if dir.path == "/" { break }
                dir = dir.deletingLastPathComponent()
            }
        }
        let fallback = packageRoot.appendingPathComponent(".build/debug/earshot").path
        return fm.isExecutableFile(atPath: fallback) ? fallback : nil
    }

    /// The binary, or a recorded failure telling how to build it.
    static func require(sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        try #require(
            locate(),
            "earshot binary not found next to the test bundle (nor $EARSHOT_BIN): run `swift build` before `swift test`",
            sourceLocation: sourceLocation)
    }
}

/// A clean child environment: the test process's, minus everything that would change the daemon's behaviour.
func baseChildEnvironment() -> [String: String] {
    var env = ProcessInfo.processInfo.environment
    for k in env.keys where k.hasPrefix("EARSHOT_") || k.hasPrefix("PULSE_") || k.hasPrefix("ALSA_") {
        env.removeValue(forKey: k)
    }
    for k in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "JOURNAL_STREAM"] {
        env.removeValue(forKey: k)
    }
    return env
}

// MARK: - The child process

/// A spawned process with stdout split into lines as they arrive, stderr collected, signals, and a bounded
/// wait. The child is SIGKILLed and reaped on deinit if still running.
final class DaemonProcess: @unchecked Sendable {
    enum Termination: Equatable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)
        var description: String {
            switch self {
            case .exited(let c): "exit \(c)"
            case .signaled(let s): "signal \(s)"
            }
        }
    }

    let pid: pid_t
    let arguments: [String]
    let startedAt = Date()
    private let lock = NSLock()
    private var _lines: [String] = []
    private var partial: [UInt8] = []
    private var _stderr: [UInt8] = []
    private var _termination: Termination?
    private var readersDone = 0
    private var lineTimes: [Double] = []

    /// Spawns `executable arguments…` with exactly `environment`.
    init(executable: String, arguments: [String], environment: [String: String]) throws {
        self.arguments = arguments
        var outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0]
        guard pipe(&outPipe) == 0, pipe(&errPipe) == 0 else {
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        for fd in outPipe + errPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var fa = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fa)
        defer { posix_spawn_file_actions_destroy(&fa) }
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&fa, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&fa, errPipe[1], 2)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var child: pid_t = 0
        let rc = posix_spawn(&child, executable, &fa, &attr, argv, envp)
        close(outPipe[1])
        close(errPipe[1])
        guard rc == 0 else {
            close(outPipe[0]); close(errPipe[0])
            throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EIO)
        }
        pid = child
        startReader(fd: outPipe[0], isStdout: true)
        startReader(fd: errPipe[0], isStdout: false)
    }

    /// Runs `earshot` with the given arguments.
    convenience init(earshot arguments: [String], environment: [String: String] = baseChildEnvironment()) throws {
        try self.init(executable: try EarshotBinary.require(), arguments: arguments, environment: environment)
    }

    private func startReader(fd: Int32, isStdout: Bool) {
        let t = Thread { [self] in
            var buf = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                lock.lock()
                if isStdout {
                    let now = Date().timeIntervalSince(startedAt)
                    var start = 0
                    for i in 0..<n where buf[i] == 0x0A {
                        partial.append(contentsOf: buf[start..<i])
                        _lines.append(String(decoding: partial, as: UTF8.self))
                        lineTimes.append(now)
                        partial.removeAll(keepingCapacity: true)
                        start = i + 1
                    }
                    partial.append(contentsOf: buf[start..<n])
                } else {
                    _stderr.append(contentsOf: buf[0..<n])
                }
                lock.unlock()
            }
            close(fd)
            lock.lock(); readersDone += 1; lock.unlock()
        }
        t.start()
    }

    /// Complete stdout lines so far.
    var lines: [String] { lock.lock(); defer { lock.unlock() }; return _lines }
    var lineCount: Int { lock.lock(); defer { lock.unlock() }; return _lines.count }
    /// Seconds since spawn at which each stdout line arrived.
    var lineArrivalTimes: [Double] { lock.lock(); defer { lock.unlock() }; return lineTimes }
    var stderr: String { lock.lock(); defer { lock.unlock() }; return String(decoding: _stderr, as: UTF8.self) }
    var stdout: String { lines.map { $0 + "\n" }.joined() }

    /// Sends `sig` to the child (no-op once reaped).
    func signal(_ sig: Int32) {
        lock.lock(); let done = _termination != nil; lock.unlock()
        if !done { _ = kill(pid, sig) }
    }

    /// Reaps the child if it has exited.
    private func poll() -> Termination? {
        lock.lock(); defer { lock.unlock() }
        if let t = _termination { return t }
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        guard r == pid else { return nil }
        let t: Termination = status & 0x7f == 0 ? .exited((status >> 8) & 0xff) : .signaled(status & 0x7f)
        _termination = t
        return t
    }

    var isRunning: Bool { poll() == nil }

    /// Waits up to `timeout` seconds for the child to exit; then also waits (≤ 1 s) for its pipes to drain.
    @discardableResult
    func wait(timeout: Double) -> Termination? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let t = poll() {
                let drain = Date().addingTimeInterval(1)
                while Date() < drain {
                    lock.lock(); let d = readersDone; lock.unlock()
                    if d == 2 { break }
                    usleep(2_000)
                }
                return t
            }
            if Date() >= deadline { return nil }
            usleep(5_000)
        }
    }

    /// Polls `condition` every 10 ms for up to `timeout` seconds.
    @discardableResult
    func wait(until timeout: Double, _ condition: (DaemonProcess) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition(self) { return true }
            usleep(10_000)
        }
        return condition(self)
    }

    /// SIGKILL and reap (used on cleanup).
    func killAndReap() {
        if poll() == nil {
            _ = kill(pid, SIGCONT)
            _ = kill(pid, SIGKILL)
            _ = wait(timeout: 5)
        }
    }

    deinit { killAndReap() }

    /// Runs `earshot arguments…` to completion (≤ `timeout` s; killed after).
    static func run(_ arguments: [String], environment: [String: String] = baseChildEnvironment(), timeout: Double = 30)
        throws -> (termination: Termination?, stdout: String, lines: [String], stderr: String)
    {
        let p = try DaemonProcess(earshot: arguments, environment: environment)
        let t = p.wait(timeout: timeout)
        if t == nil { p.killAndReap() }
        return (t, p.stdout, p.lines, p.stderr)
    }
}

// MARK: - NDJSON with numbers kept as text

/// A JSON value whose numbers keep their exact text (so values can be compared string for string).
indirect enum RawJSON: Equatable, CustomStringConvertible {
    case string(String)
    case number(String)
    case bool(Bool)
    case null
    case array([RawJSON])
    case object([String: RawJSON])

    var description: String {
        switch self {
        case .string(let s): "\"\(s)\""
        case .number(let n): n
        case .bool(let b): "\(b)"
        case .null: "null"
        case .array(let a): "[" + a.map(\.description).joined(separator: ",") + "]"
        case .object(let o): "{" + o.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",") + "}"
        }
    }

    var double: Double? { if case .number(let n) = self { Double(n) } else { nil } }
    var text: String? {
        switch self {
        case .number(let n): n
        case .string(let s): s
        default: nil
        }
    }
    var array: [RawJSON]? { if case .array(let a) = self { a } else { nil } }
    var doubles: [Double]? { array?.compactMap(\.double) }
    subscript(key: String) -> RawJSON? { if case .object(let o) = self { o[key] } else { nil } }
    var keys: Set<String> { if case .object(let o) = self { Set(o.keys) } else { [] } }

    struct ParseError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    static func parse(_ text: String) throws -> RawJSON {
        let b = Array(text.utf8)
        var i = 0
        func ws() { while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 } }
        func fail(_ m: String) -> ParseError { ParseError(message: "\(m) at \(i) in \(text.prefix(200))") }
        func value() throws -> RawJSON {
            ws()
            guard i < b.count else { throw fail("unexpected end") }
            switch b[i] {
            case 0x7B:  // {
                i += 1
                var o: [String: RawJSON] = [:]
                ws()
                if i < b.count, b[i] == 0x7D { i += 1; return .object(o) }
                while true {
                    ws()
                    guard case .string(let k) = try value() else { throw fail("key") }
                    ws()
                    guard i < b.count, b[i] == 0x3A else { throw fail("colon") }
                    i += 1
                    o[k] = try value()
                    ws()
                    guard i < b.count else { throw fail("unterminated object") }
                    if b[i] == 0x2C { i += 1; continue }
                    if b[i] == 0x7D { i += 1; return .object(o) }
                    throw fail("object separator")
                }
            case 0x5B:  // [
                i += 1
                var a: [RawJSON] = []
                ws()
                if i < b.count, b[i] == 0x5D { i += 1; return .array(a) }
                while true {
                    a.append(try value())
                    ws()
                    guard i < b.count else { throw fail("unterminated array") }
                    if b[i] == 0x2C { i += 1; continue }
                    if b[i] == 0x5D { i += 1; return .array(a) }
                    throw fail("array separator")
                }
            case 0x22:  // "
                i += 1
                var s: [UInt8] = []
                while i < b.count, b[i] != 0x22 {
                    if b[i] == 0x5C, i + 1 < b.count { s.append(b[i + 1]); i += 2; continue }
                    s.append(b[i]); i += 1
                }
                guard i < b.count else { throw fail("unterminated string") }
                i += 1
                return .string(String(decoding: s, as: UTF8.self))
            case 0x74: i += 4; return .bool(true)
            case 0x66: i += 5; return .bool(false)
            case 0x6E: i += 4; return .null
            default:
                let start = i
                while i < b.count, b[i] == 0x2D || b[i] == 0x2B || b[i] == 0x2E || b[i] == 0x65 || b[i] == 0x45 || (b[i] >= 0x30 && b[i] <= 0x39) {
                    i += 1
                }
                guard i > start else { throw fail("unexpected character") }
                return .number(String(decoding: b[start..<i], as: UTF8.self))
            }
        }
        let v = try value()
        ws()
        guard i == b.count else { throw fail("trailing characters") }
        return v
    }
}

/// Parsed NDJSON output: frames and onset lines.
struct NDJSONOutput {
    var frames: [RawJSON] = []
    var onsets: [RawJSON] = []
    var other: [RawJSON] = []

    init(lines: [String]) throws {
        for line in lines where !line.isEmpty {
            let v = try RawJSON.parse(line)
            switch v["type"]?.text {
            case "frame": frames.append(v)
            case "onset": onsets.append(v)
            default: other.append(v)
            }
        }
    }
}

// MARK: - Audio files

enum TestAudio {
    /// Deterministic generator.
    struct LCG {
        var x: UInt64
        mutating func next() -> Double {
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Double(x >> 11) / Double(1 << 53) * 2 - 1
        }
    }

    /// Tones (440 Hz, 3 kHz with a slow tremolo), clicks every 0.37 s and low noise: exercises levels,
    /// spectra and onsets.
    static func tonesAndClicks(seconds: Double, rate: Int = 48_000, seed: UInt64 = 7) -> [Float] {
        var g = LCG(x: seed)
        let n = Int(seconds * Double(rate))
        var out = [Float](repeating: 0, count: n)
        let clickEvery = Int(0.37 * Double(rate))
        for i in 0..<n {
            let t = Double(i) / Double(rate)
            var v = 0.25 * sin(2 * .pi * 440 * t) + 0.08 * (1 + 0.5 * sin(2 * .pi * 1.5 * t)) * sin(2 * .pi * 3000 * t)
            v += 0.003 * g.next()
            let k = i % clickEvery
            if i >= clickEvery / 2, k < 96 { v += 0.6 * exp(-Double(k) / 20) * g.next() }
            out[i] = Float(max(-0.99, min(0.99, v)))
        }
        return out
    }

    static func quantize16(_ x: [Float]) -> [Int16] {
        x.map { Int16(clamping: Int(($0 * 32768).rounded())) }
    }

    /// A RIFF/WAVE file from raw parts (any format tag).
    static func wav(formatTag: UInt16, channels: Int, rate: Int, bits: Int, blockAlign: Int? = nil, data: [UInt8], extraFmt: [UInt8] = []) -> Data {
        var d = Data()
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        let align = blockAlign ?? channels * bits / 8
        let fmtSize = 16 + extraFmt.count
        d.append(contentsOf: Array("RIFF".utf8)); u32(UInt32(4 + 8 + fmtSize + 8 + data.count)); d.append(contentsOf: Array("WAVE".utf8))
        d.append(contentsOf: Array("fmt ".utf8)); u32(UInt32(fmtSize)); u16(formatTag); u16(UInt16(channels)); u32(UInt32(rate))
        u32(UInt32(rate * align)); u16(UInt16(align)); u16(UInt16(bits))
        d.append(contentsOf: extraFmt)
        d.append(contentsOf: Array("data".utf8)); u32(UInt32(data.count))
        d.append(contentsOf: data)
        return d
    }

    static func bytes16(_ s: [Int16]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(s.count * 2)
        for v in s { let u = UInt16(bitPattern: v); out.append(UInt8(u & 0xFF)); out.append(UInt8(u >> 8)) }
        return out
    }

    static func bytesFloat(_ s: [Float]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(s.count * 4)
        for v in s { let u = v.bitPattern; for k in 0..<4 { out.append(UInt8((u >> (8 * k)) & 0xFF)) } }
        return out
    }

    static func bytes24(_ s: [Int32]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(s.count * 3)
        for v in s { let u = UInt32(bitPattern: v); for k in 0..<3 { out.append(UInt8((u >> (8 * k)) & 0xFF)) } }
        return out
    }
}

func makeTemporaryDirectory(_ prefix: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    guard !s.isEmpty else { return .nan }
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// Least-squares slope of y against x.
func slope(_ xs: [Double], _ ys: [Double]) -> Double {
    let mx = xs.reduce(0, +) / Double(xs.count), my = ys.reduce(0, +) / Double(ys.count)
    var sxy = 0.0, sxx = 0.0
    for (x, y) in zip(xs, ys) { sxy += (x - mx) * (y - my); sxx += (x - mx) * (x - mx) }
    return sxy / sxx
}
