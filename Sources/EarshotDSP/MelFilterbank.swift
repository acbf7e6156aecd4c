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
/// kept sparse (each band's nonzero run). ``process(power:into:)`` accumulates in `Double`:
/// no allocation, no lock, no ARC. One thread at a time per instance.
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
            let s = nz.first ?? 0
            let e = nz.last.map { $0 + 1 } ?? 0
            starts[i] = s
            counts[i] = e - s
            offsets[i] = flat.count
            if e > s { flat.append(contentsOf: dense[i][s..<e]) }
        }
        weightCount = flat.count
        weights = .allocate(capacity: max(flat.count, 1))
        for (j, w) in flat.enumerated() { weights[j] = w }
    }

    deinit {
        starts.deallocate()
        counts.deallocate()
        offsets.deallocate()
        weights.deallocate()
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
        let p = power.baseAddress!
        let out = mel.baseAddress!
        for m in 0..<nMels {
            let s = starts[m]
            let w = weights + offsets[m]
            var acc = 0.0
            for j in 0..<counts[m] { acc += Double(w[j]) * Double(p[s + j]) }
            out[m] = Float(acc)
        }
    }

    /// `10*log10(max(x, 1e-10))` in place (`librosa.power_to_db(ref=1, amin=1e-10, top_db=None)`),
    /// then `max(·, floorDb)` when a floor is given. Real-time safe.
    public static func powerToDb(_ values: UnsafeMutableBufferPointer<Float>, floorDb: Float? = nil) {
        let v = values.baseAddress!
        let floor = floorDb ?? -Float.infinity
        for i in 0..<values.count {
            let db = 10 * log10(max(v[i], 1e-10))
            v[i] = max(db, floor)
        }
    }
}
