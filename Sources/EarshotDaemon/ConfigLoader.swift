import Foundation
import EarshotSinks
import Yams

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Checks that look at the running system rather than at the values alone.
public struct ConfigValidationOptions: Sendable, Equatable {
    /// Check that the directories of `socket.path` and `metrics.textfile` exist and that
    /// `socket.group` names an existing group. Turn off for `check-config` on another machine, for
    /// socket activation (systemd made the socket), or in tests of unrelated keys.
    public var checkSystem: Bool
    /// With ``checkSystem``: accept a missing directory of `socket.path` that systemd creates when the
    /// service starts (`RuntimeDirectory=`: `/run/earshot`, `/run/earshot/<instance>`; see
    /// ``ConfigBuilder/isRuntimeDirectory(_:)``). For `check-config` before the first start; `run` itself
    /// needs the directory.
    public var runtimeDirectoryMayBeMissing: Bool

    public init(checkSystem: Bool = true, runtimeDirectoryMayBeMissing: Bool = false) {
        self.checkSystem = checkSystem
        self.runtimeDirectoryMayBeMissing = runtimeDirectoryMayBeMissing
    }
}

/// Applies configuration layers in precedence order — defaults < file < environment < `--set` — and
/// remembers where each value came from, so that errors (including cross-field ones, checked in
/// ``validated(_:)``) point at the file line, variable or flag that set the offending key.
///
/// Per-key type and range errors are thrown as each layer is applied.
public struct ConfigBuilder: Sendable {
    /// The configuration so far (not yet cross-validated).
    public private(set) var config: EarshotConfig
    private(set) var origins: [String: ConfigOrigin] = [:]
    /// Warnings that do not stop the load, `FILE:LINE: key: message` (a retired key in a file: see
    /// ``retiredKeys``).
    public private(set) var warnings: [String] = []

    /// Keys earlier releases wrote into the shipped `earshot.yaml` and this one no longer has: ignored with a
    /// warning in a file, never refused. A conffile the operator edited (`earshot calibrate --write` does)
    /// survives a package upgrade as it was; refusing its old keys would leave the box without a daemon.
    /// A retired key on the command line or in the environment is still refused (someone is there to fix it).
    public static let retiredKeys: [String: String] = [
        "analysis.onset.floor_rise_db_per_s":
            "retired and ignored; the onset background now follows analysis.onset.floor_slew_db_per_s both ways",
    ]

    /// Environment variables starting with `EARSHOT_` that are not configuration keys.
    public static let reservedEnvironmentVariables: Set<String> = ["EARSHOT_CONFIG", "EARSHOT_TEST_FAULT", "EARSHOT_INSTANCE"]

    /// Starts from `base` (the defaults unless given).
    public init(base: EarshotConfig = .defaults) {
        self.config = base
    }

    /// Where the current value of `key` (a dotted path) came from.
    public func origin(of key: String) -> ConfigOrigin {
        origins[key] ?? .defaults
    }

    // MARK: File

    /// Applies the YAML file at `path`. A missing file is an error only when `required`.
    /// - Returns: the bytes read (nil when the file is absent and not required).
    @discardableResult
    public mutating func applyFile(at path: String, required: Bool = true) throws(ConfigError) -> Data? {
        guard FileManager.default.fileExists(atPath: path) else {
            if required {
                throw ConfigError(.unreadable, origin: .file(path: path, line: nil), key: nil, message: "no such file")
            }
            return nil
        }
        let data: Data
        do {
            data = try Self.readBounded(path)
        } catch {
            throw ConfigError(.unreadable, origin: .file(path: path, line: nil), key: nil, message: error.message)
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(.unreadable, origin: .file(path: path, line: nil), key: nil, message: "not valid UTF-8")
        }
        try applyYAML(text, file: path)
        return data
    }

    /// Largest configuration file accepted, bytes (the shipped one with every key is about 10 KB).
    public static let maxFileBytes = 1 << 20

    struct ReadError: Error { var message: String }

