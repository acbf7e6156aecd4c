import EarshotDSP
import EarshotRealtime

/// Where ``FrameProcessor`` puts its frames. The processor asks for the vector buffers before it analyses
/// a frame (so the analyzer writes straight into their final place, e.g. a ``FrameBus`` slot) and hands
/// over the header when the frame is complete.
public protocol FrameOutput: AnyObject {
    /// Buffers for the next frame's log-mel (`nMels`) and MFCC (`nMFCC`) values.
    func nextFrameBuffers() -> (logmel: UnsafeMutableBufferPointer<Float>, mfcc: UnsafeMutableBufferPointer<Float>)
    /// The frame whose vectors were just written into the buffers of the last ``nextFrameBuffers()``.
    func emit(_ header: FrameHeader)
    /// The power spectrum of the frame about to be emitted (valid during the call only). Default: ignored.
    func offerSpectrum(_ power: UnsafeBufferPointer<Float>, seq: Int64, wallNs: Int64)
}

extension FrameOutput {
    @inline(__always)
    public func offerSpectrum(_ power: UnsafeBufferPointer<Float>, seq: Int64, wallNs: Int64) {}
}

extension FrameBus: FrameOutput {
    public func nextFrameBuffers() -> (logmel: UnsafeMutableBufferPointer<Float>, mfcc: UnsafeMutableBufferPointer<Float>) {
        beginWrite()
        return (nextLogmel, nextMFCC)
    }
    public func emit(_ header: FrameHeader) { publish(header) }
    /// Hands the spectrum to the ``spectrumTap`` (one atomic load when nobody wants spectra).
    @inline(__always)
    public func offerSpectrum(_ power: UnsafeBufferPointer<Float>, seq: Int64, wallNs: Int64) {
        spectrumTapRef?._withUnsafeGuaranteedRef { $0.offer(power, seq: seq, wallNs: wallNs) }
    }
}

/// Hop-synchronous framing shared by the live DSP thread and `earshot analyze`: every `hop` new samples
/// produce exactly one frame, whatever size the incoming chunks have; frame `i` after a (re)start covers
/// samples `[i*hop, i*hop + nFFT)` of the contiguous run, as librosa frames with `center=False`.
///
/// A discontinuity (xrun, suspend, reconnect, ring overrun) drops the partial frame, resets the analyzer's
/// memory (flux, onset strength, picker, level meters) and marks the next frame with
/// ``FrameFlags/discontinuity`` and the number of samples lost.
///
/// Frames that lie entirely inside the buffer passed to ``push(_:firstSample:monotonicNs:wallNs:)`` (offline
/// analysis reads large chunks) are analyzed in place; the others are assembled in a window that slides by
/// one hop.
///
/// Samples enter through ``SampleGuard``: a chunk holding a non-finite sample or one beyond ±``SampleGuard/limit``
/// is framed from sanitized copies (``sanitizedSamples`` counts them), so no DSP kernel ever sees it.
///
/// Real-time safe after `init`: no allocation, no lock; two `clock_gettime` (vDSO) per frame when
/// `measureTiming` is on. One thread at a time (the DSP thread, or `earshot analyze`): the mutable fields are
/// `@exclusivity(unchecked)` and the analyzer is called through an unretained reference, so the release
/// build makes no `swift_beginAccess` and no retain/release per frame (`bench/check_disasm.sh`).
public final class FrameProcessor<Output: FrameOutput>: @unchecked Sendable {
    /// The analyzer (owning reference). The per-frame path calls it through ``current`` instead: a strong
    /// `var` read would be retained and released around every call.
    @exclusivity(unchecked) public private(set) var analyzer: FrameAnalyzer {
        didSet { current = Unmanaged.passUnretained(analyzer) }
    }
    /// `analyzer` without reference counting; valid as long as `analyzer` holds it (DSP thread only).
    @exclusivity(unchecked) var current: Unmanaged<FrameAnalyzer>
    public let output: Output
    public let measureTiming: Bool
    let window: AlignedBuffer<Float>
    /// The side signal of the samples in `window` (2-channel input; see ``push(_:side:firstSample:monotonicNs:wallNs:)``),
    /// or their channels interleaved (3 or more), ``sideStride`` floats per sample.
    let sideWindow: AlignedBuffer<Float>
    /// Side floats per sample (``AnalyzerConfig/sideStride``; the same for every analyzer: part of the frame shape).
    let sideStride: Int
    /// Sanitized copies of a chunk that needed ``SampleGuard`` (`nFFT` samples at a time).
    let sanitizeScratch: AlignedBuffer<Float>
    /// Samples changed by ``SampleGuard`` since init (never reset: discontinuities and re-plans keep it).
    @exclusivity(unchecked) public private(set) var sanitizedSamples = SampleGuard.Counts()
    @exclusivity(unchecked) var fill = 0
    /// How many of the last samples in `window` have their side signal in `sideWindow` (a push without a side
    /// — a lapped side ring, a mono period — ends the run): a frame gets its side only when all its new
    /// samples have one, never an older frame's side left in `sideWindow`.
    @exclusivity(unchecked) var sideValid = 0
    @exclusivity(unchecked) var freshAfterReset = true
    /// `seq` of the next frame.
    @exclusivity(unchecked) public private(set) var nextSeq: Int64 = 0
    /// Timeline index of `window[0]`.
    @exclusivity(unchecked) var windowStart: Int64 = 0
    @exclusivity(unchecked) var pendingFlags: UInt32 = 0
    @exclusivity(unchecked) var pendingGap: Int64 = 0
    /// seq − analyzer.frameIndex, so onset frame indices map to seq after a re-plan.
    @exclusivity(unchecked) var seqOffset: Int64 = 0
    @exclusivity(unchecked) var anchorSample: Int64 = 0
    @exclusivity(unchecked) var anchorMonotonicNs: Int64 = 0
    @exclusivity(unchecked) var anchorWallNs: Int64 = 0
    @exclusivity(unchecked) var nsPerSample: Double
    @exclusivity(unchecked) var header = FrameHeader()
    /// Wall-clock grid (ns) at which each frame's level data is split (``FrameHeader/levels``), so rolling
    /// windows whose lengths are multiples of it integrate to the sample. 0: no split. Set before the first
    /// frame; ``levelGrid(windowsSeconds:)`` gives the grid for a set of windows.
    @exclusivity(unchecked) public var levelGridNs: Int64 = 1_000_000_000
    /// Runs of the input-health statistics (``SampleHealth``) across frames.
    @exclusivity(unchecked) var healthAccumulator = SampleHealthAccumulator()
    /// Raw samples for event clips (nil: clips off, nothing is copied). ``clipTapRef`` is the per-frame path.
    public let clipTap: ClipTap?
    let clipTapRef: Unmanaged<ClipTap>?

