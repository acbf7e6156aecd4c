import EarshotPipeline
import Foundation
import EarshotProtocol
import Testing

/// Every server message: its exact line, and decoding it gives the message back.
@Suite struct MessageTests {
    func roundTrip<M: DecodableServerMessage & Equatable>(_ m: M, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let line = m.line()
        #expect(line.last == 0x0A && line.filter { $0 == 0x0A }.count == 1, "one line", sourceLocation: sourceLocation)
        let json = try ProtocolJSON.parse(line.dropLast())
        #expect(json["type"]?.stringValue == M.type, sourceLocation: sourceLocation)
        #expect(try M.decode(json) == m, sourceLocation: sourceLocation)
        let any = try decodeServerMessage(json)
        #expect(any.text == m.text, sourceLocation: sourceLocation)
    }

    static let limits = HelloMessage.Limits(
        maxLineBytes: 65536, queueMessages: 4096, queueBytes: 16_777_216, stallLimitSeconds: 10, backfillSeconds: 600,
        maxClients: 128, maxClientsPerUID: 64, queueBytesTotal: 67_108_864, idleTimeoutSeconds: 2.5)

    @Test func hello() throws {
        let m = HelloMessage(
            daemonVersion: "1.2.3", sampleRate: 16000, nFFT: 512, hop: 160, nMels: 2, nMFCC: 0,
            melBandEdgesHz: [0, 100.004, 200.5, 8000], levelUnit: "dB SPL", device: "hw:\"x\"", onsetLookAheadMs: 10,
            features: [.laf, .rmsDbfs], limits: Self.limits)
        #expect(m.text == """
            {"type":"hello","protocol":1,"daemon_version":"1.2.3","sample_rate":16000,"n_fft":512,"hop":160,"n_mels":2,"n_mfcc":0,\
            "mel_band_edges_hz":[0,100,200.5,8000],"level_unit":"dB SPL","device":"hw:\\"x\\"","onset_lookahead_ms":10,\
            "features":[{"name":"rms_dbfs","unit":"dBFS","summary":"\(Feature.rmsDbfs.summary)"},\
            {"name":"laf","unit":"dB SPL","summary":"\(Feature.laf.summary)"}],\
            "streams":["frame","rolling","onset","alert","status","stats","spectrum"],\
            "limits":{"max_line_bytes":65536,"queue_messages":4096,"queue_bytes":16777216,"stall_limit_s":10,"backfill_s":600,\
            "max_clients":128,"max_clients_per_uid":64,"queue_bytes_total":67108864,"idle_timeout_s":2.5}}

            """)
        var exact = m
        exact.melBandEdgesHz = [0, 100, 200.5, 8000]  // what survives 2 decimals
        try roundTrip(exact)
        // A feature with the wrong unit or an unknown key is refused.
        var bad = try ProtocolJSON.parse(m.line().dropLast())
        if case .object(var o) = bad { o["extra"] = .bool(true); bad = .object(o) }
        #expect(throws: DecodeError.self) { try HelloMessage.decode(bad) }
    }

    @Test func rolling() throws {
        let m = RollingMessage(
            windowSeconds: 10, t: 1_700_000_000, tEnd: 1_700_000_010.5, seqFirst: 5, seqLast: 1004, frames: 1000,
            complete: true, levelUnit: "dBFS", weighting: "laf", leq: -24.8, lmax: -12.1, lmin: .nan, l10: -20.2,
            l50: -25.3, l90: -30.1, onsets: 3, discontinuities: 0, centroidHzMean: 1420.5, logmelMean: [-70.25, -80])
        #expect(m.text == """
            {"type":"rolling","window_s":10,"t":1700000000,"t_end":1700000010.5,"seq_first":5,"seq_last":1004,"frames":1000,\
            "complete":true,"level_unit":"dBFS","weighting":"laf","leq":-24.8,"lmax":-12.1,"lmin":null,"l10":-20.2,"l50":-25.3,\
            "l90":-30.1,"onsets":3,"discontinuities":0,"centroid_hz_mean":1420.5,"logmel_mean":[-70.25,-80]}

            """)
        var finite = m
        finite.lmin = -31.5
        try roundTrip(finite)
    }

    @Test func alerts() throws {
        let start = AlertMessage.level(state: .start, levelDb: -26.94, thresholdDb: -30, t: 1795454030.8361, seq: 710,
                                       decidedSeq: 811, durationSeconds: nil, maxDb: nil, weighting: "laf")
        #expect(start.text == """
            {"type":"alert","alert":"level","state":"start","level_db":-26.9,"threshold_db":-30,"t":1795454030.836,"seq":710,"decided_seq":811,"weighting":"laf"}

            """)
        let end = AlertMessage.level(state: .end, levelDb: -34.1, thresholdDb: -30, t: 1795454033.412, seq: 968,
                                     decidedSeq: 988, durationSeconds: 2.58, maxDb: -26.7, weighting: "las")
        #expect(end.text.contains(#""decided_seq":988,"duration_s":2.58,"max_db":-26.7,"weighting":"las"}"#))
        let onset = AlertMessage.onset(strength: 12.144, t: 1795454026.226, seq: 249, suppressed: 0)
        #expect(onset.text == #"{"type":"alert","alert":"onset","strength":12.14,"t":1795454026.226,"seq":249,"suppressed":0}"# + "\n")
        let summary = AlertMessage.onsetSummary(suppressed: 7, emitted: 10, periodSeconds: 60, t: 1795454086.2)
        #expect(summary.text == #"{"type":"alert","alert":"onset_summary","suppressed":7,"emitted":10,"period_s":60,"t":1795454086.2}"# + "\n")
        try roundTrip(AlertMessage.level(state: .start, levelDb: -26.9, thresholdDb: -30, t: 1795454030.836, seq: 710,
                                         decidedSeq: 811, durationSeconds: nil, maxDb: nil, weighting: "laf"))
        try roundTrip(end)
        // The end's sound exposure level (issue 12): `sel_db` with its IEC name, both or neither, on `end` only.
        let withSEL = AlertMessage.level(state: .end, levelDb: -34.1, thresholdDb: -30, t: 1795454033.412, seq: 968,
                                         decidedSeq: 988, durationSeconds: 2.58, maxDb: -26.7, weighting: "laf",
                                         selDb: -25.6149, sel: "LAE")
        #expect(withSEL.text.contains(#""weighting":"laf","sel_db":-25.61,"sel":"LAE"}"#))
        try roundTrip(AlertMessage.level(state: .end, levelDb: -34.1, thresholdDb: -30, t: 1795454033.412, seq: 968,
                                         decidedSeq: 988, durationSeconds: 2.58, maxDb: -26.7, weighting: "lcf",
                                         selDb: -25.61, sel: "LCE"))
        // An end a reload decided (`reason`, on `end` only).
        let reconfigured = AlertMessage.level(state: .end, levelDb: -10, thresholdDb: -20, t: 1795454033.412, seq: 119,
                                              decidedSeq: 119, durationSeconds: 0.69, maxDb: -10, weighting: "laf",
                                              selDb: -12.5, sel: "LAE", reason: "reconfigured")
        #expect(reconfigured.text.contains(#""sel":"LAE","reason":"reconfigured"}"#))
        try roundTrip(reconfigured)
        let startWithReason = #"{"type":"alert","alert":"level","state":"start","level_db":-26.9,"threshold_db":-30,"t":1,"seq":9,"decided_seq":9,"weighting":"laf","reason":"reconfigured"}"#
        #expect(throws: (any Error).self) { try AlertMessage.decode(ProtocolJSON.parse(Array(startWithReason.utf8))) }
        for bad in [#""sel_db":-25.61"#, #""sel":"LAE""#] {
            let line = #"{"type":"alert","alert":"level","state":"end","level_db":-34.1,"threshold_db":-30,"t":1,"seq":9,"decided_seq":9,"duration_s":1,"max_db":-20,"weighting":"laf","#
                + bad + "}"
            #expect(throws: (any Error).self) { try AlertMessage.decode(ProtocolJSON.parse(Array(line.utf8))) }
        }
        try roundTrip(AlertMessage.onset(strength: 12.14, t: 1795454026.226, seq: 249, suppressed: 0))
        try roundTrip(summary)
        // `duration_s` on a start is refused.
        #expect(throws: DecodeError.self) {
            try AlertMessage.decode(ProtocolJSON.parse(Array(start.text.replacingOccurrences(of: ",\"weighting\"", with: ",\"duration_s\":1,\"weighting\"").utf8.dropLast())))
        }
    }

    @Test func statusEvents() throws {
        let events: [(StatusMessage.Event, String)] = [
            (.deviceLost(error: "Input/output error", errno: 5), #""error":"Input/output error","errno":5"#),
            (.deviceRecovered(downSeconds: 4.4124, reconnects: 1), #""down_s":4.412,"reconnects":1"#),
            (.xrun(xruns: 3, suppressed: 0), #""xruns":3,"suppressed":0"#),
            (.discontinuity(count: 1, total: 4, ringOverrunSamples: 0), #""count":1,"total":4,"ring_overrun_samples":0"#),
            (.reload(changed: 2, rebuilt: false, plan: "retune", failedSinks: []), #""changed":2,"plan":"retune","failed_sinks":[]"#),
            (.reload(changed: nil, rebuilt: true, plan: "rebuild", failedSinks: ["metrics"]), #""rebuilt":true,"plan":"rebuild","failed_sinks":["metrics"]"#),
            (.sinkFailed(sink: "metrics", error: "bind: \"9464\"\n", failures: 1), #""sink":"metrics","error":"bind: \"9464\"\n","failures":1"#),
            (.samplesSanitized(nonfinite: 3, clamped: 1), #""nonfinite":3,"clamped":1"#),
        ]
        for (event, members) in events {
            let m = StatusMessage(event, t: 1763912120.5, device: "pulse")
            #expect(m.text == #"{"type":"status","event":""# + event.name + #"","t":1763912120.5,"device":"pulse","# + members + "}\n")
            var exact = m
            if case .deviceRecovered(_, let r) = event { exact.event = .deviceRecovered(downSeconds: 4.412, reconnects: r) }
            try roundTrip(exact)
        }
    }

    @Test func stats() throws {
        let m = StatsMessage(
            t: 1795454033.8919791, counters: [("frames", 1004), ("xruns", 0)],
            latency: [.init(stage: "dsp", count: 504, p50Ms: 0.0244, p99Ms: 0.035, maxMs: 0.048)],
            overBudget: [("capture", 0), ("dsp", 2)])
        #expect(m.text == """
            {"type":"stats","t":1795454033.891979,"frames":1004,"xruns":0,\
            "latency_ms":{"dsp":{"count":504,"p50":0.024,"p99":0.035,"max":0.048}},"over_budget":{"capture":0,"dsp":2}}

            """)
        let exact = StatsMessage(
            t: 1795454033.891979, counters: [("frames", 1004), ("xruns", 0)],
            latency: [.init(stage: "dsp", count: 504, p50Ms: 0.024, p99Ms: 0.035, maxMs: 0.048)],
            overBudget: [("capture", 0), ("dsp", 2)])
        try roundTrip(exact)
    }

    @Test func replies() throws {
        let sub = SubscribedMessage(streams: [.onset, .frame], every: 2, fields: [.mfcc, .laf], backfill: 0, id: .number(7, integer: 7))
        #expect(sub.text == #"{"type":"subscribed","streams":["frame","onset"],"every":2,"fields":["laf","mfcc"],"backfill":0,"id":7}"# + "\n")
        try roundTrip(sub)
        let all = SubscribedMessage(streams: [.rolling], every: 1, fields: nil, backfill: 12, id: nil)
        #expect(all.text == #"{"type":"subscribed","streams":["rolling"],"every":1,"fields":null,"backfill":12}"# + "\n")
        try roundTrip(all)
        let unsub = UnsubscribedMessage(streams: [], id: .string("x\"y"))
        #expect(unsub.text == #"{"type":"unsubscribed","streams":[],"id":"x\"y"}"# + "\n")
        try roundTrip(unsub)
        let pong = PongMessage(id: .null, t: 1763912140.1234561)
        #expect(pong.text == #"{"type":"pong","id":null,"t":1763912140.123456}"# + "\n")
        try roundTrip(PongMessage(id: nil, t: 1763912140.123456))
        let dropped = DroppedMessage(count: 312, stream: .frame)
        #expect(dropped.text == #"{"type":"dropped","count":312,"stream":"frame"}"# + "\n")
        try roundTrip(dropped)
        for code in ProtocolError.Code.allCases {
            let e = ErrorMessage(code: code, message: "why\u{1}", id: code == .stalled ? nil : .number(1.5, integer: nil))
            #expect(e.text.hasPrefix(#"{"type":"error","code":""# + code.rawValue + #"","message":"why\u0001""#))
            try roundTrip(e)
        }
    }

    /// The protocol writer formats numbers and strings exactly as the hot-path frame encoder's writer, so a
    /// value reads the same whichever message carries it.
    @Test func writerFormatsLikeTheFrameEncoder() {
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Double {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            let mantissa = Double(seed >> 11) / Double(1 << 53) - 0.5
            let exponent = Int((seed >> 3) % 40) - 20
            return mantissa * pow10(exponent)
        }
        func pow10(_ e: Int) -> Double { var p = 1.0; for _ in 0..<abs(e) { p *= 10 }; return e < 0 ? 1 / p : p }
        var values: [Double] = [0, -0.0, 0.5, -0.5, 1.0005, -1.0005, 9.9999996, 1e15, 1e-5, 123456.789, .nan, .infinity, 9.3e18, -2.5e-7]
        for _ in 0..<20_000 { values.append(next()) }
        let b = ByteWriter(capacity: 64)
        var mismatches: [String] = []
        for v in values {
            for d in [0, 1, 2, 3, 6] {
                b.reset(); b.fixed(v, decimals: d)
                var w = JSONWriter(); w.fixed(v, decimals: d)
                if Array(b.bytes) != w.bytes { mismatches.append("fixed(\(v), \(d))") }
            }
            for d in [6, 17] {
                b.reset(); b.significant(v, digits: d)
                var w = JSONWriter(); w.significant(v, digits: d)
                if Array(b.bytes) != w.bytes { mismatches.append("significant(\(v), \(d))") }
            }
        }
        for s in ["", "plain", "quote\" backslash\\ nl\n cr\r tab\t", "\u{0}\u{1f}\u{7f}", "é€😀"] {
            b.reset(); b.jsonString(s)
            var w = JSONWriter(); w.string(s)
            if Array(b.bytes) != w.bytes { mismatches.append("string(\(s.debugDescription))") }
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(10))")
    }

    /// The catalogue names the wire keys the frame encoder writes, with the kinds it writes them as.
    @Test func frameAndOnsetKeysMatchTheEncoder() throws {
        var h = FrameHeader()
        h.seq = 12; h.wallNs = 1_700_000_000_123_456_000
        h.hasOnset = true
        let logmel = [Float](repeating: -80, count: 4), mfcc = [Float](repeating: 1, count: 3)
        for features in [Set(Feature.allCases), [.laf], [.mfcc, .zcr]] as [Set<Feature>] {
            let enc = FrameEncoder(features: features)
            let w = ByteWriter(capacity: 4096)
            logmel.withUnsafeBufferPointer { l in mfcc.withUnsafeBufferPointer { m in enc.encodeJSON(h, logmel: l, mfcc: m, into: w) } }
            let lines = Array(w.bytes).split(separator: 0x0A)
            #expect(lines.count == 2)
            let frame = try ProtocolJSON.parse(lines[0])
            let keys = Set(try #require(frame.objectValue).keys)
            #expect(keys.isSubset(of: FrameMessage.keys(features: features)))
            #expect(keys.isSuperset(of: Set(features.map(\.rawValue))))
            #expect(frame["type"]?.stringValue == FrameMessage.type)
            for f in features {
                switch f.kind {
                case .vector: #expect(frame[f.rawValue]?.arrayValue != nil, "\(f)")
                case .scalar: #expect(frame[f.rawValue]?.doubleValue != nil || frame[f.rawValue] == .null, "\(f)")
                }
            }
            #expect((frame["level_unit"] != nil) == features.contains(where: \.isWeightedLevel))
            let onset = try ProtocolJSON.parse(lines[1])
            #expect(onset["type"]?.stringValue == OnsetMessage.type)
            #expect(Set(try #require(onset.objectValue).keys) == Set(OnsetMessage.keys))
        }
        // A discontinuity's cause is one of the documented causes.
        h.flags = FrameFlags.discontinuity | FrameFlags.xrun
        let w = ByteWriter(capacity: 4096)
        [Float](repeating: 0, count: 4).withUnsafeBufferPointer { l in FrameEncoder(features: [.rmsDbfs]).encodeJSON(h, logmel: l, mfcc: l, into: w) }
        let frame = try ProtocolJSON.parse(Array(w.bytes).split(separator: 0x0A)[0])
        #expect(FrameMessage.Cause(rawValue: frame["cause"]?.stringValue ?? "") == .xrun)
    }
}

/// `hello.calibration` (issue 11): sent when a calibration date is configured, decoded back, absent otherwise.
@Suite("Hello calibration")
struct HelloCalibrationTests {
    static func hello(_ c: CalibrationInfo?) -> HelloMessage {
        var h = HelloMessage(
            daemonVersion: "0.1.0", sampleRate: 48_000, nFFT: 1024, hop: 480, nMels: 2, nMFCC: 0,
            melBandEdgesHz: [0, 100, 200, 300], levelUnit: c == nil ? "dBFS" : "dB SPL", device: "default",
            onsetLookAheadMs: 10, features: [.laf],
            limits: .init(maxLineBytes: 1, queueMessages: 1, queueBytes: 1, stallLimitSeconds: 1, backfillSeconds: 0,
                          maxClients: 1, maxClientsPerUID: 1, queueBytesTotal: 1, idleTimeoutSeconds: 1))
        h.calibration = c
        return h
    }

    @Test func roundTrip() throws {
        let c = CalibrationInfo(date: "2026-12-02T12:40:20Z", referenceDb: 94, offsetDb: 120.37)
        let text = Self.hello(c).text
        #expect(text.contains(#""calibration":{"date":"2026-12-02T12:40:20Z","reference_db":94,"offset_db":120.37}"#), "\(text)")
        let decoded = try decodeServerMessage(ProtocolJSON.parse(Self.hello(c).line().dropLast()))
        #expect((decoded as? HelloMessage)?.calibration == c)
        let none = Self.hello(nil).text
        #expect(!none.contains("calibration"))
        #expect((try decodeServerMessage(ProtocolJSON.parse(Self.hello(nil).line().dropLast())) as? HelloMessage)?.calibration == nil)
        let noReference = CalibrationInfo(date: "2026-12-02", referenceDb: nil, offsetDb: -3)
        #expect((try decodeServerMessage(ProtocolJSON.parse(Self.hello(noReference).line().dropLast())) as? HelloMessage)?.calibration == noReference)
    }
}
