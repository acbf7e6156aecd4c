#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Orthonormal DCT-II over the mel axis, keeping the first `outputCount` coefficients: the MFCC
/// step of `librosa.feature.mfcc(S=logmel, dct_type=2, norm='ortho')` (= `scipy.fft.dct(type=2, norm='ortho')`).
///
/// The basis is computed in `Double` in `init` and stored transposed in groups of 8 outputs;
/// ``process(_:into:)`` accumulates 8 outputs at a time in `SIMD4<Double>` lanes.
/// Real-time safe: no allocation, no lock. One thread at a time per instance.
public final class DCT: @unchecked Sendable {
    /// Input length (number of mel bands).
    public let inputCount: Int
    /// Number of coefficients produced (`nMFCC`).
    public let outputCount: Int
    let basis: UnsafeMutablePointer<Double>
    /// `basis` transposed: for group `g` of 8 outputs and input `i`, 8 doubles at `(g·inputCount + i)·8`
    /// (zero past `outputCount`).
    let grouped: UnsafeMutablePointer<Double>
    let groups: Int

    /// - Parameters:
    ///   - inputCount: length of the input (≥ 1).
    ///   - outputCount: coefficients kept, `0 ... inputCount`.
    public init(inputCount: Int, outputCount: Int) {
        precondition(inputCount >= 1 && outputCount >= 0 && outputCount <= inputCount)
        self.inputCount = inputCount
        self.outputCount = outputCount
        basis = .allocate(capacity: max(1, inputCount * outputCount))
        let n = Double(inputCount)
        for k in 0..<outputCount {
            let scale = k == 0 ? (1.0 / n).squareRoot() : (2.0 / n).squareRoot()
            for i in 0..<inputCount {
                basis[k * inputCount + i] = scale * cos(Double.pi * Double(k) * (2.0 * Double(i) + 1.0) / (2.0 * n))
            }
        }
        groups = (outputCount + 7) / 8
        grouped = .allocate(capacity: max(1, groups * inputCount * 8))
        grouped.initialize(repeating: 0, count: max(1, groups * inputCount * 8))
        for k in 0..<outputCount {
            for i in 0..<inputCount { grouped[((k / 8) * inputCount + i) * 8 + k % 8] = basis[k * inputCount + i] }
        }
    }

    deinit {
        basis.deallocate()
        grouped.deallocate()
    }

    /// `output[k] = Σ_i basis[k,i] · input[i]`. Real-time safe.
    /// - Parameters:
    ///   - input: `inputCount` values (log-mel dB).
    ///   - output: `outputCount` values.
    public func process(_ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>) {
        precondition(input.count == inputCount && output.count == outputCount)
        let x = input.baseAddress!
        guard let y = output.baseAddress else { return }
        let n = inputCount
        for g in 0..<groups {
            let b = UnsafeRawPointer(grouped + g &* n &* 8)
            // Two interleaved accumulator sets (even/odd inputs) to hide the add latency.
            var a0 = SIMD4<Double>(), a1 = SIMD4<Double>(), c0 = SIMD4<Double>(), c1 = SIMD4<Double>()
            var i = 0
            while i + 2 <= n {
                let x0 = SIMD4<Double>(repeating: Double(x[i]))
                let x1 = SIMD4<Double>(repeating: Double(x[i &+ 1]))
                a0 += b.loadUnaligned(fromByteOffset: i &* 64, as: SIMD4<Double>.self) * x0
                a1 += b.loadUnaligned(fromByteOffset: i &* 64 &+ 32, as: SIMD4<Double>.self) * x0
                c0 += b.loadUnaligned(fromByteOffset: i &* 64 &+ 64, as: SIMD4<Double>.self) * x1
                c1 += b.loadUnaligned(fromByteOffset: i &* 64 &+ 96, as: SIMD4<Double>.self) * x1
                i &+= 2
            }
            if i < n {
                let x0 = SIMD4<Double>(repeating: Double(x[i]))
                a0 += b.loadUnaligned(fromByteOffset: i &* 64, as: SIMD4<Double>.self) * x0
                a1 += b.loadUnaligned(fromByteOffset: i &* 64 &+ 32, as: SIMD4<Double>.self) * x0
            }
            let lo = a0 + c0, hi = a1 + c1
            let k0 = g &* 8
            for l in 0..<min(8, outputCount &- k0) { y[k0 &+ l] = Float(l < 4 ? lo[l] : hi[l &- 4]) }
        }
    }
}
