/// The linear power spectrum of one frame (stream `spectrum`, optional: the DSP thread copies the spectrum
/// only while a client is subscribed, and only for the frames the subscriptions' `every` selects).
///
/// `power_db[k]` is `10·log10(max(|X_k|², 1e-10))` of bin `k` (`k · bin_hz` Hz, `n_fft/2 + 1` bins), 2
/// decimals; `seq`/`t` are those of the frame.
public struct SpectrumMessage: ServerMessage, Equatable {
    public static let type = "spectrum"
    public var seq: Int64
    public var t: Double
    public var binHz: Double
    public var powerDb: [Double]

    public init(seq: Int64, t: Double, binHz: Double, powerDb: [Double]) {
        self.seq = seq; self.t = t; self.binHz = binHz; self.powerDb = powerDb
    }

    public func encodeMembers(into w: inout JSONWriter) {
        w.member("seq", seq)
        w.member("t", t, decimals: 6)
        w.member("bin_hz", binHz, decimals: 6)
        w.key("power_db")
        w.array(powerDb) { w, v in w.fixed(v, decimals: 2) }
    }
}

extension SpectrumMessage: DecodableServerMessage {
    public init(reading r: inout MessageReader) throws(DecodeError) {
        self.init(seq: try r.int64("seq"), t: try r.double("t"), binHz: try r.double("bin_hz"), powerDb: try r.doubles("power_db"))
    }
}
