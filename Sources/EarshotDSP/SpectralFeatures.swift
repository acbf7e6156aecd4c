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
///   amin 1e-10); exactly 1 on an all-zero frame. NaN counts as amin and +inf as the largest finite `Float`
///   (so the exponent sum below stays an exact, small integer for any input).
/// - flux (Earshot's definition, no librosa equivalent): the L2 norm of the positive magnitude
///   increase, normalized by the window sum so it reads in full-scale amplitude units independent
///   of nFFT: `flux_t = sqrt(Σ_k max(0, S_t[k] − S_{t−1}[k])²) / Σ_n w[n]`. 0 for the first frame
///   and the first frame after ``reset()``. A silent-to-full-scale-sine step reads ≈ 0.61.
///
/// Sums are accumulated in `Double` lanes (SIMD, so the summation order is not sequential).
/// Flatness takes one `log` per frame: `Σ log P_k` is the sum of the binary exponents of `P_k`
/// (integers, exact) plus the log of the product of their mantissas in `[1, 2)`, renormalized
/// every 32 bins per lane (relative error of the mean log ≲ 1e-7).
/// Nothing non-finite is ever returned (NaN maps to 0).
/// Real-time safe: ``process(magnitude:power:outputs:into:)`` does no allocation, takes no lock.
/// One thread at a time per instance (it keeps the previous spectrum for flux).
public final class SpectralFeatures: @unchecked Sendable {
    public let sampleRate: Int
    public let nFFT: Int
    public let binCount: Int
    public let rolloffPercent: Double

