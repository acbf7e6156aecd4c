/// A client command of socket protocol v1 (one JSON object per line).
public enum ProtocolCommand: Equatable, Sendable {
    /// `{"op":"subscribe","streams":[...],"every":N,"fields":[...],"backfill_s":S,"id":X}`.
    /// `every`/`fields` are nil when absent (meaning 1 / every enabled feature).
    case subscribe(streams: [StreamKind], every: Int?, fields: Set<Feature>?, backfillSeconds: Double?, id: ProtocolJSON?)
    /// `{"op":"unsubscribe","streams":[...],"id":X}`.
    case unsubscribe(streams: [StreamKind], id: ProtocolJSON?)
    /// `{"op":"ping","id":X}`.
    case ping(id: ProtocolJSON?)

    public var id: ProtocolJSON? {
        switch self {
        case .subscribe(_, _, _, _, let id), .unsubscribe(_, let id), .ping(let id): id
        }
    }
}

/// A command the server refused, or why it closes the connection: sent as
/// `{"type":"error","code":...,"message":...,"id":...}` (see ``ErrorMessage``).
public struct ProtocolError: Error, Equatable, Sendable {
    /// Stable machine-readable codes (`error.code` on the wire). New codes may be added; clients treat an
    /// unknown code as a refused command.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        private enum Known: String, CaseIterable {
            case invalidUTF8 = "invalid_utf8", invalidJSON = "invalid_json", notObject = "not_object"
            case missingOp = "missing_op", unknownOp = "unknown_op", unknownStream = "unknown_stream"
            case invalidType = "invalid_type", invalidValue = "invalid_value", unknownField = "unknown_field"
            case lineTooLong = "line_too_long", tooManyClients = "too_many_clients", idleTimeout = "idle_timeout"
            case stalled
        }
        private let known: Known
        private init(_ known: Known) { self.known = known }

        /// nil for a string that is not one of the server's codes.
        public init?(rawValue: String) {
            guard let k = Known(rawValue: rawValue) else { return nil }
            known = k
        }
        public var rawValue: String { known.rawValue }
        public var description: String { known.rawValue }

        // The command is refused; the connection stays open.
        /// The line is not valid UTF-8.
        public static let invalidUTF8 = Code(.invalidUTF8)
        /// The line is not one JSON value, or nests too deeply.
        public static let invalidJSON = Code(.invalidJSON)
        /// Valid JSON, but not an object.
        public static let notObject = Code(.notObject)
        /// No `op`.
        public static let missingOp = Code(.missingOp)
        /// `op` is not `subscribe`, `unsubscribe` or `ping`.
        public static let unknownOp = Code(.unknownOp)
        /// A name in `streams` is not a stream.
        public static let unknownStream = Code(.unknownStream)
        /// A key has the wrong type.
        public static let invalidType = Code(.invalidType)
        /// A value is out of range.
        public static let invalidValue = Code(.invalidValue)
        /// A name in `fields` is unknown or not enabled.
        public static let unknownField = Code(.unknownField)
        // The server closes the connection after sending it.
        /// A command line exceeds `max_line_bytes`.
        public static let lineTooLong = Code(.lineTooLong)
        /// `max_clients`, or the per-uid limit, is reached.
        public static let tooManyClients = Code(.tooManyClients)
        /// No subscription for `idle_timeout_s`.
        public static let idleTimeout = Code(.idleTimeout)
        /// Nothing read for `stall_limit_s` with output queued.
        public static let stalled = Code(.stalled)

        /// Every code the server sends.
        public static var allCases: [Code] { Known.allCases.map(Code.init) }

        /// True for the errors after which the server closes the connection.
        public var closesConnection: Bool {
            switch known {
            case .lineTooLong, .tooManyClients, .idleTimeout, .stalled: true
            default: false
            }
        }
    }

    public var code: Code
    public var message: String
    /// The command's `id`, when it could be read.
    public var id: ProtocolJSON?

    public init(code: Code, message: String, id: ProtocolJSON? = nil) {
        self.code = code; self.message = message; self.id = id
    }
}

