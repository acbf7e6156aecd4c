/// A parsed JSON value, as needed by the socket protocol's commands (small, rare, untrusted).
///
/// Numbers keep whether they were written as integers (`5` vs `5.0` vs `5e0`), so `"every": 2.5` is a type
/// error rather than silently truncated.
public enum ProtocolJSON: Equatable, Sendable {
    case null
    case bool(Bool)
    /// `integer` is set when the literal had no fraction or exponent and fits in `Int64`.
    case number(Double, integer: Int64?)
    case string(String)
    case array([ProtocolJSON])
    case object([String: ProtocolJSON])

    /// Why ``parse(_:maxDepth:)`` refused its input.
    public enum ParseError: Error, Equatable, Sendable {
        case invalidUTF8
        case syntax(offset: Int, reason: String)
        case tooDeep
    }

    /// Parses one JSON text (RFC 8259; surrounding whitespace allowed, nothing after the value).
    /// - Parameters:
    ///   - bytes: UTF-8 text; invalid UTF-8 is reported as ``ParseError/invalidUTF8`` before any parsing.
    ///   - maxDepth: deepest array/object nesting accepted.
    public static func parse(_ bytes: some Collection<UInt8>, maxDepth: Int = 32) throws(ParseError) -> ProtocolJSON {
        let array = Array(bytes)
        guard String(validating: array, as: UTF8.self) != nil else { throw .invalidUTF8 }
        var p = Parser(bytes: array, maxDepth: maxDepth)
        p.skipWhitespace()
        let v = try p.value(depth: 0)
        p.skipWhitespace()
        guard p.i == array.count else { throw .syntax(offset: p.i, reason: "unexpected data after the value") }
        return v
    }

    /// Human-readable type name used in error messages.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .number(_, let i): i == nil ? "number" : "integer"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    /// Serializes the value compactly (object keys sorted, so output is deterministic).
    public func write(into w: inout JSONWriter) {
        switch self {
        case .null: w.null()
        case .bool(let b): w.bool(b)
        case .number(let d, let i):
            if let i { w.int(i) } else { w.exact(d) }
        case .string(let s): w.string(s)
        case .array(let a): w.array(a) { w, v in v.write(into: &w) }
        case .object(let o):
            w.object { w in
                for key in o.keys.sorted() { w.key(key); o[key]!.write(into: &w) }
            }
        }
    }

    /// The compact JSON text of the value.
    public var jsonText: String {
        var w = JSONWriter()
        write(into: &w)
        return String(decoding: w.bytes, as: UTF8.self)
    }

    public subscript(key: String) -> ProtocolJSON? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var intValue: Int64? { if case .number(_, let i) = self { return i }; return nil }
    public var doubleValue: Double? { if case .number(let d, _) = self { return d }; return nil }
    public var arrayValue: [ProtocolJSON]? { if case .array(let a) = self { return a }; return nil }
    public var objectValue: [String: ProtocolJSON]? { if case .object(let o) = self { return o }; return nil }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
}

private struct Parser {
    let bytes: [UInt8]
    let maxDepth: Int
    var i = 0

    init(bytes: [UInt8], maxDepth: Int) { self.bytes = bytes; self.maxDepth = maxDepth }

    func fail(_ reason: String) -> ProtocolJSON.ParseError { .syntax(offset: i, reason: reason) }

