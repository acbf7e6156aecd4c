import EarshotDSP
public import EarshotProtocol

/// Serializes frames as NDJSON (`{"type":"frame",...}` / `{"type":"onset",...}`) or CSV, once per frame,
/// into a reused ``ByteWriter``: fixed precision, no `Float.description`.
///
/// Precision: levels and dB vectors 3 decimals (±0.0005 dB), MFCC 3 decimals, frequencies 2 decimals,
/// `zcr` 6 decimals, `flatness`/`flux` 6 significant digits, `t` 6 decimals (µs).
public struct FrameEncoder: Sendable {
    public var features: Set<Feature>
    /// Added to the weighted levels (`laf`…`lzf`): the microphone calibration, `dB SPL = dBFS + offset`.
    public var levelOffsetDb: Float
    /// `"dBFS"` or `"dB SPL"`.
    public var levelUnit: String
    /// Adds `"dsp_us"` (DSP time of the frame) and `"ready_ms"` (capture of the frame's last sample →
    /// frame ready) to NDJSON frames — `earshot run --stdout --timing`, for latency measurements.
    public var timing = false
    let order: [Feature]
    let levelUnitJSON: [UInt8]
    /// The fixed parts of the lines, built once from the names in EarshotProtocol (``FrameMessage``,
    /// ``OnsetMessage``, ``Feature``) so the wire names have one definition; per frame they are copied like
    /// the string literals they replace (no lookup, no allocation).
    let names: Names

    struct Names: Sendable {
        /// `{"type":"frame","seq":`, `,"t":`, `,"discontinuity":true,"gap_samples":`, `,"cause":"`,
        /// `,"level_unit":`.
        let frameHead: [UInt8], t: [UInt8], discontinuity: [UInt8], cause: [UInt8], levelUnit: [UInt8]
        /// `,"<feature>":` for each feature of `order` (`,"logmel":[` / `,"mfcc":[` for the vectors), one
        /// after the other; `featureEnds[i]` is where the i-th ends.
        let features: [UInt8], featureEnds: [Int]
        /// `{"type":"onset","seq":`, `,"t":`, `,"strength":`, `,"delay_ms":`, `,"detected_seq":`.
        let onsetHead: [UInt8], onsetT: [UInt8], strength: [UInt8], delayMs: [UInt8], detectedSeq: [UInt8]

        init(order: [Feature]) {
            func member(_ key: String, first: Bool = false, open: String = "") -> [UInt8] {
                Array((first ? "" : ",").utf8) + Array(ByteWriter.jsonLiteral(key).utf8) + Array(":".utf8)
                    + Array(open.utf8)
            }
            func head(_ type: String, _ key: String) -> [UInt8] {
                Array("{".utf8) + member("type", first: true) + Array(ByteWriter.jsonLiteral(type).utf8)
                    + member(key)
            }
            frameHead = head(FrameMessage.type, FrameMessage.seq)
            t = member(FrameMessage.t)
            discontinuity = member(FrameMessage.discontinuity) + Array("true".utf8) + member(FrameMessage.gapSamples)
            cause = member(FrameMessage.cause, open: "\"")
            levelUnit = member(FrameMessage.levelUnit)
            var bytes: [UInt8] = [], ends: [Int] = []
            for f in order {
                bytes += member(f.rawValue, open: f == .logmel || f == .mfcc ? "[" : "")
                ends.append(bytes.count)
            }
            features = bytes
            featureEnds = ends
            let k = OnsetMessage.keys  // type, seq, t, strength, delay_ms, detected_seq
            // The members are written by position: a reordered or renamed list must change the encoder too
            // (checked in debug builds and tests; MessageTests compares the encoded keys with the list).
            assert(k == ["type", "seq", "t", "strength", "delay_ms", "detected_seq"],
                   "OnsetMessage.keys changed: update FrameEncoder.encodeOnsetJSON")
            onsetHead = head(OnsetMessage.type, k[1])
            onsetT = member(k[2])
            strength = member(k[3])
            delayMs = member(k[4])
            detectedSeq = member(k[5])
        }
    }

