import EarshotDSP
import EarshotProtocol
import Testing

@testable import EarshotPipeline

/// The encoder takes its names from EarshotProtocol and writes members by position: pin the exact bytes
/// (they are what clients parse, and what the encoder wrote with literal names before).
@Suite struct FrameEncoderTests {
    static func text(_ body: (ByteWriter) -> Void) -> String {
        let w = ByteWriter(capacity: 4096)
        body(w)
        return String(decoding: w.bytes, as: UTF8.self)
    }

    @Test func frameAndOnsetLinesAreExact() {
        var h = FrameHeader()
        h.seq = 12
        h.wallNs = 1_700_000_000_123_456_000
        h.features.rmsDbfs = -20.5
        h.features.las = -30.25
        h.flags = FrameFlags.discontinuity | FrameFlags.suspend
        h.gapSamples = 480
        h.hasOnset = true
        h.onset = OnsetEvent(frameIndex: 10, detectedAtFrame: 12, strength: 1.5)
        h.onsetWallNs = 1_700_000_000_103_456_000
        h.onsetDelayMs = 31.25
        let logmel: [Float] = [-1, -2], mfcc: [Float] = [3]
        let enc = FrameEncoder(features: [.rmsDbfs, .las, .logmel, .mfcc], levelOffsetDb: 0, levelUnit: "dBFS")
        let s = Self.text { w in
            logmel.withUnsafeBufferPointer { l in mfcc.withUnsafeBufferPointer { m in enc.encodeJSON(h, logmel: l, mfcc: m, into: w) } }
        }
        #expect(s == """
            {"type":"frame","seq":12,"t":1700000000.123456,"discontinuity":true,"gap_samples":480,"cause":"suspend",\
            "rms_dbfs":-20.5,"las":-30.25,"logmel":[-1,-2],"mfcc":[3],"level_unit":"dBFS"}
            {"type":"onset","seq":10,"t":1700000000.103456,"strength":1.5,"delay_ms":31.25,"detected_seq":12}

            """)
        // The onset members in the order OnsetMessage lists them.
        let onsetLine = s.split(separator: "\n")[1]
        let keys = onsetLine.split(separator: "\"").enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
            .filter { OnsetMessage.keys.contains(String($0)) && $0 != "onset" }
        #expect(keys.map(String.init) == OnsetMessage.keys)
    }

    @Test func eachGapCauseIsACatalogueCause() {
        let cases: [(UInt32, FrameMessage.Cause)] = [
            (FrameFlags.reconnect | FrameFlags.xrun, .reconnect), (FrameFlags.suspend, .suspend),
            (FrameFlags.xrun, .xrun), (FrameFlags.ringOverrun, .overrun), (FrameFlags.replan, .reload), (0, .restart),
        ]
        for (flags, cause) in cases {
            var h = FrameHeader()
            h.flags = FrameFlags.discontinuity | flags
            let s = Self.text { w in
                [Float]().withUnsafeBufferPointer { e in FrameEncoder(features: []).encodeJSON(h, logmel: e, mfcc: e, into: w) }
            }
            #expect(s.contains(",\"cause\":\"\(cause.rawValue)\"}"), "\(s)")
        }
    }
}
