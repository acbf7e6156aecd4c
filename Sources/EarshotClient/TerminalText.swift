import EarshotProtocol

/// Text from the socket made safe to print on a terminal: control characters (C0 but none of them is
/// expected in one line, DEL, C1) are shown as `\u001b`-style escapes, so a string in a message (a device
/// name, an error message, a garbled line) cannot move the cursor, clear the screen or set the title.
public enum TerminalText {
    /// `s` with every control character escaped.
    public static func safe(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: isControl) else { return s }
        var out = String.UnicodeScalarView()
        for u in s.unicodeScalars {
            if isControl(u) {
                let hex = String(u.value, radix: 16)
                out.append(contentsOf: "\\u\(String(repeating: "0", count: 4 - hex.count))\(hex)".unicodeScalars)
            } else {
                out.append(u)
            }
        }
        return String(out)
    }

    /// A raw line from the socket as printable text (invalid UTF-8 shown as U+FFFD).
    public static func safe(_ line: some Collection<UInt8>) -> String { safe(String(decoding: line, as: UTF8.self)) }

    /// `json` with every string (keys included) made ``safe(_:)-(String)``.
    public static func safe(_ json: ProtocolJSON) -> ProtocolJSON {
        switch json {
        case .string(let s): .string(safe(s))
        case .array(let a): .array(a.map(safe))
        case .object(let o): .object(Dictionary(o.map { (safe($0.key), safe($0.value)) }, uniquingKeysWith: { a, _ in a }))
        default: json
        }
    }

    static func isControl(_ u: Unicode.Scalar) -> Bool { u.value < 0x20 || (0x7F...0x9F).contains(u.value) }
}