extension ProtocolCommand {
    /// Parses and validates one command line (without its newline).
    /// - Parameters:
    ///   - line: the raw bytes the client sent.
    ///   - enabledFeatures: names accepted in `fields`.
    public static func parse(_ line: some Collection<UInt8>, enabledFeatures: Set<Feature>) -> Result<ProtocolCommand, ProtocolError> {
        let value: ProtocolJSON
        do {
            value = try ProtocolJSON.parse(line)
        } catch {
            switch error {
            case .invalidUTF8: return .failure(ProtocolError(code: .invalidUTF8, message: "command is not valid UTF-8"))
            case .tooDeep: return .failure(ProtocolError(code: .invalidJSON, message: "JSON nested too deeply"))
            case .syntax(let offset, let reason):
                return .failure(ProtocolError(code: .invalidJSON, message: "invalid JSON at byte \(offset): \(reason)"))
            }
        }
        guard case .object(let obj) = value else {
            return .failure(ProtocolError(code: .notObject, message: "a command must be a JSON object, got \(value.typeName)"))
        }
        // The id is echoed in replies: only scalars, so a reply can never be larger than a small bound.
        var id: ProtocolJSON? = nil
        if let raw = obj["id"] {
            switch raw {
            case .string(let s) where s.utf8.count <= 256: id = raw
            case .number, .null: id = raw
            default:
                return .failure(ProtocolError(code: .invalidType, message: "'id' must be a string (at most 256 bytes), a number or null"))
            }
        }
        func fail(_ code: ProtocolError.Code, _ message: String) -> Result<ProtocolCommand, ProtocolError> {
            .failure(ProtocolError(code: code, message: message, id: id))
        }
        guard let opValue = obj["op"] else { return fail(.missingOp, "command has no 'op'") }
        guard case .string(let op) = opValue else { return fail(.invalidType, "'op' must be a string, got \(opValue.typeName)") }

        func streams() -> Result<[StreamKind], ProtocolError> {
            guard let raw = obj["streams"] else {
                return .failure(ProtocolError(code: .invalidType, message: "'streams' is required (an array of stream names)", id: id))
            }
            guard case .array(let items) = raw else {
                return .failure(ProtocolError(code: .invalidType, message: "'streams' must be an array of strings, got \(raw.typeName)", id: id))
            }
            var out: [StreamKind] = []
            for item in items {
                guard case .string(let name) = item else {
                    return .failure(ProtocolError(code: .invalidType, message: "'streams' must contain strings, got \(item.typeName)", id: id))
                }
                guard let kind = StreamKind(rawValue: name) else {
                    return .failure(ProtocolError(
                        code: .unknownStream,
                        message: "unknown stream '\(name.prefix(64))'; known: \(StreamKind.allCases.map(\.rawValue).joined(separator: ", "))",
                        id: id))
                }
                if !out.contains(kind) { out.append(kind) }
            }
            return .success(out)
        }

        switch op {
        case "ping":
            return .success(.ping(id: id))
        case "unsubscribe":
            switch streams() {
            case .failure(let e): return .failure(e)
            case .success(let s): return .success(.unsubscribe(streams: s, id: id))
            }
        case "subscribe":
            let kinds: [StreamKind]
            switch streams() {
            case .failure(let e): return .failure(e)
            case .success(let s): kinds = s
            }
            var every: Int? = nil
            if let raw = obj["every"], raw != .null {
                guard case .number(_, let i?) = raw else { return fail(.invalidType, "'every' must be an integer, got \(raw.typeName)") }
                guard i >= 1, i <= 1_000_000 else { return fail(.invalidValue, "'every' must be in 1...1000000, got \(i)") }
                every = Int(i)
            }
            var fields: Set<Feature>? = nil
            if let raw = obj["fields"], raw != .null {
                guard case .array(let items) = raw else { return fail(.invalidType, "'fields' must be an array of strings, got \(raw.typeName)") }
                var set = Set<Feature>()
                for item in items {
                    guard case .string(let name) = item else {
                        return fail(.invalidType, "'fields' must contain strings, got \(item.typeName)")
                    }
                    guard let f = Feature(rawValue: name), enabledFeatures.contains(f) else {
                        let known = Feature.allCases.filter { enabledFeatures.contains($0) }.map(\.rawValue)
                        return fail(.unknownField, "unknown or disabled field '\(name.prefix(64))'; available: \(known.joined(separator: ", "))")
                    }
                    set.insert(f)
                }
                fields = set
            }
            var backfill: Double? = nil
            if let raw = obj["backfill_s"], raw != .null {
                guard case .number(let d, _) = raw else { return fail(.invalidType, "'backfill_s' must be a number, got \(raw.typeName)") }
                guard d >= 0 else { return fail(.invalidValue, "'backfill_s' must be >= 0, got \(d)") }
                backfill = d
            }
            return .success(.subscribe(streams: kinds, every: every, fields: fields, backfillSeconds: backfill, id: id))
        default:
            return fail(.unknownOp, "unknown op '\(op.prefix(64))'; known: subscribe, unsubscribe, ping")
        }
    }
}

