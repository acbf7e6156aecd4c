import EarshotRealtime

/// Where samples enter the DSP: non-finite samples become 0 and magnitudes beyond ``limit`` are clamped to
/// ±``limit``, so nothing downstream (STFT power in `Float`, mel sums, level meters, encoders) can overflow
/// or be poisoned by a NaN, whatever a float source (`FLOAT_LE` capture, a float WAV) delivers.
///
/// Integer formats decode into [−1, 1) and never trigger it; a float source may legitimately go a little
/// above full scale, which passes untouched up to ``limit`` (+60 dBFS). With every sample at most ``limit``,
/// `|X_k|² ≤ (limit · nFFT/2)²` stays far below `Float.greatestFiniteMagnitude` for any frame length.
///
/// Real-time safe: no allocation, no lock. ``scan(_:)`` is one vectorized integer pass in the common, clean case.
public enum SampleGuard {
    /// The largest magnitude passed through unchanged: 1000, i.e. +60 dBFS.
    public static let limit: Float = SampleLimit.magnitude

    /// How many samples of a buffer ``copySanitized(_:to:count:)`` would change.
    public struct Counts: Sendable, Hashable {
        /// NaN or ±infinity (replaced by 0).
        public var nonFinite = 0
        /// Finite, with `|x| > limit` (clamped to ±limit).
        public var clamped = 0
        public init(nonFinite: Int = 0, clamped: Int = 0) { self.nonFinite = nonFinite; self.clamped = clamped }
        public var total: Int { nonFinite &+ clamped }
    }

    /// Counts the samples of `x` that are non-finite or beyond ±``limit``.
    ///
    /// The clean case is one branch-free pass that LLVM vectorizes: the bits of `|x|` order like the values,
    /// NaN and ±inf above every finite value, so `limitBits − bits(|x|)` is negative exactly for a sample to
    /// replace, and OR-ing those differences leaves the sign bit set if there is one. Only then are the
    /// samples classified one by one.
    public static func scan(_ x: UnsafeBufferPointer<Float>) -> Counts {
        guard let p = x.baseAddress else { return Counts() }
        let limitBits = Int32(bitPattern: limit.bitPattern)
        let raw = UnsafeRawPointer(p)
        var any: Int32 = 0
        for i in 0..<x.count {
            let bits = raw.load(fromByteOffset: i &* 4, as: UInt32.self) & 0x7FFF_FFFF
            any |= limitBits &- Int32(bitPattern: bits)
        }
        guard any < 0 else { return Counts() }
        var counts = Counts()
        for v in x where !(abs(v) <= limit) {
            if v.isFinite { counts.clamped &+= 1 } else { counts.nonFinite &+= 1 }
        }
        return counts
    }

    /// The sanitized value of one sample.
    @inline(__always)
    public static func sanitized(_ v: Float) -> Float {
        guard v.isFinite else { return 0 }
        return v > limit ? limit : (v < -limit ? -limit : v)
    }

    /// Copies `count` samples from `source` to `destination`, sanitized.
    public static func copySanitized(_ source: UnsafePointer<Float>, to destination: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { destination[i] = sanitized(source[i]) }
    }
}
