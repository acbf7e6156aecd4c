#if canImport(Glibc)
import Glibc
#endif
import EarshotSinks

/// Fuzz target body (corpus: Fuzz/corpus/credentials). Must be total: no trap, no hang, bounded memory, for any bytes.
///
/// The bytes are an `mqtt.credentials_file` (mode 0600, or 0640 when byte 0 is odd: the refusal path), read by
/// the daemon's own ``MQTTSink/Configuration/readCredentials(_:)``. Invariants: a file with group access is
/// refused; an accepted one gives a non-empty user name and a password that are each one line (no newline,
/// no trailing CR: what libmosquitto sends is exactly what was written), the user is the text before the
/// first newline, and a file larger than 4096 bytes is refused rather than cut.
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
        precondition(!text.utf8.contains(0x0A) && !text.hasSuffix("\r"), "a credential spans lines")
    }
    let firstLine = bytes.split(separator: 0x0A, maxSplits: 1, omittingEmptySubsequences: false).first ?? []
    let expected = String(decoding: firstLine.last == 0x0D ? firstLine.dropLast() : firstLine, as: UTF8.self)
    precondition(result.user == expected, "user is not the first line")
}
