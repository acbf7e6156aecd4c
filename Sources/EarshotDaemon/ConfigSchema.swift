import EarshotCapture
import EarshotDSP
import EarshotSinks
import EarshotProtocol
// The table of every configuration key: its dotted path, its environment variable, how a raw value is
// parsed and range-checked onto `EarshotConfig`, and how the current value renders back (for diffs and
// `check-config` output). YAML, `EARSHOT_*` variables and `--set` all go through this one table, so they
// accept exactly the same values.

/// A value before typing: a YAML node's shape, or the text of an environment variable / `--set`.
struct RawValue {
    enum Shape {
        /// `quoted`: the YAML scalar was single- or double-quoted (so it is a string, never a number).
        case scalar(String, quoted: Bool)
        case sequence([(text: String, quoted: Bool, line: Int?)])
        case mapping
        case other(String)
    }
    var shape: Shape
    var line: Int?
    /// Text from an environment variable or `--set`: lists may be written `1,10,60` or `[1, 10, 60]`.
    var isText: Bool

    static func text(_ string: String) -> RawValue {
        RawValue(shape: .scalar(string, quoted: false), line: nil, isText: true)
    }
}

/// A problem with one value; the loader adds origin and key.
struct ValueProblem: Error {
    var code: ConfigError.Code
    var message: String
    /// Line of a list element, when more precise than the key's line.
    var line: Int? = nil

    static func type(_ expected: String, _ raw: RawValue) -> ValueProblem {
        ValueProblem(code: .wrongType, message: "expected \(expected), got \(describe(raw))")
    }
    static func range(_ message: String) -> ValueProblem {
        ValueProblem(code: .outOfRange, message: message)
    }
}

func describe(_ raw: RawValue) -> String {
    switch raw.shape {
    case .scalar(let s, let quoted):
        if quoted { return "the string \"\(quotable(s))\"" }
        if isNullText(s) { return "null" }
        return "\"\(quotable(s))\""
    case .sequence: return "a list"
    case .mapping: return "a mapping"
    case .other(let what): return what
    }
}

/// `s` for an error message: at most 80 characters, control characters escaped (`\n`, `\u{1B}`) as in
/// device names (``CaptureError/printable(_:)``).
func quotable(_ s: String) -> String {
    let scalars = s.unicodeScalars
    guard scalars.count > 80 else { return CaptureError.printable(s) }
    return CaptureError.printable(String(String.UnicodeScalarView(scalars.prefix(80)))) + "…"
}

func isNullText(_ s: String) -> Bool {
    s.isEmpty || s == "~" || s == "null" || s == "Null" || s == "NULL"
}

/// Formats a number the way a user writes it: `48000`, `0.85`, `-20`.
func formatNumber(_ value: Double) -> String {
    if value == value.rounded(), abs(value) < 1e15 { return String(Int(value)) }
    return String(value)
}

/// An inclusive or exclusive numeric bound pair used for range checks and their messages.
struct Bounds: Sendable {
    var min: Double?
    var max: Double?
    var minExclusive = false

    init(min: Double? = nil, max: Double? = nil, minExclusive: Bool = false) {
        self.min = min; self.max = max; self.minExclusive = minExclusive
    }
    /// A library's documented range.
    init(_ r: ClosedRange<Int>) { self.init(min: Double(r.lowerBound), max: Double(r.upperBound)) }
    init(_ r: ClosedRange<Int32>) { self.init(min: Double(r.lowerBound), max: Double(r.upperBound)) }
    init(_ r: ClosedRange<Double>, scale: Double = 1) { self.init(min: r.lowerBound * scale, max: r.upperBound * scale) }
    init(_ r: SinkRange) { self.init(min: r.lower, max: r.upper, minExclusive: r.lowerExclusive) }

    func check(_ v: Double) throws(ValueProblem) {
        let lowOK = min.map { minExclusive ? v > $0 : v >= $0 } ?? true
        let highOK = max.map { v <= $0 } ?? true
        if lowOK && highOK { return }
        let got = formatNumber(v)
        switch (min, max) {
        case (let lo?, let hi?) where !minExclusive:
            throw .range("\(got) is out of range: must be between \(formatNumber(lo)) and \(formatNumber(hi))")
        case (let lo?, let hi?):
            throw .range("\(got) is out of range: must be greater than \(formatNumber(lo)) and at most \(formatNumber(hi))")
        case (let lo?, nil):
            throw .range("\(got) is out of range: must be \(minExclusive ? "greater than" : "at least") \(formatNumber(lo))")
        case (nil, let hi?):
            throw .range("\(got) is out of range: must be at most \(formatNumber(hi))")
        case (nil, nil):
            return
        }
    }
}

// MARK: - Scalar parsing (strict, identical for YAML plain scalars and environment text)

func scalarText(_ raw: RawValue, expected: String) throws(ValueProblem) -> (String, quoted: Bool) {
    guard case .scalar(let s, let quoted) = raw.shape else { throw .type(expected, raw) }
    return (s, quoted)
}

func parseInt(_ raw: RawValue) throws(ValueProblem) -> Int {
    let (s, quoted) = try scalarText(raw, expected: "an integer")
    let body = s.hasPrefix("+") ? String(s.dropFirst()) : s
    guard !quoted, !isNullText(s), let v = Int(body) else { throw .type("an integer", raw) }
    return v
}

