/// Peak-picking parameters for ``OnsetPicker`` (causal, librosa `peak_pick` shape).
///
/// A frame `t` is an onset when all of these hold, with `s` the onset-strength sequence:
/// - `s[t] >= max(s[t-preMaxFrames ..< t])` (the previous frames that exist),
/// - if `postMaxFrames == 1`: `s[t] >= s[t+1]`, so `t` is reported while frame `t+1` is processed
///   (one frame of latency),
/// - `s[t] >= meanWeight × mean(s[t-preAvgFrames ..< t]) + delta`,
/// - `t - lastOnset >= waitFrames`,
/// - the history is filled: `t >= max(preMaxFrames, preAvgFrames)` frames since the start or the last
///   discontinuity (``OnsetPicker/reset()``), so an empty history never makes a threshold of `delta` alone.
public struct OnsetPickerConfig: Sendable, Hashable {
    /// `strength[t]` must be `>=` the maximum of the previous `preMaxFrames` frames.
    public var preMaxFrames: Int = 3
    /// Look-ahead in frames: 0 or 1 only (it is latency).
    public var postMaxFrames: Int = 1
    /// The adaptive threshold is the mean of the previous `preAvgFrames` frames plus ``delta``.
    public var preAvgFrames: Int = 10
    /// Threshold offset in onset-strength units (dB).
    ///
    /// Default 8.5 dB for the `superflux` function, tuned on the development split of
    /// `bench/onset_eval.py` (drum hits and chirps over recorded backgrounds); the `logmel` function's
    /// values are about 5× smaller (2 dB suits it).
    public var delta: Float = 8.5
    /// Weight of the local mean in the threshold (`meanWeight × mean + delta`); 1 is librosa's `peak_pick`.
    public var meanWeight: Float = 1.5
    /// Minimum gap between two onsets, in frames.
    public var waitFrames: Int = 5

    public init() {}
}

/// The onset-detection function (see ``OnsetStrength`` for the exact definitions).
public enum OnsetFunctionKind: String, Sendable, Hashable, CaseIterable {
    /// Log-magnitude spectral flux over a full-band log-frequency filterbank, SuperFlux max-filter and
    /// lag, measured against a decaying per-band peak memory raised to a tracked background median (the default).
    case superflux
    /// `librosa.onset.onset_strength` of the log-mel spectrogram (lag 1, max_size 1): limited to the mel range.
    case logmel
}

/// Parameters of the onset-detection function (``OnsetStrength``); changing them needs a new analyzer
/// (a re-plan), unlike the picker's threshold parameters.
public struct OnsetFunctionConfig: Sendable, Hashable {
    public var function: OnsetFunctionKind = .superflux
    /// SuperFlux lag μ: the rise is measured against the frame `lagFrames` back.
    public var lagFrames: Int = 2
    /// SuperFlux maximum filter: the reference band is the maximum of ±`maxFilterBands` bands.
    public var maxFilterBands: Int = 1
    /// The reference of each band is at least its tracked background level plus this (dB).
    public var floorMarginDb: Float = 6
    /// How fast the tracked background level moves toward the band level, up and down (dB per second): it
    /// settles at the band level's running median.
    public var floorSlewDbPerSecond: Float = 10
    /// Decay of each band's peak memory, the reference a rise is measured against (dB per second).
    public var memoryDecayDbPerSecond: Float = 120
    /// The strength is the root mean square of this many largest band rises (dB).
    public var topBands: Int = 4
    /// Fast start of the background level (dB): on the `n`-th frame after the start or a discontinuity it
    /// may move `max(floorSlewDbPerSecond × hop, fastStartDb / n)` dB. Not a configuration key (the daemon
    /// always uses 20); 0 turns the fast start off (the unit tests' control).
    public var fastStartDb: Float = 20
    /// Bands per octave of the log-frequency filterbank (fixed).
    public static let bandsPerOctave = 12
    /// Time constant of the band-power smoothing the background level is tracked on (fixed, seconds).
    public static let floorSmoothingSeconds = 0.05

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
    /// IEC 61260-1 band levels computed with the level meter (`levels.bands`; off by default, then free).
    public var bands: BandResolution = .off
    public var onsetFunction = OnsetFunctionConfig()
    /// The input's channels whose levels are averaged per sample by the level meter: 0 (one channel, a picked
    /// one, or 2 channels whose side signal comes along) or 3…64 (the channels come interleaved next to the
    /// averaged downmix; see ``LevelMeter/channels``). Derived from the input, not a setting
    /// (``levelChannels(channels:channel:)``); part of the ``FrameShape`` (it sizes buffers).
    public var levelChannels = 0

