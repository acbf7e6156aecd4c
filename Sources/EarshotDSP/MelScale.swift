#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The Slaney mel scale of librosa (`htk=False`): linear below 1 kHz, logarithmic above.
public enum MelScale {
    static let fSp = 200.0 / 3.0
    static let minLogHz = 1000.0
    static let minLogMel = minLogHz / fSp
    static let logStep = log(6.4) / 27.0

    /// `librosa.hz_to_mel(hz, htk=False)`.
    public static func hzToMel(_ hz: Double) -> Double {
        hz >= minLogHz ? minLogMel + log(hz / minLogHz) / logStep : hz / fSp
    }

    /// `librosa.mel_to_hz(mel, htk=False)`.
    public static func melToHz(_ mel: Double) -> Double {
        mel >= minLogMel ? minLogHz * exp(logStep * (mel - minLogMel)) : fSp * mel
    }

    /// `librosa.mel_frequencies(n, fmin, fmax)`: `n` frequencies evenly spaced in mel (numpy linspace).
    public static func melFrequencies(count n: Int, fMin: Double, fMax: Double) -> [Double] {
        let lo = hzToMel(fMin)
        let hi = hzToMel(fMax)
        if n == 1 { return [melToHz(lo)] }
        let step = (hi - lo) / Double(n - 1)
        return (0..<n).map { i in melToHz(i == n - 1 ? hi : lo + Double(i) * step) }
    }
}
