#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Measures a calibrator tone (e.g. 94 dB SPL at 1 kHz) and derives `levels.calibration_db`, the offset
/// such that `dB SPL = dBFS + calibration_db` with the dBFS convention of ``LevelMeter`` (RMS: a
/// full-scale sine reads −3.01 dBFS).
///
/// The recording is cut into blocks of ``blockSeconds``; each is Hann-windowed and demodulated at the
/// tone's frequency (least-squares amplitude of a sinusoid, so noise and DC do not count in the level).
/// The frequency comes from upward zero crossings with hysteresis, interpolated between samples. A
/// measurement is refused (``Refusal``) for silence, a signal too quiet to trust, clipping, a signal that is
/// not a single tone, a tone at another frequency, or a level that moves by more than ``maxVariationDb``.
/// Not real-time code (allocates).
public struct ToneCalibration: Sendable, Equatable {
    /// The measured tone's frequency, Hz.
    public var frequencyHz: Double
    /// The tone's level, dBFS (RMS; full-scale sine = −3.01).
    public var levelDbfs: Double
    /// Highest minus lowest block level, dB.
    public var variationDb: Double
    /// Share of the signal's power (DC removed) in the tone, 0…1.
    public var toneFraction: Double
    /// Largest |sample|.
    public var peak: Double
    /// `reference − levelDbfs`: the `levels.calibration_db` that makes this tone read the reference.
    public var offsetDb: Double

    /// Why a recording cannot calibrate.
    public enum Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        /// Every sample had the same value (zeros: a muted or disconnected input).
        case silence
        /// The tone is below ``ToneCalibration/minimumLevelDbfs``.
        case tooQuiet(levelDbfs: Double)
        /// Samples at full scale.
        case clipping(fraction: Double, peak: Double)
        /// Most of the power is not in one tone (noise, speech, several tones).
        case notATone(fraction: Double, frequencyHz: Double?)
        /// A tone, but not at the expected frequency.
        case wrongFrequency(measuredHz: Double, expectedHz: Double)
        /// The level moved by more than the limit during the measurement.
        case unstable(variationDb: Double, limitDb: Double)
        /// Fewer samples than one block.
        case tooShort(seconds: Double)