    /// Reads at most ``maxFileBytes`` (+1 to detect more) from `path`; a FIFO or device is read the same way
    /// and never trusted for its size.
    static func readBounded(_ path: String) throws(ReadError) -> Data {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw ReadError(message: "cannot read: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ReadError(message: "cannot read: \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw ReadError(message: "not a regular file") }
        var data = Data(count: maxFileBytes + 1)
        var total = 0
        while total < data.count {
            let n = data.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, $0.count - total) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ReadError(message: "cannot read: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            total += n
        }
        guard total <= maxFileBytes else {
            throw ReadError(message: "larger than \(maxFileBytes) bytes; a configuration file is at most 1 MiB")
        }
        data.count = total
        return data
    }

    /// Applies YAML text; `file` is the name used in errors.
    public mutating func applyYAML(_ text: String, file: String) throws(ConfigError) {
        if text.utf8.count > Self.maxFileBytes {
            throw ConfigError(.unreadable, origin: .file(path: file, line: nil), key: nil,
                              message: "larger than \(Self.maxFileBytes) bytes; a configuration file is at most 1 MiB")
        }
        if let problem = YAMLAliasScan.firstProblem(in: text) {
            throw ConfigError(.syntax, origin: .file(path: file, line: problem.line), key: nil, message: problem.isNesting
                ? "YAML \(problem.token): a configuration is a few levels deep"
                : "YAML anchors and aliases are not supported (found \"\(problem.token)\"); write each value out (in a comment or string, drop the \"\(problem.token.prefix(1))\" or follow it with a space)")
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw Self.syntaxError(error, file: file)
        } catch {
            throw ConfigError(.syntax, origin: .file(path: file, line: nil), key: nil, message: "\(error)")
        }
        guard let root else { return }  // empty or comments only: defaults
        if case .scalar(let s) = root, isNullText(s.string), s.style == .plain { return }
        try walk(root, section: "", file: file)
    }