    public init(analyzer: FrameAnalyzer, output: Output, measureTiming: Bool, clipTap: ClipTap? = nil) {
        self.clipTap = clipTap
        clipTapRef = clipTap.map { Unmanaged.passUnretained($0) }
        self.analyzer = analyzer
        current = Unmanaged.passUnretained(analyzer)
        self.output = output
        self.measureTiming = measureTiming
        window = AlignedBuffer(count: analyzer.config.nFFT)
        window.clear()
        sideStride = analyzer.config.sideStride
        sideWindow = AlignedBuffer(count: analyzer.config.nFFT * sideStride)
        sideWindow.clear()
        sanitizeScratch = AlignedBuffer(count: analyzer.config.nFFT)
        nsPerSample = 1e9 / Double(analyzer.config.sampleRate)
    }

    public var config: AnalyzerConfig { analyzer.config }

    /// Replaces the analyzer (configuration reload that changes DSP parameters with the same `nFFT` and
    /// sample rate — the pipeline is rebuilt otherwise). The partial frame is kept: the next frame starts
    /// where the previous one ended plus the new hop, so no sample is lost and its `gap_samples` (0) is true.
    /// It is a discontinuity flagged ``FrameFlags/replan`` because the analyzer's memory (level meters,
    /// onset history) starts afresh; `seq` keeps counting. Call on the DSP thread.
    public func replace(analyzer newAnalyzer: FrameAnalyzer) {
        precondition(newAnalyzer.config.nFFT == window.count, "replace keeps nFFT (rebuild the pipeline otherwise)")
        precondition(newAnalyzer.config.sideStride == sideStride, "replace keeps the level channels (rebuild otherwise)")
        analyzer = newAnalyzer
        nsPerSample = 1e9 / Double(newAnalyzer.config.sampleRate)
        seqOffset = nextSeq - newAnalyzer.frameIndex
        pendingFlags |= FrameFlags.replan | FrameFlags.discontinuity
    }

    /// Continues the `seq` numbering of a pipeline this one replaces (a reload that rebuilt the pipeline):
    /// the next frame gets `seq` and is flagged ``FrameFlags/replan``. Call before the first frame.
    public func continueSequence(at seq: Int64) {
        nextSeq = seq
        seqOffset = seq - analyzer.frameIndex
        pendingFlags |= FrameFlags.replan | FrameFlags.discontinuity
    }

    /// Time jumped: forget the partial frame and the analyzer's memory; the next frame carries `flags`
    /// (plus ``FrameFlags/discontinuity``) and `gapSamples` (accumulated if several happen before it).
    public func discontinuity(flags: UInt32, gapSamples: Int64) {
        fill = 0
        freshAfterReset = true
        analyzer.reset()
        seqOffset = nextSeq - analyzer.frameIndex
        pendingFlags |= flags | FrameFlags.discontinuity
        pendingGap &+= max(0, gapSamples)
        healthAccumulator.reset()
    }

