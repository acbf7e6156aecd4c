#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Time-domain statistics of one frame (stateless, real-time safe: no allocation, no lock).
///
/// Each statistic is one `SIMD8` pass over the frame (so ``FrameAnalyzer`` pays only for the
/// ones requested); the tail that does not fill 8 lanes is done scalar.
public enum FrameStatistics {
    @inline(__always)
    static func widen(_ v: SIMD4<Float>) -> SIMD4<Double> {
        SIMD4(Double(v[0]), Double(v[1]), Double(v[2]), Double(v[3]))
    }

    /// `20*log10(a)` for `a > 1e-10`, else −200 (NaN too), at most ``maxDb``: finite for any input.
    @inline(__always)
    static func amplitudeDb(_ a: Double) -> Float {
        guard a > 1e-10 else { return -200 }
        return Float(min(20 * log10(a), Double(maxDb)))
    }

    /// The largest level a statistic reports, `20*log10(Float.greatestFiniteMagnitude)` ≈ 770.6 dBFS
    /// (only reachable by calling the kernels directly: ``SampleGuard`` bounds live and offline samples).
    public static let maxDb: Float = 770.6

    /// `20*log10(max(rms, 1e-10))` with `rms = sqrt(mean(x²))` (`librosa.feature.rms(center=False)`):
    /// a full-scale sine reads −3.01 dBFS, silence −200 dBFS. Squares are summed in `Float` lanes over
    /// blocks of 64 samples (8 terms per lane) and the block sums in `Double`. Non-finite sums read
    /// −200 (NaN) or ``maxDb`` (overflow).
    public static func rmsDbfs(_ x: UnsafeBufferPointer<Float>) -> Float {
        guard let p = x.baseAddress, x.count > 0 else { return -200 }
        let raw = UnsafeRawPointer(p)
        var acc = 0.0
        let blocks = x.count / 64
        for b in 0..<blocks {
            let base = b &* 256
            var a0 = SIMD4<Float>(), a1 = SIMD4<Float>()
            for j in stride(from: 0, to: 256, by: 32) {
                let v0 = raw.loadUnaligned(fromByteOffset: base &+ j, as: SIMD4<Float>.self)
                let v1 = raw.loadUnaligned(fromByteOffset: base &+ j &+ 16, as: SIMD4<Float>.self)
                a0 += v0 * v0
                a1 += v1 * v1
            }
            acc += Double((a0 + a1).sum())
        }
        for i in (blocks &* 64)..<x.count { acc += Double(p[i]) * Double(p[i]) }
        let rms = (acc / Double(x.count)).squareRoot()
        return amplitudeDb(rms)
    }

    /// `20*log10(max(max|x|, 1e-10))` (NaN samples are ignored, infinity reads ``maxDb``).
    public static func peakDbfs(_ x: UnsafeBufferPointer<Float>) -> Float {
        guard let p = x.baseAddress else { return -200 }
        let raw = UnsafeRawPointer(p)
        let absMask = SIMD8<UInt32>(repeating: 0x7FFF_FFFF)
        var m8 = SIMD8<Float>()
        let blocks = x.count / 8
        for b in 0..<blocks {
            let v = raw.loadUnaligned(fromByteOffset: b &* 32, as: SIMD8<UInt32>.self)
            let a = unsafeBitCast(v & absMask, to: SIMD8<Float>.self)
            m8.replace(with: a, where: a .> m8)
        }
        var m: Float = 0
        for l in 0..<8 { m = max(m, m8[l]) }
        for i in (blocks &* 8)..<x.count { m = max(m, abs(p[i])) }
        return amplitudeDb(Double(m))
    }

    /// `librosa.feature.zero_crossing_rate(center=False)`: samples with `|x| ≤ 1e-10` count as +0,
    /// a crossing is a sign-bit change between neighbours, and the count is divided by the frame
    /// length (the first sample never counts).
    public static func zeroCrossingRate(_ x: UnsafeBufferPointer<Float>) -> Float {
        guard let p = x.baseAddress, x.count > 1 else { return 0 }
        let threshold: Float = 1e-10
        @inline(__always) func negative(_ v: Float) -> Bool { v < -threshold }
        let raw = UnsafeRawPointer(p)
        let thr = SIMD8<Float>(repeating: -threshold)
        let one = SIMD8<Int32>(repeating: 1)
        var crossings = SIMD8<Int32>()
        // Pairs (i-1, i) for i in 1..<count: vector blocks cover i = 1 + 8b ..< 9 + 8b.
        let blocks = (x.count - 1) / 8
        for b in 0..<blocks {
            let prev = raw.loadUnaligned(fromByteOffset: b &* 32, as: SIMD8<Float>.self)
            let cur = raw.loadUnaligned(fromByteOffset: b &* 32 &+ 4, as: SIMD8<Float>.self)
            let changed = (cur .< thr) .^ (prev .< thr)
            crossings &+= SIMD8<Int32>().replacing(with: one, where: changed)
        }
        var count = Int(crossings.wrappedSum())
        var i = 1 + blocks &* 8
        while i < x.count {
            if negative(p[i]) != negative(p[i - 1]) { count += 1 }
            i &+= 1
        }
        return Float(count) / Float(x.count)
    }
}
