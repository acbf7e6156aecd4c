#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Spectral shape features of one magnitude spectrum `S = |X|`, matching librosa 0.11 on `S=`:
///
/// - centroid `Σ f_k S_k / Σ S_k` (`spectral_centroid`); 0 on an all-zero frame (librosa's
///   `normalize` leaves a zero column unscaled, so the sum is 0).
/// - bandwidth `(Σ S_k/ΣS · |f_k − centroid|²)^½` (`spectral_bandwidth`, p = 2, norm = True); 0 on an all-zero frame.
/// - roll-off: the lowest `f_k` whose cumulative sum reaches `rolloffPercent · Σ S` (`spectral_rolloff`);
///   0 on an all-zero frame (every bin qualifies, the lowest is 0 Hz).
/// - flatness: `exp(mean log P) / mean P` with `P = max(S², 1e-10)` (`spectral_flatness`, power 2,
///   amin 1e-10); exactly 1 on an all-zero frame.
/// - flux (Earshot's definition, no librosa equivalent): the L2 norm of the positive magnitude
///   increase, normalized by the window sum so it reads in full-scale amplitude units independent
///   of nFFT: `flux_t = sqrt(Σ_k max(0, S_t[k] − S_{t−1}[k])²) / Σ_n w[n]`. 0 for the first frame
///   and the first frame after ``reset()``. A silent-to-full-scale-sine step reads ≈ 0.61.
///
/// Sums are accumulated in `Double`. Nothing non-finite is ever returned (NaN maps to 0).
/// Real-time safe: ``process(magnitude:into:)`` does no allocation, takes no lock.
/// One thread at a time per instance (it keeps the previous spectrum for flux).
public final class SpectralFeatures: @unchecked Sendable {
    public let sampleRate: Int
    public let nFFT: Int
    public let binCount: Int
    public let rolloffPercent: Double

    let freqs: UnsafeMutablePointer<Double>
    let previous: UnsafeMutablePointer<Float>
    let hasPrevious: UnsafeMutablePointer<Bool>
    let fluxScale: Double

    /// - Parameters:
    ///   - sampleRate: Hz.
    ///   - nFFT: frame length (even).
    ///   - rolloffPercent: roll-off fraction in (0, 1).
    ///   - windowSum: Σ w[n] used to normalize flux (`nFFT/2` for periodic Hann, the default).
    public init(sampleRate: Int, nFFT: Int, rolloffPercent: Double = 0.85, windowSum: Double? = nil) {
        self.sampleRate = sampleRate
        self.nFFT = nFFT
        self.rolloffPercent = rolloffPercent
        let bins = nFFT / 2 + 1
        binCount = bins
        freqs = .allocate(capacity: bins)
        for k in 0..<bins { freqs[k] = Double(k) * Double(sampleRate) / Double(nFFT) }
        previous = .allocate(capacity: bins)
        previous.initialize(repeating: 0, count: bins)
        hasPrevious = .allocate(capacity: 1)
        hasPrevious.initialize(to: false)
        fluxScale = 1.0 / (windowSum ?? Double(nFFT) / 2)
    }

    deinit {
        freqs.deallocate()
        previous.deallocate()
        hasPrevious.deallocate()
    }

    /// Forgets the previous spectrum: the next frame's flux is 0.
    public func reset() { hasPrevious.pointee = false }

    /// Computes centroid, bandwidth, roll-off, flatness and flux into `features`; keeps `magnitude` for the next flux.
    ///
    /// Real-time safe. - Parameter magnitude: `binCount` values of `|X_k|`.
    public func process(magnitude: UnsafeBufferPointer<Float>, into features: inout FrameFeatures) {
        precondition(magnitude.count == binCount)
        let s = magnitude.baseAddress!
        let n = binCount
        var total = 0.0
        var weighted = 0.0
        var logSum = 0.0
        var powerSum = 0.0
        for k in 0..<n {
            let v = Double(s[k])
            total += v
            weighted += v * freqs[k]
            let p = max(v * v, 1e-10)
            logSum += log(p)
            powerSum += p
        }
        var centroid = 0.0
        var bandwidth = 0.0
        var rolloff = 0.0
        if total > 0 {
            centroid = weighted / total
            var dev = 0.0
            for k in 0..<n {
                let d = freqs[k] - centroid
                dev += Double(s[k]) * d * d
            }
            bandwidth = (dev / total).squareRoot()
            let threshold = rolloffPercent * total
            var cum = 0.0
            for k in 0..<n {
                cum += Double(s[k])
                if cum >= threshold {
                    rolloff = freqs[k]
                    break
                }
            }
        }
        let flatness = exp(logSum / Double(n)) / (powerSum / Double(n))

        var flux = 0.0
        if hasPrevious.pointee {
            var acc = 0.0
            for k in 0..<n {
                let d = Double(s[k]) - Double(previous[k])
                if d > 0 { acc += d * d }
            }
            flux = acc.squareRoot() * fluxScale
        }
        previous.update(from: s, count: n)
        hasPrevious.pointee = true

        features.centroidHz = Self.finite(centroid)
        features.bandwidthHz = Self.finite(bandwidth)
        features.rolloffHz = Self.finite(rolloff)
        features.flatness = Self.finite(flatness)
        features.flux = Self.finite(flux)
    }

    @inline(__always)
    static func finite(_ x: Double) -> Float {
        let f = Float(x)
        return f.isFinite ? f : 0
    }
}