    mutating func skipWhitespace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0A || bytes[i] == 0x0D { i += 1 }
    }

    mutating func value(depth: Int) throws(ProtocolJSON.ParseError) -> ProtocolJSON {
        guard depth <= maxDepth else { throw .tooDeep }
        guard i < bytes.count else { throw fail("unexpected end of input") }
        switch bytes[i] {
        case 0x7B: return try object(depth: depth)
        case 0x5B: return try array(depth: depth)
        case 0x22: return .string(try string())
        case 0x74: try literal("true"); return .bool(true)
        case 0x66: try literal("false"); return .bool(false)
        case 0x6E: try literal("null"); return .null
        case 0x2D, 0x30...0x39: return try number()
        default: throw fail("unexpected character")
        }
    }

    mutating func literal(_ word: StaticString) throws(ProtocolJSON.ParseError) {
        let n = word.utf8CodeUnitCount
        guard i + n <= bytes.count else { throw fail("unexpected end of input") }
        for k in 0..<n where bytes[i + k] != word.utf8Start[k] { throw fail("invalid literal") }
        i += n
    }

    mutating func object(depth: Int) throws(ProtocolJSON.ParseError) -> ProtocolJSON {
        i += 1
        var out: [String: ProtocolJSON] = [:]
        skipWhitespace()
        if i < bytes.count, bytes[i] == 0x7D { i += 1; return .object(out) }
        while true {
            skipWhitespace()
            guard i < bytes.count, bytes[i] == 0x22 else { throw fail("expected a string key") }
            let key = try string()
            skipWhitespace()
            guard i < bytes.count, bytes[i] == 0x3A else { throw fail("expected ':'") }
            i += 1
            skipWhitespace()
            out[key] = try value(depth: depth + 1)
            skipWhitespace()
            guard i < bytes.count else { throw fail("unexpected end of input") }
            if bytes[i] == 0x2C { i += 1; continue }
            if bytes[i] == 0x7D { i += 1; return .object(out) }
            throw fail("expected ',' or '}'")
        }
    }

    mutating func array(depth: Int) throws(ProtocolJSON.ParseError) -> ProtocolJSON {
        i += 1
        var out: [ProtocolJSON] = []
        skipWhitespace()
        if i < bytes.count, bytes[i] == 0x5D { i += 1; return .array(out) }
        while true {
            skipWhitespace()
            out.append(try value(depth: depth + 1))
            skipWhitespace()
            guard i < bytes.count else { throw fail("unexpected end of input") }
            if bytes[i] == 0x2C { i += 1; continue }
            if bytes[i] == 0x5D { i += 1; return .array(out) }
            throw fail("expected ',' or ']'")
        }
    }

    mutating func hex4() throws(ProtocolJSON.ParseError) -> UInt32 {
        guard i + 4 <= bytes.count else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw fail("invalid \\u escape")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    mutating func string() throws(ProtocolJSON.ParseError) -> String {
        i += 1
        var out: [UInt8] = []
        while true {
            guard i < bytes.count else { throw fail("unterminated string") }
            let c = bytes[i]
            if c == 0x22 { i += 1; break }
            if c < 0x20 { throw fail("control character in string") }
            if c != 0x5C { out.append(c); i += 1; continue }
            i += 1
            guard i < bytes.count else { throw fail("unterminated escape") }
            let e = bytes[i]
            i += 1
            switch e {
            case 0x22: out.append(0x22)
            case 0x5C: out.append(0x5C)
            case 0x2F: out.append(0x2F)
            case 0x62: out.append(0x08)
            case 0x66: out.append(0x0C)
            case 0x6E: out.append(0x0A)
            case 0x72: out.append(0x0D)
            case 0x74: out.append(0x09)
            case 0x75:
                var scalar = try hex4()
                if (0xD800...0xDBFF).contains(scalar) {
                    guard i + 1 < bytes.count, bytes[i] == 0x5C, bytes[i + 1] == 0x75 else {
                        throw fail("unpaired surrogate")
                    }
                    i += 2
                    let low = try hex4()
                    guard (0xDC00...0xDFFF).contains(low) else { throw fail("unpaired surrogate") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw fail("unpaired surrogate")
                }
                guard let u = Unicode.Scalar(scalar) else { throw fail("invalid scalar") }
                out.append(contentsOf: Array(String(Character(u)).utf8))
            default: throw fail("invalid escape")
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    mutating func number() throws(ProtocolJSON.ParseError) -> ProtocolJSON {
        let start = i
        var integral = true
        if bytes[i] == 0x2D { i += 1 }
        guard i < bytes.count, (0x30...0x39).contains(bytes[i]) else { throw fail("invalid number") }
        if bytes[i] == 0x30 {
            i += 1
        } else {
            while i < bytes.count, (0x30...0x39).contains(bytes[i]) { i += 1 }
        }
        if i < bytes.count, bytes[i] == 0x2E {
            integral = false
            i += 1
            guard i < bytes.count, (0x30...0x39).contains(bytes[i]) else { throw fail("invalid number") }
            while i < bytes.count, (0x30...0x39).contains(bytes[i]) { i += 1 }
        }
        if i < bytes.count, bytes[i] == 0x65 || bytes[i] == 0x45 {
            integral = false
            i += 1
            if i < bytes.count, bytes[i] == 0x2B || bytes[i] == 0x2D { i += 1 }
            guard i < bytes.count, (0x30...0x39).contains(bytes[i]) else { throw fail("invalid number") }
            while i < bytes.count, (0x30...0x39).contains(bytes[i]) { i += 1 }
        }
        let text = String(decoding: bytes[start..<i], as: UTF8.self)
        guard let d = Double(text), d.isFinite else { throw fail("number out of range") }
        guard integral else { return .number(d, integer: nil) }
        // An integer literal must fit 64 bits: beyond, it would only survive as a rounded double (an echoed
        // command id would come back as a different number).
        guard let i = Int64(text) else { throw fail("integer out of range (beyond ±2^63; write it as a string)") }
        return .number(d, integer: i)
    }
}
