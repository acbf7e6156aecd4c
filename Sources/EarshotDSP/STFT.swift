internal import CFFTW
internal import CEarshotSupport
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One frame of a short-time Fourier transform: periodic Hann window, single-precision FFT, and the
/// power and magnitude spectra of bins `0 ... nFFT/2`.
///
/// The real transform of length `nFFT` is computed as FFTW's complex transform of length `nFFT/2` of the
/// sample pairs `x[2n] + i·x[2n+1]` (the windowed frame itself, read as complex numbers) followed by the
/// split step `X[k] = E[k] + e^(−2πik/nFFT)·O[k]` (`CEarshot_real_fft_power`, which writes `|X[k]|²`
/// directly). FFTW's own r2c plan (`FFTW_ESTIMATE`, and `FFTW_MEASURE` too) took about three times as long
/// here (1.1 µs against 0.35 µs + the split step for `nFFT` 1024: `bench/README.md`).
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
    /// The windowed frame: `nFFT` floats, read by the plan as `nFFT/2` complex numbers.
    let input: UnsafeMutablePointer<fftwf_complex>
    let output: UnsafeMutablePointer<fftwf_complex>
    /// `cos(πk/m)`, `sin(πk/m)` for `k < m = nFFT/2` (the split step's twiddles).
    let twiddleCos: UnsafeMutablePointer<Float>
    let twiddleSin: UnsafeMutablePointer<Float>
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
        let m = nFFT / 2
        input = fftwf_alloc_complex(m)!
        output = fftwf_alloc_complex(m)!
        input.initialize(repeating: (0, 0), count: m)
        output.initialize(repeating: (0, 0), count: m)
        twiddleCos = .allocate(capacity: m)
        twiddleSin = .allocate(capacity: m)
        for k in 0..<m {
            let phase = Double.pi * Double(k) / Double(m)
            twiddleCos[k] = Float(cos(phase))
            twiddleSin[k] = Float(sin(phase))
        }
        let flags = UInt32(measure ? FFTW_MEASURE : FFTW_ESTIMATE) | UInt32(FFTW_DESTROY_INPUT)
        let m32 = Int32(m)
        let (inp, out) = (input, output)
        nonisolated(unsafe) var made: OpaquePointer? = nil
        fftwPlannerLock.withLock { _ in
            made = fftwf_plan_dft_1d(m32, inp, out, FFTW_FORWARD, flags)
        }
        plan = made!
    }

    deinit {
        let p = plan
        fftwPlannerLock.withLock { _ in fftwf_destroy_plan(p) }
        fftwf_free(input)
        fftwf_free(output)
        twiddleCos.deallocate()
        twiddleSin.deallocate()
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
        let real = UnsafeMutableRawPointer(input).assumingMemoryBound(to: Float.self)
        while n < nFFT {
            real[n] = frame[n] * window[n]
            n &+= 1
        }
        fftwf_execute(plan)
        let p = power.baseAddress!
        UnsafeRawPointer(output).withMemoryRebound(to: Float.self, capacity: nFFT) { z in
            CEarshot_real_fft_power(z, twiddleCos, twiddleSin, p, nFFT / 2)
        }
        guard let m = magnitude?.baseAddress else { return }
        // Float.squareRoot() and SIMD8.squareRoot() both compile to scalar sqrtss with a sqrtf call
        // for negative inputs (errno), which blocks vectorization; the C helper uses sqrtps.
        CEarshot_sqrt_f32(p, m, binCount)
    }
}
