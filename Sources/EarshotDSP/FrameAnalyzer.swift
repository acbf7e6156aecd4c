/// The composite (aubio `onset.c` shape): owns the ``STFT``, ``MelFilterbank``, ``DCT``,
/// ``SpectralFeatures``, ``OnsetStrength``, ``OnsetPicker`` and ``LevelMeter`` plus scratch.
///
/// `init` validates, allocates and plans. ``process(frame:newSampleCount:features:logmel:mfcc:)``
/// is a straight chain into caller-owned buffers: no allocation, no lock, no logging, never throws.
/// It is `Sendable` so it can be handed to the DSP thread; it must be used by one thread at a time.
public final class FrameAnalyzer: @unchecked Sendable {
    public let config: AnalyzerConfig
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

    /// - Throws: ``AnalyzerConfigError`` naming the bad field.
    public init(config: AnalyzerConfig) throws(AnalyzerConfigError) {
        try config.validate()
        self.config = config
        stft = STFT(nFFT: config.nFFT)
        melBank = MelFilterbank(
            sampleRate: config.sampleRate, nFFT: config.nFFT, nMels: config.nMels,
            fMin: config.fMin, fMax: config.fMax)
        dct = DCT(inputCount: config.nMels, outputCount: config.nMFCC)
        spectral = SpectralFeatures(
            sampleRate: config.sampleRate, nFFT: config.nFFT, rolloffPercent: config.rolloffPercent,
            windowSum: stft.windowSum)
        onsetStrength = OnsetStrength(nMels: config.nMels)
        picker = OnsetPicker(config: config.onset)
        levelMeter = LevelMeter(sampleRate: config.sampleRate)
        power = .allocate(capacity: config.binCount)
        power.initialize(repeating: 0)
        magnitude = .allocate(capacity: config.binCount)
        magnitude.initialize(repeating: 0)
        frames = .allocate(capacity: 1)
        frames.initialize(to: 0)
        floorDb = config.logMelFloorDb ?? -Float.infinity
    }

    deinit {
        power.deallocate()
        magnitude.deallocate()
        frames.deallocate()
    }

    /// Frames processed since init.
    public var frameIndex: Int64 { frames.pointee }

    /// The `nMels + 2` mel band edges in Hz (for the protocol hello; allocates, not for the hot path).
    public var melBandEdgesHz: [Float] { melBank.bandEdgesHz }

    /// After a discontinuity: forgets the previous spectrum (flux and onset strength read 0 for
    /// the next frame, as for frame 0), the picker history and the level-meter filter states.
    /// ``frameIndex`` keeps counting.
    public func reset() {
        spectral.reset()
        onsetStrength.reset()
        picker.reset()
        levelMeter.reset()
    }

    /// Analyzes one frame. DSP thread only; no allocation, no lock.
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
        features.rmsDbfs = FrameStatistics.rmsDbfs(frame)
        features.peakDbfs = FrameStatistics.peakDbfs(frame)
        features.zcr = FrameStatistics.zeroCrossingRate(frame)
        stft.process(frame: frame, power: power, magnitude: magnitude)
        spectral.process(magnitude: UnsafeBufferPointer(magnitude), into: &features)
        melBank.process(power: UnsafeBufferPointer(power), into: logmel)
        MelFilterbank.powerToDb(logmel, floorDb: floorDb)
        dct.process(UnsafeBufferPointer(logmel), into: mfcc)
        let strength = onsetStrength.process(logmel: UnsafeBufferPointer(logmel))
        features.onsetStrength = strength
        let newSamples = UnsafeBufferPointer(rebasing: frame[(config.nFFT - newSampleCount)...])
        levelMeter.process(newSamples)
        levelMeter.read(into: &features)
        let index = frames.pointee
        frames.pointee = index + 1
        return picker.process(strength: strength, frameIndex: index)
    }
}