    /// Feeds contiguous samples (any values: see ``SampleGuard``).
    /// - Parameters:
    ///   - samples: mono Float32 samples (the averaged downmix `M = (L + R) / 2` of a 2-channel input).
    ///   - side: nil, or for a 2-channel input the side signal `S = (L − R) / 2` of the same samples
    ///     (`samples.count` values), for 3 or more channels (``AnalyzerConfig/levelChannels``) the channels'
    ///     samples interleaved (`samples.count × levelChannels` values); sanitized in place. The level meter then
    ///     reads the energy mean over the channels (``LevelMeter/side``); every other feature keeps the averaged
    ///     downmix.
    ///   - firstSample: timeline index of `samples[0]` (lost samples included).
    ///   - monotonicNs: capture time (CLOCK_MONOTONIC) of `samples[0]`.
    ///   - wallNs: UNIX time of `samples[0]`.
    public func push(_ samples: UnsafeBufferPointer<Float>, side: UnsafeMutablePointer<Float>? = nil, firstSample: Int64,
                     monotonicNs: Int64, wallNs: Int64) {
        anchorSample = firstSample
        anchorMonotonicNs = monotonicNs
        anchorWallNs = wallNs
        guard let base = samples.baseAddress else { return }
        let stride = sideStride
        if let side, SampleGuard.scan(UnsafeBufferPointer(start: side, count: samples.count * stride)).total != 0 {
            SampleGuard.copySanitized(side, to: side, count: samples.count * stride)
        }
        let bad = SampleGuard.scan(samples)
        if bad.total == 0 {
            feed(samples, side: side, firstSample: firstSample)
            return
        }
        sanitizedSamples.nonFinite &+= bad.nonFinite
        sanitizedSamples.clamped &+= bad.clamped
        // Rare: frame sanitized copies, nFFT samples at a time (feed copies what it keeps before returning).
        let scratch = sanitizeScratch.pointer
        var done = 0
        while done < samples.count {
            let n = min(samples.count - done, sanitizeScratch.count)
            SampleGuard.copySanitized(base + done, to: scratch, count: n)
            feed(UnsafeBufferPointer(start: scratch, count: n), side: side.map { $0 + done * stride }, firstSample: firstSample &+ Int64(done))
            done += n
        }
    }

    /// Frames `samples`, whose first sample is at `firstSample` on the timeline.
    func feed(_ samples: UnsafeBufferPointer<Float>, side: UnsafeMutablePointer<Float>?, firstSample: Int64) {
        let (nFFT, hop) = current._withUnsafeGuaranteedRef { ($0.config.nFFT, $0.config.hop) }
        guard var src = samples.baseAddress else { return }
        var remaining = samples.count
        var srcSample = firstSample
        let win = window.pointer
        // The side signal moves along with the samples (a discontinuity, where it may start or end, empties
        // the window).
        var sideSrc = UnsafePointer(side)
        let sideWin = sideWindow.pointer
        let stride = sideStride
        while remaining > 0 {
            if fill == 0 && remaining >= nFFT {
                // The whole frame is inside the caller's buffer (offline analysis reads big chunks):
                // analyze it in place instead of copying it into the window and sliding it.
                windowStart = srcSample
                emitFrame(UnsafeBufferPointer(start: src, count: nFFT), side: sideSrc, nFFT: nFFT, hop: hop)
                src += hop; remaining -= hop; srcSample &+= Int64(hop); sideSrc = sideSrc.map { $0 + hop * stride }
                continue
            }
            if fill == 0 { windowStart = srcSample }
            let n = min(remaining, nFFT - fill)
            (win + fill).update(from: src, count: n)
            if let s = sideSrc {
                (sideWin + fill * stride).update(from: s, count: n * stride); sideSrc = s + n * stride
                sideValid = min(sideValid + n, fill + n)
            } else {
                sideValid = 0
            }
            fill += n; src += n; remaining -= n; srcSample &+= Int64(n)
            if fill == nFFT {
                let fresh = freshAfterReset ? nFFT : hop
                emitFrame(UnsafeBufferPointer(start: win, count: nFFT), side: sideValid >= fresh ? UnsafePointer(sideWin) : nil,
                          nFFT: nFFT, hop: hop)
                let keep = nFFT - hop
                if samples.count - remaining >= keep {
                    // The next frame's first samples came from this buffer: go back to reading it in place.
                    src -= keep; remaining += keep; srcSample &-= Int64(keep); sideSrc = sideSrc.map { $0 - keep * stride }
                    fill = 0
                } else {
                    // Slide by one hop.
                    win.update(from: win + hop, count: keep)
                    if sideValid > 0 { sideWin.update(from: sideWin + hop * stride, count: keep * stride) }
                    sideValid = min(sideValid, keep)
                    fill = keep
                    windowStart &+= Int64(hop)
                }
            }
        }
    }

