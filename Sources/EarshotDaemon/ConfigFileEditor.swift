import Foundation

/// Sets a few `section.key` values in a YAML configuration file's text, keeping its comments and layout
/// byte for byte (`earshot calibrate --write`): the key's line keeps its indentation and trailing comment,
/// a missing key is added after the section's last key, a missing section is appended. Block-style
/// sections only; anything the line editor cannot do safely (flow style, a value over several lines,
/// duplicate sections) is refused, and the result is parsed again: every other key must load unchanged
/// and the new values must load as set, or nothing is written.
public enum ConfigFileEditor {
    public struct EditError: Error, CustomStringConvertible, Sendable {
        public var message: String
        public var description: String { message }
        init(_ message: String) { self.message = message }
    }

    /// `text` with `section.key` set to each YAML scalar in `values` (in order; new keys are added in this
    /// order).
    public static func setting(_ values: [(key: String, yaml: String)], in section: String, text: String)
        throws(EditError) -> String
    {
        var lines = splitLines(text)
        let header = lines.indices.filter { isSectionHeader(lines[$0].body, section) }
        guard header.count <= 1 else { throw EditError("section '\(section):' appears \(header.count) times") }
        guard let h = header.first else {
            // Append the section.
            // (The file's own line break; `hasSuffix("\n")` would miss a CRLF, one `Character` in Swift.)
            let nl = lineEnding(lines)
            var out = text
            if let last = lines.last, last.ending.isEmpty { out += nl }
            out += nl + section + ":" + nl
            for (k, v) in values { out += "  \(k): \(v)" + nl }
            return out
        }
        let rest = lines[h].body.dropFirst(section.count + 1)
        let afterColon = stripComment(String(rest)).trimmingCharacters(in: .whitespaces)
        guard afterColon.isEmpty else {
            throw EditError("'\(section):' is written on one line (\(afterColon.prefix(40))); write it as an indented block to let earshot edit it")
        }
        // The section's block: until the next line at column 0 that is not blank or a comment.
        var end = h + 1
        var childIndent: Int?
        var lastChild = h
        while end < lines.count {
            let body = lines[end].body
            let trimmed = body.drop { $0 == " " || $0 == "\t" }
            if trimmed.isEmpty || trimmed.hasPrefix("#") { end += 1; continue }
            let indent = body.count - trimmed.count
            if indent == 0 { break }
            if childIndent == nil { childIndent = indent }
            lastChild = end
            end += 1
        }
        let indent = childIndent ?? 2
        let pad = String(repeating: " ", count: indent)
        var insertAt = lastChild + 1
        for (key, value) in values {
            let matches = (h + 1..<end).filter { i in
                let b = lines[i].body
                return b.hasPrefix(pad + key + ":") && (b.count == indent + key.count + 1
                    || [" ", "\t"].contains(b[b.index(b.startIndex, offsetBy: indent + key.count + 1)]))
                    && !b.dropFirst(indent).hasPrefix(" ")
            }
            guard matches.count <= 1 else { throw EditError("'\(section).\(key)' appears \(matches.count) times") }
            if let i = matches.first {
                // The value must be on this line: the next non-blank line may not be indented deeper.
                if let next = ((i + 1)..<end).first(where: { !lines[$0].body.trimmingCharacters(in: .whitespaces).isEmpty && !lines[$0].body.trimmingCharacters(in: .whitespaces).hasPrefix("#") }) {
                    let nb = lines[next].body
                    if nb.count - nb.drop(while: { $0 == " " || $0 == "\t" }).count > indent {
                        throw EditError("'\(section).\(key)' is written over several lines; put its value on its line")
                    }
                }
                let b = lines[i].body
                let valueText = String(b.dropFirst(indent + key.count + 1))
                let comment = trailingComment(valueText)
                lines[i].body = pad + key + ": " + value + comment
            } else {
                lines.insert(Line(body: pad + key + ": " + value, ending: lineEnding(lines)), at: insertAt)
                if insertAt > 0, lines[insertAt - 1].ending.isEmpty { lines[insertAt - 1].ending = lineEnding(lines) }
                insertAt += 1
                end += 1
            }
        }
        return lines.map { $0.body + $0.ending }.joined()
    }

