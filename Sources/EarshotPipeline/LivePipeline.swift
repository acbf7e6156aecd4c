import EarshotCapture
import EarshotDSP
import EarshotRealtime

/// Live capture → ring → DSP stage → ``FrameBus``: the real-time half of the daemon. The DSP stage runs on
/// the capture thread right after each period (``DSPThread/runOnCaptureThread(_:)``): one thread wakes per
/// period, not two.
///
/// The sample ring holds `ringSeconds` of audio, so the DSP stage may be paused briefly (re-plan on reload)
/// or descheduled without losing samples; beyond that the ring drops the oldest samples and the next frame
/// is flagged. Reopening the device (``reopen(capture:)``) keeps the rings, so the timeline continues and
/// the first frame after it is a discontinuity.
public final class LivePipeline: @unchecked Sendable {
    public private(set) var captureConfig: CaptureConfig
    public let capture: CaptureThread
    public let dsp: DSPThread
    public let bus: FrameBus
    public let samples: SPSCRing<Float>
    /// The side signal of 2-channel capture or the channels of 3…64 (``CaptureThread/side``), ``sideFloats``
    /// floats per sample; its pages are touched only by such capture.
    public let side: SPSCRing<Float>
    public let stamps: SPSCRing<CaptureStamp>
    public let wake = WakeSignal()
    /// SCHED_FIFO priority of the DSP thread, kept for restarts (re-plan).
    var dspFifoPriority: Int32 = 0

    /// - Parameters:
    ///   - busCapacity: frames each sink may fall behind before losing its oldest (default ~10 s at 10 ms).
    ///   - ringSeconds: audio the sample ring holds.
    ///   - clipTapSeconds: > 0: the DSP thread copies each frame's new samples into a ``ClipTap`` of this many
    ///     seconds for the clips sink (`clips.directory` set); 0: no tap, no copy.
    public init(capture config: CaptureConfig, analyzer: FrameAnalyzer, busCapacity: Int = 1024, ringSeconds: Double = 4,
                clipTapSeconds: Double = 0) {
        precondition(config.sampleRate == analyzer.config.sampleRate, "capture and analyzer sample rates differ")
        captureConfig = config
        let ringSamples = max(Int(Double(config.sampleRate) * ringSeconds), config.periodFrames * config.bufferPeriods * 4)
        samples = SPSCRing<Float>(minimumCapacity: ringSamples)
        side = SPSCRing<Float>(minimumCapacity: ringSamples * Self.sideFloats(config))
        stamps = SPSCRing<CaptureStamp>(minimumCapacity: max(64, ringSamples / max(1, config.periodFrames / 4)))
        bus = FrameBus(capacity: busCapacity, nMels: analyzer.config.nMels, nMFCC: analyzer.config.nMFCC,
                       spectrumBins: analyzer.config.binCount)
        capture = CaptureThread(config: config, samples: samples, side: side, stamps: stamps, wake: wake)
        let tap = clipTapSeconds > 0
            ? ClipTap(sampleRate: analyzer.config.sampleRate, hop: analyzer.config.hop, seconds: clipTapSeconds) : nil
        let processor = FrameProcessor(analyzer: analyzer, output: bus, measureTiming: true, clipTap: tap)
        dsp = DSPThread(processor: processor, samples: samples, side: side, stamps: stamps, wake: wake,
                        maxPeriodFrames: config.periodFrames * 4)
        dsp.runOnCaptureThread(capture)
    }

    public var analyzerConfig: AnalyzerConfig { dsp.processor.config }

    /// Side floats per sample the side ring is sized for: 1 (none, or the stereo side signal) or N (3…64
    /// channels read whole). A reopen with more channels than the pipeline was built for cannot happen in the
    /// daemon (the level channels are part of the frame shape: a rebuild); were it to, the DSP stage would find
    /// the ring lapped and read the averaged downmix's levels.
    public static func sideFloats(_ config: CaptureConfig) -> Int {
        max(1, sideStride(channels: config.channels, channel: config.channel))
    }
    /// The raw-sample tap for event clips (nil unless built with `clipTapSeconds`).
    public var clipTap: ClipTap? { dsp.processor.clipTap }

    /// Starts the DSP thread, then capture.
    public func start(dspFifoPriority: Int32 = 0) {
        self.dspFifoPriority = dspFifoPriority
        dsp.start(fifoPriority: dspFifoPriority)
        capture.start()
    }

    /// Stops capture (bounded: ``CaptureThread/stop()``), lets the DSP thread finish what is in the ring,
    /// stops it. Returns `false` if the capture thread was stuck and had to be left behind.
    @discardableResult
    public func stop() -> Bool {
        let captureStopped = capture.stop()
        wake.signal()
        dsp.stop()
        dsp.drainRemaining()
        return captureStopped
    }

    /// Reopens the device with `config` (device parameters changed; the sample rate must stay the
    /// analyzer's). Returns at once: the capture thread reopens by itself (``CaptureThread/reconfigure(_:)``),
    /// so a stalled device never blocks the caller, and the gap is reported in samples.
    public func reopen(capture config: CaptureConfig) {
        precondition(config.sampleRate == analyzerConfig.sampleRate)
        captureConfig = config
        capture.reconfigure(config)
    }

    /// Replaces the analyzer (DSP parameters changed, same ``AnalyzerConfig/FrameShape``); capture keeps
    /// running and the samples that arrive meanwhile wait in the ring. Returns `false` and changes nothing
    /// when the frame shape differs (rebuild the pipeline instead).
    @discardableResult
    public func replan(analyzer: FrameAnalyzer) -> Bool {
        guard analyzer.config.frameShape == analyzerConfig.frameShape else { return false }
        dsp.stop()
        dsp.discardPendingRetune()
        dsp.processor.replace(analyzer: analyzer)
        dsp.start(fifoPriority: dspFifoPriority)
        return true
    }

    /// Changes the onset picker's parameters in place (reload of `analysis.onset.*` but the look-ahead): the
    /// DSP thread keeps running and takes them between two frames, so there is no discontinuity, no gap and
    /// the level meters keep their state. Returns `false` if they cannot be taken in place (re-plan instead).
    @discardableResult
    public func retune(onset: OnsetPickerConfig) -> Bool {
        dsp.retune(onset: onset)
    }

    /// Total xruns (the capture thread lives as long as the pipeline).
    public var xruns: Int { capture.xruns }
    /// Total reconnects (reopens for a reload do not count).
    public var reconnects: Int { capture.reconnects }
    /// Non-finite samples replaced by 0: single channel samples in a multi-channel mix (capture) plus those
    /// the DSP's input guard replaced.
    public var nonFiniteSamples: Int { capture.nonFiniteChannelSamples &+ dsp.nonFiniteSamples }
    /// Samples beyond ±1000 clamped, in a multi-channel mix (capture) or by the DSP's input guard.
    public var clampedSamples: Int { capture.clampedChannelSamples &+ dsp.clampedSamples }
}
