import EarshotProtocol
import Testing

@Suite("rolling: integrated levels and bands")
struct RollingLevelsTests {
    static func message(levels: RollingLevels?, bands: RollingBands?) -> RollingMessage {
        RollingMessage(windowSeconds: 1, t: 10, tEnd: 11, seqFirst: 0, seqLast: 99, frames: 100, complete: true,
                       levelUnit: "dBFS", weighting: "laf", leq: -20, lmax: -10, lmin: -30, l10: -12, l50: -20, l90: -28,
                       onsets: 0, discontinuities: 0, centroidHzMean: 1000, logmelMean: [-50, -60],
                       levels: levels, bands: bands)
    }

    @Test func roundTrip() throws {
        let levels = RollingLevels(laeq: -20, lceq: -19.5, lzeq: -19.25, lafmax: -10, lafmin: -30, lasmax: -15,
                                   lcpeak: -7, samples: 48_000)
        let bands = RollingBands(kind: "third", centerHz: [25, 31.5, 1000], leq: [-60, -55.5, -20])
        for m in [Self.message(levels: nil, bands: nil), Self.message(levels: levels, bands: nil),
                  Self.message(levels: levels, bands: bands)] {
            let line = m.line()
            let decoded = try #require(try decodeServerMessage(try ProtocolJSON.parse(line)) as? RollingMessage)
            #expect(decoded == m, "\(String(decoding: line, as: UTF8.self))")
        }
        let text = String(decoding: Self.message(levels: levels, bands: bands).line(), as: UTF8.self)
        for key in ["laeq", "lceq", "lzeq", "lafmax", "lafmin", "lasmax", "lcpeak", "level_samples"] {
            #expect(text.contains("\"\(key)\":"), "\(text)")
        }
        #expect(text.contains(#""bands":{"kind":"third","center_hz":[25,31.5,1000],"leq":["#), "\(text)")
    }

    @Test func bandsOfDifferentLengthsAreRefused() throws {
        let bad = #"{"type":"rolling","window_s":1,"t":1,"t_end":2,"seq_first":0,"seq_last":1,"frames":2,"complete":true,"level_unit":"dBFS","weighting":"laf","leq":-1,"lmax":-1,"lmin":-1,"l10":-1,"l50":-1,"l90":-1,"onsets":0,"discontinuities":0,"centroid_hz_mean":0,"logmel_mean":[],"bands":{"kind":"third","center_hz":[25],"leq":[]}}"#
        #expect(throws: DecodeError.self) { _ = try decodeServerMessage(try ProtocolJSON.parse(Array(bad.utf8))) }
    }
}
