#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import EarshotCapture
import EarshotDSP
import EarshotRealtime

/// The hop-synchronous DSP thread (`es-dsp`): drains the capture thread's sample and stamp rings, frames
/// the samples with a ``FrameProcessor`` and publishes each frame on a ``FrameBus``.
///
/// Time comes only from capture stamps: a sample at ring position `p` inside the period of stamp `s` was
/// captured at `s.monotonicNs + (p − s.firstSample) / rate`. The frame timeline (``FrameHeader/firstSample``)
/// is the ring position plus every device gap reported by the stamps, so it advances with real time across
/// xruns and reconnects. Samples the ring dropped because this thread fell behind are a discontinuity
/// flagged ``FrameFlags/ringOverrun`` with their count.
///
/// Two ways to run, one per instance:
/// - **On the capture thread** (``runOnCaptureThread(_:)``, what ``LivePipeline`` does): the capture thread
///   calls ``periodCaptured()`` right after each period is in the rings and it drains them there. No second
///   thread is woken per period (on this project's 2-core VM every wake-up of a sleeping thread costs
///   ~30 µs of CPU, more than the analysis of the period). ``stop()`` pauses it: the capture thread then
///   only fills the rings, and ``start(fifoPriority:)`` resumes it (a re-plan), catching up from the ring.
/// - **Its own thread** `es-dsp` (``start(fifoPriority:)`` without the above): waits on the capture thread's
///   wake signal (≤ 100 ms), drains. The ring then also absorbs analysis slower than capture for a while.
///
/// Either way: drain every available stamp, read exactly its samples, push them. No allocation, lock or
/// logging inside the loop.
public final class DSPThread: @unchecked Sendable {
    public let processor: FrameProcessor<FrameBus>
    public let samples: SPSCRing<Float>
    /// The capture thread's side-signal ring (2-channel capture, or the channels of 3…64; see
    /// ``CaptureStamp/sideFirst``), or nil.
    public let side: SPSCRing<Float>?
    /// `side` without reference counting (the per-period path; `side` keeps it alive).
    let sideRef: Unmanaged<SPSCRing<Float>>?
    /// `processor.output` without reference counting (the per-period path; `processor` keeps it alive).
    let busRef: Unmanaged<FrameBus>
    public let stamps: SPSCRing<CaptureStamp>
    public let wake: WakeSignal
    let scratch: AlignedBuffer<Float>
    /// Side samples of one read (allocated, never cleared: its pages are touched only by 2…64-channel capture),
    /// ``sideStride`` floats per sample.
    let sideScratch: UnsafeMutableBufferPointer<Float>
    /// Side floats per sample the processor takes (``AnalyzerConfig/sideStride``); a stamp with another stride
    /// gets none (its levels are those of the averaged downmix).
    let sideStride: Int
    let stampScratch: UnsafeMutableBufferPointer<CaptureStamp>
    var handle: RealtimeThread.Handle?
    let running = Atomic<Bool>(false)
    let _frames = Atomic<Int>(0)
    let _lastFrameMonotonicNs = Atomic<Int64>(0)
    let _ringOverrunSamples = Atomic<Int>(0)
    let _sideReads = Atomic<Int>(0)
    let _discontinuities = Atomic<Int>(0)
    let _nonFiniteSamples = Atomic<Int>(0)
    let _clampedSamples = Atomic<Int>(0)
    let _stallUntilNs = Atomic<Int64>(0)
    let _stalled = Atomic<Bool>(false)
    /// Sum of device gaps seen so far (timeline = ring position + this).
    @exclusivity(unchecked) var timelineOffset: Int64 = 0
    @exclusivity(unchecked) var seenFirstStamp = false
    /// CLOCK_MONOTONIC end of the last stamp's period.
    @exclusivity(unchecked) var lastStampEndNs: Int64 = 0
    /// New onset-picker parameters waiting for the DSP thread (``retune(onset:)``).
    let retuneMailbox = RetuneMailbox()
    /// Runs on the capture thread (``runOnCaptureThread(_:)``) rather than its own.
    public private(set) var runsOnCaptureThread = false
    /// On the capture thread: draining allowed (between ``start(fifoPriority:)`` and ``stop()``).
    let inlineEnabled = Atomic<Bool>(false)
    /// On the capture thread: set while ``periodCaptured()`` may be draining (``stop()`` waits for it).
    let inlineBusy = Atomic<Bool>(false)

