/// A conservative pass over the raw YAML text before Yams sees it, refusing what could make composing it
/// unbounded: anchors and aliases (an alias bomb used as a mapping key makes Yams hash an exponentially
/// expanded tree: a minute of CPU on SIGHUP) and deep nesting (Yams composes recursively).
///
/// It does not parse YAML; it only has to never miss what libyaml would take for an anchor, an alias or a
/// nesting level. So `&name` / `*name` is flagged wherever a token could start (after anything but a letter,
/// a digit or a character that cannot end a token), including inside quoted strings — a false alarm there
/// costs the user a rewording, a miss could cost the supervisor. Comments are skipped only when the rest of
/// the line holds no quote character (otherwise the `#` may be inside a quoted scalar that closes later on
/// the line, with real tokens after it).
enum YAMLAliasScan {
    /// Deepest flow nesting (`[` / `{`) accepted.
    static let maxFlowDepth = 64
    /// Most nesting a single line may open in block style (indentation columns plus `- ` / `? ` / `: `
    /// indicators before its first scalar).
    static let maxBlockDepth = 256

    struct Finding: Equatable {
        var line: Int
        var token: String
        var isNesting: Bool
    }

    /// The first anchor, alias or too-deep nesting, with its 1-based line.
    static func firstProblem(in text: String) -> Finding? {
        var bytes = Array(text.utf8)
        bytes.append(0x0A)
        return bytes.withUnsafeBufferPointer { scan($0) }
    }

    @inline(__always) static func isAnchorChar(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F || b == 0x2D
    }

    /// Bytes after which no token can start (so `&`/`*` after them is text): letters, digits, `_ . / = ~ + @ % $ ; ( )`.
    @inline(__always) static func isInnerChar(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
            || b == 0x5F || b == 0x2E || b == 0x2F || b == 0x3D || b == 0x7E || b == 0x2B || b == 0x40
            || b == 0x25 || b == 0x24 || b == 0x3B || b == 0x28 || b == 0x29
    }

    @inline(__always) static func isBlank(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }

    /// Length of a line break at `i` as libyaml counts them (LF, CR, NEL, LS, PS), 0 if none.
    @inline(__always) static func breakLength(_ p: UnsafeBufferPointer<UInt8>, _ i: Int) -> Int {
        let b = p[i]
        if b == 0x0A || b == 0x0D { return 1 }
        if b == 0xC2, i + 1 < p.count, p[i + 1] == 0x85 { return 2 }
        if b == 0xE2, i + 2 < p.count, p[i + 1] == 0x80, p[i + 2] == 0xA8 || p[i + 2] == 0xA9 { return 3 }
        return 0
    }

    static func scan(_ p: UnsafeBufferPointer<UInt8>) -> Finding? {
        var line = 1
        var i = 0
        var flowDepth = 0
        var atLineStart = true
        var lineDepth = 0       // indentation + block indicators so far on this line
        var sawScalar = false   // a non-indicator character appeared on this line
        var quoteSearchedTo = -1  // bytes up to here (exclusive of a break) were searched for a quote…
        var quoteAt = -1          // …and this is the last quote found on the current line (or -1)
        while i < p.count {
            let b = p[i]
            let br = breakLength(p, i)
            if br > 0 {
                if b == 0x0A { line += 1 }
                i += br
                atLineStart = true; lineDepth = 0; sawScalar = false; quoteAt = -1
                continue
            }
            let previousIsBoundary = i == 0 || !isInnerChar(p[i - 1])
            if b == 0x23, i == 0 || atLineStart || isBlank(p[i - 1]) || breakLength(p, i - 1) > 0 {  // '#'
                // A comment, unless a quote later on the line could close a quoted scalar it is part of.
                // (Each byte of a line is searched once, however many `#` it holds.)
                var j = max(i + 1, quoteSearchedTo)
                while j < p.count, breakLength(p, j) == 0 {
                    if p[j] == 0x22 || p[j] == 0x27 { quoteAt = j }
                    j += 1
                }
                quoteSearchedTo = j
                if quoteAt <= i {
                    while i < p.count, breakLength(p, i) == 0 { i += 1 }
                    continue
                }
            }
            if (b == 0x26 || b == 0x2A), previousIsBoundary, i + 1 < p.count, isAnchorChar(p[i + 1]) {  // '&' '*'
                var j = i + 1
                while j < p.count, j - i < 40, isAnchorChar(p[j]) { j += 1 }
                return Finding(line: line, token: String(decoding: UnsafeBufferPointer(rebasing: p[i..<j]), as: UTF8.self), isNesting: false)
            }
            if b == 0x5B || b == 0x7B {  // '[' '{'
                flowDepth += 1
                if flowDepth > maxFlowDepth { return Finding(line: line, token: "nesting deeper than \(maxFlowDepth)", isNesting: true) }
            } else if b == 0x5D || b == 0x7D {
                flowDepth = max(0, flowDepth - 1)
            }
            if !sawScalar {
                if isBlank(b) {
                    if atLineStart { lineDepth += 1 }
                } else if (b == 0x2D || b == 0x3F || b == 0x3A), i + 1 < p.count, isBlank(p[i + 1]) || breakLength(p, i + 1) > 0 {
                    lineDepth += 1
                } else {
                    sawScalar = true
                }
                if lineDepth > maxBlockDepth { return Finding(line: line, token: "nesting deeper than \(maxBlockDepth)", isNesting: true) }
            }
            if !isBlank(b) { atLineStart = false }
            i += 1
        }
        return nil
    }
}
