#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

@testable import EarshotSinks

/// Found by the `credentials` fuzz target: a CRLF credentials file gave a user name holding both lines (a
/// Swift `Character` "\r\n" is one grapheme, so the String split at "\n" never split it), a NUL would cut the
/// password short in libmosquitto, and invalid UTF-8 was silently replaced.
@Suite("MQTT credentials file: bytes, not graphemes")
struct MQTTCredentialsTests {
    func read(_ bytes: [UInt8]) throws -> (user: String, password: String?) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("earshot-creds-\(UUID().uuidString)").path
        defer { unlink(path) }
        FileManager.default.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: 0o600])
        return try MQTTSink.Configuration.readCredentials(path)
    }

    @Test func crlfAndPlainFilesGiveTheSameCredentials() throws {
        for text in ["user\r\nsecret\r\n", "user\nsecret\n", "user\r\nsecret", "user\nsecret\nignored third line\n"] {
            let c = try read(Array(text.utf8))
            #expect(c.user == "user" && c.password == "secret", "\(text.debugDescription): \(c)")
        }
        let noPassword = try read(Array("user\r\n".utf8))
        #expect(noPassword.user == "user" && noPassword.password == nil)
        let tab = try read(Array("user\npass\tword\n".utf8))
        #expect(tab.password == "pass\tword")
    }

    @Test func controlCharactersAndInvalidUTF8AreRefusedNotAltered() throws {
        let bad: [([UInt8], String)] = [
            (Array("user\npass\u{0}word\n".utf8), "password (second line) contains a control character"),
            (Array("user\npass\r\r\n".utf8), "password (second line) contains a control character"),
            (Array("us\u{1b}er\npass\n".utf8), "user name (first line) contains a control character"),
            ([0x75, 0x0A, 0x70, 0xB9, 0x0A], "password (second line) is not valid UTF-8"),
        ]
        for (bytes, message) in bad {
            do {
                let c = try read(bytes)
                Issue.record("accepted \(bytes): \(c)")
            } catch let error as SinkConfigError {
                #expect(error.message.contains(message), "\(error.message)")
            }
        }
    }
}