    public init(processor: FrameProcessor<FrameBus>, samples: SPSCRing<Float>, side: SPSCRing<Float>? = nil,
                stamps: SPSCRing<CaptureStamp>, wake: WakeSignal, maxPeriodFrames: Int) {
        self.processor = processor
        self.samples = samples
        self.side = side
        sideRef = side.map { Unmanaged.passUnretained($0) }
        busRef = Unmanaged.passUnretained(processor.output)
        sideStride = processor.config.sideStride
        // 3…64 channels: room for one read of up to `maxPeriodFrames` (a read is one period; a longer one gets
        // no side: the averaged downmix's levels), not the ring's capacity times the channels.
        sideScratch = .allocate(capacity: side == nil ? 1
            : sideStride == 1 ? max(maxPeriodFrames, samples.capacity) : maxPeriodFrames * sideStride)
        self.stamps = stamps
        self.wake = wake
        scratch = AlignedBuffer(count: max(maxPeriodFrames, samples.capacity))
        stampScratch = .allocate(capacity: 1)
    }

    deinit { stampScratch.deallocate(); sideScratch.deallocate() }

    /// Floats of the side scratch (the memory estimate's check).
    public var sideScratchFloats: Int { sideScratch.count }
    /// Frames published.
    public var frames: Int { _frames.load(ordering: .relaxed) }
    /// CLOCK_MONOTONIC time the last frame was published (0 before the first): the watchdog's evidence.
    public var lastFrameMonotonicNs: Int64 { _lastFrameMonotonicNs.load(ordering: .acquiring) }
    /// Samples dropped by the sample ring because this thread fell behind.
    public var ringOverrunSamples: Int { _ringOverrunSamples.load(ordering: .relaxed) }
    /// Reads that got their side samples (the stereo side signal or the channels) for the levels.
    public var sideReads: Int { _sideReads.load(ordering: .relaxed) }
    /// Discontinuities marked on frames (device gaps and ring overruns).
    public var discontinuities: Int { _discontinuities.load(ordering: .relaxed) }
    /// Non-finite samples (NaN, ±inf) replaced by 0 where they entered the DSP (``SampleGuard``).
    public var nonFiniteSamples: Int { _nonFiniteSamples.load(ordering: .relaxed) }
    /// Samples beyond ±``SampleGuard/limit`` clamped where they entered the DSP.
    public var clampedSamples: Int { _clampedSamples.load(ordering: .relaxed) }

    /// Makes `capture` run this stage after each of its periods (instead of waking a thread of its own).
    /// Before `capture` starts and before ``start(fifoPriority:)``.
    public func runOnCaptureThread(_ capture: CaptureThread) {
        precondition(handle == nil, "runOnCaptureThread while the DSP thread runs")
        runsOnCaptureThread = true
        capture.setPeriodConsumer(CaptureThread.PeriodConsumer(function: { context in
            Unmanaged<DSPThread>.fromOpaque(context)._withUnsafeGuaranteedRef { $0.periodCaptured() }
        }, context: Unmanaged.passUnretained(self).toOpaque()), owner: self)
    }

    /// Starts the thread (optionally SCHED_FIFO, best effort), or, on the capture thread, lets it drain again
    /// (the capture thread's scheduling applies; nothing is started, nil is returned).
    @discardableResult
    public func start(fifoPriority: Int32 = 0) -> RealtimeThread.SchedulingResult? {
        running.store(true, ordering: .releasing)
        if runsOnCaptureThread {
            inlineEnabled.store(true, ordering: .sequentiallyConsistent)
            return nil
        }
        let (h, sched) = RealtimeThread.start(name: "es-dsp", fifoPriority: fifoPriority, batchIfNotFIFO: true) { [self] in loop() }
        handle = h
        return sched
    }