/// The socket's command framing: bytes in as they are read, complete lines out one at a time (without `\n`
/// and a trailing `\r`). A line longer than `maxLineBytes`, or a partial line that already is, is reported
/// as ``Event/tooLong(_:)``. The buffer holds at most what was read but not taken yet plus one partial line:
/// the reader stops reading while a whole line is still waiting (``hasWholeLine``).
public struct CommandLineBuffer: Sendable {
    public let maxLineBytes: Int
    private var bytes: [UInt8] = []
    private var start = 0
    /// `bytes[start..<scanned]` holds no newline.
    private var scanned = 0
    /// Newlines in `bytes[start...]`.
    private var newlines = 0

    public init(maxLineBytes: Int) { self.maxLineBytes = max(1, maxLineBytes) }

    public enum Event: Equatable, Sendable {
        /// A whole line (copied out; the buffer may be appended to meanwhile).
        case line([UInt8])
        /// A line of this many bytes (so far) exceeds `maxLineBytes`.
        case tooLong(Int)
        /// No whole line is buffered.
        case needMore
    }

    /// Bytes held (taken lines excluded).
    public var count: Int { bytes.count - start }
    /// True when the last byte buffered is a newline (or nothing is buffered).
    public var endsWithNewline: Bool { bytes.count == start || bytes.last == 0x0A }
    /// True when a newline is buffered (the next ``next()`` returns a line or `tooLong`).
    public var hasWholeLine: Bool { newlines > 0 }

    public mutating func append(_ chunk: UnsafeRawBufferPointer) {
        if start == bytes.count { bytes.removeAll(keepingCapacity: bytes.capacity <= 4096); start = 0; scanned = 0 }
        let b = chunk.bindMemory(to: UInt8.self)
        for byte in b where byte == 0x0A { newlines += 1 }
        bytes.append(contentsOf: b)
    }

    /// Forgets everything (after a fatal error).
    public mutating func reset() { bytes = []; start = 0; scanned = 0; newlines = 0 }

    public mutating func next() -> Event {
        guard let nl = bytes[scanned...].firstIndex(of: 0x0A) else {
            scanned = bytes.count
            let partial = bytes.count - start
            if start > 0 {
                // Keep only the partial line, at the front.
                bytes.removeFirst(start)
                scanned -= start
                start = 0
            }
            return partial > maxLineBytes ? .tooLong(partial) : .needMore
        }
        var end = nl
        if end > start, bytes[end - 1] == 0x0D { end -= 1 }
        let line = Array(bytes[start..<end])
        start = nl + 1
        scanned = start
        newlines -= 1
        return line.count > maxLineBytes ? .tooLong(line.count) : .line(line)
    }
}
