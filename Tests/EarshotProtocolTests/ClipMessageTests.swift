import EarshotProtocol
import Testing

/// The `clip` message (issue 11, event clips).
@Suite struct ClipMessageTests {
    @Test func clipLineAndRoundTrip() throws {
        let m = ClipMessage(path: "/var/lib/earshot/clips/20261202T133501.250Z-earshot-level.wav", kind: "level",
                            start: 1796218499.25, end: 1796218507.5, samples: 396000, sampleRate: 48000, alerts: 2)
        #expect(m.text == #"{"type":"clip","path":"/var/lib/earshot/clips/20261202T133501.250Z-earshot-level.wav","kind":"level","start":1796218499.25,"end":1796218507.5,"samples":396000,"sample_rate":48000,"alerts":2}"# + "\n")
        let json = try ProtocolJSON.parse(m.line().dropLast())
        #expect(try ClipMessage.decode(json) == m)
        #expect(try decodeServerMessage(json).text == m.text)
    }

    @Test func clipDecoderRefusesWhatTheEncoderNeverWrites() throws {
        let good = #"{"type":"clip","path":"/a.wav","kind":"onset","start":1,"end":2,"samples":48000,"sample_rate":48000,"alerts":1}"#
        _ = try ClipMessage.decode(ProtocolJSON.parse(Array(good.utf8)))
        for bad in [
            good.replacingOccurrences(of: ",\"alerts\":1", with: ""),
            good.replacingOccurrences(of: "\"/a.wav\"", with: "3"),
            good.replacingOccurrences(of: "48000,\"sample", with: "\"x\",\"sample"),
            good.replacingOccurrences(of: "}", with: ",\"extra\":1}"),
        ] {
            #expect(throws: DecodeError.self, "\(bad)") { try ClipMessage.decode(ProtocolJSON.parse(Array(bad.utf8))) }
        }
    }
}