    /// Stops and joins the thread (on the capture thread: waits until a drain under way there has finished;
    /// bounded by what the ring holds); samples still in the ring stay there (a restart continues with them).
    public func stop() {
        running.store(false, ordering: .releasing)
        if runsOnCaptureThread {
            // Dekker with periodCaptured(): either it sees `inlineEnabled` false, or this sees it busy.
            inlineEnabled.store(false, ordering: .sequentiallyConsistent)
            while inlineBusy.load(ordering: .sequentiallyConsistent) { sched_yield() }
            return
        }
        wake.signal()
        if let h = handle { RealtimeThread.join(h); handle = nil }
    }

    /// The capture thread's call after each period (``runOnCaptureThread(_:)``): drains what is in the rings.
    @inline(__always)
    func periodCaptured() {
        guard inlineEnabled.load(ordering: .relaxed) else { return }
        inlineBusy.store(true, ordering: .sequentiallyConsistent)
        if inlineEnabled.load(ordering: .sequentiallyConsistent) && !stalledByFault() { drain() }
        inlineBusy.store(false, ordering: .releasing)
    }

    /// The test fault of ``injectStall(milliseconds:)`` is in force.
    @inline(__always)
    func stalledByFault() -> Bool {
        let until = _stallUntilNs.load(ordering: .acquiring)
        if until == 0 { return false }
        if Clock.monotonicNanoseconds() < until { return true }
        _stallUntilNs.store(0, ordering: .relaxed)
        return false
    }

    /// Retunes applied by the DSP thread (between two frames, no reset, no discontinuity).
    public var retunesApplied: Int { retuneMailbox.applied.load(ordering: .acquiring) }

    /// Hands new onset-picker parameters to the DSP thread, which takes them between two frames (the next
    /// time it drains: its own thread wakes at least every 100 ms, on the capture thread with the next
    /// period) without a reset. Any thread but the DSP
    /// thread; a newer retune replaces one not yet taken. Returns `false` (nothing posted) if the picker
    /// cannot take them in place (look-ahead changed): re-plan instead.
    @discardableResult
    public func retune(onset: OnsetPickerConfig) -> Bool {
        // Decided from the analyzer's (immutable) configuration, not the picker's live state, which the DSP
        // thread owns: the look-ahead never changes by retuning, and the history bounds are static.
        let fits = max(onset.preMaxFrames, onset.preAvgFrames) <= OnsetPicker.maxHistoryFrames
        guard onset.postMaxFrames == processor.config.onset.postMaxFrames, fits, onset.preMaxFrames >= 0,
              onset.preAvgFrames >= 0, onset.waitFrames >= 0 else { return false }
        retuneMailbox.post(onset)
        if !runsOnCaptureThread { wake.signal() }  // on the capture thread it is taken with the next period
        return true
    }

    /// Forgets a retune not yet taken (the analyzer is being replaced; its configuration already has it).
    /// Only while the thread is stopped.
    func discardPendingRetune() { retuneMailbox.discard() }

    /// Test-only fault switch: the loop stops consuming for `milliseconds` (the watchdog must notice).
    @_spi(Testing) public func injectStall(milliseconds: Int) {
        _stallUntilNs.store(Clock.monotonicNanoseconds() + Int64(milliseconds) * 1_000_000, ordering: .releasing)
    }

    func loop() {
        while running.load(ordering: .acquiring) {
            if stalledByFault() { usleep(10_000); continue }
            _ = wake.wait(timeoutNanoseconds: 100_000_000)
            drain()
        }
    }

    /// After ``stop()``: processes what is still in the rings (shutdown flush). Not concurrent with the thread.
    public func drainRemaining() {
        draining = true
        drain()
        draining = false
    }
    @exclusivity(unchecked) var draining = false