func parseDouble(_ raw: RawValue) throws(ValueProblem) -> Double {
    let (s, quoted) = try scalarText(raw, expected: "a number")
    let body = s.hasPrefix("+") ? String(s.dropFirst()) : s
    guard !quoted, !isNullText(s), !body.lowercased().hasPrefix("0x"), let v = Double(body), v.isFinite else {
        throw .type("a number", raw)
    }
    return v
}

func parseBool(_ raw: RawValue) throws(ValueProblem) -> Bool {
    let (s, quoted) = try scalarText(raw, expected: "true or false")
    if !quoted {
        switch s {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default: break
        }
    }
    throw .type("true or false", raw)
}

func parseString(_ raw: RawValue) throws(ValueProblem) -> String {
    let (s, quoted) = try scalarText(raw, expected: "a string")
    if !quoted && isNullText(s) {
        if raw.isText && !s.isEmpty {  // --set / environment: say how to pass the word itself
            throw ValueProblem(code: .wrongType, message: "expected a string, got null (for the string, quote it: \"\(s)\")")
        }
        throw .type("a string", raw)
    }
    try checkPrintable(s)
    return s
}

/// Configured strings end up in log lines, `status` messages, file names and ALSA/socket calls: a control
/// character (a newline forging a log line, a NUL truncating a path at bind) is refused.
func checkPrintable(_ s: String) throws(ValueProblem) {
    for (i, u) in s.unicodeScalars.enumerated() where u.properties.generalCategory == .control {
        let code = String(u.value, radix: 16, uppercase: true)
        throw .range("contains a control character (U+\(String(repeating: "0", count: max(0, 4 - code.count)) + code)) at character \(i + 1); configured strings must be printable")
    }
}

func isNull(_ raw: RawValue) -> Bool {
    if case .scalar(let s, false) = raw.shape, isNullText(s) { return true }
    return false
}

func parseDoubleList(_ raw: RawValue) throws(ValueProblem) -> [(Double, Int?)] {
    switch raw.shape {
    case .sequence(let items):
        var out: [(Double, Int?)] = []
        for item in items {
            let element = RawValue(shape: .scalar(item.text, quoted: item.quoted), line: item.line, isText: false)
            do throws(ValueProblem) {
                out.append((try parseDouble(element), item.line))
            } catch {
                throw ValueProblem(code: .wrongType, message: "expected a list of numbers, got \(describe(element)) in the list", line: item.line)
            }
        }
        return out
    case .scalar(let s, false) where raw.isText:
        var body = Substring(s.trimmingSpaces)
        if body.hasPrefix("[") && body.hasSuffix("]") { body = body.dropFirst().dropLast() }
        if body.trimmingSpaces.isEmpty { return [] }
        var out: [(Double, Int?)] = []
        for part in body.split(separator: ",", omittingEmptySubsequences: false) {
            let element = RawValue.text(String(part.trimmingSpaces))
            do throws(ValueProblem) {
                out.append((try parseDouble(element), nil))
            } catch {
                throw ValueProblem(code: .wrongType, message: "expected a list of numbers such as 1,10,60, got \(describe(element)) in the list")
            }
        }
        return out
    default:
        throw .type("a list of numbers", raw)
    }
}

/// A list of printable strings: a YAML sequence, or `a,b` / `[a, b]` from `--set` and the environment.
func parseStringList(_ raw: RawValue, expected: String) throws(ValueProblem) -> [(String, Int?)] {
    switch raw.shape {
    case .sequence(let items):
        var out: [(String, Int?)] = []
        for item in items {
            let element = RawValue(shape: .scalar(item.text, quoted: item.quoted), line: item.line, isText: false)
            do throws(ValueProblem) { out.append((try parseString(element), item.line)) } catch {
                throw ValueProblem(code: error.code, message: "\(error.message) in the list", line: item.line)
            }
        }
        return out
    case .scalar(let s, false) where raw.isText:
        var body = Substring(s.trimmingSpaces)
        if body.hasPrefix("[") && body.hasSuffix("]") { body = body.dropFirst().dropLast() }
        if body.trimmingSpaces.isEmpty { return [] }
        var out: [(String, Int?)] = []
        for part in body.split(separator: ",", omittingEmptySubsequences: false) {
            out.append((try parseString(RawValue.text(String(part.trimmingSpaces))), nil))
        }
        return out
    default:
        throw .type(expected, raw)
    }
}

extension StringProtocol {
    var trimmingSpaces: Substring {
        let s = self[...]
        guard let first = s.firstIndex(where: { !$0.isWhitespace }) else { return Substring() }
        let last = s.lastIndex(where: { !$0.isWhitespace })!
        return Substring(s[first...last])
    }
}

// MARK: - Keys