    func emitFrame(_ frame: UnsafeBufferPointer<Float>, side: UnsafePointer<Float>?, nFFT: Int, hop: Int) {
        let start = measureTiming ? Clock.monotonicNanoseconds() : 0
        let buffers = output.nextFrameBuffers()
        let seq = nextSeq
        let newSamples = freshAfterReset ? nFFT : hop
        header.seq = seq
        header.firstSample = windowStart
        let offset = Double(windowStart &- anchorSample) * nsPerSample
        header.monotonicNs = anchorMonotonicNs &+ Int64(offset.rounded())
        header.wallNs = anchorWallNs &+ Int64(offset.rounded())
        header.lastSampleMonotonicNs = header.monotonicNs &+ Int64((Double(nFFT - 1) * nsPerSample).rounded())
        header.flags = pendingFlags
        header.gapSamples = pendingGap
        // The new samples start (nFFT − newSamples) samples after the frame: split their level data at the
        // first multiple of the grid inside them (the first sample captured at or after it goes to the tail).
        let newStartNs = header.wallNs &+ Int64((Double(nFFT - newSamples) * nsPerSample).rounded())
        var split = Int.max
        var boundary: Int64 = 0
        if levelGridNs > 0 {
            boundary = (floorDiv(newStartNs &- 1, levelGridNs) &+ 1) &* levelGridNs
            let k = ((Double(boundary &- newStartNs)) / nsPerSample).rounded(.up)
            if k < Double(newSamples) { split = Int(k) }
        }
        let fresh = UnsafeBufferPointer(rebasing: frame[max(0, nFFT - newSamples)...])
        header.health = healthAccumulator.measure(fresh)
        if let tap = clipTapRef {
            let skip = Int64(nFFT - fresh.count)
            tap._withUnsafeGuaranteedRef {
                $0.record(fresh, firstSample: windowStart &+ skip,
                          wallNs: header.wallNs &+ Int64((Double(skip) * nsPerSample).rounded()), seq: seq)
            }
        }
        let onset = current._withUnsafeGuaranteedRef {
            $0.levelMeter.split = split
            $0.levelMeter.side = side.map { $0 + (nFFT - newSamples) * sideStride }
            return $0.process(
                frame: frame, newSampleCount: newSamples,
                features: &header.features, logmel: buffers.logmel, mfcc: buffers.mfcc)
        }
        current._withUnsafeGuaranteedRef {
            header.levels = LevelInterval(startWallNs: newStartNs, splitWallNs: boundary, head: $0.levelMeter.head,
                                          tail: $0.levelMeter.tail)
            if $0.levelMeter.bank != nil { header.bands = $0.levelMeter.bandFrame }
        }
        if let onset {
            header.hasOnset = true
            header.onset = onset
            let onsetSeq = onset.frameIndex &+ seqOffset
            header.onset.frameIndex = onsetSeq
            header.onset.detectedAtFrame = onset.detectedAtFrame &+ seqOffset
            let framesBack = Double(seq &- onsetSeq)
            header.onsetWallNs = header.wallNs &- Int64((framesBack * Double(hop) * nsPerSample).rounded())
            header.onsetDelayMs = Float((framesBack * Double(hop) + Double(nFFT)) * nsPerSample / 1e6)
        } else {
            header.hasOnset = false
        }
        output.offerSpectrum(current._withUnsafeGuaranteedRef { $0.powerSpectrum }, seq: seq, wallNs: header.wallNs)
        header.dspStartNs = start
        header.dspEndNs = measureTiming ? Clock.monotonicNanoseconds() : 0
        pendingFlags = 0
        pendingGap = 0
        freshAfterReset = false
        nextSeq = seq &+ 1
        output.emit(header)
    }
}

extension FrameProcessor {
    /// The level grid for rolling windows of these lengths: the greatest common divisor of their lengths in
    /// nanoseconds (1 s for 1/10/60 s), or 0 for none. With a grid no shorter than a hop, at most one window
    /// boundary falls inside any hop and every window integrates its levels to the sample.
    public static func levelGrid(windowsSeconds: [Double]) -> Int64 {
        func gcd(_ a: Int64, _ b: Int64) -> Int64 { b == 0 ? a : gcd(b, a % b) }
        var g: Int64 = 0
        for w in windowsSeconds where w.isFinite && w > 0 && w < 9e9 { g = gcd(g, Int64((w * 1e9).rounded())) }
        return g
    }
}

/// `floor(a / b)` for b > 0 (window and grid indices of wall-clock times, negative times included).
@inlinable
public func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
    let q = a / b
    return (a % b != 0 && a < 0) ? q - 1 : q
}