    /// Processes everything available (DSP thread). Consumers of the bus are woken once at the end, for all
    /// the frames of the drain (``FrameBus/beginDeferringWakes()``).
    func drain() {
        busRef._withUnsafeGuaranteedRef { $0.beginDeferringWakes() }
        defer { busRef._withUnsafeGuaranteedRef { $0.endDeferringWakes() } }
        let rate = Double(processor.config.sampleRate)
        let nsPerSample = 1e9 / rate
        while running.load(ordering: .relaxed) || draining {
            // Through the processor's unretained analyzer reference: no retain/release on this thread.
            retuneMailbox.take { p in processor.current._withUnsafeGuaranteedRef { $0.picker.retune(p) } }
            let r = stamps.read(into: stampScratch)
            guard r.count == 1 else { return }
            let s = stampScratch[0]
            let deviceGap = s.discontinuity & (CaptureStamp.Discontinuity.xrun | CaptureStamp.Discontinuity.suspend | CaptureStamp.Discontinuity.reconnect)
            let restarted = seenFirstStamp && s.discontinuity & CaptureStamp.Discontinuity.start != 0
            if deviceGap != 0 || restarted {
                var flags: UInt32 = 0
                if s.discontinuity & CaptureStamp.Discontinuity.xrun != 0 { flags |= FrameFlags.xrun }
                if s.discontinuity & CaptureStamp.Discontinuity.suspend != 0 { flags |= FrameFlags.suspend }
                if s.discontinuity & CaptureStamp.Discontinuity.reconnect != 0 { flags |= FrameFlags.reconnect }
                var gap = s.gapSamples
                if restarted && gap == 0 && lastStampEndNs != 0 {
                    // A new capture thread (device reopened on reload) does not know the old one's clock:
                    // measure the gap here from the stamps, so the timeline keeps up with real time.
                    flags |= FrameFlags.reconnect
                    gap = max(0, Int64((Double(s.monotonicNs &- lastStampEndNs) / nsPerSample).rounded()))
                }
                processor.discontinuity(flags: flags, gapSamples: gap)
                timelineOffset &+= max(0, gap)
                _discontinuities.add(1, ordering: .relaxed)
            }
            seenFirstStamp = true
            lastStampEndNs = s.monotonicNs &+ Int64((Double(s.frames) * nsPerSample).rounded())
            let end = s.firstSample &+ Int64(s.frames)
            var pos = Int64(samples.consumed)
            if pos < s.firstSample {  // samples without a stamp (stamp ring overrun): drop them, flagged
                let skipped = samples.skip(Int(s.firstSample &- pos))
                pos &+= Int64(skipped)
                if skipped > 0 {
                    processor.discontinuity(flags: FrameFlags.ringOverrun, gapSamples: Int64(skipped))
                    _ringOverrunSamples.add(skipped, ordering: .relaxed)
                    _discontinuities.add(1, ordering: .relaxed)
                }
            }
            let want = Int(end &- pos)
            if want <= 0 { continue }  // already consumed through an overrun skip
            let dst = UnsafeMutableBufferPointer(start: scratch.pointer, count: want)
            let got = samples.read(into: dst)
            if got.count == 0 && got.lost == 0 { return }  // stamp ahead of samples: cannot happen, be safe
            if got.lost > 0 {
                processor.discontinuity(flags: FrameFlags.ringOverrun, gapSamples: Int64(got.lost))
                _ringOverrunSamples.add(got.lost, ordering: .relaxed)
                _discontinuities.add(1, ordering: .relaxed)
            }
            let start = pos &+ Int64(got.lost)
            if got.count == 0 { continue }
            let before = processor.nextSeq
            // 3…64 channels: the side scratch holds `maxPeriodFrames` samples' channels, not the ring's; a longer
            // read (a period negotiated or reconfigured beyond 4× the one the pipeline was built for) goes in
            // pieces that fit, so its levels still get every channel (the processor gives the same frames
            // however its input is cut). One piece otherwise.
            let piece = sideStride >= 3 && sideRef != nil ? max(1, sideScratch.count / sideStride) : got.count
            var off = 0
            while off < got.count {
                let n = min(piece, got.count - off)
                let at = start &+ Int64(off)
                let offsetNs = Int64((Double(at &- s.firstSample) * nsPerSample).rounded())
                processor.push(
                    UnsafeBufferPointer(start: scratch.pointer + off, count: n),
                    side: readSide(s, from: at, count: n), firstSample: at &+ timelineOffset, monotonicNs: s.monotonicNs &+ offsetNs, wallNs: s.wallNs &+ offsetNs)
                off &+= n
            }
            let made = Int(processor.nextSeq &- before)
            let sanitized = processor.sanitizedSamples
            if sanitized.total != 0 {
                _nonFiniteSamples.store(sanitized.nonFinite, ordering: .relaxed)
                _clampedSamples.store(sanitized.clamped, ordering: .relaxed)
            }
            if made > 0 {
                _frames.add(made, ordering: .relaxed)
                _lastFrameMonotonicNs.store(Clock.monotonicNanoseconds(), ordering: .releasing)
            }
        }
    }
}

