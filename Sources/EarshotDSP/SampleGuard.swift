/// Where samples enter the DSP: non-finite samples become 0 and magnitudes beyond ``limit`` are clamped to
/// ±``limit``, so nothing downstream (STFT power in `Float`, mel sums, level meters, encoders) can overflow
/// or be poisoned by a NaN, whatever a float source (`FLOAT_LE` capture, a float WAV) delivers.
///
/// Integer formats decode into [−1, 1) and never trigger it; a float source may legitimately go a little
/// above full scale, which passes untouched up to ``limit`` (+60 dBFS). With every sample at most ``limit``,
/// `|X_k|² ≤ (limit · nFFT/2)²` stays far below `Float.greatestFiniteMagnitude` for any frame length.
///
/// Real-time safe: no allocation, no lock. ``scan(_:)`` is one `SIMD8` compare pass (the common, clean case).
public enum SampleGuard {
    /// The largest magnitude passed through unchanged: 1000, i.e. +60 dBFS.
    public static let limit: Float = 1000

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
    public static func scan(_ x: UnsafeBufferPointer<Float>) -> Counts {
        guard let p = x.baseAddress else { return Counts() }
        let raw = UnsafeRawPointer(p)
        let absMask = SIMD8<UInt32>(repeating: 0x7FFF_FFFF)
        let lim = SIMD8<Float>(repeating: limit)
        var counts = Counts()
        let blocks = x.count / 8
        for b in 0..<blocks {
            let bits = raw.loadUnaligned(fromByteOffset: b &* 32, as: SIMD8<UInt32>.self)
            let a = unsafeBitCast(bits & absMask, to: SIMD8<Float>.self)
            // `a <= limit` is false for NaN too: one compare decides the clean case.
            if all(a .<= lim) { continue }
            for l in 0..<8 { classify(a[l], &counts) }
        }
        for i in (blocks &* 8)..<x.count { classify(abs(p[i]), &counts) }
        return counts
    }

    @inline(__always)
    static func classify(_ a: Float, _ counts: inout Counts) {
        if a <= limit { return }
        if a.isFinite { counts.clamped &+= 1 } else { counts.nonFinite &+= 1 }
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
