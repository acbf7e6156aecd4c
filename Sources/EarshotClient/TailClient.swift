#if canImport(Glibc)
import Glibc
#endif
import EarshotProtocol
import EarshotRealtime

/// `earshot tail`: connects to the daemon's socket, subscribes, and prints the stream (raw NDJSON, or a
/// readable live view with a level bar).
public enum TailClient {
    /// Connecting to the socket failed; the description names the path and the errno text.
    public struct ConnectError: Error, CustomStringConvertible, Sendable {
        public var path: String
        public var errnoText: String
        public init(path: String, errnoText: String) { self.path = path; self.errnoText = errnoText }
        public var description: String {
            "cannot connect to \(path): \(errnoText) (is the daemon running?)"
        }
    }

    /// Connects, subscribes to `streams` and prints messages until `maxSeconds` (or forever). When the daemon
    /// goes away (restart, crash) it says so on stderr and reconnects with backoff (0.25 s doubling to 5 s),
    /// subscribing again; the next `hello` is printed as usual.
    /// - Parameters:
    ///   - socketPath: the daemon's socket.
    ///   - streams: stream names (`frame`, `onset`, `rolling`, `alert`, `status`, `stats`).
    ///   - every: frame decimation (`every: N`).
    ///   - json: print the raw NDJSON lines instead of the live view.
    ///   - maxSeconds: stop after this long (nil: until interrupted).
    ///   - reconnect: false: return 0 when the connection ends instead of reconnecting (`earshot demo`).
    ///   - output: receives each printed line (without newline).
    /// - Returns: 0 after `maxSeconds`; 64 (EX_USAGE) for an unknown stream name and 69 (EX_UNAVAILABLE) when
    ///   the socket cannot be reached at the start, after printing a clear message to stderr.
    /// - Throws: nothing today (connection errors are reported through the return code and stderr).
    public static func run(
        socketPath: String, streams: [String], every: Int, json: Bool, maxSeconds: Double?, reconnect: Bool = true,
        output: (String) -> Void = { print($0) }
    ) throws -> Int32 {
        var kinds: [StreamKind] = []
        switch StreamKind.parseList(streams.joined(separator: ",")) {
        case .success(let k): kinds = k
        case .failure(let e):
            printError("earshot tail: \(e.message)")
            return 64
        }
        let connection = StreamConnection(path: socketPath, commands: [.subscribe(kinds, every: max(1, every))])
        // At most ~30 years; NaN means none (no trap on any value).
        let deadline = maxSeconds.flatMap { $0.isNaN ? nil : Clock.monotonicNanoseconds() + Int64(min(max($0, 0), 1e9) * 1e9) }
        var view = LiveView()
        var readable = false
        while true {
            for event in connection.service(readable: readable) {
                switch event {
                case .connected(let reconnect):
                    if reconnect { printError("earshot tail: reconnected to \(socketPath)") }
                case .disconnected(let reason, let retryIn):
                    // The first attempt failing is an error (exit 69); later, the daemon is restarting.
                    if connection.connections == 0 {
                        printError("earshot tail: \(TailClient.ConnectError(path: socketPath, errnoText: reason))")
                        return 69
                    }
                    if !reconnect { return 0 }
                    if connection.failures == 1 {
                        printError("earshot tail: connection to \(socketPath) lost (\(reason)); reconnecting (retry in \(LiveView.format(retryIn, 2)) s, backing off to 5 s)")
                    }
                case .line(let line):
                    if json {
                        output(TerminalText.safe(line))
                    } else if let text = view.render(line[...]) {
                        output(text)
                    }
                }
            }
            var timeout = connection.pollTimeoutMs()
            if let deadline {
                let left = deadline - Clock.monotonicNanoseconds()
                if left <= 0 { return 0 }
                let ms = Int32(min(left / 1_000_000 + 1, 1000))
                timeout = timeout < 0 ? ms : min(timeout, ms)
            }
            readable = false
            if connection.fd >= 0 {
                var p = pollfd(fd: connection.fd, events: Int16(POLLIN), revents: 0)
                let r = poll(&p, 1, timeout)
                if r < 0 && errno != EINTR { return 0 }
                readable = r > 0
            } else if timeout > 0 {
                usleep(UInt32(min(timeout, 1000)) * 1000)
            }
        }
    }

