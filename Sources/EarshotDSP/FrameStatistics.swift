#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Time-domain statistics of one frame (stateless, real-time safe: no allocation, no lock).
public enum FrameStatistics {
    /// `20*log10(max(rms, 1e-10))` with `rms = sqrt(mean(x²))` (`librosa.feature.rms(center=False)`):
    /// a full-scale sine reads −3.01 dBFS, silence −200 dBFS. Accumulates in `Double`.
    public static func rmsDbfs(_ x: UnsafeBufferPointer<Float>) -> Float {
        guard let p = x.baseAddress, x.count > 0 else { return -200 }
        var acc = 0.0
        for i in 0..<x.count { acc += Double(p[i]) * Double(p[i]) }
        let rms = (acc / Double(x.count)).squareRoot()
        return Float(20 * log10(max(rms, 1e-10)))
    }

    /// `20*log10(max(max|x|, 1e-10))`.
    public static func peakDbfs(_ x: UnsafeBufferPointer<Float>) -> Float {
        guard let p = x.baseAddress else { return -200 }
        var m: Float = 0
        for i in 0..<x.count { m = max(m, abs(p[i])) }
        return Float(20 * log10(max(Double(m), 1e-10)))
    }

    /// `librosa.feature.zero_crossing_rate(center=False)`: samples with `|x| ≤ 1e-10` count as +0,
    /// a crossing is a sign-bit change between neighbours, and the count is divided by the frame
    /// length (the first sample never counts).
    public static func zeroCrossingRate(_ x: UnsafeBufferPointer<Float>) -> Float {
        guard let p = x.baseAddress, x.count > 1 else { return 0 }
        let threshold: Float = 1e-10
        @inline(__always) func negative(_ v: Float) -> Bool { v < -threshold }
        var count = 0
        var prev = negative(p[0])
        for i in 1..<x.count {
            let cur = negative(p[i])
            if cur != prev { count += 1 }
            prev = cur
        }
        return Float(count) / Float(x.count)
    }
}
