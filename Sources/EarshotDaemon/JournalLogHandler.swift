public import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A swift-log backend writing one line per message to stderr (or another descriptor), journald-aware.
///
/// - Under systemd (``Format/journal``): `<6>label: message key=value …` — the `<N>` prefix is the
///   syslog priority (`sd-daemon(3)`), so the journal keeps the level; no timestamp (journald adds it).
/// - Otherwise (``Format/plain``): `2026-11-23T14:00:00.123Z info label: message key=value …` (UTC).
///
/// Metadata (handler, metadata provider, then per-message; later wins) is sorted by key and rendered
/// `key=value`; values with spaces, quotes, `=` or control characters are double-quoted with escapes.
/// Newlines inside the message are escaped as `\n`, so one message is always one line.
///
/// Thread-safe: each line is built in memory and written with `write(2)` while holding a process-wide
/// lock, so lines from concurrent loggers never interleave. Not for the real-time threads.
public struct JournalLogHandler: LogHandler {
    /// Output style.
    public enum Format: Sendable, Equatable {
        /// `<N>` priority prefix, no timestamp.
        case journal
        /// ISO 8601 UTC timestamp and level name.
        case plain
    }

    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    /// The level: ``levelSwitch``'s while there is one (a reload changes it for every logger), else its own.
    public var logLevel: Logger.Level {
        get { levelSwitch?.level ?? ownLevel }
        set { ownLevel = newValue; levelSwitch = nil }
    }
    private var ownLevel: Logger.Level
    /// Shared level that `logging.level` sets (``EarshotConfig/applyLogging(to:)``); nil: ``logLevel`` is fixed.
    public var levelSwitch: LogLevelSwitch?
    public let label: String
    public let format: Format
    private let fileDescriptor: Int32

    /// - Parameters:
    ///   - label: the logger label, printed before each message.
    ///   - level: minimum level (from `logging.level`).
    ///   - format: `nil` detects it from `JOURNAL_STREAM` (see ``detectFormat(environment:fileDescriptor:)``).
    ///   - fileDescriptor: where lines go (stderr by default).
    ///   - metadataProvider: optional contextual metadata.
    ///   - levelSwitch: when given, the level follows it (and `level` is ignored).
    public init(label: String, level: Logger.Level = .info, format: Format? = nil,
                fileDescriptor: Int32 = STDERR_FILENO, metadataProvider: Logger.MetadataProvider? = nil,
                levelSwitch: LogLevelSwitch? = nil) {
        self.label = label
        self.ownLevel = level
        self.levelSwitch = levelSwitch
        self.fileDescriptor = fileDescriptor
        self.metadataProvider = metadataProvider
        self.format = format ?? Self.detectFormat(environment: currentEnvironment(), fileDescriptor: fileDescriptor)
    }

    /// `.journal` when `JOURNAL_STREAM` is set — and, when it is the `DEVICE:INODE` systemd writes,
    /// only if `fileDescriptor` still is that stream (so `earshot … 2>file` started from a unit writes
    /// plain lines to the file). `.plain` otherwise.
    public static func detectFormat(environment: [String: String], fileDescriptor: Int32 = STDERR_FILENO) -> Format {
        guard let stream = environment["JOURNAL_STREAM"], !stream.isEmpty else { return .plain }
        let parts = stream.split(separator: ":")
        guard parts.count == 2, let dev = UInt64(parts[0]), let ino = UInt64(parts[1]) else { return .journal }
        var st = stat()
        guard fstat(fileDescriptor, &st) == 0 else { return .journal }
        return UInt64(st.st_dev) == dev && UInt64(st.st_ino) == ino ? .journal : .plain
    }

    /// The syslog priority for a level: debug/trace 7, info 6, notice 5, warning 4, error 3, critical 2.
    public static func syslogPriority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        if let error = event.error, merged["error"] == nil { merged["error"] = "\(error)" }
        let line = Self.formatLine(level: event.level, label: label, message: event.message.description,
                                   metadata: merged, format: format, now: wallClock())
        writeLine(line)
    }

    /// Renders one line (with its trailing newline). `now` is (seconds, milliseconds) since the epoch.
    static func formatLine(level: Logger.Level, label: String, message: String, metadata: Logger.Metadata,
                           format: Format, now: (Int, Int)) -> String {
        var line: String
        switch format {
        case .journal:
            line = "<\(syslogPriority(level))>"
        case .plain:
            line = timestamp(seconds: now.0, milliseconds: now.1) + " " + level.rawValue + " "
        }
        line += label + ": " + escapeNewlines(message)
        for key in metadata.keys.sorted() {
            line += " " + key + "=" + renderValue(metadata[key]!)
        }
        line += "\n"
        return line
    }

    static func renderValue(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let s): return quoteIfNeeded(s)
        case .stringConvertible(let c): return quoteIfNeeded(c.description)
        case .array(let items): return quoteIfNeeded("[" + items.map { $0.description }.joined(separator: ",") + "]")
        case .dictionary(let dict):
            let inner = dict.keys.sorted().map { "\($0)=\(dict[$0]!.description)" }.joined(separator: ",")
            return quoteIfNeeded("{" + inner + "}")
        }
    }

    static func quoteIfNeeded(_ s: String) -> String {
        let needs = s.isEmpty || s.unicodeScalars.contains {
            $0 == " " || $0 == "\"" || $0 == "=" || $0 == "\\" || $0.value < 0x20 || $0.value == 0x7f
        }
        guard needs else { return s }
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    out += "\\x" + (scalar.value < 16 ? "0" : "") + String(scalar.value, radix: 16)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    static func escapeNewlines(_ s: String) -> String {
        guard s.contains(where: { $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) else { return s }
        var out = ""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    static func timestamp(seconds: Int, milliseconds: Int) -> String {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return pad(parts.tm_year + 1900, 4) + "-" + pad(parts.tm_mon + 1, 2) + "-" + pad(parts.tm_mday, 2)
            + "T" + pad(parts.tm_hour, 2) + ":" + pad(parts.tm_min, 2) + ":" + pad(parts.tm_sec, 2)
            + "." + pad(Int32(milliseconds), 3) + "Z"
    }

    private func wallClock() -> (Int, Int) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return (Int(ts.tv_sec), Int(ts.tv_nsec) / 1_000_000)
    }

    private func writeLine(_ line: String) {
        var bytes = Array(line.utf8)
        let fd = fileDescriptor
        writeLock.withLock { _ in
            bytes.withUnsafeMutableBytes { buf in
                var offset = 0
                while offset < buf.count {
                    let n = write(fd, buf.baseAddress! + offset, buf.count - offset)
                    if n > 0 {
                        offset += n
                    } else if n < 0 && (errno == EINTR || errno == EAGAIN) {
                        continue
                    } else {
                        return  // stderr closed or broken: drop the line, never crash the daemon
                    }
                }
            }
        }
    }
}

/// Serialises whole lines across every handler instance (they may share one descriptor).
private let writeLock = Mutex<Void>(())

func currentEnvironment() -> [String: String] {
    var env: [String: String] = [:]
    var p = environ
    while let entry = p.pointee {
        let s = String(cString: entry)
        if let eq = s.firstIndex(of: "=") {
            env[String(s[..<eq])] = String(s[s.index(after: eq)...])
        }
        p += 1
    }
    return env
}
