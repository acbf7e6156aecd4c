import EarshotClient
import EarshotProtocol

/// `earshot spectrogram --socket`: collects `seconds` of a running daemon's frames (log-mel, LAF) and onsets
/// into a ``SpectrogramGrid``, from the protocol lines (pure; the caller reads the socket).
///
/// The daemon keeps no past log-mel frames (the rolling backfill holds 1 s means only), so the window is
/// collected live: it starts at the first frame received and ends `seconds` later. `linear`: the `spectrum`
/// stream's power bins instead of the frames' log-mel (the frames then carry only the level).
public struct SocketSpectrogram {
    /// The stream parameters from `hello`.
    public struct Stream: Sendable, Equatable {
        public var sampleRate = 0, nFFT = 0, hop = 0
        public var melCentresHz: [Double] = []
        public var levelUnit = "dBFS"
        public var device = ""
    }

    public let seconds: Double
    public let linear: Bool
    public let maxColumns: Int
    public let maxRows: Int
    public private(set) var stream: Stream?
    public private(set) var grid: SpectrogramGrid?
    /// UNIX time of the first frame (the picture's time 0).
    public private(set) var start: Double?
    /// Frames received after a gap (`discontinuity`).
    public private(set) var discontinuities = 0
    /// The window is complete.
    public private(set) var isComplete = false
    /// Messages the daemon dropped for us (we read too slowly).
    public private(set) var dropped = 0

    mutating func addFrameExtras(_ msg: ProtocolJSON, at x: Double) {
        guard x >= 0, x < seconds else { return }
        if msg["discontinuity"] == .bool(true) { discontinuities += 1 }
        if let laf = msg["laf"]?.doubleValue { grid?.addLevel(TopState.sanitizedDb(laf), at: x) }
    }

    /// The subscription: every frame's log-mel (or spectrum) and LAF, and the onsets.
    public var command: ProtocolCommand {
        linear ? .subscribe([.frame, .spectrum, .onset], every: 1, fields: [.laf])
            : .subscribe([.frame, .onset], every: 1, fields: [.logmel, .laf])
    }

    public init(seconds: Double, linear: Bool = false, maxColumns: Int, maxRows: Int) {
        self.seconds = seconds
        self.linear = linear
        self.maxColumns = maxColumns
        self.maxRows = maxRows
    }

    /// Applies one line. Throws for an `error` reply and for a `hello` that changes the stream mid-window.
    public mutating func apply(line: [UInt8]) throws(PlotError) {
        guard let msg = try? ProtocolJSON.parse(line), let type = msg["type"]?.stringValue else { return }
        switch type {
        case HelloMessage.type:
            var s = Stream()
            s.sampleRate = Int(msg["sample_rate"]?.intValue ?? 0)
            s.nFFT = Int(msg["n_fft"]?.intValue ?? 0)
            s.hop = Int(msg["hop"]?.intValue ?? 0)
            s.levelUnit = msg["level_unit"]?.stringValue ?? "dBFS"
            s.device = msg["device"]?.stringValue ?? ""
            let edges = msg["mel_band_edges_hz"]?.arrayValue?.compactMap(\.doubleValue) ?? []
            s.melCentresHz = edges.count >= 3 ? Array(edges.dropFirst().dropLast()) : []
            guard s.sampleRate > 0, s.hop > 0, s.nFFT > 0, !s.melCentresHz.isEmpty else {
                throw PlotError("the daemon's hello lacks the stream parameters")
            }
            if let old = stream, old != s, start != nil {
                throw PlotError("the daemon changed its analysis parameters (a reload) during the window")
            }
            stream = s
        case FrameMessage.type where !linear, SpectrumMessage.type where linear:
            guard let s = stream, !isComplete, let t = msg["t"]?.doubleValue, t.isFinite,
                  let row = msg[linear ? "power_db" : "logmel"]?.arrayValue,
                  row.count == (linear ? s.nFFT / 2 + 1 : s.melCentresHz.count) else { return }
            if start == nil {
                start = t
                let frames = Int(min(1e9, seconds * Double(s.sampleRate) / Double(s.hop)))
                let scale: FrequencyScale = linear
                    ? .linear(binHz: Double(s.sampleRate) / Double(s.nFFT), bins: s.nFFT / 2 + 1)
                    : .mel(centresHz: s.melCentresHz)
                grid = SpectrogramGrid(
                    scale: scale, start: 0, end: seconds, maxColumns: maxColumns, maxRows: maxRows,
                    expectedFrames: max(1, frames))
            }
            let x = t - start!
            if x >= seconds { isComplete = true; return }
            let values = row.map { TopState.sanitizedDb($0.doubleValue) }
            values.withUnsafeBufferPointer { _ = grid!.add(dB: $0, at: x) }
            if !linear { addFrameExtras(msg, at: x) }
        case FrameMessage.type:
            // --linear: frames carry the level (and the gaps).
            if let start, let t = msg["t"]?.doubleValue { addFrameExtras(msg, at: t - start) }
        case DroppedMessage.type:
            dropped &+= Int(msg["count"]?.intValue ?? 0)
        case OnsetMessage.type:
            if let t = msg["t"]?.doubleValue, let start { grid?.addOnset(at: t - start) }
        case ErrorMessage.type:
            throw PlotError("the daemon refused the subscription: \(msg["message"]?.stringValue ?? "?")")
        default:
            break
        }
    }
}
