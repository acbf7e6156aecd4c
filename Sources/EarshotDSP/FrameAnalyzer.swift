/// The composite (aubio `onset.c` shape): owns the ``STFT``, ``MelFilterbank``, ``DCT``,
/// ``SpectralFeatures``, ``OnsetStrength``, ``OnsetPicker`` and ``LevelMeter`` plus scratch.
///
/// `init` validates, allocates and plans. ``process(frame:newSampleCount:features:logmel:mfcc:)``
/// is a straight chain into caller-owned buffers: no allocation, no lock, no logging, never throws.
/// It is `Sendable` so it can be handed to the DSP thread; it must be used by one thread at a time.
///
/// Only the features in ``outputs`` are computed (onset strength always is; log-mel also when MFCC or
/// the `logmel` onset function needs it); the others read 0.
public final class FrameAnalyzer: @unchecked Sendable {
    public let config: AnalyzerConfig
    /// The optional features this analyzer computes (fixed at init; ``AnalyzerOutputs/all`` by default).
    public let outputs: AnalyzerOutputs
    public let stft: STFT
    public let melBank: MelFilterbank
    public let dct: DCT
    public let spectral: SpectralFeatures
    public let onsetStrength: OnsetStrength
    public let picker: OnsetPicker
    public let levelMeter: LevelMeter

    let power: UnsafeMutableBufferPointer<Float>
    let magnitude: UnsafeMutableBufferPointer<Float>
    let frames: UnsafeMutablePointer<Int64>
    let floorDb: Float
    /// Whether the mel bank runs: log-mel asked for, or needed by MFCC or the `logmel` onset function.
    let wantsLogmel: Bool

    /// - Parameters:
    ///   - config: the DSP parameters.
    ///   - outputs: the optional features to compute (``init(config:)`` computes all).
    /// - Throws: ``AnalyzerConfigError`` naming the bad field.
    public init(config: AnalyzerConfig, outputs: AnalyzerOutputs) throws(AnalyzerConfigError) {
        try config.validate()
        self.config = config
        self.outputs = outputs
        stft = STFT(nFFT: config.nFFT)
        melBank = MelFilterbank(
            sampleRate: config.sampleRate, nFFT: config.nFFT, nMels: config.nMels,
            fMin: config.fMin, fMax: config.fMax)
        dct = DCT(inputCount: config.nMels, outputCount: config.nMFCC)
        spectral = SpectralFeatures(
            sampleRate: config.sampleRate, nFFT: config.nFFT, rolloffPercent: config.rolloffPercent,
            windowSum: stft.windowSum)
        onsetStrength = OnsetStrength(
            config: config.onsetFunction, sampleRate: config.sampleRate, nFFT: config.nFFT, nMels: config.nMels, hop: config.hop)
        picker = OnsetPicker(config: config.onset)
        levelMeter = LevelMeter(sampleRate: config.sampleRate, bands: config.bands, channels: config.levelChannels)
        power = .allocate(capacity: config.binCount)
        power.initialize(repeating: 0)
        magnitude = .allocate(capacity: config.binCount)
        magnitude.initialize(repeating: 0)
        frames = .allocate(capacity: 1)
        frames.initialize(to: 0)
        floorDb = config.logMelFloorDb ?? -Float.infinity
        wantsLogmel = !outputs.isDisjoint(with: [.logmel, .mfcc]) || config.onsetFunction.function == .logmel
    }

    /// Computes everything (``AnalyzerOutputs/all``), as the live daemon needs.
    /// - Throws: ``AnalyzerConfigError`` naming the bad field.
    public convenience init(config: AnalyzerConfig) throws(AnalyzerConfigError) {
        try self.init(config: config, outputs: .all)
    }

    deinit {
        power.deallocate()
        magnitude.deallocate()
        frames.deallocate()
    }

    /// Frames processed since init.
    public var frameIndex: Int64 { frames.pointee }

