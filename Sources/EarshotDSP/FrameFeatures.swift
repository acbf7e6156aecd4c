/// Scalar features of one frame (fixed size, copied through lock-free rings).
///
/// Levels are dBFS with the RMS convention: a full-scale sine reads −3.01 dB.
/// No field is ever NaN or infinite (silent frames map to the documented floors).
public struct FrameFeatures: BitwiseCopyable, Sendable {
    /// `20*log10(max(rms, 1e-10))` over the frame's nFFT samples (≥ −200 dB).
    public var rmsDbfs: Float
    /// `20*log10(max(max|x|, 1e-10))` over the frame.
    public var peakDbfs: Float
    /// librosa `zero_crossing_rate(center=False)`: crossings / nFFT, |x| ≤ 1e-10 counts as +0.
    public var zcr: Float
    /// Spectral centroid of |X| in Hz (0 on an all-zero frame).
    public var centroidHz: Float
    /// Spectral bandwidth (p = 2, normalized) of |X| in Hz (0 on an all-zero frame).
    public var bandwidthHz: Float
    /// Roll-off frequency (``AnalyzerConfig/rolloffPercent``) of |X| in Hz (0 on an all-zero frame).
    public var rolloffHz: Float
    /// Spectral flatness of |X|² with amin 1e-10 (1 on an all-zero frame).
    public var flatness: Float
    /// Normalized positive spectral flux; see ``SpectralFeatures``.
    public var flux: Float
    /// librosa `onset_strength` on the log-mel frame (dB, ≥ 0).
    public var onsetStrength: Float
    /// A-weighted, Fast, dBFS at the frame's last sample.
    public var laf: Float
    /// A-weighted, Slow, dBFS at the frame's last sample.
    public var las: Float
    /// C-weighted, Fast, dBFS at the frame's last sample.
    public var lcf: Float
    /// Unweighted (Z), Fast, dBFS at the frame's last sample.
    public var lzf: Float

    /// All zeros.
    public init() {
        rmsDbfs = 0; peakDbfs = 0; zcr = 0; centroidHz = 0; bandwidthHz = 0; rolloffHz = 0
        flatness = 0; flux = 0; onsetStrength = 0; laf = 0; las = 0; lcf = 0; lzf = 0
    }
}

/// An onset found by ``OnsetPicker``.
public struct OnsetEvent: BitwiseCopyable, Sendable, Hashable {
    /// The frame the onset is in (its strength peak).
    public var frameIndex: Int64
    /// The frame whose processing detected it (`frameIndex + postMaxFrames`).
    public var detectedAtFrame: Int64
    /// Onset strength at the peak (dB).
    public var strength: Float

    public init(frameIndex: Int64, detectedAtFrame: Int64, strength: Float) {
        self.frameIndex = frameIndex
        self.detectedAtFrame = detectedAtFrame
        self.strength = strength
    }
}