/// One configuration key.
struct ConfigKey: Sendable {
    /// Dotted snake_case path, e.g. `analysis.onset.delta`.
    let path: String
    /// Value kind for messages and docs: `integer`, `number`, `boolean`, `string`, `list`, one-of.
    let kind: String
    let apply: @Sendable (inout EarshotConfig, RawValue) throws(ValueProblem) -> Void
    let render: @Sendable (EarshotConfig) -> String
    /// The documented numeric range (nil: not a number, or unbounded both ways).
    var bounds: Bounds? = nil
    /// The key takes whole numbers.
    var integral = false
    /// Sets a number without any check (for tests that hand the libraries values the schema refuses).
    var setUnchecked: (@Sendable (inout EarshotConfig, Double) -> Void)? = nil

    /// `EARSHOT_` + the path upper-cased with dots as underscores.
    var environmentName: String {
        "EARSHOT_" + path.uppercased().replacingDots
    }
}

extension String {
    fileprivate var replacingDots: String { String(map { $0 == "." ? "_" : $0 }) }
}

typealias Path<T> = any WritableKeyPath<EarshotConfig, T> & Sendable

extension ConfigKey {
    static func int(_ path: String, _ kp: Path<Int>, _ bounds: Bounds,
                    check: (@Sendable (Int) throws(ValueProblem) -> Void)? = nil) -> ConfigKey {
        ConfigKey(path: path, kind: "integer", apply: { (c, raw) throws(ValueProblem) in
            let v = try parseInt(raw)
            try bounds.check(Double(v))
            try check?(v)
            c[keyPath: kp] = v
        }, render: { String($0[keyPath: kp]) }, bounds: bounds, integral: true,
        setUnchecked: { c, v in c[keyPath: kp] = Int(v) })
    }

    static func optionalInt(_ path: String, _ kp: Path<Int?>, _ bounds: Bounds) -> ConfigKey {
        ConfigKey(path: path, kind: "integer or null", apply: { (c, raw) throws(ValueProblem) in
            if isNull(raw) { c[keyPath: kp] = nil; return }
            let v: Int
            do throws(ValueProblem) { v = try parseInt(raw) } catch { throw .type("an integer or null", raw) }
            try bounds.check(Double(v))
            c[keyPath: kp] = v
        }, render: { $0[keyPath: kp].map { String($0) } ?? "null" }, bounds: bounds, integral: true,
        setUnchecked: { c, v in c[keyPath: kp] = Int(v) })
    }

    static func double(_ path: String, _ kp: Path<Double>, _ bounds: Bounds) -> ConfigKey {
        ConfigKey(path: path, kind: "number", apply: { (c, raw) throws(ValueProblem) in
            let v = try parseDouble(raw)
            try bounds.check(v)
            c[keyPath: kp] = v
        }, render: { formatNumber($0[keyPath: kp]) }, bounds: bounds,
        setUnchecked: { c, v in c[keyPath: kp] = v })
    }

    static func optionalDouble(_ path: String, _ kp: Path<Double?>, _ bounds: Bounds) -> ConfigKey {
        ConfigKey(path: path, kind: "number or null", apply: { (c, raw) throws(ValueProblem) in
            if isNull(raw) { c[keyPath: kp] = nil; return }
            let v: Double
            do throws(ValueProblem) { v = try parseDouble(raw) } catch { throw .type("a number or null", raw) }
            try bounds.check(v)
            c[keyPath: kp] = v
        }, render: { $0[keyPath: kp].map(formatNumber) ?? "null" }, bounds: bounds,
        setUnchecked: { c, v in c[keyPath: kp] = v })
    }

    static func bool(_ path: String, _ kp: Path<Bool>) -> ConfigKey {
        ConfigKey(path: path, kind: "boolean", apply: { (c, raw) throws(ValueProblem) in
            c[keyPath: kp] = try parseBool(raw)
        }, render: { String($0[keyPath: kp]) })
    }

    static func string(_ path: String, _ kp: Path<String>,
                       check: @escaping @Sendable (String) throws(ValueProblem) -> Void) -> ConfigKey {
        ConfigKey(path: path, kind: "string", apply: { (c, raw) throws(ValueProblem) in
            let v = try parseString(raw)
            try check(v)
            c[keyPath: kp] = v
        }, render: { yamlQuoted($0[keyPath: kp]) })
    }

    static func optionalString(_ path: String, _ kp: Path<String?>,
                               check: @escaping @Sendable (String) throws(ValueProblem) -> Void) -> ConfigKey {
        ConfigKey(path: path, kind: "string or null", apply: { (c, raw) throws(ValueProblem) in
            if isNull(raw) { c[keyPath: kp] = nil; return }
            let v: String
            do throws(ValueProblem) { v = try parseString(raw) } catch {
                if error.code == .outOfRange { throw error }  // a control character
                throw .type("a string or null", raw)
            }
            try check(v)
            c[keyPath: kp] = v
        }, render: { $0[keyPath: kp].map(yamlQuoted) ?? "null" })
    }

    static func choice<E: RawRepresentable & CaseIterable & Sendable>(
        _ path: String, _ kp: Path<E>
    ) -> ConfigKey where E.RawValue == String {
        let names = E.allCases.map(\.rawValue)
        let list = names.map { "\"\($0)\"" }.joined(separator: ", ")
        return ConfigKey(path: path, kind: "one of \(list)", apply: { (c, raw) throws(ValueProblem) in
            let s: String
            do throws(ValueProblem) { s = try parseString(raw) } catch {
                if error.code == .outOfRange { throw error }  // a control character
                throw .type("one of \(list)", raw)
            }
            guard let v = E(rawValue: s) else {
                throw .range("\"\(s)\" is not one of \(list)")
            }
            c[keyPath: kp] = v
        }, render: { yamlQuoted($0[keyPath: kp].rawValue) })
    }
}