    /// The power spectrum `|X_k|^2` (`nFFT/2 + 1` bins) of the last frame ``process(frame:newSampleCount:features:logmel:mfcc:)``
    /// analyzed: the buffer the mel bank reads, exposed as it is (no copy, no cost when nobody reads it).
    /// Valid until the next call; same thread only.
    public var powerSpectrum: UnsafeBufferPointer<Float> { UnsafeBufferPointer(power) }

    /// The `nMels + 2` mel band edges in Hz (for the protocol hello; allocates, not for the hot path).
    public var melBandEdgesHz: [Float] { melBank.bandEdgesHz }

    /// After a discontinuity: forgets the previous spectrum (flux reads 0 for the next frame, onset strength
    /// for the next `lag_frames` (superflux) or 1 (logmel), as at the start), the onset band memory and background, the picker
    /// history (no onset until it is filled again) and the level-meter filter states.
    /// ``frameIndex`` keeps counting.
    public func reset() {
        spectral.reset()
        onsetStrength.reset()
        picker.reset()
        levelMeter.reset()
    }

    /// Analyzes one frame (computing only ``outputs``). DSP thread only; no allocation, no lock.
    /// - Parameters:
    ///   - frame: exactly `nFFT` samples; frame `i` covers samples `[i*hop, i*hop + nFFT)`.
    ///   - newSampleCount: how many of the frame's last samples are new since the previous call
    ///     (`nFFT` for the first frame or after ``reset()``, `hop` otherwise); the level meter
    ///     consumes exactly those.
    ///   - features: receives the scalar features.
    ///   - logmel: `nMels` values, receives log-mel dB.
    ///   - mfcc: `nMFCC` values.
    /// - Returns: an onset if one was decided by this call (with look-ahead 1, for the previous frame).
    public func process(
        frame: UnsafeBufferPointer<Float>, newSampleCount: Int, features: inout FrameFeatures,
        logmel: UnsafeMutableBufferPointer<Float>, mfcc: UnsafeMutableBufferPointer<Float>
    ) -> OnsetEvent? {
        precondition(frame.count == config.nFFT && newSampleCount >= 0 && newSampleCount <= config.nFFT)
        precondition(logmel.count == config.nMels && mfcc.count == config.nMFCC)
        let o = outputs
        features.rmsDbfs = o.contains(.rms) ? FrameStatistics.rmsDbfs(frame) : 0
        features.peakDbfs = o.contains(.peak) ? FrameStatistics.peakDbfs(frame) : 0
        features.zcr = o.contains(.zcr) ? FrameStatistics.zeroCrossingRate(frame) : 0
        let wantsMagnitude = !o.isDisjoint(with: AnalyzerOutputs.needsMagnitude)
        stft.process(frame: frame, power: power, magnitude: wantsMagnitude ? magnitude : nil)
        if !o.isDisjoint(with: .spectral) {
            spectral.process(
                magnitude: UnsafeBufferPointer(magnitude), power: UnsafeBufferPointer(power), outputs: o,
                into: &features)
        } else {
            features.centroidHz = 0; features.bandwidthHz = 0; features.rolloffHz = 0
            features.flatness = 0; features.flux = 0
        }
        if wantsLogmel {
            melBank.process(power: UnsafeBufferPointer(power), into: logmel)
            MelFilterbank.powerToDb(logmel, floorDb: floorDb)
        } else {
            logmel.update(repeating: 0)
        }
        if o.contains(.mfcc) {
            dct.process(UnsafeBufferPointer(logmel), into: mfcc)
        } else if mfcc.count > 0 {
            mfcc.update(repeating: 0)
        }
        let strength = onsetStrength.process(power: UnsafeBufferPointer(power), logmel: UnsafeBufferPointer(logmel))
        features.onsetStrength = strength
        if o.contains(.levels) {
            let newSamples = UnsafeBufferPointer(rebasing: frame[(config.nFFT - newSampleCount)...])
            levelMeter.process(newSamples)
            levelMeter.read(into: &features)
        } else {
            features.laf = 0; features.las = 0; features.lcf = 0; features.lzf = 0
        }
        let index = frames.pointee
        frames.pointee = index + 1
        return picker.process(strength: strength, frameIndex: index)
    }
}
