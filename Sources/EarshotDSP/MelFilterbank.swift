#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A mel filterbank identical to `librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax)`
/// (Slaney scale, `norm='slaney'`, float32 weights), applied to a power spectrum.
///
/// The bank is built in `Double` in `init` exactly as librosa does (mel_frequencies, fftfreqs,
/// triangular ramps, area normalization), then stored as `Float` like librosa's default dtype and
/// kept sparse: each band's nonzero run, widened to a multiple of 4 bins (zero weights) so
/// ``process(power:into:)`` accumulates in `SIMD4<Float>` lanes, as librosa's float32 matrix
/// product does: no allocation, no lock, no ARC. One thread at a time per instance.
public final class MelFilterbank: @unchecked Sendable {
    public let sampleRate: Int
    public let nFFT: Int
    public let nMels: Int
    /// `nFFT/2 + 1`.
    public let binCount: Int
    /// The `nMels + 2` band edge frequencies in Hz (`librosa.mel_frequencies(nMels+2, fmin, fmax)`).
    public let bandEdgesHz: [Float]

    let starts: UnsafeMutablePointer<Int>
    let counts: UnsafeMutablePointer<Int>
    let offsets: UnsafeMutablePointer<Int>
    let weights: UnsafeMutablePointer<Float>
    let weightCount: Int
    /// Per-band SIMD4 partial sums (`nMels × 4` floats, 16-byte aligned).
    let partial: UnsafeMutablePointer<SIMD4<Float>>

    /// Builds the bank. Parameters as in ``AnalyzerConfig``; `0 <= fMin < fMax <= sampleRate/2`.
    public init(sampleRate: Int, nFFT: Int, nMels: Int, fMin: Double, fMax: Double) {
        precondition(nMels >= 1 && nFFT >= 2 && fMax > fMin && fMin >= 0)
        self.sampleRate = sampleRate
        self.nFFT = nFFT
        self.nMels = nMels
        let bins = nFFT / 2 + 1
        binCount = bins
        let melF = MelScale.melFrequencies(count: nMels + 2, fMin: fMin, fMax: fMax)
        bandEdgesHz = melF.map { Float($0) }
        // np.fft.rfftfreq(n_fft, 1/sr)
        let fftFreqs = (0..<bins).map { Double($0) * Double(sampleRate) / Double(nFFT) }
        var dense = [[Float]](repeating: [Float](repeating: 0, count: bins), count: nMels)
        for i in 0..<nMels {
            let fdiffLo = melF[i + 1] - melF[i]
            let fdiffHi = melF[i + 2] - melF[i + 1]
            let enorm = 2.0 / (melF[i + 2] - melF[i])
            for k in 0..<bins {
                let lower = -(melF[i] - fftFreqs[k]) / fdiffLo
                let upper = (melF[i + 2] - fftFreqs[k]) / fdiffHi
                let w = max(0, min(lower, upper))
                dense[i][k] = Float(w * enorm)
            }
        }
        starts = .allocate(capacity: nMels)
        counts = .allocate(capacity: nMels)
        offsets = .allocate(capacity: nMels)
        var flat: [Float] = []
        for i in 0..<nMels {
            let nz = dense[i].indices.filter { dense[i][$0] != 0 }
            var s = nz.first ?? 0
            let e = nz.last.map { $0 + 1 } ?? 0
            // Pad the run with zero weights to whole SIMD4 chunks, moving its start back if it would
            // run past the last bin; if even that does not fit, keep it exact (process does a scalar tail).
            var count = max(e - s, 0)
            let padded = (count + 3) / 4 * 4
            if padded <= bins {
                s = min(s, bins - padded)
                count = padded
            }
            starts[i] = s
            counts[i] = count
            offsets[i] = flat.count
            for k in s..<(s + count) { flat.append(dense[i][k]) }
        }
        weightCount = flat.count
        partial = .allocate(capacity: nMels)
        partial.initialize(repeating: SIMD4<Float>(), count: nMels)
        weights = .allocate(capacity: max(flat.count, 4))
        weights.initialize(repeating: 0, count: max(flat.count, 4))
        for (j, w) in flat.enumerated() { weights[j] = w }
    }

    deinit {
        starts.deallocate()
        counts.deallocate()
        offsets.deallocate()
        weights.deallocate()
        partial.deallocate()
    }

    /// The weight of FFT bin `bin` in band `band` (for tests and inspection; not real-time).
    public func weight(band: Int, bin: Int) -> Float {
        let s = starts[band]
        guard bin >= s, bin < s + counts[band] else { return 0 }
        return weights[offsets[band] + bin - s]
    }