    /// Edits the file at `path` (symlinks followed) with ``setting(_:in:text:)``, checks the result loads
    /// with the new values and every other key unchanged, and replaces the file atomically (a temporary file
    /// in the same directory, fsync, rename) with the original's permissions and, where allowed, owner.
    /// `verify` checks the edited configuration (a message refuses the write).
    /// - Throws: ``EditError`` (nothing written) or a ``ConfigError`` for a file that does not load.
    public static func edit(
        path: String, section: String, values: [(key: String, yaml: String)],
        verify: ((EarshotConfig) -> String?)? = nil
    ) throws -> EarshotConfig {
        let target = (path as NSString).resolvingSymlinksInPath
        let data: Data
        do { data = try ConfigBuilder.readBounded(target) } catch { throw EditError("\(path): \(error.message)") }
        guard let text = String(data: data, encoding: .utf8) else { throw EditError("\(path): not valid UTF-8") }
        var before = ConfigBuilder()
        try before.applyYAML(text, file: path)
        let old = try before.validated(.init(checkSystem: false))
        let edited = try setting(values, in: section, text: text)
        var after = ConfigBuilder()
        let new: EarshotConfig
        do {
            try after.applyYAML(edited, file: path)
            new = try after.validated(.init(checkSystem: false))
        } catch {
            throw EditError("\(path): the edited file would not load (\(error)); nothing written")
        }
        let changed = Set(values.map { "\(section).\($0.key)" })
        for key in EarshotConfig.keyPaths where !changed.contains(key) && old.renderedValue(of: key) != new.renderedValue(of: key) {
            throw EditError("\(path): the edit would change '\(key)'; nothing written")
        }
        if let check = verify, let problem = check(new) { throw EditError("\(path): \(problem); nothing written") }
        try writeAtomically(Data(edited.utf8), to: target)
        return new
    }

    static func writeAtomically(_ data: Data, to path: String) throws(EditError) {
        var st = stat()
        guard stat(path, &st) == 0 else { throw EditError("\(path): \(String(cString: strerror(errno)))") }
        let dir = (path as NSString).deletingLastPathComponent
        var template = Array(((dir.isEmpty ? "." : dir) + "/." + (path as NSString).lastPathComponent + ".earshot-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw EditError("\(dir): cannot create a temporary file: \(String(cString: strerror(errno)))") }
        let tmp = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var ok = false
        defer { if !ok { unlink(tmp) } }
        _ = fchown(fd, st.st_uid, st.st_gid)  // best effort: only root may give a file away
        guard fchmod(fd, st.st_mode & 0o7777) == 0 else { close(fd); throw EditError("\(tmp): \(String(cString: strerror(errno)))") }
        var written = 0
        let failure: Int32? = data.withUnsafeBytes { buf in
            while written < buf.count {
                let n = write(fd, buf.baseAddress! + written, buf.count - written)
                if n < 0 { if errno == EINTR { continue }; return errno }
                written += n
            }
            return fsync(fd) == 0 ? nil : errno
        }
        close(fd)
        if let failure { throw EditError("\(tmp): \(String(cString: strerror(failure)))") }
        guard rename(tmp, path) == 0 else { throw EditError("\(path): \(String(cString: strerror(errno)))") }
        ok = true
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }

    struct Line { var body: String; var ending: String }

    /// Lines split at YAML's line breaks, LF, CRLF or a lone CR (bytes: a Swift `Character` "\r\n" is one
    /// grapheme), the break kept in the ending: a lone CR is a line break to the YAML parser too, so a header
    /// written `capture:\r` is found as one (and an edit cannot turn it into a second header).
    static func splitLines(_ text: String) -> [Line] {
        var out: [Line] = []
        let bytes = Array(text.utf8)
        var start = 0
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            guard b == 0x0A || b == 0x0D else { i += 1; continue }
            let crlf = b == 0x0D && i + 1 < bytes.count && bytes[i + 1] == 0x0A
            let ending = crlf ? "\r\n" : (b == 0x0A ? "\n" : "\r")
            out.append(Line(body: String(decoding: bytes[start..<i], as: UTF8.self), ending: ending))
            i += crlf ? 2 : 1
            start = i
        }
        if start < bytes.count { out.append(Line(body: String(decoding: bytes[start...], as: UTF8.self), ending: "")) }
        return out
    }

    static func lineEnding(_ lines: [Line]) -> String {
        lines.first(where: { !$0.ending.isEmpty })?.ending ?? "\n"
    }

    static func isSectionHeader(_ body: String, _ section: String) -> Bool {
        guard body.hasPrefix(section + ":") else { return false }
        let after = body.dropFirst(section.count + 1)
        return after.isEmpty || after.first == " " || after.first == "\t"
    }

    /// Where a ` # comment` starts in a value (outside quotes), with the blanks before it; "" when none.
    static func trailingComment(_ value: String) -> String {
        let chars = Array(value)
        var quote: Character?
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if let q = quote {
                if c == q { quote = nil }
            } else if c == "\"" || c == "'" {
                quote = c
            } else if c == "#", i > 0, chars[i - 1] == " " || chars[i - 1] == "\t" {
                var j = i
                while j > 0, chars[j - 1] == " " || chars[j - 1] == "\t" { j -= 1 }
                return String(chars[j...])
            }
            i += 1
        }
        return ""
    }

    static func stripComment(_ value: String) -> String {
        let c = trailingComment(value)
        return c.isEmpty ? (value.trimmingCharacters(in: .whitespaces).hasPrefix("#") ? "" : value) : String(value.dropLast(c.count))
    }
}