    public init() {}

    /// ``levelChannels`` of an input of `channels` channels read whole (`channel` nil) or one of them.
    public static func levelChannels(channels: Int, channel: Int?) -> Int {
        channel == nil && (3...64).contains(channels) ? channels : 0
    }

    /// Floats that come next to each sample of the averaged downmix for the levels: the N channels
    /// (``levelChannels`` ≥ 3) or the stereo side signal (1).
    public var sideStride: Int { levelChannels >= 3 ? levelChannels : 1 }

    /// The documented range of each field (the YAML schema's bounds are these: one definition).
    public enum Limits {
        public static let sampleRate = 8_000...192_000
        public static let nFFT = 16...65_536
        public static let hop = 1...65_536
        public static let nMels = 1...1_024
        public static let nMFCC = 0...1_024
        public static let logMelFloorDb = -200.0...100.0
        /// Roll-off fraction: greater than 0, at most this.
        public static let rolloffMax = 0.9999
        public static let preMaxFrames = 0...1_000
        /// Look-ahead: 0 or 1 frame (it is latency).
        public static let postMaxFrames = 0...1
        public static let preAvgFrames = 0...1_000
        public static let waitFrames = 0...100_000
        public static let meanWeight = 0.0...100.0
        public static let lagFrames = 1...8
        public static let maxFilterBands = 0...8
        public static let floorMarginDb = 0.0...120.0
        public static let floorSlewDbPerSecond = 0.1...10_000.0
        public static let memoryDecayDbPerSecond = 1.0...10_000.0
        public static let topBands = 1...64
    }

    /// Why `n` is not a usable FFT size (even, only prime factors 2, 3, 5, 7), or nil.
    public static func fftSizeProblem(_ n: Int) -> String? {
        if n % 2 == 0 && isFFTWFriendly(n) { return nil }
        var below = n - 1
        while below > 2 && !(below % 2 == 0 && isFFTWFriendly(below)) { below -= 1 }
        var above = n + 1
        while !(above % 2 == 0 && isFFTWFriendly(above)) { above += 1 }
        return "\(n) is not an FFTW-friendly even size: use an even size whose only prime factors are 2, 3, 5 and 7 (nearest: \(below) or \(above))"
    }

