/// Where a configuration value came from; errors name it.
public enum ConfigOrigin: Sendable, Equatable, CustomStringConvertible {
    /// The built-in default.
    case defaults
    /// A YAML file; `line` is 1-based, `nil` when the problem concerns the whole file.
    case file(path: String, line: Int?)
    /// An `EARSHOT_*` environment variable.
    case environment(variable: String)
    /// A `--set key.path=value` command-line override (`argument` is the `key.path=value` text).
    case commandLine(argument: String)

    /// `FILE:LINE`, `environment EARSHOT_X`, `--set a.b=c` or `defaults`.
    public var description: String {
        switch self {
        case .defaults: return "defaults"
        case .file(let path, let line?): return "\(path):\(line)"
        case .file(let path, nil): return path
        case .environment(let variable): return "environment \(variable)"
        case .commandLine(let argument): return "--set \(argument)"
        }
    }
}

/// A configuration problem: its description is `ORIGIN: KEY: message`, e.g.
/// `/etc/earshot/earshot.yaml:12: analysis.hop: 2048 is larger than analysis.n_fft (1024)`.
///
/// The executable prints ``description`` to stderr and exits with ``exitCode`` (78, `EX_CONFIG`).
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of problem.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Kind: Hashable, Sendable {
            case syntax, unreadable, unknownKey, wrongType, outOfRange, invalidCombination, missingPath
        }
        private let kind: Kind
        private init(_ kind: Kind) { self.kind = kind }

        /// The file is not valid YAML.
        public static let syntax = Code(.syntax)
        /// The file (required) does not exist or cannot be read.
        public static let unreadable = Code(.unreadable)
        /// A key, `EARSHOT_*` variable or `--set` path that matches no configuration key.
        public static let unknownKey = Code(.unknownKey)
        /// A value of the wrong type (a list where a number belongs, `"abc"` for an integer, …).
        public static let wrongType = Code(.wrongType)
        /// A value outside its allowed range or set.
        public static let outOfRange = Code(.outOfRange)
        /// Two values that contradict each other (hop > n_fft, fmax > sample_rate/2, …).
        public static let invalidCombination = Code(.invalidCombination)
        /// A path whose directory does not exist.
        public static let missingPath = Code(.missingPath)

        public var description: String {
            switch kind {
            case .syntax: return "syntax"
            case .unreadable: return "unreadable"
            case .unknownKey: return "unknownKey"
            case .wrongType: return "wrongType"
            case .outOfRange: return "outOfRange"
            case .invalidCombination: return "invalidCombination"
            case .missingPath: return "missingPath"
            }
        }
    }

    public var code: Code
    /// Where the offending value (or key) came from.
    public var origin: ConfigOrigin
    /// Dotted key path (`analysis.hop`), or `nil` for file-level problems (syntax, unreadable).
    public var key: String?
    /// What is wrong, without origin or key.
    public var message: String

    public init(_ code: Code, origin: ConfigOrigin, key: String?, message: String) {
        self.code = code
        self.origin = origin
        self.key = key
        self.message = message
    }

    /// `EX_CONFIG` from sysexits.h: the exit status for any configuration error.
    public static let exitCode: Int32 = 78
    /// `EX_CONFIG` (78).
    public var exitCode: Int32 { Self.exitCode }

    public var description: String {
        if let key { return "\(origin): \(key): \(message)" }
        return "\(origin): \(message)"
    }
}