        public var description: String {
            func f(_ x: Double, _ d: Int) -> String { formatFixed(x, d) }
            switch self {
            case .silence:
                return "silence: every sample is the same value (input muted, disconnected or the wrong device?)"
            case .tooQuiet(let l):
                return "too quiet: the tone is at \(f(l, 1)) dBFS, below \(f(ToneCalibration.minimumLevelDbfs, 0)) dBFS (is the calibrator on and seated on the microphone? raise the input gain)"
            case .clipping(let fraction, let peak):
                return "clipping: \(f(fraction * 100, 3)) % of the samples are at full scale (peak \(f(peak, 4))); lower the input gain or use the lower calibrator level"
            case .notATone(let fraction, let hz):
                let at = hz.map { " near \(f($0, 1)) Hz" } ?? ""
                return "not a steady tone: only \(f(fraction * 100, 1)) % of the power is in one tone\(at) (need \(f(ToneCalibration.minimumToneFraction * 100, 0)) %; noise, or the calibrator not sealed on the microphone?)"
            case .wrongFrequency(let m, let e):
                return "wrong frequency: measured \(f(m, 1)) Hz, expected \(f(e, 1)) Hz ±\(f(ToneCalibration.frequencyTolerance * 100, 0)) % (check --frequency against the calibrator)"
            case .unstable(let v, let limit):
                return "unstable level: it varied by \(f(v, 2)) dB during the measurement (limit \(f(limit, 2)) dB); hold the calibrator still and retry"
            case .tooShort(let s):
                return "too short: \(f(s, 3)) s of audio, need at least \(f(ToneCalibration.blockSeconds * 2, 1)) s"
            }
        }
    }

    /// Block length for the level and stability, seconds.
    public static let blockSeconds = 0.1
    /// Largest accepted block level range, dB (IEC 60942 class 1 calibrators hold ±0.2 dB).
    public static let maxVariationDb = 0.5
    /// Accepted frequency deviation, relative (calibrators: ±1 %).
    public static let frequencyTolerance = 0.02
    /// Lowest accepted tone level, dBFS.
    public static let minimumLevelDbfs = -80.0
    /// Lowest accepted share of power in the tone.
    public static let minimumToneFraction = 0.95
    /// A sample at or above this |value| counts as full scale.
    public static let fullScale = 0.999
    /// Accepted share of full-scale samples.
    public static let maxClippedFraction = 1e-4

    /// Measures `samples` (mono, `sampleRate` Hz) for a tone at `expectedHz` and the offset that makes
    /// it read `referenceDb`. Non-finite samples count as 0.
    /// - Throws: ``Refusal``.
    public static func measure(
        _ samples: [Float], sampleRate: Int, expectedHz: Double, referenceDb: Double,
        maxVariationDb: Double = ToneCalibration.maxVariationDb
    ) throws(Refusal) -> ToneCalibration {
        let fs = Double(sampleRate)
        let blockLength = max(1, Int((blockSeconds * fs).rounded()))
        guard sampleRate > 0, samples.count >= 2 * blockLength else {
            throw .tooShort(seconds: sampleRate > 0 ? Double(samples.count) / fs : 0)
        }
        // Read in place (a minute at 384 kHz is 23 M samples: no Double copy).
        let x = FiniteSamples(samples)
        // Silence: one value throughout (zeros, or a constant).
        let first = x[0]
        if (0..<x.count).allSatisfy({ x[$0] == first }) { throw .silence }
        var peak = 0.0, clipped = 0, sum = 0.0
        for i in 0..<x.count {
            let v = x[i]
            let a = abs(v)
            peak = max(peak, a)
            if a >= fullScale { clipped += 1 }
            sum += v
        }
        let mean = sum / Double(x.count)
        var power = 0.0
        for i in 0..<x.count { power += (x[i] - mean) * (x[i] - mean) }
        power /= Double(x.count)
        let clippedFraction = Double(clipped) / Double(x.count)
        if clippedFraction > maxClippedFraction { throw .clipping(fraction: clippedFraction, peak: peak) }
        if 10 * log10(max(power, 1e-30)) < minimumLevelDbfs {
            throw .tooQuiet(levelDbfs: 10 * log10(max(power, 1e-30)))
        }
        // Frequency from upward zero crossings of the DC-free signal, with hysteresis at 0.3 × RMS.
        let h = 0.3 * power.squareRoot()
        var armed = false
        var firstCross = -1.0, lastCross = -1.0, crossings = 0
        var prev = x[0] - mean
        for i in 1..<x.count {
            let v = x[i] - mean
            if v < -h { armed = true }
            if armed, prev < 0, v >= 0 {
                let t = Double(i - 1) + (-prev) / (v - prev)
                if firstCross < 0 { firstCross = t }
                lastCross = t
                crossings += 1
                armed = false
            }
            prev = v
        }
        let measuredHz: Double? = crossings >= 3 && lastCross > firstCross
            ? Double(crossings - 1) * fs / (lastCross - firstCross) : nil
        // Tone level per block at the measured frequency (Hann-windowed least-squares amplitude).
        let blocks = x.count / blockLength
        var blockPowers: [Double] = []
        var totalTone = 0.0, totalPower = 0.0
        if let hz = measuredHz, hz > 0, hz < fs / 2 {
            let w = (0..<blockLength).map { 0.5 - 0.5 * cos(2 * Double.pi * (Double($0) + 0.5) / Double(blockLength)) }
            let wsum = w.reduce(0, +)
            let omega = 2 * Double.pi * hz / fs
            for b in 0..<blocks {
                var re = 0.0, im = 0.0, p = 0.0
                let base = b * blockLength
                for j in 0..<blockLength {
                    let v = (x[base + j] - mean) * w[j]
                    let phase = omega * Double(base + j)
                    re += v * cos(phase)
                    im += v * sin(phase)
                    p += (x[base + j] - mean) * (x[base + j] - mean) * w[j]
                }
                let amplitude = 2 * (re * re + im * im).squareRoot() / wsum
                let tonePower = amplitude * amplitude / 2
                blockPowers.append(tonePower)
                totalTone += tonePower
                totalPower += p / wsum
            }
        }
        let fraction = totalPower > 0 ? min(1, totalTone / totalPower) : 0
        if fraction < minimumToneFraction { throw .notATone(fraction: fraction, frequencyHz: measuredHz) }
        let hz = measuredHz ?? 0
        if abs(hz - expectedHz) > frequencyTolerance * expectedHz {
            throw .wrongFrequency(measuredHz: hz, expectedHz: expectedHz)
        }
        let levels = blockPowers.map { 10 * log10(max($0, 1e-30)) }
        let variation = (levels.max() ?? 0) - (levels.min() ?? 0)
        if variation > maxVariationDb { throw .unstable(variationDb: variation, limitDb: maxVariationDb) }
        let level = 10 * log10(max(totalTone / Double(blockPowers.count), 1e-30))
        if level < minimumLevelDbfs { throw .tooQuiet(levelDbfs: level) }
        return ToneCalibration(
            frequencyHz: hz, levelDbfs: level, variationDb: variation, toneFraction: fraction, peak: peak,
            offsetDb: referenceDb - level)
    }
}

/// Samples as `Double`, a non-finite one as 0.
struct FiniteSamples {
    let samples: [Float]
    init(_ samples: [Float]) { self.samples = samples }
    var count: Int { samples.count }
    @inline(__always) subscript(i: Int) -> Double { let v = samples[i]; return v.isFinite ? Double(v) : 0 }
}

/// `x` with `decimals` digits after the point (no locale).
func formatFixed(_ x: Double, _ decimals: Int) -> String {
    guard x.isFinite else { return "\(x)" }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let r = (abs(x) * scale).rounded()
    guard r < 9e15 else { return "\(x)" }
    let n = Int(r)
    let whole = n / Int(scale), frac = n % Int(scale)
    var s = (x < 0 && n != 0 ? "-" : "") + String(whole)
    if decimals > 0 {
        let f = String(frac)
        s += "." + String(repeating: "0", count: decimals - f.count) + f
    }
    return s
}