func yamlQuoted(_ s: String) -> String {
    "\"" + s.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"") + "\""
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        for ch in self { if ch == target { out += replacement } else { out.append(ch) } }
        return out
    }
}

// MARK: - Value checks

func checkFFTSize(_ n: Int) throws(ValueProblem) {
    if let problem = AnalyzerConfig.fftSizeProblem(n) { throw .range(problem) }
}

func checkAbsolutePath(_ path: String) throws(ValueProblem) {
    guard path.hasPrefix("/") else { throw .range("\"\(path)\" must be an absolute path") }
    guard !path.hasSuffix("/") else { throw .range("\"\(path)\" names a directory, not a file") }
}

func checkSocketPath(_ path: String) throws(ValueProblem) {
    try checkAbsolutePath(path)
    // sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
    guard path.utf8.count <= 107 else {
        throw .range("\"\(path)\" is \(path.utf8.count) bytes long; a Unix socket path must be at most 107 bytes")
    }
}

func parseOctalMode(_ text: String) throws(ValueProblem) -> UInt32 {
    let digits = text.hasPrefix("0o") ? String(text.dropFirst(2)) : text
    guard (3...4).contains(digits.count), digits.allSatisfy({ ("0"..."7").contains($0) }),
        let v = UInt32(digits, radix: 8)
    else {
        throw .range("\"\(text)\" is not an octal file mode such as \"0660\"")
    }
    guard v <= 0o777 else { throw .range("\"\(text)\" sets special bits; only permission bits (at most 0777) are allowed") }
    return v
}

/// Splits `host:port` / `[v6]:port`; nil when malformed.
func splitListenAddress(_ s: String) -> (host: String, port: Int)? {
    let host: Substring
    let portText: Substring
    if s.hasPrefix("[") {
        guard let close = s.firstIndex(of: "]") else { return nil }
        host = s[s.index(after: s.startIndex)..<close]
        let rest = s[s.index(after: close)...]
        guard rest.hasPrefix(":") else { return nil }
        portText = rest.dropFirst()
    } else {
        guard let colon = s.lastIndex(of: ":") else { return nil }
        host = s[..<colon]
        portText = s[s.index(after: colon)...]
        if host.contains(":") { return nil }
    }
    guard !host.isEmpty, !host.contains(where: \.isWhitespace), let port = Int(portText), (1...65535).contains(port) else {
        return nil
    }
    return (String(host), port)
}

/// Whether `host` (from ``splitListenAddress(_:)``) is a loopback address: `localhost`, `127.0.0.0/8`, `::1`.
func isLoopbackHost(_ host: String) -> Bool {
    if host == "localhost" || host == "::1" { return true }
    let parts = host.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 4, parts[0] == "127" else { return false }
    return parts.allSatisfy { p in !p.isEmpty && p.count <= 3 && p.allSatisfy(\.isASCII) && p.allSatisfy(\.isNumber) && Int(p).map { $0 <= 255 } == true }
}

// MARK: - The table