extension DSPThread {
    /// The side samples of ring positions `[start, start + count)` of the period of `stamp`, read into
    /// `sideScratch`; nil if the period has none or they are no longer in the side ring (levels then use the
    /// averaged downmix for these samples). Skips side samples left behind by a sample-ring overrun.
    @inline(__always)
    func readSide(_ stamp: CaptureStamp, from start: Int64, count: Int) -> UnsafeMutablePointer<Float>? {
        let stride = sideStride
        guard stamp.sideFirst >= 0, Int(stamp.sideStride) == stride, let ref = sideRef, count * stride <= sideScratch.count
        else { return nil }
        let target = stamp.sideFirst &+ (start &- stamp.firstSample) &* Int64(stride)
        let buffer = UnsafeMutableBufferPointer(rebasing: sideScratch[..<(count * stride)])
        let ok = ref._withUnsafeGuaranteedRef { ring -> Bool in
            let behind = target &- Int64(ring.consumed)
            if behind > 0 { _ = ring.skip(Int(behind)) }
            guard Int64(ring.consumed) == target else { return false }
            let got = ring.read(into: buffer)
            return got.count == count * stride && got.lost == 0
        }
        guard ok else { return nil }
        _sideReads.add(1, ordering: .relaxed)
        return sideScratch.baseAddress
    }
}

/// A one-slot mailbox from the supervisor to the DSP thread (the shape of PipeWire's `spa_loop_invoke`):
/// the slot is preallocated; the poster claims it with a compare-exchange, writes it and publishes it; the
/// DSP thread takes it between frames with one relaxed load when empty. No allocation, lock or ARC on the
/// DSP side. A post replaces a message not yet taken (the newest parameters win).
final class RetuneMailbox: @unchecked Sendable {
    /// 0 empty, 1 being written (poster), 2 full, 3 being read (DSP thread).
    let state = Atomic<Int>(0)
    let applied = Atomic<Int>(0)
    let slot: UnsafeMutablePointer<OnsetPickerConfig>

    init() {
        slot = .allocate(capacity: 1)
        slot.initialize(to: OnsetPickerConfig())
    }

    deinit { slot.deinitialize(count: 1); slot.deallocate() }

    /// Poster side (not the DSP thread). Waits only while the DSP thread copies the slot (a few ns).
    func post(_ value: OnsetPickerConfig) {
        while true {
            if state.compareExchange(expected: 0, desired: 1, ordering: .acquiring).exchanged { break }
            if state.compareExchange(expected: 2, desired: 1, ordering: .acquiring).exchanged { break }
            sched_yield()  // state 3: the DSP thread is copying it out
        }
        slot.pointee = value
        state.store(2, ordering: .releasing)
    }

    /// DSP side: applies a waiting message with `apply`, at most one per call.
    @inline(__always)
    func take(_ apply: (OnsetPickerConfig) -> Bool) {
        guard state.load(ordering: .relaxed) == 2,
              state.compareExchange(expected: 2, desired: 3, ordering: .acquiring).exchanged else { return }
        let value = slot.pointee
        state.store(0, ordering: .releasing)
        if apply(value) { applied.add(1, ordering: .releasing) }
    }

    /// Drops a waiting message (poster side, DSP thread stopped).
    func discard() {
        _ = state.compareExchange(expected: 2, desired: 0, ordering: .acquiring)
    }
}
