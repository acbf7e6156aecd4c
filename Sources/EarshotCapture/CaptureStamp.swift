/// Timing of one captured period, passed from the capture thread to the DSP thread through an
/// `SPSCRing<CaptureStamp>` next to the sample ring.
///
/// Sample positions are in the sample ring's coordinates (`SPSCRing.written` counts), so the DSP thread can
/// find the capture time of any sample: `monotonicNs + (position - firstSample) * 1e9 / sampleRate`.
public struct CaptureStamp: BitwiseCopyable, Sendable, Equatable {
    /// Ring position of the period's first sample.
    public var firstSample: Int64
    /// Number of sample frames in the period.
    public var frames: Int32
    /// Why this period follows a gap (``CaptureStamp/Discontinuity``), 0 when contiguous.
    public var discontinuity: UInt32
    /// CLOCK_MONOTONIC time at which the period's first sample was captured (from ALSA timestamps).
    public var monotonicNs: Int64
    /// CLOCK_REALTIME (UNIX) time of the same instant.
    public var wallNs: Int64
    /// Samples of audio lost just before this period (measured from timestamps), 0 when contiguous.
    public var gapSamples: Int64
    /// Position in the side ring of the period's first side sample `S = (L − R) / 2` (2-channel capture
    /// without `capture.channel`) or first channel sample (3 or more channels, ``sideStride``), or −1: the period has no side signal. The DSP thread reads it to make the
    /// levels an energy mean over the channels (see ``convertToMidSide(_:format:frames:mid:side:)``).
    public var sideFirst: Int64
    /// Side floats per sample from ``sideFirst`` on: 1 (the side signal of 2 channels) or N (3…64 channels
    /// without `capture.channel`: every channel's samples interleaved, see
    /// ``convertToMidAndChannels(_:format:frames:channels:mid:channelSamples:)``); 0 without a side.
    public var sideStride: Int32

    public init(
        firstSample: Int64, frames: Int32, monotonicNs: Int64, wallNs: Int64,
        discontinuity: UInt32 = 0, gapSamples: Int64 = 0, sideFirst: Int64 = -1, sideStride: Int32 = 1
    ) {
        self.sideFirst = sideFirst
        self.sideStride = sideFirst >= 0 ? sideStride : 0
        self.firstSample = firstSample
        self.frames = frames
        self.discontinuity = discontinuity
        self.monotonicNs = monotonicNs
        self.wallNs = wallNs
        self.gapSamples = gapSamples
    }

    /// Reasons for a gap before a period (bit set).
    public enum Discontinuity {
        /// An overrun (`-EPIPE`) was recovered.
        public static let xrun: UInt32 = 1 << 0
        /// The device was suspended (`-ESTRPIPE`) and resumed.
        public static let suspend: UInt32 = 1 << 1
        /// The device was lost and reopened.
        public static let reconnect: UInt32 = 1 << 2
        /// The capture stream (re)started: first period after open.
        public static let start: UInt32 = 1 << 3
    }
}