enum ConfigSchema {
    static let keys: [ConfigKey] = [
        // capture
        .string("capture.device", \.capture.device) { (s) throws(ValueProblem) in
            if s.trimmingSpaces.isEmpty { throw .range("must not be empty") }
        },
        .int("capture.sample_rate", \.capture.sampleRate, Bounds(AnalyzerConfig.Limits.sampleRate)),
        .int("capture.channels", \.capture.channels, Bounds(CaptureConfig.Limits.channels)),
        .optionalInt("capture.channel", \.capture.channel, Bounds(min: 0, max: Double(CaptureConfig.Limits.channels.upperBound - 1))),
        .choice("capture.format", \.capture.format),
        .optionalInt("capture.period_frames", \.capture.periodFrames, Bounds(CaptureConfig.Limits.periodFrames)),
        .int("capture.buffer_periods", \.capture.bufferPeriods, Bounds(CaptureConfig.Limits.bufferPeriods)),
        .double("capture.ring_seconds", \.capture.ringSeconds, Bounds(EarshotConfig.DaemonLimits.ringSeconds)),
        .double("capture.max_backlog_ms", \.capture.maxBacklogMs, Bounds(CaptureConfig.Limits.maxBacklog, scale: 1000)),
        .int("capture.realtime_priority", \.capture.realtimePriority, Bounds(CaptureConfig.Limits.fifoPriority)),
        .bool("capture.mlock", \.capture.mlock),
        .double("capture.reconnect_initial_s", \.capture.reconnectInitialSeconds, Bounds(min: 0, max: CaptureConfig.Limits.reconnectInitialMax, minExclusive: true)),
        .double("capture.reconnect_max_s", \.capture.reconnectMaxSeconds, Bounds(min: 0, max: CaptureConfig.Limits.reconnectMaxMax, minExclusive: true)),
        // analysis
        .int("analysis.n_fft", \.analysis.nFFT, Bounds(AnalyzerConfig.Limits.nFFT), check: { (n) throws(ValueProblem) in try checkFFTSize(n) }),
        .int("analysis.hop", \.analysis.hop, Bounds(AnalyzerConfig.Limits.hop)),
        .int("analysis.n_mels", \.analysis.nMels, Bounds(AnalyzerConfig.Limits.nMels)),
        .double("analysis.fmin", \.analysis.fmin, Bounds(min: 0)),
        .double("analysis.fmax", \.analysis.fmax, Bounds(min: 0, minExclusive: true)),
        .int("analysis.n_mfcc", \.analysis.nMFCC, Bounds(AnalyzerConfig.Limits.nMFCC)),
        .optionalDouble("analysis.logmel_floor_db", \.analysis.logmelFloorDB, Bounds(AnalyzerConfig.Limits.logMelFloorDb)),
        .double("analysis.rolloff", \.analysis.rolloff, Bounds(min: 0, max: AnalyzerConfig.Limits.rolloffMax, minExclusive: true)),
        .int("analysis.onset.pre_max_frames", \.analysis.onset.preMaxFrames, Bounds(AnalyzerConfig.Limits.preMaxFrames)),
        .int("analysis.onset.post_max_frames", \.analysis.onset.postMaxFrames, Bounds(AnalyzerConfig.Limits.postMaxFrames)),
        .int("analysis.onset.pre_avg_frames", \.analysis.onset.preAvgFrames, Bounds(AnalyzerConfig.Limits.preAvgFrames)),
        .double("analysis.onset.delta", \.analysis.onset.delta, Bounds(min: 0)),
        .int("analysis.onset.wait_frames", \.analysis.onset.waitFrames, Bounds(AnalyzerConfig.Limits.waitFrames)),
        .double("analysis.onset.mean_weight", \.analysis.onset.meanWeight, Bounds(AnalyzerConfig.Limits.meanWeight)),
        .choice("analysis.onset.function", \.analysis.onset.function),
        .int("analysis.onset.lag_frames", \.analysis.onset.lagFrames, Bounds(AnalyzerConfig.Limits.lagFrames)),
        .int("analysis.onset.max_filter_bands", \.analysis.onset.maxFilterBands, Bounds(AnalyzerConfig.Limits.maxFilterBands)),
        .double("analysis.onset.floor_margin_db", \.analysis.onset.floorMarginDb, Bounds(AnalyzerConfig.Limits.floorMarginDb)),
        .double("analysis.onset.floor_slew_db_per_s", \.analysis.onset.floorSlewDbPerSecond, Bounds(AnalyzerConfig.Limits.floorSlewDbPerSecond)),
        .double("analysis.onset.memory_decay_db_per_s", \.analysis.onset.memoryDecayDbPerSecond, Bounds(AnalyzerConfig.Limits.memoryDecayDbPerSecond)),
        .int("analysis.onset.top_bands", \.analysis.onset.topBands, Bounds(AnalyzerConfig.Limits.topBands)),
        // levels
        .optionalDouble("levels.calibration_db", \.levels.calibrationDB, Bounds(EarshotConfig.DaemonLimits.calibrationDB)),
        .optionalString("levels.calibration_date", \.levels.calibrationDate) { (s) throws(ValueProblem) in
            if CalibrationInfo.unixSeconds(s) == nil {
                throw .range("\"\(quotable(s))\" is not a UTC date: write YYYY-MM-DDTHH:MM:SSZ or YYYY-MM-DD")
            }
        },
        .optionalDouble("levels.calibration_reference_db", \.levels.calibrationReferenceDB, Bounds(EarshotConfig.DaemonLimits.calibrationReferenceDB)),
        .choice("levels.bands", \.levels.bands),
        // socket
        .string("socket.path", \.socket.path) { (s) throws(ValueProblem) in try checkSocketPath(s) },
        ConfigKey(path: "socket.mode", kind: "octal string", apply: { (c, raw) throws(ValueProblem) in
            let s: String
            do throws(ValueProblem) { s = try parseString(raw) } catch { throw .type("an octal mode string such as \"0660\"", raw) }
            c.socket.mode = try parseOctalMode(s)
        }, render: { yamlQuoted($0.socket.modeString) }),
        .optionalString("socket.group", \.socket.group) { (s) throws(ValueProblem) in
            if s.isEmpty || s.contains(where: { $0.isWhitespace || $0 == ":" }) {
                throw .range("\"\(s)\" is not a valid group name")
            }
        },
        .int("socket.max_clients", \.socket.maxClients, Bounds(SocketPublisher.Configuration.Limits.maxClients)),
        .int("socket.queue_messages", \.socket.queueMessages, Bounds(SocketPublisher.Configuration.Limits.queueMessages)),
        .double("socket.stall_limit_s", \.socket.stallLimitSeconds, Bounds(SocketPublisher.Configuration.Limits.stallLimitSeconds)),
        .int("socket.max_line_bytes", \.socket.maxLineBytes, Bounds(SocketPublisher.Configuration.Limits.maxLineBytes)),
        .int("socket.max_clients_per_uid", \.socket.maxClientsPerUID, Bounds(SocketPublisher.Configuration.Limits.maxClientsPerUID)),
        .double("socket.idle_timeout_s", \.socket.idleTimeoutSeconds, Bounds(SocketPublisher.Configuration.Limits.idleTimeoutSeconds)),
        .int("socket.queue_bytes", \.socket.queueBytes, Bounds(SocketPublisher.Configuration.Limits.queueBytes)),
        .int("socket.queue_bytes_total", \.socket.queueBytesTotal, Bounds(SocketPublisher.Configuration.Limits.queueBytesTotal)),
        // rolling
        ConfigKey(path: "rolling.windows_s", kind: "list of numbers, each 0.1–86400", apply: { (c, raw) throws(ValueProblem) in
            let items = try parseDoubleList(raw)
            guard !items.isEmpty else { throw .range("must list at least one window") }
            let limits = RollingAggregator.Configuration.Limits.self
            guard items.count <= limits.windowCount.upperBound else { throw .range("\(items.count) windows; at most \(limits.windowCount.upperBound) are allowed") }
            var previous = 0.0
            for (v, line) in items {
                guard limits.windowSeconds.contains(v) else {
                    throw ValueProblem(code: .outOfRange, message: "window \(formatNumber(v)) is out of range: must be at least 0.1 and at most 86400 seconds", line: line)
                }
                guard v > previous else {
                    throw ValueProblem(code: .outOfRange, message: "windows must be strictly increasing: \(formatNumber(v)) follows \(formatNumber(previous))", line: line)
                }
                previous = v
            }
            c.rolling.windowsSeconds = items.map(\.0)
        }, render: { "[" + $0.rolling.windowsSeconds.map(formatNumber).joined(separator: ", ") + "]" }),
        .double("rolling.backfill_s", \.socket.backfillSeconds, Bounds(SocketPublisher.Configuration.Limits.backfillSeconds)),
        // alerts
        .bool("alerts.level.enabled", \.alerts.level.enabled),
        .choice("alerts.level.weighting", \.alerts.level.weighting),
        .double("alerts.level.threshold_db", \.alerts.level.thresholdDB, Bounds(AlertSink.Configuration.Limits.thresholdDB)),
        .double("alerts.level.min_duration_ms", \.alerts.level.minDurationMs, Bounds(AlertSink.Configuration.Limits.durationMs)),
        .double("alerts.level.hysteresis_db", \.alerts.level.hysteresisDB, Bounds(AlertSink.Configuration.Limits.hysteresisDB)),
        .double("alerts.level.rearm_ms", \.alerts.level.rearmMs, Bounds(AlertSink.Configuration.Limits.durationMs)),
        .bool("alerts.onset.enabled", \.alerts.onset.enabled),
        .double("alerts.onset.min_strength", \.alerts.onset.minStrength, Bounds(AlertSink.Configuration.Limits.minStrength)),
        .double("alerts.onset.min_interval_ms", \.alerts.onset.minIntervalMs, Bounds(AlertSink.Configuration.Limits.durationMs)),
        .int("alerts.onset.max_per_minute", \.alerts.onset.maxPerMinute, Bounds(AlertSink.Configuration.Limits.maxPerMinute)),
        // metrics
        .bool("metrics.enabled", \.metrics.enabled),
        .optionalString("metrics.listen", \.metrics.listen) { (s) throws(ValueProblem) in
            guard splitListenAddress(s) != nil else {
                throw .range("\"\(s)\" is not HOST:PORT (e.g. 127.0.0.1:9464 or [::1]:9464, port 1-65535)")
            }
        },
        .bool("metrics.allow_remote", \.metrics.allowRemote),
        .optionalString("metrics.textfile", \.metrics.textfile) { (s) throws(ValueProblem) in try checkAbsolutePath(s) },
        .double("metrics.textfile_interval_s", \.metrics.textfileIntervalSeconds, Bounds(MetricsSink.Configuration.Limits.textfileIntervalSeconds)),
        ConfigKey(path: "metrics.labels", kind: "list of name=value", apply: { (c, raw) throws(ValueProblem) in
            var labels: [String: String] = [:]
            for (item, line) in try parseStringList(raw, expected: "a list of name=value labels") {
                guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                    throw ValueProblem(code: .wrongType, message: "\"\(item)\" is not name=value", line: line)
                }
                let name = String(item[..<eq]), value = String(item[item.index(after: eq)...])
                guard labels[name] == nil else {
                    throw ValueProblem(code: .outOfRange, message: "label \(name) is given twice", line: line)
                }
                labels[name] = value
            }
            c.metrics.labels = labels
        }, render: { c in
            "[" + c.metrics.labels.sorted { $0.key < $1.key }.map { yamlQuoted("\($0.key)=\($0.value)") }.joined(separator: ", ") + "]"
        }),
        // budgets
        .optionalDouble("budgets.capture_ms", \.budgets.captureMs, Bounds(LatencyTracker.Configuration.Limits.budgetMs)),
        .optionalDouble("budgets.dsp_ms", \.budgets.dspMs, Bounds(LatencyTracker.Configuration.Limits.budgetMs)),
        .optionalDouble("budgets.sinks_ms", \.budgets.sinksMs, Bounds(LatencyTracker.Configuration.Limits.budgetMs)),
        .optionalDouble("budgets.end_to_end_ms", \.budgets.endToEndMs, Bounds(LatencyTracker.Configuration.Limits.budgetMs)),
        .double("budgets.warn_interval_s", \.budgets.warnIntervalSeconds, Bounds(LatencyTracker.Configuration.Limits.warnIntervalSeconds)),
        // health
        .bool("health.enabled", \.health.enabled),
        .double("health.silence_s", \.health.silenceSeconds, Bounds(HealthMonitor.Configuration.Limits.silenceSeconds)),
        .double("health.dc_limit", \.health.dcLimit, Bounds(HealthMonitor.Configuration.Limits.dcLimit)),
        .double("health.dc_hold_s", \.health.dcHoldSeconds, Bounds(HealthMonitor.Configuration.Limits.seconds)),
        .double("health.floor_drop_db", \.health.floorDropDB, Bounds(HealthMonitor.Configuration.Limits.floorDropDB)),
        .double("health.floor_min_db", \.health.floorMinDB, Bounds(HealthMonitor.Configuration.Limits.floorMinDB)),
        .double("health.floor_hold_s", \.health.floorHoldSeconds, Bounds(HealthMonitor.Configuration.Limits.seconds)),
        .double("health.floor_baseline_s", \.health.floorBaselineSeconds, Bounds(HealthMonitor.Configuration.Limits.floorBaselineSeconds)),
        .double("health.clip_share", \.health.clipShare, Bounds(HealthMonitor.Configuration.Limits.clipShare)),
        .int("health.clip_run_samples", \.health.clipRunSamples, Bounds(HealthMonitor.Configuration.Limits.clipRunSamples)),
        .double("health.clip_hold_s", \.health.clipHoldSeconds, Bounds(HealthMonitor.Configuration.Limits.seconds)),
        .double("health.drift_limit_ppm", \.health.driftLimitPPM, Bounds(HealthMonitor.Configuration.Limits.driftLimitPPM)),
        .double("health.drift_window_s", \.health.driftWindowSeconds, Bounds(HealthMonitor.Configuration.Limits.driftWindowSeconds)),
        .double("health.no_data_s", \.health.noDataSeconds, Bounds(HealthMonitor.Configuration.Limits.seconds)),
        .double("health.clear_s", \.health.clearSeconds, Bounds(HealthMonitor.Configuration.Limits.seconds)),
        // mqtt (MQTTSink.Configuration; README "MQTT")
        .optionalString("mqtt.broker", \.mqtt.broker) { (s) throws(ValueProblem) in
            guard MQTTSink.Configuration.parseBroker(s) != nil else {
                throw .range("\"\(s)\" is not mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
            }
        },
        .optionalString("mqtt.node", \.mqtt.node) { (s) throws(ValueProblem) in
            guard MQTTSink.Configuration.isTopicText(s, allowSlash: false) else {
                throw .range("\"\(s)\" must be 1-128 bytes without /, +, #, spaces or control characters")
            }
        },
        .string("mqtt.topic_prefix", \.mqtt.topicPrefix) { (s) throws(ValueProblem) in
            guard MQTTSink.Configuration.isTopicText(s, allowSlash: true) else {
                throw .range("\"\(s)\" must be 1-128 bytes without +, #, spaces or control characters, not starting or ending with /")
            }
        },
        .int("mqtt.keepalive_s", \.mqtt.keepaliveSeconds, Bounds(MQTTSink.Configuration.Limits.keepaliveSeconds)),
        .int("mqtt.levels_every", \.mqtt.levelsEvery, Bounds(MQTTSink.Configuration.Limits.levelsEvery)),
        .double("mqtt.reconnect_initial_s", \.mqtt.reconnectInitialSeconds, Bounds(MQTTSink.Configuration.Limits.reconnectSeconds)),
        .double("mqtt.reconnect_max_s", \.mqtt.reconnectMaxSeconds, Bounds(MQTTSink.Configuration.Limits.reconnectSeconds)),
        .optionalString("mqtt.ca_file", \.mqtt.caFile) { (s) throws(ValueProblem) in try checkAbsolutePath(s) },
        .optionalString("mqtt.cert_file", \.mqtt.certFile) { (s) throws(ValueProblem) in try checkAbsolutePath(s) },
        .optionalString("mqtt.key_file", \.mqtt.keyFile) { (s) throws(ValueProblem) in try checkAbsolutePath(s) },
        .optionalString("mqtt.credentials_file", \.mqtt.credentialsFile) { (s) throws(ValueProblem) in try checkAbsolutePath(s) },
        .optionalString("mqtt.spool.directory", \.mqtt.spool.directory) { (s) throws(ValueProblem) in try checkAbsolutePath(s) },
        .double("mqtt.spool.max_mb", \.mqtt.spool.maxMB, Bounds(MQTTSink.Configuration.Limits.spoolMaxMB)),
        .double("mqtt.spool.max_age_s", \.mqtt.spool.maxAgeSeconds, Bounds(MQTTSink.Configuration.Limits.spoolMaxAgeSeconds)),
        .double("mqtt.spool.drain_per_s", \.mqtt.spool.drainPerSecond, Bounds(MQTTSink.Configuration.Limits.drainPerSecond)),
        .bool("mqtt.homeassistant.enabled", \.mqtt.homeassistant.enabled),
        .string("mqtt.homeassistant.prefix", \.mqtt.homeassistant.prefix) { (s) throws(ValueProblem) in
            guard MQTTSink.Configuration.isTopicText(s, allowSlash: true) else { throw .range("\"\(s)\" is not a valid topic prefix") }
        },
        // clips (ClipSink.Configuration; README "Event clips")
        .optionalString("clips.directory", \.clips.directory) { (s) throws(ValueProblem) in try checkAbsolutePath(s) },
        .double("clips.pre_roll_s", \.clips.preRollSeconds, Bounds(ClipSink.Configuration.Limits.rollSeconds)),
        .double("clips.post_roll_s", \.clips.postRollSeconds, Bounds(ClipSink.Configuration.Limits.rollSeconds)),
        .double("clips.max_clip_s", \.clips.maxClipSeconds, Bounds(ClipSink.Configuration.Limits.maxClipSeconds)),
        .int("clips.max_files", \.clips.maxFiles, Bounds(ClipSink.Configuration.Limits.maxFiles)),
        .double("clips.max_mb", \.clips.maxMB, Bounds(ClipSink.Configuration.Limits.maxMB)),
        .double("clips.max_age_s", \.clips.maxAgeSeconds, Bounds(ClipSink.Configuration.Limits.maxAgeSeconds)),
        ConfigKey(path: "clips.kinds", kind: "list of level, onset, health", apply: { (c, raw) throws(ValueProblem) in
            var kinds: [String] = []
            for (item, line) in try parseStringList(raw, expected: "a list of alert kinds (level, onset, health)") {
                guard ClipSink.Configuration.allKinds.contains(item) else {
                    throw ValueProblem(code: .outOfRange, message: "\"\(item)\" is not an alert kind: level, onset or health", line: line)
                }
                if !kinds.contains(item) { kinds.append(item) }
            }
            c.clips.kinds = kinds
        }, render: { c in "[" + c.clips.kinds.joined(separator: ", ") + "]" }),
        // logging
        .choice("logging.level", \.logging.level),
        // limits
        .int("limits.max_memory_mb", \.limits.maxMemoryMB, Bounds(EarshotConfig.DaemonLimits.maxMemoryMB)),
    ]

