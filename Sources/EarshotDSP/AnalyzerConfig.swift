/// Peak-picking parameters for ``OnsetPicker`` (causal, librosa `peak_pick` shape).
///
/// A frame `t` is an onset when all of these hold, with `s` the onset-strength sequence:
/// - `s[t] >= max(s[t-preMaxFrames ..< t])` (the previous frames that exist),
/// - if `postMaxFrames == 1`: `s[t] >= s[t+1]`, so `t` is reported while frame `t+1` is processed
///   (one frame of latency),
/// - `s[t] >= mean(s[t-preAvgFrames ..< t]) + delta` (mean over the previous frames that exist, 0 if none),
/// - `t - lastOnset >= waitFrames`.
public struct OnsetPickerConfig: Sendable, Hashable {
    /// `strength[t]` must be `>=` the maximum of the previous `preMaxFrames` frames.
    public var preMaxFrames: Int = 3
    /// Look-ahead in frames: 0 or 1 only (it is latency).
    public var postMaxFrames: Int = 1
    /// The adaptive threshold is the mean of the previous `preAvgFrames` frames plus ``delta``.
    public var preAvgFrames: Int = 10
    /// Threshold offset in onset-strength units (dB: mean positive log-mel difference).
    ///
    /// Default 2 dB, tuned on the 10 s irregular click-track test (clicks −20…−3 dBFS over
    /// −46 dBFS noise: F = 0.98 at ±50 ms).
    public var delta: Float = 2.0
    /// Minimum gap between two onsets, in frames.
    public var waitFrames: Int = 5

    public init() {}
}

/// The parameters of a ``FrameAnalyzer``; defaults are 48 kHz, n_fft 1024, hop 480, 64 mels 0–8 kHz.
public struct AnalyzerConfig: Sendable, Hashable {
    public var sampleRate: Int = 48_000
    public var nFFT: Int = 1024
    public var hop: Int = 480
    public var nMels: Int = 64
    public var fMin: Double = 0
    public var fMax: Double = 8_000
    public var nMFCC: Int = 13
    /// Absolute floor in dB: `logmel = max(logmel, floor)`; `nil` = none (there is never a whole-signal `top_db`).
    public var logMelFloorDb: Float? = nil
    /// Spectral roll-off fraction, in (0, 1).
    public var rolloffPercent: Double = 0.85
    public var onset = OnsetPickerConfig()

    public init() {}

    /// Checks every field and throws an ``AnalyzerConfigError`` naming the first bad one.
    public func validate() throws(AnalyzerConfigError) {
        func fail(_ field: String, _ message: String) -> AnalyzerConfigError {
            AnalyzerConfigError(field: field, message: message)
        }
        guard (8_000...192_000).contains(sampleRate) else {
            throw fail("sampleRate", "must be in 8000...192000 Hz, got \(sampleRate)")
        }
        guard nFFT >= 16 else { throw fail("nFFT", "must be >= 16, got \(nFFT)") }
        guard nFFT % 2 == 0 else { throw fail("nFFT", "must be even, got \(nFFT)") }
        guard Self.isFFTWFriendly(nFFT) else {
            throw fail("nFFT", "must have only the prime factors 2, 3, 5, 7, got \(nFFT)")
        }
        guard hop >= 1 else { throw fail("hop", "must be >= 1, got \(hop)") }
        guard hop <= nFFT else { throw fail("hop", "must be <= nFFT (\(nFFT)), got \(hop)") }
        guard fMin.isFinite, fMin >= 0 else { throw fail("fMin", "must be >= 0, got \(fMin)") }
        guard fMax.isFinite, fMax > fMin else { throw fail("fMax", "must be > fMin (\(fMin)), got \(fMax)") }
        guard fMax <= Double(sampleRate) / 2 else {
            throw fail("fMax", "must be <= sampleRate/2 (\(Double(sampleRate) / 2)), got \(fMax)")
        }
        guard nMels >= 1 else { throw fail("nMels", "must be >= 1, got \(nMels)") }
        guard nMels <= nFFT / 2 + 1 else {
            throw fail("nMels", "must be <= nFFT/2+1 (\(nFFT / 2 + 1)), got \(nMels)")
        }
        guard nMFCC >= 0, nMFCC <= nMels else {
            throw fail("nMFCC", "must be in 0...nMels (\(nMels)), got \(nMFCC)")
        }
        if let floor = logMelFloorDb, !floor.isFinite {
            throw fail("logMelFloorDb", "must be finite or nil, got \(floor)")
        }
        guard rolloffPercent > 0, rolloffPercent < 1 else {
            throw fail("rolloffPercent", "must be in (0, 1), got \(rolloffPercent)")
        }
        guard (0...1_000).contains(onset.preMaxFrames) else {
            throw fail("onset.preMaxFrames", "must be in 0...1000, got \(onset.preMaxFrames)")
        }
        guard onset.postMaxFrames == 0 || onset.postMaxFrames == 1 else {
            throw fail("onset.postMaxFrames", "must be 0 or 1, got \(onset.postMaxFrames)")
        }
        guard (0...1_000).contains(onset.preAvgFrames) else {
            throw fail("onset.preAvgFrames", "must be in 0...1000, got \(onset.preAvgFrames)")
        }
        guard onset.delta.isFinite, onset.delta >= 0 else {
            throw fail("onset.delta", "must be finite and >= 0, got \(onset.delta)")
        }
        guard onset.waitFrames >= 0 else {
            throw fail("onset.waitFrames", "must be >= 0, got \(onset.waitFrames)")
        }
    }

    /// Seconds between two frames (`hop / sampleRate`).
    public var frameDuration: Double { Double(hop) / Double(sampleRate) }
    /// Seconds covered by one frame (`nFFT / sampleRate`).
    public var windowDuration: Double { Double(nFFT) / Double(sampleRate) }
    /// Number of FFT bins, `nFFT/2 + 1`.
    public var binCount: Int { nFFT / 2 + 1 }
    /// Latency added by the onset picker's look-ahead, in seconds.
    public var onsetLookAheadDuration: Double { Double(onset.postMaxFrames) * frameDuration }

    static func isFFTWFriendly(_ n: Int) -> Bool {
        var m = n
        for p in [2, 3, 5, 7] { while m % p == 0 { m /= p } }
        return m == 1
    }
}

/// A bad ``AnalyzerConfig`` value: ``field`` names it (e.g. `"hop"`, `"onset.delta"`).
public struct AnalyzerConfigError: Error, Sendable, CustomStringConvertible {
    public var field: String
    public var message: String

    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { "invalid analyzer config: \(field) \(message)" }
}
