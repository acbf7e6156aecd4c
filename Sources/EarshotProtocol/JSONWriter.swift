#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Builds one JSON line of a protocol message (off the per-frame path: replies, hello, rolling, alerts,
/// status, stats). Numbers are formatted by the hot-path frame encoder's ``ByteWriter``: ``fixed(_:decimals:)`` rounds half away from zero and drops trailing zeros (`-0` → `0`),
/// ``significant(_:digits:)`` keeps that many significant digits, non-finite values are `null`.
public struct JSONWriter: Sendable {
    public private(set) var bytes: [UInt8]
    /// Whether the next member of the object being written needs a comma.
    private var needsComma = false
    /// Formats numbers (see ``formatted(_:)``).
    private var scratch: ByteWriter?

    public init(capacity: Int = 256) { bytes = []; bytes.reserveCapacity(capacity) }

    // MARK: objects

    /// Starts `{"type":"<type>"` (the first member of every server message).
    public mutating func beginMessage(_ type: String) {
        bytes.append(0x7B)
        needsComma = false
        key("type"); string(type)
    }

    /// Closes the message object and appends the line's `\n`.
    public mutating func endMessage() { bytes.append(0x7D); bytes.append(0x0A) }

    /// Writes `,"name":` (the comma only after a previous member at this level).
    public mutating func key(_ name: String) {
        if needsComma { bytes.append(0x2C) }
        needsComma = true
        string(name)
        bytes.append(0x3A)
    }

    /// A nested object: `{`, the members written by `body`, `}`.
    public mutating func object(_ body: (inout JSONWriter) -> Void) {
        bytes.append(0x7B)
        needsComma = false
        body(&self)
        bytes.append(0x7D)
        needsComma = true
    }

    /// An array: `[`, `body` called once per element (commas between them), `]`.
    public mutating func array<S: Sequence>(_ items: S, _ body: (inout JSONWriter, S.Element) -> Void) {
        bytes.append(0x5B)
        var first = true
        for item in items {
            if !first { bytes.append(0x2C) }
            first = false
            needsComma = false
            body(&self, item)
        }
        bytes.append(0x5D)
        needsComma = true
    }

    // MARK: scalars

    public mutating func null() { ascii("null") }
    public mutating func bool(_ b: Bool) { ascii(b ? "true" : "false") }

    /// Bytes already valid JSON (a fragment built by another ``JSONWriter`` or ``ProtocolJSON``).
    public mutating func raw(_ fragment: some Sequence<UInt8>) { bytes.append(contentsOf: fragment) }

    mutating func ascii(_ s: StaticString) {
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    /// A JSON string literal: `"`, `\\`, `\n`, `\r`, `\t` escaped, other control characters as `\u00XX`.
    public mutating func string(_ s: String) {
        bytes.append(0x22)
        for u in s.utf8 {
            switch u {
            case 0x22: bytes.append(0x5C); bytes.append(0x22)
            case 0x5C: bytes.append(0x5C); bytes.append(0x5C)
            case 0x0A: bytes.append(0x5C); bytes.append(0x6E)
            case 0x0D: bytes.append(0x5C); bytes.append(0x72)
            case 0x09: bytes.append(0x5C); bytes.append(0x74)
            case 0..<0x20:
                ascii("\\u00")
                bytes.append(Self.hex[Int(u >> 4)]); bytes.append(Self.hex[Int(u & 15)])
            default: bytes.append(u)
            }
        }
        bytes.append(0x22)
    }
    static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    public mutating func int(_ v: some BinaryInteger) {
        bytes.append(contentsOf: String(v).utf8)
    }

    /// `v` rounded to `decimals` places (half away from zero), trailing zeros dropped; `null` if not finite.
    /// Formatted by ``ByteWriter`` (the per-frame encoder's writer): one implementation of the numbers.
    public mutating func fixed(_ v: Double, decimals: Int) {
        formatted { $0.fixed(v, decimals: decimals) }
    }

    /// `v` with `digits` significant digits: fixed notation for 1e-4 ≤ |v| < 1e15, else `d.ddde±X`.
    public mutating func significant(_ v: Double, digits: Int) {
        formatted { $0.significant(v, digits: digits) }
    }

    /// Appends what `write` formats into this writer's scratch ``ByteWriter`` (created at the first number,
    /// reused for the others; messages are encoded off the real-time threads).
    private mutating func formatted(_ write: (ByteWriter) -> Void) {
        // A copied writer shares the scratch: then it takes its own (copies may live on other threads).
        if scratch == nil || !isKnownUniquelyReferenced(&scratch) { scratch = ByteWriter(capacity: 64) }
        let w = scratch!
        w.reset()
        write(w)
        bytes.append(contentsOf: w.bytes)
    }

    /// The shortest text that reads back as exactly `v` (`null` if not finite): for values that must
    /// round-trip (a client's `id`, a command's `backfill_s`), not for measurements.
    public mutating func exact(_ v: Double) {
        guard v.isFinite else { null(); return }
        bytes.append(contentsOf: v.description.utf8)
    }

    // MARK: members

    public mutating func member(_ name: String, _ v: String) { key(name); string(v) }
    public mutating func member(_ name: String, _ v: Int) { key(name); int(v) }
    public mutating func member(_ name: String, _ v: Int64) { key(name); int(v) }
    public mutating func member(_ name: String, _ v: Bool) { key(name); bool(v) }
    public mutating func member(_ name: String, _ v: Double, decimals: Int) { key(name); fixed(v, decimals: decimals) }
    public mutating func member(_ name: String, _ v: ProtocolJSON) { key(name); v.write(into: &self) }
    public mutating func member(_ name: String, strings: some Sequence<String>) {
        key(name); array(strings) { w, s in w.string(s) }
    }
}
