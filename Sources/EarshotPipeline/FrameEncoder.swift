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

    public init(features: Set<Feature> = Set(Feature.allCases), levelOffsetDb: Float = 0, levelUnit: String = "dBFS") {
        self.features = features
        self.levelOffsetDb = levelOffsetDb
        self.levelUnit = levelUnit
        order = Feature.allCases.filter { features.contains($0) }
        let w = ByteWriter(capacity: 64)
        w.jsonString(levelUnit)
        levelUnitJSON = Array(w.bytes)
    }

    /// NDJSON line of a frame (with the trailing newline), and the onset line it decided, if any.
    public func encodeJSON(_ h: FrameHeader, logmel: UnsafeBufferPointer<Float>, mfcc: UnsafeBufferPointer<Float>, into w: ByteWriter) {
        w.ascii("{\"type\":\"frame\",\"seq\":")
        w.int(h.seq)
        w.ascii(",\"t\":")
        writeTime(h.wallNs, w)
        if h.flags & FrameFlags.discontinuity != 0 {
            w.ascii(",\"discontinuity\":true,\"gap_samples\":")
            w.int(h.gapSamples)
            w.ascii(",\"cause\":\"")
            writeCause(h.flags, w)
            w.byte(0x22)
        }
        var wroteLevel = false
        for f in order {
            switch f {
            case .logmel:
                w.ascii(",\"logmel\":[")
                vector(logmel, w)
                w.byte(0x5D)
            case .mfcc:
                w.ascii(",\"mfcc\":[")
                vector(mfcc, w)
                w.byte(0x5D)
            default:
                w.byte(0x2C); w.byte(0x22)
                writeName(f, w)
                w.byte(0x22); w.byte(0x3A)
                scalar(f, h.features, w)
                if !wroteLevel, f == .laf || f == .las || f == .lcf || f == .lzf { wroteLevel = true }
            }
        }
        if wroteLevel {
            w.ascii(",\"level_unit\":")
            levelUnitJSON.withUnsafeBufferPointer { w.append($0) }
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
        w.ascii("{\"type\":\"onset\",\"seq\":")
        w.int(h.onset.frameIndex)
        w.ascii(",\"t\":")
        writeTime(h.onsetWallNs, w)
        w.ascii(",\"strength\":")
        w.fixed(h.onset.strength, decimals: 3)
        w.ascii(",\"delay_ms\":")
        w.fixed(h.onsetDelayMs, decimals: 3)
        w.ascii(",\"detected_seq\":")
        w.int(h.onset.detectedAtFrame)
        w.ascii("}\n")
    }

    /// CSV header: `seq,t,<scalars>,logmel_0…,mfcc_0…,discontinuity,gap_samples,onset_seq`.
    public func csvHeader(nMels: Int, nMFCC: Int, into w: ByteWriter) {
        w.ascii("seq,t")
        for f in order {
            switch f {
            case .logmel: for i in 0..<nMels { w.ascii(",logmel_"); w.int(Int64(i)) }
            case .mfcc: for i in 0..<nMFCC { w.ascii(",mfcc_"); w.int(Int64(i)) }
            default: w.byte(0x2C); writeName(f, w)
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

    @inline(__always)
    func writeName(_ f: Feature, _ w: ByteWriter) {
        switch f {
        case .rmsDbfs: w.ascii("rms_dbfs")
        case .peakDbfs: w.ascii("peak_dbfs")
        case .laf: w.ascii("laf")
        case .las: w.ascii("las")
        case .lcf: w.ascii("lcf")
        case .lzf: w.ascii("lzf")
        case .zcr: w.ascii("zcr")
        case .centroidHz: w.ascii("centroid_hz")
        case .bandwidthHz: w.ascii("bandwidth_hz")
        case .rolloffHz: w.ascii("rolloff_hz")
        case .flatness: w.ascii("flatness")
        case .flux: w.ascii("flux")
        case .onsetStrength: w.ascii("onset_strength")
        case .logmel: w.ascii("logmel")
        case .mfcc: w.ascii("mfcc")
        }
    }

    func writeCause(_ flags: UInt32, _ w: ByteWriter) {
        if flags & FrameFlags.reconnect != 0 { w.ascii("reconnect") }
        else if flags & FrameFlags.suspend != 0 { w.ascii("suspend") }
        else if flags & FrameFlags.xrun != 0 { w.ascii("xrun") }
        else if flags & FrameFlags.ringOverrun != 0 { w.ascii("overrun") }
        else if flags & FrameFlags.replan != 0 { w.ascii("reload") }
        else { w.ascii("restart") }
    }
}