    let freqs: UnsafeMutablePointer<Double>
    /// Per-block (8 bins) sums of the magnitude, for the roll-off search.
    let blockSums: UnsafeMutablePointer<Double>
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
        blockSums = .allocate(capacity: bins / 8 + 1)
        blockSums.initialize(repeating: 0, count: bins / 8 + 1)
        previous = .allocate(capacity: bins)
        previous.initialize(repeating: 0, count: bins)
        hasPrevious = .allocate(capacity: 1)
        hasPrevious.initialize(to: false)
        fluxScale = 1.0 / (windowSum ?? Double(nFFT) / 2)
    }

    deinit {
        freqs.deallocate()
        blockSums.deallocate()
        previous.deallocate()
        hasPrevious.deallocate()
    }

    /// Forgets the previous spectrum: the next frame's flux is 0.
    public func reset() { hasPrevious.pointee = false }

    /// Computes centroid, bandwidth, roll-off, flatness and flux into `features`; keeps `magnitude` for the next flux.
    ///
    /// Convenience for callers without a power spectrum: it squares `magnitude` into a temporary buffer, which
    /// may be heap-allocated, so it is **not** real-time safe; ``FrameAnalyzer`` uses
    /// ``process(magnitude:power:outputs:into:)``. - Parameter magnitude: `binCount` values of `|X_k|`.
    public func process(magnitude: UnsafeBufferPointer<Float>, into features: inout FrameFeatures) {
        precondition(magnitude.count == binCount)
        let s = magnitude.baseAddress!
        // Not the hot path of FrameAnalyzer (which passes the STFT's power); derive P = |X|² here.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: binCount) { p in
            for k in 0..<binCount { p[k] = s[k] * s[k] }
            process(magnitude: magnitude, power: UnsafeBufferPointer(p), outputs: .spectral, into: &features)
        }
    }

    /// Computes the requested spectral features (centroid, bandwidth, roll-off, flatness, flux) into
    /// `features`; the others are set to 0. Keeps `magnitude` for the next flux when flux is requested.
    ///
    /// Real-time safe: no allocation, no lock.
    /// - Parameters:
    ///   - magnitude: `binCount` values of `|X_k|` (not read when only flatness is requested).
    ///   - power: `binCount` values of `|X_k|²` (flatness).
    ///   - outputs: which features to compute; members outside ``AnalyzerOutputs/spectral`` are ignored.
    public func process(
        magnitude: UnsafeBufferPointer<Float>, power: UnsafeBufferPointer<Float>, outputs: AnalyzerOutputs,
        into features: inout FrameFeatures
    ) {
        precondition(magnitude.count == binCount && power.count == binCount)
        let n = binCount
        var centroid = 0.0, bandwidth = 0.0, rolloff = 0.0, flatness = 0.0, flux = 0.0
        if !outputs.isDisjoint(with: AnalyzerOutputs.centroidBandwidthRolloff) {
            shape(magnitude.baseAddress!, outputs, &centroid, &bandwidth, &rolloff)
        }
        if outputs.contains(.flatness) {
            flatness = Self.flatness(power.baseAddress!, n)
        }
        if outputs.contains(.flux) {
            let s = magnitude.baseAddress!
            if hasPrevious.pointee {
                flux = Self.positiveDifferenceSquares(s, previous, n).squareRoot() * fluxScale
            }
            previous.update(from: s, count: n)
            hasPrevious.pointee = true
        }
        features.centroidHz = Self.finite(centroid)
        features.bandwidthHz = Self.finite(bandwidth)
        features.rolloffHz = Self.finite(rolloff)
        features.flatness = Self.finite(flatness)
        features.flux = Self.finite(flux)
    }

    @inline(__always)
    static func widen(_ v: SIMD4<Float>) -> SIMD4<Double> {
        SIMD4(Double(v[0]), Double(v[1]), Double(v[2]), Double(v[3]))
    }

    /// Centroid, bandwidth and roll-off of `s` (all three are 0 on an all-zero frame).
    @inline(__always)
    func shape(
        _ s: UnsafePointer<Float>, _ outputs: AnalyzerOutputs, _ centroid: inout Double, _ bandwidth: inout Double,
        _ rolloff: inout Double
    ) {
        let n = binCount
        let raw = UnsafeRawPointer(s)
        let fr = UnsafeRawPointer(freqs)
        var t0 = SIMD4<Double>(), t1 = SIMD4<Double>(), w0 = SIMD4<Double>(), w1 = SIMD4<Double>()
        let blocks = n / 8
        for b in 0..<blocks {
            let v = raw.loadUnaligned(fromByteOffset: b &* 32, as: SIMD8<Float>.self)
            let lo = Self.widen(v.lowHalf), hi = Self.widen(v.highHalf)
            t0 += lo
            t1 += hi
            w0 += lo * fr.loadUnaligned(fromByteOffset: b &* 64, as: SIMD4<Double>.self)
            w1 += hi * fr.loadUnaligned(fromByteOffset: b &* 64 &+ 32, as: SIMD4<Double>.self)
            blockSums[b] = (lo + hi).sum()
        }
        var total = (t0 + t1).sum()
        var weighted = (w0 + w1).sum()
        var tail = 0.0
        for k in (blocks &* 8)..<n {
            let v = Double(s[k])
            tail += v
            weighted += v * freqs[k]
        }
        blockSums[blocks] = tail
        total += tail
        guard total > 0 else { return }
        let c = weighted / total
        centroid = c
        if outputs.contains(.bandwidth) {
            let cv = SIMD4<Double>(repeating: c)
            var d0 = SIMD4<Double>(), d1 = SIMD4<Double>()
            for b in 0..<blocks {
                let v = raw.loadUnaligned(fromByteOffset: b &* 32, as: SIMD8<Float>.self)
                let e0 = fr.loadUnaligned(fromByteOffset: b &* 64, as: SIMD4<Double>.self) - cv
                let e1 = fr.loadUnaligned(fromByteOffset: b &* 64 &+ 32, as: SIMD4<Double>.self) - cv
                d0 += Self.widen(v.lowHalf) * e0 * e0
                d1 += Self.widen(v.highHalf) * e1 * e1
            }
            var dev = (d0 + d1).sum()
            for k in (blocks &* 8)..<n {
                let d = freqs[k] - c
                dev += Double(s[k]) * d * d
            }
            bandwidth = (dev / total).squareRoot()
        }
        if outputs.contains(.rolloff) {
            let threshold = rolloffPercent * total
            var cum = 0.0
            var b = 0
            // Whole blocks first, then bin by bin inside the block that crosses the threshold.
            while b < blocks, cum + blockSums[b] < threshold {
                cum += blockSums[b]
                b &+= 1
            }
            var k = b &* 8
            while k < n {
                cum += Double(s[k])
                if cum >= threshold {
                    rolloff = freqs[k]
                    break
                }
                k &+= 1
            }
        }
    }

    /// `exp(mean log P) / mean P` with `P = max(power, 1e-10)`, with one `log` per call.
    @inline(__always)
    static func flatness(_ power: UnsafePointer<Float>, _ n: Int) -> Double {
        let raw = UnsafeRawPointer(power)
        let amin = SIMD8<Float>(repeating: 1e-10)
        let pmax = SIMD8<Float>(repeating: .greatestFiniteMagnitude)
        let mantissaMask = SIMD8<UInt32>(repeating: 0x007F_FFFF)
        let one = SIMD8<UInt32>(repeating: 0x3F80_0000)
        var product = SIMD8<Float>(repeating: 1)
        var exponents = SIMD8<Int32>()
        var s0 = SIMD4<Double>(), s1 = SIMD4<Double>()
        let blocks = n / 8
        var b = 0
        while b < blocks {
            // ≤ 32 mantissas in [1, 2) per lane: the product stays < 2^32, far from overflow.
            let end = min(b &+ 32, blocks)
            while b < end {
                var p = raw.loadUnaligned(fromByteOffset: b &* 32, as: SIMD8<Float>.self)
                p.replace(with: amin, where: .!(p .>= amin))  // NaN too, like max(NaN, amin) → amin
                p.replace(with: pmax, where: p .> pmax)       // +inf: its exponent field is not a power of 2
                s0 += widen(p.lowHalf)
                s1 += widen(p.highHalf)
                let bits = unsafeBitCast(p, to: SIMD8<UInt32>.self)
                exponents &+= unsafeBitCast(bits &>> 23, to: SIMD8<Int32>.self)
                product *= unsafeBitCast((bits & mantissaMask) | one, to: SIMD8<Float>.self)
                b &+= 1
            }
            let bits = unsafeBitCast(product, to: SIMD8<UInt32>.self)
            exponents &+= unsafeBitCast(bits &>> 23, to: SIMD8<Int32>.self) &- 127
            product = unsafeBitCast((bits & mantissaMask) | one, to: SIMD8<Float>.self)
        }
        // Lanes' products are in [1, 2): their product is < 256.
        var mantissaProduct = 1.0
        for l in 0..<8 { mantissaProduct *= Double(product[l]) }
        var powerSum = (s0 + s1).sum()
        // Every P is a finite normal float (≥ 1e-10), so its biased exponent is (bits >> 23), minus 127.
        var exponentSum = Int(exponents.wrappedSum()) - 127 * blocks * 8
        for k in (blocks &* 8)..<n {
            var p = power[k]
            if !(p >= 1e-10) { p = 1e-10 }  // NaN too (`max(NaN, x)` is NaN, whose `exponent` is Int.max)
            if p > .greatestFiniteMagnitude { p = .greatestFiniteMagnitude }
            powerSum += Double(p)
            exponentSum += Int(p.exponent)
            mantissaProduct *= Double(p.significand)
        }
        let logSum = log(mantissaProduct) + Double(exponentSum) * M_LN2
        return exp(logSum / Double(n)) / (powerSum / Double(n))
    }

    /// `Σ max(0, s − prev)²` in `Double` lanes.
    @inline(__always)
    static func positiveDifferenceSquares(_ s: UnsafePointer<Float>, _ prev: UnsafePointer<Float>, _ n: Int) -> Double {
        let a = UnsafeRawPointer(s), p = UnsafeRawPointer(prev)
        var acc0 = SIMD4<Double>(), acc1 = SIMD4<Double>()
        let zero = SIMD8<Float>()
        let blocks = n / 8
        for b in 0..<blocks {
            var d = a.loadUnaligned(fromByteOffset: b &* 32, as: SIMD8<Float>.self)
                - p.loadUnaligned(fromByteOffset: b &* 32, as: SIMD8<Float>.self)
            d.replace(with: zero, where: .!(d .> zero))
            let lo = widen(d.lowHalf), hi = widen(d.highHalf)
            acc0 += lo * lo
            acc1 += hi * hi
        }
        var acc = (acc0 + acc1).sum()
        for k in (blocks &* 8)..<n {
            let d = Double(s[k]) - Double(prev[k])
            if d > 0 { acc += d * d }
        }
        return acc
    }

    @inline(__always)
    static func finite(_ x: Double) -> Float {
        let f = Float(x)
        return f.isFinite ? f : 0
    }
}