    private static func syntaxError(_ error: YamlError, file: String) -> ConfigError {
        func make(_ problem: String, _ mark: Mark?, _ context: YamlError.Context?) -> ConfigError {
            var message = "YAML syntax error: \(problem)"
            if let mark { message += " (column \(mark.column))" }
            if let context { message += " \(context.text) starting at line \(context.mark.line)" }
            return ConfigError(.syntax, origin: .file(path: file, line: mark?.line), key: nil, message: message)
        }
        switch error {
        case .scanner(let context, let problem, let mark, _),
            .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            return make(problem, mark, context)
        case .reader(let problem, _, _, _):
            return make(problem, nil, nil)
        case .duplicatedKeysInMapping(let duplicates, let context):
            return ConfigError(.syntax, origin: .file(path: file, line: context.mark.line), key: nil,
                               message: "duplicate key \(duplicates.sorted().map { "\"\($0)\"" }.joined(separator: ", ")) in the mapping starting on this line")
        default:
            return make("\(error)", nil, nil)
        }
    }

    private mutating func walk(_ node: Node, section: String, file: String) throws(ConfigError) {
        let where_ = section.isEmpty ? "the top level" : section
        guard case .mapping(let mapping) = node else {
            if case .scalar(let s) = node, s.style == .plain, isNullText(s.string) { return }  // `metrics:` alone
            throw ConfigError(.wrongType, origin: .file(path: file, line: node.mark?.line),
                              key: section.isEmpty ? nil : section,
                              message: "expected a mapping of keys at \(where_), got \(Self.shapeName(node))")
        }
        var seen: [String: Int] = [:]
        for (keyNode, valueNode) in mapping {
            let line = keyNode.mark?.line
            guard case .scalar(let keyScalar) = keyNode else {
                throw ConfigError(.wrongType, origin: .file(path: file, line: line), key: section.isEmpty ? nil : section,
                                  message: "keys must be plain names, got \(Self.shapeName(keyNode))")
            }
            let name = keyScalar.string
            let path = section.isEmpty ? name : section + "." + name
            if let first = seen[name] {
                throw ConfigError(.syntax, origin: .file(path: file, line: line), key: path,
                                  message: "duplicate key (first set on line \(first))")
            }
            seen[name] = line ?? 0
            if let key = ConfigSchema.byPath[path] {
                let raw = Self.rawValue(valueNode)
                try apply(key, raw, origin: .file(path: file, line: line), elementOrigin: { .file(path: file, line: $0) })
            } else if ConfigSchema.sections.contains(path) {
                try walk(valueNode, section: path, file: file)
            } else if let note = Self.retiredKeys[path] {
                warnings.append("\(ConfigOrigin.file(path: file, line: line)): \(path): \(note)")
            } else {
                throw ConfigError(.unknownKey, origin: .file(path: file, line: line), key: path,
                                  message: Self.unknownKeyMessage(name: name, section: section))
            }
        }
    }

    private static func unknownKeyMessage(name: String, section: String) -> String {
        let siblings = ConfigSchema.children(of: section)
        let prefix = section.isEmpty ? "" : section + "."
        if let near = closest(to: name, among: siblings) {
            return "unknown key; did you mean \(prefix + near)?"
        }
        // A valid key put in the wrong section (e.g. `hop` under `capture`).
        let everywhere = (ConfigSchema.keys.map(\.path) + ConfigSchema.sections).filter {
            $0.split(separator: ".").last.map(String.init) == name
        }
        if let moved = everywhere.sorted().first {
            return "unknown key; did you mean \(moved)?"
        }
        let valid = siblings.joined(separator: ", ")
        return "unknown key (valid keys\(section.isEmpty ? "" : " in " + section): \(valid))"
    }

    private static func shapeName(_ node: Node) -> String {
        switch node {
        case .scalar(let s): return s.style == .plain && isNullText(s.string) ? "null" : "\"\(s.string)\""
        case .sequence: return "a list"
        case .mapping: return "a mapping"
        case .alias: return "an alias"
        }
    }

    private static func rawValue(_ node: Node) -> RawValue {
        let line = node.mark?.line
        switch node {
        case .scalar(let s):
            let quoted = s.style == .singleQuoted || s.style == .doubleQuoted
                || s.style == .literal || s.style == .folded
            return RawValue(shape: .scalar(s.string, quoted: quoted), line: line, isText: false)
        case .sequence(let seq):
            var items: [(text: String, quoted: Bool, line: Int?)] = []
            for element in seq {
                guard case .scalar(let s) = element else {
                    return RawValue(shape: .other("a list containing \(shapeName(element))"), line: line, isText: false)
                }
                let quoted = s.style != .plain && s.style != .any
                items.append((s.string, quoted, element.mark?.line))
            }
            return RawValue(shape: .sequence(items), line: line, isText: false)
        case .mapping:
            return RawValue(shape: .mapping, line: line, isText: false)
        case .alias:
            return RawValue(shape: .other("an alias"), line: line, isText: false)
        }
    }

    private mutating func apply(_ key: ConfigKey, _ raw: RawValue, origin: ConfigOrigin,
                                elementOrigin: (Int) -> ConfigOrigin) throws(ConfigError) {
        do throws(ValueProblem) {
            try key.apply(&config, raw)
        } catch {
            let at = error.line.map(elementOrigin) ?? origin
            throw ConfigError(error.code, origin: at, key: key.path, message: error.message)
        }
        origins[key.path] = origin
    }

    // MARK: Environment

    /// Applies every `EARSHOT_<SECTION>_<KEY>` variable (e.g. `EARSHOT_ANALYSIS_HOP=240`); a value in quotes
    /// is a string (`EARSHOT_CAPTURE_DEVICE='"null"'`), as with `--set`.
    ///
    /// An `EARSHOT_*` variable that matches no key is an error (typo safety), except
    /// ``reservedEnvironmentVariables``. Variables are applied in name order.
    public mutating func applyEnvironment(_ environment: [String: String]) throws(ConfigError) {
        for name in environment.keys.sorted() where name.hasPrefix("EARSHOT_") {
            if Self.reservedEnvironmentVariables.contains(name) { continue }
            let value = environment[name]!
            guard let key = ConfigSchema.byEnvironmentName[name] else {
                var message = "no configuration key matches this variable"
                if let near = closest(to: name, among: ConfigSchema.keys.map(\.environmentName)) {
                    message += "; did you mean \(near)?"
                }
                throw ConfigError(.unknownKey, origin: .environment(variable: name), key: nil, message: message)
            }
            try apply(key, Self.textValue(value), origin: .environment(variable: name), elementOrigin: { _ in .environment(variable: name) })
        }
    }

    // MARK: Command line

    /// Applies `key.path=value` settings (the executable's repeated `--set` flag), in order.
    public mutating func applyOverrides(_ settings: [String]) throws(ConfigError) {
        for setting in settings {
            guard let eq = setting.firstIndex(of: "=") else {
                throw ConfigError(.wrongType, origin: .commandLine(argument: setting), key: nil,
                                  message: "expected KEY=VALUE, e.g. analysis.hop=240")
            }
            let path = String(setting[..<eq].trimmingSpaces)
            let value = String(setting[setting.index(after: eq)...])
            try set(path, to: value, origin: .commandLine(argument: setting))
        }
    }

    /// The `--set` value for `key=<string>` that is always read as a string (`null`, `true`, `0660` too):
    /// the text in double quotes. Command-line flags that name a string (`--device`, `--socket`) use it.
    public static func stringOverride(_ path: String, _ value: String) -> String {
        path + "=\"" + value + "\""
    }

    /// Sets one key (dotted path) from text, with the same parsing and checks as the environment. A value
    /// in double or single quotes (`"null"`, `'on'`) is a string, as in YAML; the outer quotes are removed.
    public mutating func set(_ path: String, to value: String, origin: ConfigOrigin) throws(ConfigError) {
        try set(path, raw: Self.textValue(value), origin: origin)
    }

    /// The value of an environment variable or `--set`: text, or a string when in double or single quotes.
    static func textValue(_ value: String) -> RawValue {
        if value.count >= 2, let q = value.first, q == "\"" || q == "'", value.last == q {
            return RawValue(shape: .scalar(String(value.dropFirst().dropLast()), quoted: true), line: nil, isText: true)
        }
        return .text(value)
    }

    private mutating func set(_ path: String, raw: RawValue, origin: ConfigOrigin) throws(ConfigError) {
        guard let key = ConfigSchema.byPath[path] else {
            var message = "unknown key"
            if ConfigSchema.sections.contains(path) {
                message = "a section, not a key; set one of: "
                    + ConfigSchema.children(of: path).map { path + "." + $0 }.joined(separator: ", ")
            } else if let near = closest(to: path, among: ConfigSchema.keys.map(\.path)) {
                message += "; did you mean \(near)?"
            }
            throw ConfigError(.unknownKey, origin: origin, key: path, message: message)
        }
        try apply(key, raw, origin: origin, elementOrigin: { _ in origin })
    }

    // MARK: Cross-field validation

    /// The configuration after the cross-field checks (and, unless disabled, the system checks).
    public func validated(_ options: ConfigValidationOptions = .init()) throws(ConfigError) -> EarshotConfig {
        let c = config
        let a = c.analysis
        // Each check names a primary key; if the user did not set it but did set the other one, the
        // error points at the other one (that is the line the user has to change).
        func fail(_ primary: String, _ primaryMessage: String,
                  _ secondary: String, _ secondaryMessage: String) -> ConfigError {
            if origins[primary] == nil, origins[secondary] != nil {
                return ConfigError(.invalidCombination, origin: origin(of: secondary), key: secondary, message: secondaryMessage)
            }
            return ConfigError(.invalidCombination, origin: origin(of: primary), key: primary, message: primaryMessage)
        }
        let n = formatNumber
        if a.hop > a.nFFT {
            throw fail("analysis.hop", "\(a.hop) is larger than analysis.n_fft (\(a.nFFT))",
                       "analysis.n_fft", "\(a.nFFT) is smaller than analysis.hop (\(a.hop))")
        }
        let nyquist = Double(c.capture.sampleRate) / 2
        if a.fmax > nyquist {
            throw fail("analysis.fmax", "\(n(a.fmax)) is above the Nyquist frequency (\(n(nyquist)) Hz = capture.sample_rate / 2)",
                       "capture.sample_rate", "\(c.capture.sampleRate) puts the Nyquist frequency (\(n(nyquist)) Hz) below analysis.fmax (\(n(a.fmax)))")
        }
        if a.fmin >= a.fmax {
            throw fail("analysis.fmin", "\(n(a.fmin)) must be below analysis.fmax (\(n(a.fmax)))",
                       "analysis.fmax", "\(n(a.fmax)) must be above analysis.fmin (\(n(a.fmin)))")
        }
        if a.nMels > a.nFFT / 2 + 1 {
            throw fail("analysis.n_mels", "\(a.nMels) is more than the \(a.nFFT / 2 + 1) FFT bins of analysis.n_fft (\(a.nFFT))",
                       "analysis.n_fft", "\(a.nFFT) gives \(a.nFFT / 2 + 1) FFT bins, fewer than analysis.n_mels (\(a.nMels))")
        }
        if a.nMFCC > a.nMels {
            throw fail("analysis.n_mfcc", "\(a.nMFCC) is larger than analysis.n_mels (\(a.nMels))",
                       "analysis.n_mels", "\(a.nMels) is smaller than analysis.n_mfcc (\(a.nMFCC))")
        }
        if let ch = c.capture.channel, ch >= c.capture.channels {
            throw fail("capture.channel", "\(ch) does not exist with capture.channels \(c.capture.channels) (0-based: at most \(c.capture.channels - 1))",
                       "capture.channels", "\(c.capture.channels) channels leave no channel \(ch) (capture.channel)")
        }
        if c.capture.reconnectMaxSeconds < c.capture.reconnectInitialSeconds {
            throw fail("capture.reconnect_max_s", "\(n(c.capture.reconnectMaxSeconds)) is below capture.reconnect_initial_s (\(n(c.capture.reconnectInitialSeconds)))",
                       "capture.reconnect_initial_s", "\(n(c.capture.reconnectInitialSeconds)) is above capture.reconnect_max_s (\(n(c.capture.reconnectMaxSeconds)))")
        }
        if Double(c.capture.sampleRate) / Double(a.hop) > Double(EarshotConfig.maxFramesPerSecond) {
            let minHop = (c.capture.sampleRate + EarshotConfig.maxFramesPerSecond - 1) / EarshotConfig.maxFramesPerSecond
            throw fail("analysis.hop", "\(a.hop) gives \(n(Double(c.capture.sampleRate) / Double(a.hop))) frames per second at capture.sample_rate \(c.capture.sampleRate); at most \(EarshotConfig.maxFramesPerSecond) are allowed (hop at least \(minHop))",
                       "capture.sample_rate", "\(c.capture.sampleRate) gives more than \(EarshotConfig.maxFramesPerSecond) frames per second with analysis.hop \(a.hop) (hop at least \(minHop))")
        }
        let hopSeconds = Double(a.hop) / Double(c.capture.sampleRate)
        if let w = c.rolling.windowsSeconds.first, w < hopSeconds {
            throw fail("rolling.windows_s", "window \(n(w)) s is shorter than one hop (analysis.hop \(a.hop) at \(c.capture.sampleRate) Hz = \(n(hopSeconds)) s)",
                       "analysis.hop", "\(a.hop) is longer than the rolling window of \(n(w)) s (rolling.windows_s)")
        }
        if let listen = c.metrics.listen, !c.metrics.allowRemote, let host = splitListenAddress(listen)?.host, !isLoopbackHost(host) {
            throw fail("metrics.listen", "\"\(listen)\" is not a loopback address (127.0.0.1, [::1], localhost); set metrics.allow_remote: true to serve /metrics to the network",
                       "metrics.allow_remote", "false, and metrics.listen \"\(listen)\" is not a loopback address")
        }
        try checkMemory(c)
        if c.metrics.enabled, c.metrics.listen == nil, c.metrics.textfile == nil {
            throw fail("metrics.enabled", "true, but neither metrics.listen nor metrics.textfile is set",
                       "metrics.listen", "null leaves no metrics output while metrics.enabled is true (set metrics.textfile or disable metrics)")
        }
        // The libraries' own checks are the authority: what they refuse, the daemon cannot run, so
        // check-config, --set, run and reload refuse it here, under the YAML key and its origin.
        if let problem = c.libraryProblem() {
            if origins[problem.key] == nil, let set = problem.related.flatMap({ origins[$0] != nil ? $0 : nil })
                ?? userSetInput(of: problem) {
                throw ConfigError(problem.code, origin: origin(of: set), key: set,
                                  message: "conflicts with \(problem.key) (default): \(problem.message)")
            }
            throw ConfigError(problem.code, origin: origin(of: problem.key), key: problem.key, message: problem.message)
        }
        if options.checkSystem {
            try checkDirectory(of: c.socket.path, key: "socket.path", runtimeDirectory: options.runtimeDirectoryMayBeMissing)
            if isDirectory(c.socket.path) {
                let suggestion = (c.socket.path as NSString).appendingPathComponent("earshot.sock")
                throw ConfigError(.outOfRange, origin: origin(of: "socket.path"), key: "socket.path",
                                  message: "\(c.socket.path) is a directory; name the socket file in it (e.g. \(suggestion))")
            }
            if c.metrics.enabled, let textfile = c.metrics.textfile {
                try checkDirectory(of: textfile, key: "metrics.textfile")
            }
            if let group = c.socket.group, !groupExists(group) {
                throw ConfigError(.outOfRange, origin: origin(of: "socket.group"), key: "socket.group",
                                  message: "group \"\(group)\" does not exist")
            }
        }
        return c
    }

    /// For a library refusal of two keys the user set neither of (e.g. the default `analysis.n_mels` against
    /// the `capture.sample_rate` they set): a key of the same section (`capture.sample_rate` counting as
    /// `analysis`) that they did set, the one named in the message first, so the error points at a line of
    /// their file rather than at `defaults`.
    private func userSetInput(of problem: LibraryProblem) -> String? {
        let sections = Set([problem.key, problem.related ?? problem.key].map { $0.split(separator: ".").first.map(String.init) ?? $0 })
        let set = origins.keys.filter { key in
            let section = key.split(separator: ".").first.map(String.init) ?? key
            return sections.contains(section) || (sections.contains("analysis") && key == "capture.sample_rate")
        }.sorted()
        // The key the message names; else the only one set (an unrelated key of the section would mislead).
        return set.first { problem.message.contains($0.split(separator: ".").last.map(String.init) ?? $0) } ?? (set.count == 1 ? set[0] : nil)
    }

    /// Refuses a configuration whose buffers (``EarshotConfig/memoryEstimate``) exceed `limits.max_memory_mb`,
    /// naming the keys of the largest term (the first of them the user set).
    private func checkMemory(_ c: EarshotConfig) throws(ConfigError) {
        let estimate = c.memoryEstimate
        let limit = Double(c.limits.maxMemoryMB)
        guard estimate.totalMB > limit else { return }
        let terms = estimate.terms.sorted { $0.bytes > $1.bytes }
        let top = terms[0]
        // The first key of the largest term the user set; if they set none of them but lowered the limit,
        // the limit is the line to change.
        let key = top.keys.first { origins[$0] != nil }
            ?? (origins["limits.max_memory_mb"] != nil ? "limits.max_memory_mb" : top.keys[0])
        let mb = { (b: Double) in formatNumber((b / 1_048_576).rounded(.up)) }
        var message = "this configuration needs about \(mb(estimate.totalBytes)) MB of buffers, more than limits.max_memory_mb (\(c.limits.maxMemoryMB)): "
        message += terms.prefix(2).filter { $0.bytes > 1_048_576 }
            .map { "\($0.name) \(mb($0.bytes)) MB (\($0.keys.joined(separator: ", ")): \($0.detail))" }
            .joined(separator: "; ")
        message += "; lower \(key) or raise limits.max_memory_mb"
        throw ConfigError(.outOfRange, origin: origin(of: key), key: key, message: message)
    }

    private func checkDirectory(of path: String, key: String, runtimeDirectory: Bool = false) throws(ConfigError) {
        let directory = (path as NSString).deletingLastPathComponent
        if isDirectory(directory) { return }
        if runtimeDirectory, Self.isRuntimeDirectory(directory), !FileManager.default.fileExists(atPath: directory) {
            return  // created by systemd (RuntimeDirectory=) when the service starts
        }
        throw ConfigError(.missingPath, origin: origin(of: key), key: key,
                          message: "directory \(directory) of \(path) does not exist")
    }

    private func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    /// A missing socket directory is not a configuration error when it is one that systemd creates at start
    /// (`RuntimeDirectory=earshot`, `RuntimeDirectory=earshot/%i`): a directory under `/run` (or `/var/run`),
    /// at most two levels deep (`/run/earshot`, `/run/earshot/mic1`), whose existing ancestors are
    /// directories. Elsewhere (a typo such as `/rnu/earshot`, `/tmp/missing`), deeper, or under a file, it
    /// still is.
    public static func isRuntimeDirectory(_ directory: String) -> Bool {
        let parts = directory.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        let root: String
        let rest: [String]
        if parts.first == "run" { root = "/run"; rest = Array(parts.dropFirst()) }
        else if parts.prefix(2) == ["var", "run"] { root = "/var/run"; rest = Array(parts.dropFirst(2)) }
        else { return false }
        guard (1...2).contains(rest.count), rest.allSatisfy({ $0 != "." && $0 != ".." }) else { return false }
        var path = root
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else { return false }
        for component in rest {
            path += "/" + component
            if !FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) { return true }
            if !isDirectory.boolValue { return false }
        }
        return true
    }

    private func groupExists(_ name: String) -> Bool {
        var group = group()
        var result: UnsafeMutablePointer<group>? = nil
        var buffer = [CChar](repeating: 0, count: 16_384)
        let rc = getgrnam_r(name, &group, &buffer, buffer.count, &result)
        return rc == 0 && result != nil
    }
}