    /// `mel[m] = Σ_k W[m,k] · power[k]`.
    ///
    /// Real-time safe: no allocation, no lock.
    /// - Parameters:
    ///   - power: `binCount` power-spectrum values.
    ///   - mel: `nMels` values, receives the mel band powers.
    public func process(power: UnsafeBufferPointer<Float>, into mel: UnsafeMutableBufferPointer<Float>) {
        precondition(power.count == binCount && mel.count == nMels)
        let p = UnsafeRawPointer(power.baseAddress!)
        let w = UnsafeRawPointer(weights)
        let out = mel.baseAddress!
        let lanes = UnsafeMutableRawPointer(partial)
        for m in 0..<nMels {
            let pb = p + starts[m] &* 4
            let wb = w + offsets[m] &* 4
            var acc = SIMD4<Float>()
            var j = 0
            let c = counts[m]
            while j + 4 <= c {
                acc += wb.loadUnaligned(fromByteOffset: j &* 4, as: SIMD4<Float>.self)
                    * pb.loadUnaligned(fromByteOffset: j &* 4, as: SIMD4<Float>.self)
                j &+= 4
            }
            while j < c {
                acc[0] += wb.load(fromByteOffset: j &* 4, as: Float.self) * pb.load(fromByteOffset: j &* 4, as: Float.self)
                j &+= 1
            }
            lanes.storeBytes(of: acc, toByteOffset: m &* 16, as: SIMD4<Float>.self)
        }
        // Horizontal sums four bands at a time (a 4×4 transpose with shuffles) instead of a serial
        // chain of scalar adds per band.
        var m = 0
        while m + 4 <= nMels {
            let a0 = lanes.load(fromByteOffset: m &* 16, as: SIMD4<Float>.self)
            let a1 = lanes.load(fromByteOffset: m &* 16 &+ 16, as: SIMD4<Float>.self)
            let a2 = lanes.load(fromByteOffset: m &* 16 &+ 32, as: SIMD4<Float>.self)
            let a3 = lanes.load(fromByteOffset: m &* 16 &+ 48, as: SIMD4<Float>.self)
            let s01 = SIMD4(a0[0], a1[0], a0[1], a1[1]) + SIMD4(a0[2], a1[2], a0[3], a1[3])
            let s23 = SIMD4(a2[0], a3[0], a2[1], a3[1]) + SIMD4(a2[2], a3[2], a2[3], a3[3])
            let sum = SIMD4(s01[0], s01[1], s23[0], s23[1]) + SIMD4(s01[2], s01[3], s23[2], s23[3])
            UnsafeMutableRawPointer(out).storeBytes(of: sum, toByteOffset: m &* 4, as: SIMD4<Float>.self)
            m &+= 4
        }
        while m < nMels {
            let a = lanes.load(fromByteOffset: m &* 16, as: SIMD4<Float>.self)
            out[m] = (a[0] + a[2]) + (a[1] + a[3])
            m &+= 1
        }
    }

    /// `10*log10(max(x, 1e-10))` in place (`librosa.power_to_db(ref=1, amin=1e-10, top_db=None)`),
    /// then `max(·, floorDb)` when a floor is given. Real-time safe.
    ///
    /// With a branch-free natural log (Cephes `logf`: range reduction to `[√½, √2)` on the bits and a
    /// degree-9 polynomial, error ≈ 1 ulp) times `10/ln 10`, written as a plain loop so LLVM's loop
    /// vectorizer turns it into SSE code (explicit `SIMD4`/`SIMD8` code got partly scalarized).
    public static func powerToDb(_ values: UnsafeMutableBufferPointer<Float>, floorDb: Float? = nil) {
        guard let v = values.baseAddress else { return }
        let floor = floorDb ?? -Float.infinity
        for i in 0..<values.count {
            let db = decibels(v[i])
            v[i] = db < floor ? floor : db
        }
    }

    /// `10*log10(max(x, 1e-10))` (NaN → −100 dB); exactly −100 at the floor, as `10*log10f(1e-10)` rounds to.
    @inline(__always)
    static func decibels(_ value: Float) -> Float {
        let amin: Float = 1e-10
        let x = value >= amin ? value : amin
        // x = m · 2^e with m in [√½, √2): offsetting the bits by those of √½ makes the exponent field
        // carry exactly when m would leave that range (x is normal and positive here).
        let k = Int32(bitPattern: x.bitPattern) &- 0x3F35_04F3
        let e = Float(k &>> 23)
        let m = Float(bitPattern: UInt32(bitPattern: (k & 0x007F_FFFF) &+ 0x3F35_04F3))
        let t = m - 1
        let z = t * t
        var y: Float = 7.0376836292e-2
        y = y * t - 1.1514610310e-1
        y = y * t + 1.1676998740e-1
        y = y * t - 1.2420140846e-1
        y = y * t + 1.4249322787e-1
        y = y * t - 1.6668057665e-1
        y = y * t + 2.0000714765e-1
        y = y * t - 2.4999993993e-1
        y = y * t + 3.3333331174e-1
        y = y * t * z
        y += e * -2.12194440e-4
        y -= z * 0.5
        let ln = t + y + e * 0.693359375
        let db = ln * 4.342944819032518
        return x <= amin ? -100 : db
    }
}
