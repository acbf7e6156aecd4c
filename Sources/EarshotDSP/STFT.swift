internal import CFFTW
internal import CEarshotSupport
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One frame of a short-time Fourier transform: periodic Hann window, single-precision FFTW
/// r2c, and the power and magnitude spectra of bins `0 ... nFFT/2`.
///
/// `init` allocates every buffer (FFTW-aligned) and makes the FFTW plan under the global planner
/// lock. ``process(frame:power:magnitude:)`` only computes: no allocation, no lock, no ARC.
/// One instance must be used by one thread at a time (it owns scratch buffers).
public final class STFT: @unchecked Sendable {
    /// Frame length in samples (even).
    public let nFFT: Int
    /// `nFFT/2 + 1`.
    public let binCount: Int
    /// Sum of the window samples (`nFFT/2` for the periodic Hann window).
    public let windowSum: Double

    let window: UnsafeMutablePointer<Float>
    let input: UnsafeMutablePointer<Float>
    let output: UnsafeMutablePointer<fftwf_complex>
    let plan: OpaquePointer

    /// Allocates the buffers and plans the transform.
    /// - Parameters:
    ///   - nFFT: frame length; even, ≥ 16.
    ///   - measure: plan with `FFTW_MEASURE` (slower init, possibly faster transform) instead of `FFTW_ESTIMATE`.
    public init(nFFT: Int, measure: Bool = false) {
        precondition(nFFT >= 16 && nFFT % 2 == 0, "nFFT must be even and >= 16")
        self.nFFT = nFFT
        self.binCount = nFFT / 2 + 1
        window = .allocate(capacity: nFFT)
        var sum = 0.0
        for n in 0..<nFFT {
            // scipy.signal.get_window('hann', nFFT) (periodic, fftbins=True).
            let w = 0.5 - 0.5 * cos(2.0 * Double.pi * Double(n) / Double(nFFT))
            window[n] = Float(w)
            sum += w
        }
        windowSum = sum
        input = fftwf_alloc_real(nFFT)!
        output = fftwf_alloc_complex(nFFT / 2 + 1)!
        input.initialize(repeating: 0, count: nFFT)
        let flags = UInt32(measure ? FFTW_MEASURE : FFTW_ESTIMATE) | UInt32(FFTW_DESTROY_INPUT)
        let n32 = Int32(nFFT)
        let (inp, out) = (input, output)
        nonisolated(unsafe) var made: OpaquePointer? = nil
        fftwPlannerLock.withLock { _ in
            made = fftwf_plan_dft_r2c_1d(n32, inp, out, flags)
        }
        plan = made!
    }

    deinit {
        let p = plan
        fftwPlannerLock.withLock { _ in fftwf_destroy_plan(p) }
        fftwf_free(input)
        fftwf_free(output)
        window.deallocate()
    }

    /// Windows `frame`, transforms it and writes `|X_k|²` and (if `magnitude` is given) `|X_k|`
    /// for `k = 0 ... nFFT/2`.
    ///
    /// Real-time safe: no allocation, no lock. Single-threaded per instance.
    /// - Parameters:
    ///   - frame: exactly `nFFT` samples.
    ///   - power: `binCount` values, receives `|X_k|²`.
    ///   - magnitude: `binCount` values, receives `|X_k|`; `nil` skips the square roots.
    public func process(
        frame: UnsafeBufferPointer<Float>, power: UnsafeMutableBufferPointer<Float>,
        magnitude: UnsafeMutableBufferPointer<Float>?
    ) {
        precondition(frame.count == nFFT && power.count == binCount && (magnitude?.count ?? binCount) == binCount)
        let x = UnsafeRawPointer(frame.baseAddress!)
        let w = UnsafeRawPointer(window)
        let inp = UnsafeMutableRawPointer(input)
        var n = 0
        while n + 8 <= nFFT {
            let v = x.loadUnaligned(fromByteOffset: n &* 4, as: SIMD8<Float>.self)
                * w.loadUnaligned(fromByteOffset: n &* 4, as: SIMD8<Float>.self)
            inp.storeBytes(of: v, toByteOffset: n &* 4, as: SIMD8<Float>.self)
            n &+= 8
        }
        while n < nFFT {
            input[n] = frame[n] * window[n]
            n &+= 1
        }
        fftwf_execute(plan)
        let p = power.baseAddress!
        let out = UnsafeRawPointer(output)
        let pr = UnsafeMutableRawPointer(p)
        // Four complex bins per step: even lanes are re, odd lanes im.
        var k = 0
        while k + 4 <= binCount {
            let c = out.loadUnaligned(fromByteOffset: k &* 8, as: SIMD8<Float>.self)
            let re = c.evenHalf, im = c.oddHalf
            pr.storeBytes(of: re * re + im * im, toByteOffset: k &* 4, as: SIMD4<Float>.self)
            k &+= 4
        }
        while k < binCount {
            let re = output[k].0, im = output[k].1
            p[k] = re * re + im * im
            k &+= 1
        }
        guard let m = magnitude?.baseAddress else { return }
        // Float.squareRoot() and SIMD8.squareRoot() both compile to scalar sqrtss with a sqrtf call
        // for negative inputs (errno), which blocks vectorization; the C helper uses sqrtps.
        CEarshot_sqrt_f32(p, m, binCount)
    }
}
