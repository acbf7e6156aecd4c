#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Orthonormal DCT-II over the mel axis, keeping the first `outputCount` coefficients: the MFCC
/// step of `librosa.feature.mfcc(S=logmel, dct_type=2, norm='ortho')` (= `scipy.fft.dct(type=2, norm='ortho')`).
///
/// The basis is computed in `Double` in `init`; ``process(_:into:)`` accumulates in `Double`.
/// Real-time safe: no allocation, no lock. One thread at a time per instance.
public final class DCT: @unchecked Sendable {
    /// Input length (number of mel bands).
    public let inputCount: Int
    /// Number of coefficients produced (`nMFCC`).
    public let outputCount: Int
    let basis: UnsafeMutablePointer<Double>

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
    }

    deinit { basis.deallocate() }

    /// `output[k] = Σ_i basis[k,i] · input[i]`. Real-time safe.
    /// - Parameters:
    ///   - input: `inputCount` values (log-mel dB).
    ///   - output: `outputCount` values.
    public func process(_ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>) {
        precondition(input.count == inputCount && output.count == outputCount)
        let x = input.baseAddress!
        guard let y = output.baseAddress else { return }
        for k in 0..<outputCount {
            let b = basis + k * inputCount
            var acc = 0.0
            for i in 0..<inputCount { acc += b[i] * Double(x[i]) }
            y[k] = Float(acc)
        }
    }
}