    /// Checks every field and throws an ``AnalyzerConfigError`` naming the first bad one by its stable
    /// snake_case key (`n_fft`, `onset.post_max_frames`, `sample_rate`), the key the YAML schema binds
    /// under `analysis.` (`sample_rate` is `capture.sample_rate`).
    public func validate() throws(AnalyzerConfigError) {
        func fail(_ field: String, _ message: String, related: String? = nil) -> AnalyzerConfigError {
            AnalyzerConfigError(field: field, message: message, related: related)
        }
        func range<T: Comparable & CustomStringConvertible>(_ field: String, _ v: T, _ r: ClosedRange<T>) throws(AnalyzerConfigError) {
            guard r.contains(v) else {
                throw fail(field, "\(v) is out of range: must be between \(r.lowerBound) and \(r.upperBound)")
            }
        }
        try range("sample_rate", sampleRate, Limits.sampleRate)
        try range("n_fft", nFFT, Limits.nFFT)
        if let problem = Self.fftSizeProblem(nFFT) { throw fail("n_fft", problem) }
        try range("hop", hop, Limits.hop)
        try range("n_mels", nMels, Limits.nMels)
        try range("n_mfcc", nMFCC, Limits.nMFCC)
        if levelChannels != 0 { try range("level_channels", levelChannels, 3...64) }  // derived (never a YAML key)
        guard fMin.isFinite, fMin >= 0 else { throw fail("fmin", "\(fMin) is out of range: must be at least 0") }
        guard fMax.isFinite, fMax > 0 else { throw fail("fmax", "\(fMax) is out of range: must be greater than 0") }
        if let floor = logMelFloorDb {
            guard floor.isFinite, Limits.logMelFloorDb.contains(Double(floor)) else {
                throw fail("logmel_floor_db", "\(floor) is out of range: must be between -200 and 100")
            }
        }
        guard rolloffPercent > 0, rolloffPercent <= Limits.rolloffMax else {
            throw fail("rolloff", "\(rolloffPercent) is out of range: must be greater than 0 and at most \(Limits.rolloffMax)")
        }
        try range("onset.pre_max_frames", onset.preMaxFrames, Limits.preMaxFrames)
        try range("onset.post_max_frames", onset.postMaxFrames, Limits.postMaxFrames)
        try range("onset.pre_avg_frames", onset.preAvgFrames, Limits.preAvgFrames)
        guard onset.delta.isFinite, onset.delta >= 0 else {
            throw fail("onset.delta", "\(onset.delta) is out of range: must be finite and at least 0")
        }
        try range("onset.wait_frames", onset.waitFrames, Limits.waitFrames)
        guard onset.meanWeight.isFinite, Limits.meanWeight.contains(Double(onset.meanWeight)) else {
            throw fail("onset.mean_weight", "\(onset.meanWeight) is out of range: must be between 0 and 100")
        }
        let f = onsetFunction
        try range("onset.lag_frames", f.lagFrames, Limits.lagFrames)
        try range("onset.max_filter_bands", f.maxFilterBands, Limits.maxFilterBands)
        guard f.floorMarginDb.isFinite, Limits.floorMarginDb.contains(Double(f.floorMarginDb)) else {
            throw fail("onset.floor_margin_db", "\(f.floorMarginDb) is out of range: must be between 0 and 120")
        }
        guard f.floorSlewDbPerSecond.isFinite, Limits.floorSlewDbPerSecond.contains(Double(f.floorSlewDbPerSecond)) else {
            throw fail("onset.floor_slew_db_per_s", "\(f.floorSlewDbPerSecond) is out of range: must be between 0.1 and 10000 (0 would freeze the background)")
        }
        guard f.memoryDecayDbPerSecond.isFinite, Limits.memoryDecayDbPerSecond.contains(Double(f.memoryDecayDbPerSecond)) else {
            throw fail("onset.memory_decay_db_per_s", "\(f.memoryDecayDbPerSecond) is out of range: must be between 1 and 10000")
        }
        try range("onset.top_bands", f.topBands, Limits.topBands)
        // Cross-field: the message names the other key; `related` lets a caller point at it instead.
        guard hop <= nFFT else {
            throw fail("hop", "\(hop) is larger than n_fft (\(nFFT))", related: "n_fft")
        }
        guard fMax <= Double(sampleRate) / 2 else {
            throw fail("fmax", "\(fMax) is above the Nyquist frequency (\(Double(sampleRate) / 2) Hz = sample_rate / 2)", related: "sample_rate")
        }
        guard fMin < fMax else { throw fail("fmin", "\(fMin) must be below fmax (\(fMax))", related: "fmax") }
        guard nMels <= nFFT / 2 + 1 else {
            throw fail("n_mels", "\(nMels) is more than the \(nFFT / 2 + 1) FFT bins of n_fft (\(nFFT))", related: "n_fft")
        }
        guard nMFCC <= nMels else { throw fail("n_mfcc", "\(nMFCC) is larger than n_mels (\(nMels))", related: "n_mels") }
        if let band = firstEmptyMelBand() {
            let e = MelScale.melFrequencies(count: nMels + 2, fMin: fMin, fMax: fMax)
            let spacing = Double(sampleRate) / Double(nFFT)
            throw fail("n_mels", "mel band \(band) (\(Self.hz(e[band]))–\(Self.hz(e[band + 2])) Hz) contains no FFT bin at n_fft \(nFFT) (bins every \(Self.hz(spacing)) Hz at \(sampleRate) Hz), so it would read a constant floor: use a larger n_fft, fewer n_mels, or a higher fmin", related: "n_fft")
        }
    }