    static let byPath: [String: ConfigKey] = Dictionary(uniqueKeysWithValues: keys.map { ($0.path, $0) })
    static let byEnvironmentName: [String: ConfigKey] =
        Dictionary(uniqueKeysWithValues: keys.map { ($0.environmentName, $0) })

    /// Every section path (`capture`, `analysis.onset`, `alerts`, …).
    static let sections: Set<String> = {
        var out = Set<String>()
        for key in keys {
            var parts = key.path.split(separator: ".").dropLast()
            while !parts.isEmpty {
                out.insert(parts.joined(separator: "."))
                parts = parts.dropLast()
            }
        }
        return out
    }()

    /// Names valid directly under `section` ("" = the document root).
    static func children(of section: String) -> [String] {
        let prefix = section.isEmpty ? "" : section + "."
        var names: [String] = []
        for path in keys.map(\.path) + sections.sorted() where path.hasPrefix(prefix) {
            let rest = path.dropFirst(prefix.count)
            if !rest.contains("."), !names.contains(String(rest)) { names.append(String(rest)) }
        }
        return names
    }
}

// MARK: - Reference (config/earshot.yaml comments and the README table are checked against these)

extension ConfigKey {
    /// The documented range as config/earshot.yaml and README.md write it: `8000–192000`, `> 0, <= 3600`,
    /// `>= 0`; nil for keys without a numeric range.
    var rangeText: String? {
        guard let b = bounds else { return nil }
        let f = formatNumber
        switch (b.min, b.max) {
        case (let lo?, let hi?): return b.minExclusive ? "> \(f(lo)), <= \(f(hi))" : "\(f(lo))–\(f(hi))"
        case (let lo?, nil): return b.minExclusive ? "> \(f(lo))" : ">= \(f(lo))"
        case (nil, let hi?): return "<= \(f(hi))"
        case (nil, nil): return nil
        }
    }
}

extension ConfigSchema {
    /// The README's configuration table: every key, its default and its range (or kind).
    static func referenceTable() -> String {
        var lines = ["| key | default | allowed |", "| --- | --- | --- |"]
        for key in keys {
            let allowed = key.rangeText.map { "\(key.kind), \($0)" } ?? key.kind
            lines.append("| `\(key.path)` | `\(key.render(.defaults))` | \(allowed) |")
        }
        return lines.joined(separator: "\n")
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            current[j] = Swift.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
func closest(to word: String, among candidates: [String]) -> String? {
    guard word.count <= 64 else { return nil }  // no key is that long; keeps the edit distance cheap
    let lowered = word.lowercased()
    var best: (String, Int)?
    for c in candidates {
        let d = editDistance(lowered, c.lowercased())
        if best == nil || d < best!.1 { best = (c, d) }
    }
    guard let (name, d) = best else { return nil }
    return d <= Swift.max(2, word.count / 3) ? name : nil
}