    public init(features: Set<Feature> = Set(Feature.allCases), levelOffsetDb: Float = 0, levelUnit: String = "dBFS") {
        self.features = features
        self.levelOffsetDb = levelOffsetDb
        self.levelUnit = levelUnit
        order = Feature.allCases.filter { features.contains($0) }
        let w = ByteWriter(capacity: 64)
        w.jsonString(levelUnit)
        levelUnitJSON = Array(w.bytes)
        names = Names(order: order)
    }

    /// NDJSON line of a frame (with the trailing newline), and the onset line it decided, if any.
    public func encodeJSON(_ h: FrameHeader, logmel: UnsafeBufferPointer<Float>, mfcc: UnsafeBufferPointer<Float>, into w: ByteWriter) {
        put(names.frameHead, w)
        w.int(h.seq)
        put(names.t, w)
        writeTime(h.wallNs, w)
        if h.flags & FrameFlags.discontinuity != 0 {
            put(names.discontinuity, w)
            w.int(h.gapSamples)
            put(names.cause, w)
            w.append(cause(h.flags).rawValue)
            w.byte(0x22)
        }
        var wroteLevel = false
        names.features.withUnsafeBufferPointer { keys in
            names.featureEnds.withUnsafeBufferPointer { ends in
                var start = 0
                for i in 0..<order.count {
                    let f = order[i]
                    let end = ends[i]
                    w.append(UnsafeBufferPointer(rebasing: keys[start..<end]))
                    start = end
                    switch f {
                    case .logmel:
                        vector(logmel, w)
                        w.byte(0x5D)
                    case .mfcc:
                        vector(mfcc, w)
                        w.byte(0x5D)
                    default:
                        scalar(f, h.features, w)
                        if !wroteLevel, f == .laf || f == .las || f == .lcf || f == .lzf { wroteLevel = true }
                    }
                }
            }
        }
        if wroteLevel {
            put(names.levelUnit, w)
            put(levelUnitJSON, w)
        }
        if timing {
            w.ascii(",\"dsp_us\":")
            w.fixed(Double(h.dspEndNs &- h.dspStartNs) / 1e3, decimals: 2)
            w.ascii(",\"ready_ms\":")
            w.fixed(Double(h.dspEndNs &- h.lastSampleMonotonicNs) / 1e6, decimals: 3)
        }
        w.ascii("}\n")
        if h.hasOnset { encodeOnsetJSON(h, into: w) }
    }

    /// `{"type":"onset","seq":S,"t":T,"strength":X,"delay_ms":D,"detected_seq":S2}` line.
    public func encodeOnsetJSON(_ h: FrameHeader, into w: ByteWriter) {
        put(names.onsetHead, w)
        w.int(h.onset.frameIndex)
        put(names.onsetT, w)
        writeTime(h.onsetWallNs, w)
        put(names.strength, w)
        w.fixed(h.onset.strength, decimals: 3)
        put(names.delayMs, w)
        w.fixed(h.onsetDelayMs, decimals: 3)
        put(names.detectedSeq, w)
        w.int(h.onset.detectedAtFrame)
        w.ascii("}\n")
    }

    @inline(__always)
    func put(_ bytes: [UInt8], _ w: ByteWriter) {
        bytes.withUnsafeBufferPointer { w.append($0) }
    }

    /// CSV header: `seq,t,<scalars>,logmel_0…,mfcc_0…,discontinuity,gap_samples,onset_seq`.
    public func csvHeader(nMels: Int, nMFCC: Int, into w: ByteWriter) {
        w.ascii("seq,t")
        for f in order {
            switch f {
            case .logmel: for i in 0..<nMels { w.ascii(",logmel_"); w.int(Int64(i)) }
            case .mfcc: for i in 0..<nMFCC { w.ascii(",mfcc_"); w.int(Int64(i)) }
            default: w.byte(0x2C); w.append(f.rawValue)
            }
        }
        w.ascii(",discontinuity,gap_samples,onset_seq\n")
    }

