#if canImport(Glibc)
import Glibc
#endif
import EarshotSinks

/// Fuzz target body (corpus: Fuzz/corpus/credentials). Must be total: no trap, no hang, bounded memory, for any bytes.
///
/// The bytes are an `mqtt.credentials_file` (mode 0600, or 0640 when byte 0 is odd: the refusal path), read by
/// the daemon's own ``MQTTSink/Configuration/readCredentials(_:)``. Invariants: a file with group access is
/// refused; an accepted one gives a non-empty user name and a password that are exactly the bytes of the first
/// two lines (one CR before each LF dropped: CRLF files), valid UTF-8 without control characters (what
/// libmosquitto sends is what was written, never cut at a NUL or altered), and a file larger than 4096 bytes is
/// refused rather than cut. Found by this target: a CRLF file gave a user name holding both lines (a Swift
/// `Character` "\r\n" is one grapheme, so splitting the String at "\n" never split it), and invalid UTF-8 was
/// silently replaced.
public func fuzzCredentials(_ data: UnsafeRawBufferPointer) {
    let dir = FuzzScratch.directory("credentials")
    let path = dir + "/credentials"
    let bytes = Array(data)
    let groupReadable = bytes.first.map { $0 & 1 == 1 } ?? false
    FuzzScratch.write(path, bytes, mode: groupReadable ? 0o640 : 0o600)
    defer { unlink(path) }
    let result: (user: String, password: String?)
    do { result = try MQTTSink.Configuration.readCredentials(path) } catch {
        _ = error.message
        return
    }
    precondition(!groupReadable, "a group-readable credentials file was accepted")
    precondition(bytes.count <= 4096, "a file of \(bytes.count) bytes was accepted")
    precondition(!result.user.isEmpty, "empty user accepted")
    for text in [result.user, result.password ?? ""] {
        precondition(!text.utf8.contains { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }, "a credential holds a control character")
    }
    // Exactly the bytes of the first two lines (one CR before the LF dropped), never altered.
    let lines = bytes.split(separator: 0x0A, maxSplits: 2, omittingEmptySubsequences: false).map { $0.last == 0x0D ? $0.dropLast() : $0 }
    precondition(Array(result.user.utf8) == Array(lines[0]), "user is not the first line")
    precondition(Array((result.password ?? "").utf8) == (lines.count > 1 ? Array(lines[1]) : []), "password is not the second line")
}
