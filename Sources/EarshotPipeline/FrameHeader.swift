import EarshotDSP

/// Everything about one analysed frame except its vectors (log-mel and MFCC live next to it in the
/// ``FrameBus`` slot). Fixed size and trivially copyable, so it moves through lock-free rings.
///
/// Times: `monotonicNs`/`wallNs` are the capture time of the frame's **first** sample, derived from ALSA
/// timestamps (live) or from the sample index (offline, `wallNs = firstSample / sampleRate`).
public struct FrameHeader: BitwiseCopyable, Sendable {
    /// Frame index since the pipeline started (never reused, keeps counting across discontinuities).
    public var seq: Int64
    /// Index of the frame's first sample on the stream timeline (lost samples included).
    public var firstSample: Int64
    /// CLOCK_MONOTONIC capture time of the first sample.
    public var monotonicNs: Int64
    /// UNIX capture time of the first sample (the protocol's `t`).
    public var wallNs: Int64
    /// CLOCK_MONOTONIC capture time of the frame's last sample (latency budgets start here).
    public var lastSampleMonotonicNs: Int64
    /// When the DSP thread started and finished this frame (CLOCK_MONOTONIC; 0 offline).
    public var dspStartNs: Int64
    public var dspEndNs: Int64
    /// Samples lost just before this frame (only with ``FrameFlags/discontinuity``).
    public var gapSamples: Int64
    /// ``FrameFlags`` bits.
    public var flags: UInt32
    /// The scalar features.
    public var features: FrameFeatures
    /// Set when processing this frame decided an onset (which may lie in an earlier frame).
    public var hasOnset: Bool
    /// The onset decided by this frame, valid when `hasOnset`.
    public var onset: OnsetEvent
    /// UNIX time of the onset frame's first sample (valid when `hasOnset`).
    public var onsetWallNs: Int64
    /// Audio time from the onset frame's first sample to the last sample of this (detecting) frame, in ms:
    /// the look-ahead the causal picker needed. Deterministic, identical live and offline.
    public var onsetDelayMs: Float
    /// The level data (energies, per-sample extremes) of the frame's new samples, split at the level grid;
    /// ``LevelInterval/empty`` when the analyzer does not compute levels.
    public var levels: LevelInterval
    /// The band energies of the frame's new samples, split like `levels` (`count` 0 when bands are off).
    public var bands: BandFrame
    /// Input-health statistics of the frame's new samples (``SampleHealth``).
    public var health: SampleHealth

    public init() {
        seq = 0; firstSample = 0; monotonicNs = 0; wallNs = 0; lastSampleMonotonicNs = 0
        dspStartNs = 0; dspEndNs = 0; gapSamples = 0; flags = 0; features = FrameFeatures()
        hasOnset = false; onset = OnsetEvent(frameIndex: 0, detectedAtFrame: 0, strength: 0)
        onsetWallNs = 0; onsetDelayMs = 0; levels = .empty; bands = .empty; health = SampleHealth()
    }

    public var isDiscontinuity: Bool { flags & FrameFlags.discontinuity != 0 }
}

/// Bits of ``FrameHeader/flags``.
public enum FrameFlags {
    /// Time jumped before this frame: samples were lost (`gapSamples`) or the stream restarted.
    public static let discontinuity: UInt32 = 1 << 0
    /// Cause: a capture overrun (ALSA xrun).
    public static let xrun: UInt32 = 1 << 1
    /// Cause: the device was suspended.
    public static let suspend: UInt32 = 1 << 2
    /// Cause: the device was lost and reopened.
    public static let reconnect: UInt32 = 1 << 3
    /// Cause: the DSP thread fell behind and the sample ring dropped samples.
    public static let ringOverrun: UInt32 = 1 << 4
    /// Cause: the DSP was re-planned (configuration reload).
    public static let replan: UInt32 = 1 << 5
}
