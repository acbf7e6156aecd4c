/// Which optional features a ``FrameAnalyzer`` computes.
///
/// Onset strength is always computed (onset detection needs it). Everything else is computed only
/// when its member is present (log-mel also when MFCC or the `logmel` onset function needs it); the
/// ``FrameFeatures`` fields of the features that are not computed are left at 0 and the log-mel and
/// MFCC buffers are zero-filled, so nothing stale can leak out (encoders only write selected
/// features anyway).
public struct AnalyzerOutputs: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// ``FrameFeatures/rmsDbfs``.
    public static let rms = AnalyzerOutputs(rawValue: 1 << 0)
    /// ``FrameFeatures/peakDbfs``.
    public static let peak = AnalyzerOutputs(rawValue: 1 << 1)
    /// ``FrameFeatures/zcr``.
    public static let zcr = AnalyzerOutputs(rawValue: 1 << 2)
    /// ``FrameFeatures/centroidHz``.
    public static let centroid = AnalyzerOutputs(rawValue: 1 << 3)
    /// ``FrameFeatures/bandwidthHz`` (computes the centroid internally).
    public static let bandwidth = AnalyzerOutputs(rawValue: 1 << 4)
    /// ``FrameFeatures/rolloffHz``.
    public static let rolloff = AnalyzerOutputs(rawValue: 1 << 5)
    /// ``FrameFeatures/flatness``.
    public static let flatness = AnalyzerOutputs(rawValue: 1 << 6)
    /// ``FrameFeatures/flux`` (keeps the previous magnitude spectrum).
    public static let flux = AnalyzerOutputs(rawValue: 1 << 7)
    /// The MFCC vector.
    public static let mfcc = AnalyzerOutputs(rawValue: 1 << 8)
    /// The weighted levels ``FrameFeatures/laf``, `las`, `lcf`, `lzf` (the ``LevelMeter`` runs per sample).
    public static let levels = AnalyzerOutputs(rawValue: 1 << 9)
    /// The log-mel spectrum (mel filterbank and dB per band; about 8 % of an analysis that needs no mel).
    public static let logmel = AnalyzerOutputs(rawValue: 1 << 10)

    /// rms, peak and zcr.
    public static let statistics: AnalyzerOutputs = [.rms, .peak, .zcr]
    /// centroid, bandwidth, roll-off, flatness and flux.
    public static let spectral: AnalyzerOutputs = [.centroid, .bandwidth, .rolloff, .flatness, .flux]
    /// Everything (the live daemon's default).
    public static let all: AnalyzerOutputs = [.statistics, .spectral, .mfcc, .levels, .logmel]
    /// Only onset strength.
    public static let none: AnalyzerOutputs = []

    /// Features that need the magnitude spectrum `|X|` (the others use the power spectrum only).
    static let needsMagnitude: AnalyzerOutputs = [.centroid, .bandwidth, .rolloff, .flux]
    /// The features that need the magnitude sums (a constant: an array literal in `process` would allocate).
    static let centroidBandwidthRolloff: AnalyzerOutputs = [.centroid, .bandwidth, .rolloff]
}
