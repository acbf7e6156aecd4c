#if canImport(Glibc)
import Glibc
#endif
import EarshotClient
import EarshotProtocol
import Foundation
import Testing

/// What `earshot tail` and `earshot top` print of the socket's text never carries a control character
/// (attack run: `tail` passed an ESC from the server to the terminal: cursor moves, screen clears, title).
@Suite struct TerminalTextTests {
    static func hasControl(_ s: String) -> Bool {
        s.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }
    }

    @Test func controlCharactersAreEscaped() {
        #expect(TerminalText.safe("plain ✓ text") == "plain ✓ text")
        #expect(TerminalText.safe("a\u{1b}[2Jb\u{7}\u{9b}c\td") == "a\\u001b[2Jb\\u0007\\u009bc\\u0009d")
        #expect(TerminalText.safe([0x61, 0x1B, 0xFF, 0x62]) == "a\\u001b\u{FFFD}b")
    }

    /// A hostile server on a real socket: JSON-escaped ESC in the hello's device name and an error message,
    /// raw ESC bytes in an unparsable line. Neither the live view nor `--json` prints a control character.
    @Test func tailPrintsNoControlCharacterFromTheServer() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("es-term-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("s.sock").path
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: Array(path.utf8)); raw[path.utf8.count] = 0
        }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(bound == 0 && listen(listener, 4) == 0)
        let evil = """
            {"type":"hello","protocol":1,"daemon_version":"1\\u001b]0;pwned\\u0007","sample_rate":48000,"hop":480,"n_mels":4,"level_unit":"dBFS","device":"hw:\\u001b[2J\\u001b[H"}
            {"type":"error","code":"x\\u001b[31m","message":"\\u009b6n"}
            \u{1b}[2Jnot json\u{7}

            """
        let server = Thread {
            for _ in 0..<2 {
                let c = accept(listener, nil, nil)
                guard c >= 0 else { return }
                _ = Array(evil.utf8).withUnsafeBytes { write(c, $0.baseAddress, $0.count) }
                usleep(200_000)
                close(c)
            }
        }
        server.start()
        var live: [String] = [], raw: [String] = []
        _ = try TailClient.run(socketPath: path, streams: ["frame"], every: 1, json: false, maxSeconds: 1, reconnect: false) { live.append($0) }
        _ = try TailClient.run(socketPath: path, streams: ["frame"], every: 1, json: true, maxSeconds: 1, reconnect: false) { raw.append($0) }
        #expect(live.count == 3 && raw.count == 3, "live \(live), raw \(raw)")
        #expect(live.first?.contains("device=hw:\\u001b[2J") == true, "\(live)")
        for line in live + raw { #expect(!Self.hasControl(line), "\(line)") }

        var top = TopState(threshold: -20, weighting: "laf")
        top.apply(line: Array(evil.split(separator: "\n")[0].utf8))
        #expect(top.device == "hw:\\u001b[2J\\u001b[H")
    }
}