extension EarshotConfig {
    /// The default config file path.
    public static let defaultPath = "/etc/earshot/earshot.yaml"

    /// Which file to read: `--config` if given (must exist), else `$EARSHOT_CONFIG` (must exist), else
    /// ``defaultPath`` (may be missing: then the defaults apply).
    public static func configFile(flag: String?, environment: [String: String]) -> (path: String, required: Bool) {
        if let flag { return (flag, true) }
        if let env = environment["EARSHOT_CONFIG"], !env.isEmpty { return (env, true) }
        return (defaultPath, false)
    }

    /// Loads the configuration: defaults < file < `EARSHOT_*` environment < `--set` overrides, then validates.
    /// - Parameters:
    ///   - configPath: the `--config` flag, or `nil` (see ``configFile(flag:environment:)``).
    ///   - environment: usually `ProcessInfo.processInfo.environment`.
    ///   - overrides: `key.path=value` strings from repeated `--set` flags.
    ///   - options: system checks (directories, group).
    public static func load(
        configPath: String?,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        overrides: [String] = [],
        options: ConfigValidationOptions = .init(),
        warn: (String) -> Void = { _ in }
    ) throws(ConfigError) -> EarshotConfig {
        let loaded = try loadWithSource(configPath: configPath, environment: environment, overrides: overrides, options: options)
        loaded.warnings.forEach(warn)
        return loaded.config
    }

