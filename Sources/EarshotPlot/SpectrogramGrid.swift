#if canImport(Glibc)
import Glibc
#endif

/// How the rows of a spectrogram map to frequency.
public enum FrequencyScale: Sendable, Equatable {
    /// Mel bands: row `i` is the band centred at `centresHz[i]` (`mel_band_edges_hz[i + 1]`); the bands are
    /// equally spaced on the mel scale, so equal row heights are the true (mel) scale of the bins.
    case mel(centresHz: [Double])
    /// Linear FFT bins: row `k` is `k * binHz` Hz (`n_fft/2 + 1` rows).
    case linear(binHz: Double, bins: Int)

    /// Rows of the source spectrum.
    public var count: Int {
        switch self {
        case .mel(let c): c.count
        case .linear(_, let bins): bins
        }
    }

    /// Frequency (Hz) at the centre of source row `i`.
    public func hz(row i: Int) -> Double {
        switch self {
        case .mel(let c): c[min(max(0, i), c.count - 1)]
        case .linear(let binHz, _): Double(i) * binHz
        }
    }
}

/// A spectrogram reduced to at most a plot's pixels while it is collected: bounded memory whatever the
/// length of the input (a 24-hour file and a 2-second one take the same space).
///
/// Frames are placed by the time of their centre in `[start, end)`; each grid column keeps, per row, the
/// **maximum** dB of the frames that fall in it (a short click stays visible when a column spans many
/// frames), and rows are max-pooled the same way when the spectrum has more bins than the plot has pixels.
/// A column no frame fell into is drawn with the previous column's values (up to two in a row; longer runs — a gap — stay empty).
public struct SpectrogramGrid: Sendable {
    public let columns: Int
    public let rows: Int
    public let scale: FrequencyScale
    public let start: Double
    public let end: Double
    /// `columns × rows`, column-major; NaN where nothing arrived.
    public private(set) var values: [Float]
    /// Per column: lowest and highest level (the level trace), NaN where none arrived.
    public private(set) var levelLow: [Float]
    public private(set) var levelHigh: [Float]
    /// Per column: an onset was detected in it.
    public private(set) var onsets: [Bool]
    /// Frames that landed in the grid.
    public private(set) var frames = 0

    /// - Parameters:
    ///   - maxColumns: the plot width in pixels (columns are never more than the frames the range holds).
    ///   - maxRows: the plot height in pixels.
    ///   - expectedFrames: frames the range should hold (bounds the number of columns).
    public init(scale: FrequencyScale, start: Double, end: Double, maxColumns: Int, maxRows: Int, expectedFrames: Int) {
        precondition(end > start && maxColumns > 0 && maxRows > 0 && scale.count > 0)
        self.scale = scale
        self.start = start
        self.end = end
        columns = max(1, min(maxColumns, expectedFrames))
        rows = min(maxRows, scale.count)
        values = [Float](repeating: .nan, count: columns * rows)
        levelLow = [Float](repeating: .nan, count: columns)
        levelHigh = [Float](repeating: .nan, count: columns)
        onsets = [Bool](repeating: false, count: columns)
    }

    /// The column of time `t`, nil outside `[start, end)`.
    public func column(at t: Double) -> Int? {
        guard t.isFinite, t >= start, t < end else { return nil }
        return min(columns - 1, Int((t - start) / (end - start) * Double(columns)))
    }

    /// Adds one frame's spectrum (dB, `scale.count` values) centred at `t`. Returns false outside the range.
    @discardableResult
    public mutating func add(dB spectrum: UnsafeBufferPointer<Float>, at t: Double) -> Bool {
        guard let c = column(at: t), spectrum.count == scale.count else { return false }
        frames += 1
        let (rows, sourceRows) = (rows, scale.count)
        values.withUnsafeMutableBufferPointer { v in
            let base = c * rows
            for i in 0..<spectrum.count {
                let x = spectrum[i]
                guard x.isFinite else { continue }
                let k = base + (rows == sourceRows ? i : i * rows / sourceRows)
                if !(v[k] >= x) { v[k] = x }
            }
        }
        return true
    }

    /// Adds a level reading (dB) at `t` to the level trace.
    public mutating func addLevel(_ level: Float, at t: Double) {
        guard level.isFinite, let c = column(at: t) else { return }
        if !(levelLow[c] <= level) { levelLow[c] = level }
        if !(levelHigh[c] >= level) { levelHigh[c] = level }
    }

    /// Marks an onset at `t`.
    public mutating func addOnset(at t: Double) {
        if let c = column(at: t) { onsets[c] = true }
    }

    /// Highest finite value (nil when the grid is empty).
    public var maximum: Float? {
        var m: Float?
        for x in values where x.isFinite { if m == nil || x > m! { m = x } }
        return m
    }
}

/// `10 * log10(max(power, 1e-10))`, the floor log-mel uses.
@inline(__always) public func powerToDb(_ p: Float) -> Float {
    10 * log10f(max(p.isFinite ? p : 0, 1e-10))
}