    static func printError(_ text: String) {
        let message = Array("\(text)\n".utf8)
        _ = message.withUnsafeBufferPointer { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }

    static func connect(_ path: String) throws(ConnectError) -> Int32 {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity else {
            throw ConnectError(path: path, errnoText: "path is empty or longer than \(capacity - 1) bytes")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ConnectError(path: path, errnoText: String(cString: strerror(errno))) }
        let len = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1)
        let rc = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, len) }
        }
        if rc != 0 {
            let text = String(cString: strerror(errno))
            close(fd)
            throw ConnectError(path: path, errnoText: text)
        }
        return fd
    }

    /// Renders protocol messages as one readable line each.
    public struct LiveView {
        var levelUnit = "dBFS"

        public init() {}

        public mutating func render(_ line: ArraySlice<UInt8>) -> String? {
            guard let parsed = try? ProtocolJSON.parse(line), let type = parsed["type"]?.stringValue else {
                return TerminalText.safe(line)
            }
            let msg = TerminalText.safe(parsed)
            let t = msg["t"]?.doubleValue
            let time = t.map(Self.clock) ?? "            "
            switch type {
            case HelloMessage.type:
                levelUnit = msg["level_unit"]?.stringValue ?? levelUnit
                let sr = msg["sample_rate"]?.intValue ?? 0, hop = msg["hop"]?.intValue ?? 0
                return "connected: earshot \(msg["daemon_version"]?.stringValue ?? "?") device=\(msg["device"]?.stringValue ?? "?") "
                    + "\(sr) Hz hop=\(hop) n_mels=\(msg["n_mels"]?.intValue ?? 0) level_unit=\(levelUnit)"
                    + (msg["health"]?.stringValue.map { " health=\($0)" } ?? "")
            case FrameMessage.type:
                let unit = msg["level_unit"]?.stringValue ?? levelUnit
                let (name, value): (String, Double?) =
                    if let v = msg["laf"]?.doubleValue { ("LAF", v) }
                    else if let v = msg["rms_dbfs"]?.doubleValue { ("RMS", v) }
                    else { ("---", nil) }
                let (lo, hi) = unit == "dBFS" || name == "RMS" ? (-90.0, 0.0) : (20.0, 110.0)
                let shownUnit = name == "RMS" ? "dBFS" : unit
                let text = value.map { Self.pad(Self.format($0, 1), 6) } ?? "   n/a"
                var s = "\(time)  \(name) \(text) \(shownUnit)  \(Self.bar(value, lo: lo, hi: hi, width: 30))"
                if msg["discontinuity"] == .bool(true) {
                    s += "  (gap \(msg["gap_samples"]?.intValue ?? 0) samples, \(msg["cause"]?.stringValue ?? "?"))"
                }
                return s
            case OnsetMessage.type:
                return "\(time)  * onset strength=\(Self.format(msg["strength"]?.doubleValue ?? 0, 2)) delay=\(Self.format(msg["delay_ms"]?.doubleValue ?? 0, 1)) ms"
            case AlertMessage.type:
                let kind = msg["alert"]?.stringValue ?? "?"
                let state = msg["state"]?.stringValue.map { " \($0)" } ?? ""
                return "\(time)  ! alert \(kind)\(state) \(Self.rest(msg, skipping: ["type", "alert", "state", "t"]))"
            case HealthMessage.type:
                let kind = msg["kind"]?.stringValue ?? "?", state = msg["state"]?.stringValue ?? "?"
                return "\(time)  ! health \(kind) \(state) \(Self.rest(msg, skipping: ["type", "kind", "state", "t"]))"
            case StatusMessage.type:
                return "\(time)  # status \(msg["event"]?.stringValue ?? "?") \(Self.rest(msg, skipping: ["type", "event", "t"]))"
            case RollingMessage.type:
                let w = msg["window_s"]?.doubleValue ?? 0
                return "\(time)  ~ \(Self.format(w, 0)) s  Leq \(Self.format(msg["leq"]?.doubleValue ?? .nan, 1))  "
                    + "Lmax \(Self.format(msg["lmax"]?.doubleValue ?? .nan, 1))  L90 \(Self.format(msg["l90"]?.doubleValue ?? .nan, 1))  "
                    + "onsets \(msg["onsets"]?.intValue ?? 0)"
            case DroppedMessage.type:
                return "             (dropped \(msg["count"]?.intValue ?? 0) \(msg["stream"]?.stringValue ?? "") messages: reading too slowly)"
            case ErrorMessage.type:
                return "error \(msg["code"]?.stringValue ?? "?"): \(msg["message"]?.stringValue ?? "")"
            case StatsMessage.type:
                return "\(time)  stats  \(StatsText.summary(msg))"
            case SubscribedMessage.type, PongMessage.type, UnsubscribedMessage.type:
                return nil
            default:
                return TerminalText.safe(line)
            }
        }

        static func rest(_ msg: ProtocolJSON, skipping: Set<String>) -> String {
            guard case .object(let o) = msg else { return "" }
            return o.keys.sorted().filter { !skipping.contains($0) }.map { key in
                "\(key)=\(o[key]!.jsonText)"
            }.joined(separator: " ")
        }

        static func bar(_ value: Double?, lo: Double, hi: Double, width: Int) -> String {
            guard let value, value.isFinite else { return "|" + String(repeating: "·", count: width) + "|" }
            let f = min(1, max(0, (value - lo) / (hi - lo)))
            let n = Int((f * Double(width)).rounded())
            return "|" + String(repeating: "█", count: n) + String(repeating: "·", count: width - n) + "|"
        }

        public static func format(_ v: Double, _ decimals: Int) -> String {
            guard v.isFinite else { return "n/a" }
            var w = JSONWriter(capacity: 32)
            w.fixed(v, decimals: decimals)
            var s = String(decoding: w.bytes, as: UTF8.self)
            if decimals > 0 {
                let parts = s.split(separator: ".", omittingEmptySubsequences: false)
                let frac = parts.count > 1 ? String(parts[1]) : ""
                s = String(parts[0]) + "." + frac + String(repeating: "0", count: decimals - frac.count)
            }
            return s
        }

        static func pad(_ s: String, _ width: Int) -> String {
            s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
        }

        /// Local time of day `HH:MM:SS.mmm`.
        public static func clock(_ t: Double) -> String {
            guard t.isFinite, abs(t) < 1e11 else { return "--:--:--.---" }  // not a time (from the wire)
            var secs = time_t(t.rounded(.down))
            var tm = tm()
            localtime_r(&secs, &tm)
            let ms = Int((t - t.rounded(.down)) * 1000)
            func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
            let msText = ms < 10 ? "00\(ms)" : ms < 100 ? "0\(ms)" : "\(ms)"
            return "\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)).\(msText)"
        }
    }
}
