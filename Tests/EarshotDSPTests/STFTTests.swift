import Foundation
import Testing

@testable import EarshotDSP

/// `STFT` computes the real transform as a complex FFT of half the length plus a split step
/// (`CEarshot_real_fft_power`): checked bin by bin against a double-precision DFT of the same windowed frame,
/// for power-of-two and other even lengths (an odd half length included), so that the split step's index
/// arithmetic (k against m − k, the SSE block and its scalar tail, bins 0 and nFFT/2) is covered.
@Suite("STFT")
struct STFTTests {
    /// Power of bins 0 … nFFT/2 of `frame · periodic Hann` by the textbook DFT in Double.
    static func referencePower(_ frame: [Float]) -> [Double] {
        let n = frame.count
        let x = (0..<n).map { i in Double(frame[i]) * (0.5 - 0.5 * cos(2 * Double.pi * Double(i) / Double(n))) }
        return (0...(n / 2)).map { k in
            var re = 0.0, im = 0.0
            for i in 0..<n {
                let phase = -2 * Double.pi * Double(k * i % n) / Double(n)
                re += x[i] * cos(phase)
                im += x[i] * sin(phase)
            }
            return re * re + im * im
        }
    }

    @Test(arguments: [16, 18, 20, 26, 64, 400, 1002, 1024, 2048])
    func powerAndMagnitudeMatchADoublePrecisionDFT(nFFT: Int) {
        var rng = SystemRandomNumberGenerator()
        // noise plus a tone on bin 3 and a DC offset: every bin carries energy, bins 0 and nFFT/2 included
        let frame: [Float] = (0..<nFFT).map { i in
            Float.random(in: -0.5...0.5, using: &rng) + 0.3 * Float(cos(2 * Double.pi * 3 * Double(i) / Double(nFFT))) + 0.1
                + (i % 2 == 0 ? 0.05 : -0.05)
        }
        let reference = Self.referencePower(frame)
        let stft = STFT(nFFT: nFFT)
        var power = [Float](repeating: .nan, count: nFFT / 2 + 1)
        var magnitude = [Float](repeating: .nan, count: nFFT / 2 + 1)
        frame.withUnsafeBufferPointer { f in
            power.withUnsafeMutableBufferPointer { p in
                magnitude.withUnsafeMutableBufferPointer { m in stft.process(frame: f, power: p, magnitude: m) }
            }
        }
        let peak = reference.max()!
        for k in 0...(nFFT / 2) {
            // float32 FFT: error relative to the frame's largest bin
            #expect(abs(Double(power[k]) - reference[k]) <= 1e-5 * peak, "bin \(k) of \(nFFT): \(power[k]) vs \(reference[k])")
            #expect(abs(Double(magnitude[k]) - reference[k].squareRoot()) <= 4e-3 * peak.squareRoot(), "bin \(k) of \(nFFT)")
        }
    }
}