    /// The first mel band that no FFT bin falls strictly inside (its triangular weights are all zero, as in
    /// librosa's `mel` filter bank), or nil. A dead band reads the log-mel floor forever.
    public func firstEmptyMelBand() -> Int? {
        let e = MelScale.melFrequencies(count: nMels + 2, fMin: fMin, fMax: fMax)
        let spacing = Double(sampleRate) / Double(nFFT)
        for i in 0..<nMels {
            // The first bin above the lower edge; the band has a bin iff it lies below the upper edge.
            let k = (e[i] / spacing).rounded(.down) + 1
            if !(k * spacing < e[i + 2]) || k > Double(nFFT / 2) { return i }
        }
        return nil
    }

    static func hz(_ v: Double) -> String { String(Double((v * 100).rounded() / 100)) }

    /// What a running pipeline is built around: a change of any of these needs a new pipeline (ring, bus,
    /// analyzer buffers); any other change (band limits, roll-off, floor, onset picking) can be re-planned
    /// or retuned on the running one. The one definition of "same frame shape".
    /// ``levelChannels`` belongs to it: it sizes the side ring, the DSP's side scratch and window and the level
    /// meter's per-channel filters.
    public struct FrameShape: Sendable, Hashable {
        public var sampleRate: Int
        public var nFFT: Int
        public var hop: Int
        public var nMels: Int
        public var nMFCC: Int
        public var levelChannels: Int
    }

    /// This configuration's ``FrameShape``.
    public var frameShape: FrameShape {
        FrameShape(sampleRate: sampleRate, nFFT: nFFT, hop: hop, nMels: nMels, nMFCC: nMFCC, levelChannels: levelChannels)
    }

    /// Seconds between two frames (`hop / sampleRate`).
    public var frameDuration: Double { Double(hop) / Double(sampleRate) }
    /// Seconds covered by one frame (`nFFT / sampleRate`).
    public var windowDuration: Double { Double(nFFT) / Double(sampleRate) }
    /// Number of FFT bins, `nFFT/2 + 1`.
    public var binCount: Int { nFFT / 2 + 1 }
    /// Latency added by the onset picker's look-ahead, in seconds.
    public var onsetLookAheadDuration: Double { Double(onset.postMaxFrames) * frameDuration }

    public static func isFFTWFriendly(_ n: Int) -> Bool {
        guard n > 0 else { return false }
        var m = n
        for p in [2, 3, 5, 7] { while m % p == 0 { m /= p } }
        return m == 1
    }
}

/// A bad ``AnalyzerConfig`` value: ``field`` names it by its stable key (e.g. `"hop"`, `"onset.delta"`).
public struct AnalyzerConfigError: Error, Sendable, CustomStringConvertible {
    /// Stable snake_case key of the bad field (`n_fft`, `onset.post_max_frames`, `sample_rate`).
    public var field: String
    public var message: String
    /// For a conflict between two fields, the other one (its key).
    public var related: String?

    public init(field: String, message: String, related: String? = nil) {
        self.field = field
        self.message = message
        self.related = related
    }

    public var description: String { "\(field): \(message)" }
}