    /// One CSV row; `onset_seq` holds the seq of an onset decided by this frame, else is empty.
    public func encodeCSV(_ h: FrameHeader, logmel: UnsafeBufferPointer<Float>, mfcc: UnsafeBufferPointer<Float>, into w: ByteWriter) {
        w.int(h.seq)
        w.byte(0x2C)
        writeTime(h.wallNs, w)
        for f in order {
            switch f {
            case .logmel: for v in logmel { w.byte(0x2C); w.fixed(v, decimals: 3) }
            case .mfcc: for v in mfcc { w.byte(0x2C); w.fixed(v, decimals: 3) }
            default: w.byte(0x2C); scalar(f, h.features, w)
            }
        }
        w.ascii(h.flags & FrameFlags.discontinuity != 0 ? ",1," : ",0,")
        w.int(h.gapSamples)
        w.byte(0x2C)
        if h.hasOnset { w.int(h.onset.frameIndex) }
        w.byte(0x0A)
    }

    @inline(__always)
    func writeTime(_ ns: Int64, _ w: ByteWriter) {
        // Exact: integer seconds and microseconds, no floating point.
        var us = ns / 1000
        if ns % 1000 >= 500 { us += 1 } else if ns % 1000 <= -500 { us -= 1 }
        if us < 0 { w.byte(0x2D); us = -us }
        w.reserve(32)
        w.unsigned(UInt64(us / 1_000_000), minDigits: 1)
        let frac = us % 1_000_000
        if frac != 0 {
            w.byte(0x2E)
            var f = frac, d = 6
            while f % 10 == 0 { f /= 10; d -= 1 }
            w.reserve(8)
            w.unsigned(UInt64(f), minDigits: d)
        }
    }

    @inline(__always)
    func vector(_ v: UnsafeBufferPointer<Float>, _ w: ByteWriter) {
        w.fixed3List(v)
    }

    @inline(__always)
    func scalar(_ f: Feature, _ x: FrameFeatures, _ w: ByteWriter) {
        switch f {
        case .rmsDbfs: w.fixed(x.rmsDbfs, decimals: 3)
        case .peakDbfs: w.fixed(x.peakDbfs, decimals: 3)
        case .laf: w.fixed(x.laf + levelOffsetDb, decimals: 3)
        case .las: w.fixed(x.las + levelOffsetDb, decimals: 3)
        case .lcf: w.fixed(x.lcf + levelOffsetDb, decimals: 3)
        case .lzf: w.fixed(x.lzf + levelOffsetDb, decimals: 3)
        case .zcr: w.fixed(x.zcr, decimals: 6)
        case .centroidHz: w.fixed(x.centroidHz, decimals: 2)
        case .bandwidthHz: w.fixed(x.bandwidthHz, decimals: 2)
        case .rolloffHz: w.fixed(x.rolloffHz, decimals: 2)
        case .flatness: w.significant(Double(x.flatness), digits: 6)
        case .flux: w.significant(Double(x.flux), digits: 6)
        case .onsetStrength: w.fixed(x.onsetStrength, decimals: 3)
        case .logmel, .mfcc: break
        }
    }

    /// The `cause` of a frame after a gap (the first that applies).
    func cause(_ flags: UInt32) -> FrameMessage.Cause {
        if flags & FrameFlags.reconnect != 0 { return .reconnect }
        if flags & FrameFlags.suspend != 0 { return .suspend }
        if flags & FrameFlags.xrun != 0 { return .xrun }
        if flags & FrameFlags.ringOverrun != 0 { return .overrun }
        if flags & FrameFlags.replan != 0 { return .reload }
        return .restart
    }
}