    /// ``load(configPath:environment:overrides:options:warn:)``, also returning the file bytes it parsed (nil:
    /// no file), so a reload can tell an unchanged file without re-planning anything, and the warnings.
    static func loadWithSource(
        configPath: String?, environment: [String: String], overrides: [String], options: ConfigValidationOptions
    ) throws(ConfigError) -> (config: EarshotConfig, source: Data?, warnings: [String]) {
        var builder = ConfigBuilder()
        let file = configFile(flag: configPath, environment: environment)
        let source = try builder.applyFile(at: file.path, required: file.required)
        try builder.applyEnvironment(environment)
        try builder.applyOverrides(overrides)
        return (try builder.validated(options), source, builder.warnings)
    }

    /// Parses YAML text on top of the defaults (no environment, no overrides) and validates it.
    public static func parse(yaml: String, file: String = "<string>",
                             options: ConfigValidationOptions = .init()) throws(ConfigError) -> EarshotConfig {
        var builder = ConfigBuilder()
        try builder.applyYAML(yaml, file: file)
        return try builder.validated(options)
    }

    /// Every key path in document order (`capture.device`, …, `logging.level`).
    public static var keyPaths: [String] { ConfigSchema.keys.map(\.path) }

    /// The `EARSHOT_*` variable for a key path (`analysis.hop` → `EARSHOT_ANALYSIS_HOP`).
    public static func environmentVariable(for keyPath: String) -> String? {
        ConfigSchema.byPath[keyPath]?.environmentName
    }

    /// The value of `keyPath` rendered as YAML (`480`, `"default"`, `null`, `[1, 10, 60]`).
    public func renderedValue(of keyPath: String) -> String? {
        ConfigSchema.byPath[keyPath]?.render(self)
    }

    /// The effective configuration as flat `key.path: value` lines (for `check-config` and logs).
    public var flatDescription: String {
        ConfigSchema.keys.map { "\($0.path): \($0.render(self))" }.joined(separator: "\n")
    }
}
