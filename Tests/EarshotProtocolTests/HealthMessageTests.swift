import EarshotProtocol
import Testing

/// The `health` message (issue 11) and `hello.health`.
@Suite struct HealthMessageTests {
    @Test func healthLinesAndRoundTrip() throws {
        let start = HealthMessage(kind: .silence, state: .start, t: 1795454030.5, value: 30.5, threshold: 30, active: [.silence])
        #expect(start.text == #"{"type":"health","kind":"silence","state":"start","t":1795454030.5,"value":30.5,"threshold":30,"active":["silence"]}"# + "\n")
        let end = HealthMessage(kind: .clockDrift, state: .end, t: 1795454099.25, value: -1234.5, threshold: 2000, active: [.dcOffset, .noData])
        #expect(end.text.contains(#""kind":"clock_drift","state":"end","t":1795454099.25,"value":-1234.5,"threshold":2000,"active":["dc_offset","no_data"]"#))
        for m in [start, end] {
            let json = try ProtocolJSON.parse(m.line().dropLast())
            #expect(try HealthMessage.decode(json) == m)
            #expect(try decodeServerMessage(json).text == m.text)
        }
        for kind in HealthMessage.Kind.allCases {
            let m = HealthMessage(kind: kind, state: .start, t: 1, value: 0.25, threshold: 0.5, active: [kind])
            #expect(try HealthMessage.decode(ProtocolJSON.parse(m.line().dropLast())) == m)
        }
    }

    @Test func healthDecoderRefusesWhatTheEncoderNeverWrites() throws {
        let good = #"{"type":"health","kind":"silence","state":"start","t":1,"value":1,"threshold":1,"active":[]}"#
        _ = try HealthMessage.decode(ProtocolJSON.parse(Array(good.utf8)))
        for bad in [
            good.replacingOccurrences(of: "silence", with: "hum"),
            good.replacingOccurrences(of: "\"start\"", with: "\"begin\""),
            good.replacingOccurrences(of: "[]", with: "[\"nope\"]"),
            good.replacingOccurrences(of: ",\"active\":[]", with: ""),
            good.replacingOccurrences(of: "}", with: ",\"extra\":1}"),
        ] {
            #expect(throws: DecodeError.self, "\(bad)") { try HealthMessage.decode(ProtocolJSON.parse(Array(bad.utf8))) }
        }
    }

    @Test func statsCarriesTheHealthState() throws {
        let m = StatsMessage(t: 1.5, counters: [("frames", 10), ("health_silence", 1)], latency: [], overBudget: [("dsp", 0)],
                             health: "silence")
        #expect(m.text.hasSuffix(#""over_budget":{"dsp":0},"health":"silence"}"# + "\n"))
        let decoded = try StatsMessage.decode(ProtocolJSON.parse(m.line().dropLast()))
        #expect(decoded.health == "silence" && decoded.counters.contains { $0.name == "health_silence" && $0.value == 1 })
        #expect(try StatsMessage.decode(ProtocolJSON.parse(Array(#"{"type":"stats","t":1,"latency_ms":{},"over_budget":{}}"#.utf8))).health == nil)
    }

    @Test func helloCarriesTheHealthState() throws {
        var m = HelloMessage(
            daemonVersion: "1", sampleRate: 48000, nFFT: 1024, hop: 480, nMels: 1, nMFCC: 0, melBandEdgesHz: [0, 1, 2],
            levelUnit: "dBFS", device: "d", onsetLookAheadMs: 10, features: [.laf], limits: MessageTests.limits)
        #expect(!m.text.contains("health"))
        m.health = "silence,clipping"
        #expect(m.text.hasSuffix(#","health":"silence,clipping"}"# + "\n"))
        let decoded = try HelloMessage.decode(ProtocolJSON.parse(m.line().dropLast()))
        #expect(decoded == m)
        let wrong = m.text.replacingOccurrences(of: #""silence,clipping""#, with: "1")
        #expect(throws: DecodeError.self) { try HelloMessage.decode(ProtocolJSON.parse(Array(wrong.utf8.dropLast()))) }
    }
}
