import EarshotRealtime
import Synchronization
internal import CALSA

#if canImport(Glibc)
import Glibc
#endif

/// Reads an ALSA capture device on its own named pthread (`es-capture`) into a sample ring, one
/// ``CaptureStamp`` and one wake-up per period, surviving overruns, suspends and device loss.
///
/// ## Threads and real-time rules
/// - `start()`/`stop()` and the accessors may be called from any thread.
/// - The capture thread opens the device (setup may allocate), then loops with no allocation, no lock, no
///   logging and no Swift `Array`/`String`: `snd_pcm_readi` (nonblocking) of one period into a preallocated
///   byte buffer → ``convertToMono(_:format:frames:channels:channel:into:)`` (or, for 2 channels,
///   ``convertToMidSide(_:format:frames:mid:side:)`` → `side.write`) → `samples.write` →
///   `stamps.write` → `wake.signal()`. When no period is ready it sleeps in `snd_pcm_wait` with a timeout
///   of about one period, so `stop()` returns within roughly one period. Devices whose reads block inside
///   libasound (the `file` plugin reading a FIFO whose writer stopped, or opening one without a writer) are
///   interrupted with a signal (``CaptureInterrupt``) by `stop()` and ``reconfigure(_:)``: `stop()` is bounded
///   by ``stopTimeout`` whatever the device does, and a reload reopens the device on this thread, never on
///   the caller's.
/// - Everything worth logging goes through ``events`` (single producer: the capture thread; single consumer:
///   the supervisor that drains and logs it).
///
/// ## Capture time of a period
/// After the read that completes a period, `snd_pcm_htimestamp(pcm, &avail, &ts)` gives the time `ts`
/// (CLOCK_MONOTONIC: `tstamp_type` is set to monotonic) of the last pointer update, at which `avail` frames
/// had been captured but not yet read. The newest captured frame is therefore at `ts`, and the period's first
/// frame, `avail + periodFrames` frames older, at `ts − (avail + periodFrames) / rate`. If the device reports
/// a zero or implausible timestamp (more than 1 s from now), `clock_gettime(CLOCK_MONOTONIC)` at the read
/// replaces `ts` (``CaptureTimestampSource/clockAtRead``). `snd_pcm_status` `delay` is not used: the
/// PulseAudio plugin reports a delay that starts at several hundred ms and decays to 0 over seconds without
/// any data backlog (measured), while `avail` is consistent.
///
/// Known limitation (measured with the PulseAudio plugin): the `pulse` device never reports an overrun on
/// capture; when the reader stalls, the server keeps the backlog and `avail` is clamped to buffer − 1, so no
/// samples are lost and the device timestamps of the periods read while catching up are up to
/// (stall − buffer) too late. A contiguous period is therefore never stamped more than one period (+1/64)
/// after the previous one: the backlog keeps sample-clock times.
///
/// ## Device loss
/// Errors other than `-EAGAIN`/`-EINTR`, `-EPIPE` (overrun, recovered in place with `snd_pcm_recover` +
/// `snd_pcm_start`) and `-ESTRPIPE` (suspend: `snd_pcm_resume` until it stops returning `-EAGAIN`, else
/// `snd_pcm_prepare`) mean the device is gone: `ENODEV`, `EBADFD`, `EIO` (the PulseAudio plugin when its
/// server dies), or no data for `stallTimeout` (reported as `ETIMEDOUT`). The PCM is closed, a ``CaptureEventKind/lost`` event
/// posted, and opening is retried after `reconnectInitial`, doubling up to `reconnectMax`; every failed
/// attempt posts ``CaptureEventKind/retrying`` with the errno (`ECONNREFUSED` while the PulseAudio server is
/// down, `ENOENT`/`ENODEV` for a missing card). A device absent at start is waited for the same way; to fail
/// fast on configuration mistakes call ``probe(_:timeout:)`` first.
public final class CaptureThread: @unchecked Sendable {
    /// The configuration in effect (or requested by ``reconfigure(_:)`` and about to be).
    public var config: CaptureConfig { _config.withLock { $0 } }
    public let samples: SPSCRing<Float>
    /// The side signal `S = (L − R) / 2` of 2-channel periods captured without `capture.channel`, or every
    /// channel's samples interleaved for 3…64 channels (nil: not carried; `samples` then holds the averaged
    /// downmix only). Written right before `samples`; each stamp says where its period's side samples start
    /// and how many floats a sample has (``CaptureStamp/sideFirst``, ``CaptureStamp/sideStride``).
    public let side: SPSCRing<Float>?
    public let stamps: SPSCRing<CaptureStamp>
    public let wake: WakeSignal
    /// Called on the capture thread after each period is in the rings, instead of signalling ``wake``
    /// (set with ``setPeriodConsumer(_:)`` before ``start()``; nil: signal ``wake``).
    @exclusivity(unchecked) private var periodConsumer: PeriodConsumer?
    /// Keeps the consumer's object alive as long as this capture thread may call it (a capture thread left
    /// behind by ``stop()`` may come back later).
    private var periodConsumerOwner: AnyObject?
    /// Events for off-RT logging (capture thread produces, one supervisor consumes).
    public let events: SPSCRing<CaptureEvent>
    /// Readable after an event was written to ``events`` (the supervisor polls it, so it need not wake on a
    /// short timer to log device events promptly). One `write(2)` per event, never per sample.
    public let eventNotifier = EventNotifier()

    private let _state = Atomic<UInt8>(CaptureState.stopped.rawValue)
    private let _periods = Atomic<Int>(0)
    private let _frames = Atomic<Int>(0)
    private let _xruns = Atomic<Int>(0)
    private let _suspends = Atomic<Int>(0)
    private let _reconnects = Atomic<Int>(0)
    private let _gapSamples = Atomic<Int>(0)
    private let _nonFiniteChannelSamples = Atomic<Int>(0)
    private let _clampedChannelSamples = Atomic<Int>(0)
    private let _timestampSource = Atomic<UInt8>(0)
    private let stopRequested = Atomic<Bool>(false)
    private let launched = Atomic<Bool>(false)
    private let scheduling = Atomic<Int>(0)
    private let faultStallNs = Atomic<Int>(0)
    private let faultErrno = Atomic<Int32>(0)
    private let _negotiated = Mutex<CaptureNegotiated?>(nil)
    private let lifecycle = Mutex<RealtimeThread.Handle?>(nil)
    private let _config: Mutex<CaptureConfig>
    /// A new configuration waits in `_config`; the capture thread reopens with it.
    private let reconfigureRequested = Atomic<Bool>(false)
    /// The capture thread's `pthread_self()` while it runs (0 before), the target of interrupts.
    private let threadID = Atomic<UInt>(0)
    /// Set by the capture thread as its last action.
    private let exited = Atomic<Bool>(false)
    /// Interrupts sent (see ``CaptureInterrupt``); the capture thread compares it around blocking calls.
    private let interrupts = Atomic<Int>(0)
    /// How long ``stop()`` waits for the capture thread before abandoning it.
    public static let stopTimeout = 1.0

    /// - Parameters:
    ///   - config: device and stream parameters.
    ///   - samples: mono Float32 samples, written one period at a time (capture thread is the producer).
    ///   - side: receives the side signal of 2-channel periods or the channels of 3…64-channel periods (capacity:
    ///     that of `samples` times the floats per sample, ``sideStride(channels:channel:)``), or nil.
    ///   - stamps: one stamp per period, in `samples` coordinates.
    ///   - wake: signalled once per period.
    ///   - eventCapacity: size of the ``events`` ring (oldest events are overwritten).
    public init(
        config: CaptureConfig, samples: SPSCRing<Float>, side: SPSCRing<Float>? = nil, stamps: SPSCRing<CaptureStamp>,
        wake: WakeSignal, eventCapacity: Int = 256
    ) {
        _config = Mutex(config)
        self.samples = samples
        self.side = side
        self.stamps = stamps
        self.wake = wake
        self.events = SPSCRing<CaptureEvent>(minimumCapacity: eventCapacity)
    }

    /// A function the capture thread calls after each period instead of signalling ``wake`` (the DSP stage
    /// running on the capture thread: no second thread to wake per period). A C function and an unretained
    /// context, so the call costs no reference counting on the capture thread.
    public struct PeriodConsumer: @unchecked Sendable {
        public let function: @convention(c) (UnsafeMutableRawPointer) -> Void
        public let context: UnsafeMutableRawPointer
        public init(function: @convention(c) (UnsafeMutableRawPointer) -> Void, context: UnsafeMutableRawPointer) {
            self.function = function
            self.context = context
        }
    }

    /// Makes the capture thread call `consumer` after each period (instead of signalling ``wake``); `owner` is
    /// the object `consumer.context` points to, kept alive with this capture thread. Before ``start()`` only.
    public func setPeriodConsumer(_ consumer: PeriodConsumer, owner: AnyObject) {
        precondition(!launched.load(ordering: .acquiring), "setPeriodConsumer after start")
        periodConsumer = consumer
        periodConsumerOwner = owner
    }

    // MARK: - Accessors (any thread)

    public var state: CaptureState { CaptureState(rawValue: _state.load(ordering: .acquiring)) ?? .stopped }
    /// Periods delivered to the ring.
    public var periods: Int { _periods.load(ordering: .relaxed) }
    /// Sample frames delivered to the ring.
    public var frames: Int { _frames.load(ordering: .relaxed) }
    /// Overruns recovered.
    public var xruns: Int { _xruns.load(ordering: .relaxed) }
    /// Suspends recovered.
    public var suspends: Int { _suspends.load(ordering: .relaxed) }
    /// Successful reopens after a loss.
    public var reconnects: Int { _reconnects.load(ordering: .relaxed) }
    /// Total samples lost in gaps (xrun, suspend, reconnect), measured from timestamps.
    public var gapSamples: Int { _gapSamples.load(ordering: .relaxed) }
    /// Non-finite `FLOAT_LE` samples of one channel counted as 0 in a multi-channel mix (so a NaN in one
    /// channel does not erase the others; the DSP's input guard counts what reaches it).
    public var nonFiniteChannelSamples: Int { _nonFiniteChannelSamples.load(ordering: .relaxed) }
    /// `FLOAT_LE` samples of one channel beyond ±1000 counted as ±1000 in a multi-channel mix.
    public var clampedChannelSamples: Int { _clampedChannelSamples.load(ordering: .relaxed) }
    /// How the most recent stamps were timed.
    public var timestampSource: CaptureTimestampSource {
        CaptureTimestampSource(rawValue: _timestampSource.load(ordering: .relaxed)) ?? .unknown
    }
    /// Parameters of the current (or last) open device; `nil` before the first successful open.
    public var negotiated: CaptureNegotiated? { _negotiated.withLock { $0 } }

    // MARK: - Lifecycle

    /// Opens `config.device` with the same negotiation as the capture thread, then closes it.
    ///
    /// Call at start-up to fail fast: throws ``CaptureError`` with ``CaptureError/Code/deviceNotFound``
    /// (unknown name; lists the devices), ``CaptureError/Code/parameterNotSupported`` (format, rate,
    /// channels, period, buffer; names what the device supports), ``CaptureError/Code/invalidConfig``, or
    /// ``CaptureError/Code/deviceUnavailable`` (defined but absent now, e.g. PulseAudio not running or a USB
    /// card not yet plugged — ``CaptureError/isTransient``: the capture thread would wait for it). Opens in
    /// nonblocking mode and never reads; an open that blocks anyway (the `file` plugin opening a FIFO that has
    /// no writer, a plugin waiting on a stopped server) is given up after `timeout` seconds — the open runs on
    /// a helper thread, interrupted like the capture thread, left behind if nothing ends it — and reported as
    /// ``CaptureError/Code/deviceUnavailable`` with `ETIMEDOUT`, so the caller never hangs.
    public static func probe(_ config: CaptureConfig, timeout: Double = probeTimeout) throws(CaptureError)
        -> CaptureNegotiated
    {
        CaptureInterrupt.install()
        let attempt = ProbeAttempt()
        let (handle, _) = RealtimeThread.start(name: "es-capture-prb") {
            CaptureInterrupt.unblockOnThisThread()
            attempt.thread.store(UInt(pthread_self()), ordering: .releasing)
            let result: Result<CaptureNegotiated, CaptureError>
            do throws(CaptureError) { result = .success(try ALSAPCM.open(config).negotiated) } catch { result = .failure(error) }
            attempt.result.withLock { $0 = result }
            attempt.done.store(true, ordering: .releasing)
        }
        let start = Clock.monotonicNanoseconds()
        let waitNs = Int64(max(0, timeout) * 1e9)
        while !attempt.done.load(ordering: .acquiring) {
            let elapsed = Clock.monotonicNanoseconds() - start
            if elapsed > waitNs + Int64(stopTimeout * 1e9) { break }
            if elapsed > waitNs, case let t = attempt.thread.load(ordering: .acquiring), t != 0 {
                pthread_kill(pthread_t(t), CaptureInterrupt.signalNumber)  // give up: interrupt the open
            }
            usleep(elapsed > waitNs ? 5_000 : 1_000)
        }
        guard attempt.done.load(ordering: .acquiring), let result = attempt.result.withLock({ $0 }) else {
            let t = attempt.thread.load(ordering: .acquiring)
            if t != 0 { pthread_detach(pthread_t(t)) }
            throw CaptureError(code: .deviceUnavailable, device: config.device, alsaError: ALSAError(rawValue: -ETIMEDOUT))
        }
        RealtimeThread.join(handle)
        if Clock.monotonicNanoseconds() - start > waitNs, case .failure = result {
            // Interrupted after the timeout: say so rather than "Interrupted system call".
            throw CaptureError(code: .deviceUnavailable, device: config.device, alsaError: ALSAError(rawValue: -ETIMEDOUT))
        }
        return try result.get()
    }

    /// How long ``probe(_:timeout:)`` waits for a device to open, seconds.
    public static let probeTimeout = 2.0

    private final class ProbeAttempt: @unchecked Sendable {
        let done = Atomic<Bool>(false)
        let thread = Atomic<UInt>(0)
        let result = Mutex<Result<CaptureNegotiated, CaptureError>?>(nil)
    }

    /// Starts the capture thread (no-op if already started, or while a thread that ``stop()`` abandoned
    /// has not left yet: it still uses this object's state and rings, so capture again with a new
    /// `CaptureThread`).
    public func start() {
        CaptureInterrupt.install()
        lifecycle.withLock { handle in
            guard handle == nil else { return }
            guard !launched.load(ordering: .acquiring) || exited.load(ordering: .acquiring) else { return }
            stopRequested.store(false, ordering: .releasing)
            launched.store(false, ordering: .releasing)
            exited.store(false, ordering: .releasing)
            threadID.store(0, ordering: .releasing)
            _state.store(CaptureState.starting.rawValue, ordering: .releasing)
            // Not SCHED_BATCH without FIFO (unlike DSP and socket): the capture thread is the one that
            // must get the CPU when its period is ready, even on a box busy with other work.
            let (thread, sched) = RealtimeThread.start(name: "es-capture", fifoPriority: config.fifoPriority, batchIfNotFIFO: false) {
                [self] in self.run()
            }
            scheduling.store((sched.fifoApplied ? 1 : 0) | (Int(sched.error) << 8), ordering: .relaxed)
            launched.store(true, ordering: .releasing)
            handle = thread
        }
    }

    /// Stops the capture thread, bounded by ``stopTimeout`` whatever the device does.
    ///
    /// A read, open or wait blocked in a system call (the `file` plugin reading a FIFO whose writer stopped,
    /// opening a FIFO without a writer, `poll`) is interrupted with ``CaptureInterrupt``'s signal, sent
    /// every 5 ms until the thread has left (a signal that lands just before the call is not lost for long).
    /// A thread still stuck after the timeout (a wait that no signal ends, e.g. inside a plugin's condition
    /// variable) is detached and left behind: it only ever touches this object (kept alive by it) and its
    /// rings, and stops at its next check.
    /// - Returns: `false` if the thread had to be abandoned.
    @discardableResult
    public func stop() -> Bool {
        let handle = lifecycle.withLock { h -> RealtimeThread.Handle? in
            let x = h
            h = nil
            return x
        }
        guard let handle else { return true }
        stopRequested.store(true, ordering: .releasing)
        let deadline = Clock.monotonicNanoseconds() + Int64(Self.stopTimeout * 1e9)
        while !exited.load(ordering: .acquiring) && Clock.monotonicNanoseconds() < deadline {
            interrupt()
            usleep(5_000)
        }
        if exited.load(ordering: .acquiring) {
            RealtimeThread.join(handle)
            return true
        }
        RealtimeThread.detach(handle)
        return false
    }

    /// Reopens the device with `config` (same sample rate) without stopping the thread and without waiting
    /// for the device: the capture thread closes and reopens by itself. A thread blocked in a read or open
    /// is interrupted (every 2 ms until it has taken the request, for at most 50 ms: a signal that lands just
    /// before the blocking call is not lost), so a stalled device never blocks the caller for longer. A
    /// thread in a wait no signal ends takes the new configuration whenever that wait returns. The gap is
    /// reported in samples on the first period after the reopen (``CaptureStamp/Discontinuity/reconnect``,
    /// measured from timestamps); it does not count as a reconnect. Posts ``CaptureEventKind/opened`` once
    /// the new device is open.
    public func reconfigure(_ config: CaptureConfig) {
        _config.withLock { $0 = config }
        reconfigureRequested.store(true, ordering: .releasing)
        let deadline = Clock.monotonicNanoseconds() + 50_000_000
        while isReconfiguring && threadID.load(ordering: .acquiring) != 0 && !exited.load(ordering: .acquiring)
            && Clock.monotonicNanoseconds() < deadline {
            interrupt()
            usleep(2_000)
        }
    }

    /// Sends the interrupt signal to the capture thread (if it is running).
    private func interrupt() {
        let t = threadID.load(ordering: .acquiring)
        guard t != 0, !exited.load(ordering: .acquiring) else { return }
        interrupts.add(1, ordering: .releasing)
        pthread_kill(pthread_t(t), CaptureInterrupt.signalNumber)
    }

    /// Testing only: makes the capture thread sleep `milliseconds` before its next read, as if descheduled.
    @_spi(Testing)
    public func injectStall(milliseconds: Int) {
        faultStallNs.store(milliseconds * 1_000_000, ordering: .releasing)
    }

    /// Testing only: makes the next `snd_pcm_readi` report `-errno` instead of reading (a seam for rare
    /// errnos such as `EPIPE`/`ESTRPIPE` that the devices available to tests never produce); the recovery
    /// that follows runs against the real device.
    @_spi(Testing)
    public func injectReadError(errno: Int32) {
        faultErrno.store(errno, ordering: .releasing)
    }

    // MARK: - Capture thread

    @inline(__always)
    private func post(_ kind: CaptureEventKind, errno: Int32 = 0, value: Int64 = 0) {
        events.write(CaptureEvent(kind: kind, errno: errno, monotonicNs: Clock.monotonicNanoseconds(), value: value))
        eventNotifier.notify()
    }

    private var isStopping: Bool { stopRequested.load(ordering: .acquiring) }
    private var isReconfiguring: Bool { reconfigureRequested.load(ordering: .acquiring) }

    /// Sleeps `seconds` in slices; returns `false` if `stop()` was requested meanwhile (early, with `true`,
    /// when a reconfiguration is waiting).
    private func sleepInterruptibly(_ seconds: Double) -> Bool {
        let end = Clock.monotonicNanoseconds() + Int64(seconds * 1e9)
        while Clock.monotonicNanoseconds() < end {
            if isStopping { return false }
            if isReconfiguring { return true }
            usleep(10_000)
        }
        return !isStopping
    }

    /// What ``stream(_:config:lastEndNs:pending:)`` returns when a reconfiguration asks for a reopen.
    private static let reopenRequested: Int32 = -1
    /// How long the bounded-backlog skip waits for more backlog (EAGAIN) while less than the stall's audio
    /// (minus 2 periods) has arrived.
    private static let lateBacklogGraceNs: Int64 = 100_000_000

    private func run() {
        CaptureInterrupt.unblockOnThisThread()
        threadID.store(UInt(pthread_self()), ordering: .releasing)
        defer { exited.store(true, ordering: .releasing) }
        while !launched.load(ordering: .acquiring) { usleep(100) }
        var config = self.config
        if config.fifoPriority > 0 {
            let s = scheduling.load(ordering: .relaxed)
            post(.schedulingApplied, errno: Int32(s >> 8), value: Int64(s & 1))
        }
        if config.lockMemory {
            post(.memoryLocked, errno: RealtimeThread.lockMemory())
        }
        var everOpened = false
        var lastEndNs: Int64 = 0
        var pending: UInt32 = CaptureStamp.Discontinuity.start
        var delay = config.reconnectInitial
        var reconfigured = false
        while !isStopping {
            if reconfigureRequested.exchange(false, ordering: .acquiringAndReleasing) {
                config = self.config
                delay = config.reconnectInitial
                reconfigured = true
                if everOpened { pending |= CaptureStamp.Discontinuity.reconnect }
            }
            let pcm: ALSAPCM
            do {
                pcm = try ALSAPCM.open(config)
            } catch {
                if isStopping { break }
                // Interrupted to pick up a new configuration (or by the last kick of one already taken).
                if isReconfiguring || error.alsaError?.errno == EINTR { continue }
                post(.retrying, errno: error.alsaError?.errno ?? EINVAL, value: Int64(delay * 1000))
                if !sleepInterruptibly(delay) { break }
                delay = min(delay * 2, config.reconnectMax)
                continue
            }
            delay = config.reconnectInitial
            _negotiated.withLock { $0 = pcm.negotiated }
            if reconfigured {
                reconfigured = false
                post(.opened, value: Int64(pcm.negotiated.periodFrames))
            } else if everOpened {
                _reconnects.add(1, ordering: .relaxed)
                pending |= CaptureStamp.Discontinuity.reconnect
                post(.recovered, value: Int64(reconnects))
            } else {
                post(.opened, value: Int64(pcm.negotiated.periodFrames))
            }
            everOpened = true
            let lossErrno = stream(pcm, config: config, lastEndNs: &lastEndNs, pending: &pending)
            if lossErrno == 0 { break }  // stop requested
            if lossErrno == Self.reopenRequested {
                _state.store(CaptureState.starting.rawValue, ordering: .releasing)
                continue  // `pcm` is released (closed) first
            }
            _state.store(CaptureState.lost.rawValue, ordering: .releasing)
            post(.lost, errno: lossErrno)
            // `pcm` is released (snd_pcm_close) at the end of this iteration, before the backoff sleep.
            if isStopping { break }
        }
        _state.store(CaptureState.stopped.rawValue, ordering: .releasing)
        post(.stopped)
    }

    /// Streams from an open PCM until stop (returns 0), a reconfiguration (``reopenRequested``) or loss
    /// (returns the positive errno).
    private func stream(_ pcm: ALSAPCM, config: CaptureConfig, lastEndNs: inout Int64, pending: inout UInt32) -> Int32 {
        let neg = pcm.negotiated
        let h = pcm.handle
        let period = neg.periodFrames
        let frameBytes = neg.channels * neg.format.bytesPerSample
        let format = neg.format
        let channels = neg.channels
        let channel = config.channel
        let rate = Int64(neg.sampleRate)
        // Per-open allocation (not the steady state).
        let bytes = UnsafeMutableRawPointer.allocate(byteCount: period * frameBytes, alignment: 64)
        defer { bytes.deallocate() }
        memset(bytes, 0, period * frameBytes)
        let floats = UnsafeMutablePointer<Float>.allocate(capacity: period)
        defer { floats.deallocate() }
        // The side signal (2 channels downmixed, not `capture.channel`) or every channel's samples interleaved
        // (3…64 channels downmixed), `stride` floats per sample, when a side ring carries them.
        // Unretained (`self.side` keeps the ring alive): no reference counting per period.
        let stride = sideStride(channels: channels, channel: channel)
        let sideRing: Unmanaged<SPSCRing<Float>>? = stride > 0
            ? withExtendedLifetime(side) { $0.map { Unmanaged.passUnretained($0) } } : nil
        let sideFloats = UnsafeMutablePointer<Float>.allocate(capacity: sideRing == nil ? 1 : period * stride)
        defer { sideFloats.deallocate() }
        let waitMs = Int32(max(5, min(100, Int64(period) * 1000 / rate)))
        let stallNs = Int64(config.stallTimeout * 1e9)
        let periodNs = Int64(period) * 1_000_000_000 / rate

        var rc = snd_pcm_start(h)
        if rc < 0 && rc != -EBADFD { return -rc }
        var filled = 0
        var lastDataNs = Clock.monotonicNanoseconds()
        var firstPeriod = true
        /// When the last complete period was read (0 before the first): the reader's own stall detector.
        var lastPeriodReadNs: Int64 = 0
        /// Samples this thread read and dropped after its own stall (bounded backlog), or −1: the gap of the
        /// next period then is exactly this many samples, on the sample clock. (Measured from the next
        /// period's timestamp instead, a device that clamps `avail` while its backlog is read — the pulse
        /// plugin — placed the gap up to a second too late and the catch-up periods all at about one time.)
        var skipGapSamples: Int64 = -1
        let maxBacklogNs = Int64(config.maxBacklog * 1e9)
        /// Loop iterations normally come at least every `waitMs` (a blocking read: every period); a longer
        /// silence between two is a stall.
        let stallThresholdNs = max(maxBacklogNs, 4 * Int64(waitMs) * 1_000_000, 2 * periodNs)
        var lastTopNs: Int64 = 0
        var stallDetectedNs: Int64 = 0
        /// The last loop iteration's start before the stall (what the device's backlog reaches back to), and
        /// the frames already read since (a blocking read that returned at the end of the stall).
        var stallFromNs: Int64 = 0
        var carriedSkip = 0

        // After a blocking call returned: was it interrupted for a stop (0) or a reconfiguration
        // (`reopenRequested`)? nil to go on. The `file` plugin ignores a failed read of its infile and returns
        // the period anyway, so an interrupted read's data is dropped.
        func interrupted(since before: Int) -> Int32? {
            guard interrupts.load(ordering: .acquiring) != before else { return nil }
            if isStopping { return 0 }
            if isReconfiguring { return Self.reopenRequested }
            return nil
        }

        // In-place recovery; returns 0 when recovered, else the errno that means "lost".
        func recover(_ err: Int32) -> Int32 {
            switch err {
            case -EAGAIN, -EINTR:
                return 0
            case -EPIPE:
                _xruns.add(1, ordering: .relaxed)
                post(.xrun, errno: EPIPE, value: Int64(xruns))
                let r = snd_pcm_recover(h, err, 1)
                if r < 0 { return -r }
                _ = snd_pcm_start(h)
                pending |= CaptureStamp.Discontinuity.xrun
                skipGapSamples = -1  // the device lost samples too: measure the gap from timestamps
                filled = 0
                lastDataNs = Clock.monotonicNanoseconds()
                return 0
            case -ESTRPIPE:
                _suspends.add(1, ordering: .relaxed)
                post(.suspended, errno: ESTRPIPE)
                var r = snd_pcm_resume(h)
                while r == -EAGAIN && !isStopping {
                    usleep(10_000)
                    r = snd_pcm_resume(h)
                }
                if r < 0 {
                    r = snd_pcm_prepare(h)
                    if r < 0 { return -r }
                }
                _ = snd_pcm_start(h)
                pending |= CaptureStamp.Discontinuity.suspend
                skipGapSamples = -1
                filled = 0
                lastDataNs = Clock.monotonicNanoseconds()
                return 0
            default:
                return -err
            }
        }

        // Nothing to read: sleep in snd_pcm_wait (≤ one period); 0 to go on, else the errno that means "lost"
        // (ETIMEDOUT when no data came for `stallTimeout`).
        func waitForData() -> Int32 {
            if Clock.monotonicNanoseconds() - lastDataNs > stallNs { return ETIMEDOUT }
            let kicks = interrupts.load(ordering: .acquiring)
            let w = snd_pcm_wait(h, waitMs)
            if let code = interrupted(since: kicks), code != 0 { return code }  // a stop ends the loop anyway
            return w < 0 ? recover(w) : 0
        }

        while !isStopping {
            if isReconfiguring { return Self.reopenRequested }
            let stall = faultStallNs.exchange(0, ordering: .acquiring)
            if stall > 0 {
                var req = timespec(tv_sec: stall / 1_000_000_000, tv_nsec: stall % 1_000_000_000)
                var rem = timespec()
                while nanosleep(&req, &rem) != 0 && errno == EINTR { req = rem }
            }
            // Bounded backlog: if this thread itself did not run for longer than the bound (stopped, starved —
            // measured between loop iterations, which come at least every `waitMs` while it waits for data, so
            // a quiet device or a long period does not count), skip what piled up meanwhile and flag an
            // overrun; the gap is then measured from the next period's timestamp, as after a hardware xrun.
            let topNs = Clock.monotonicNanoseconds()
            if maxBacklogNs > 0 && lastPeriodReadNs != 0 && pending == 0 && lastTopNs != 0
                && topNs - lastTopNs > stallThresholdNs {
                stallDetectedNs = topNs
                stallFromNs = lastTopNs
                lastDataNs = topNs  // the device is not silent: this thread was (no "no data" timeout from it)
            }
            lastTopNs = topNs
            if stallDetectedNs != 0 {
                // (Bounded: a FIFO writer paused overnight would overflow the product.)
                let expected = Int(min(topNs - stallFromNs, 20_000_000_000) * rate / 1_000_000_000)
                let limit = expected + 2 * period
                var skipped = carriedSkip
                carriedSkip = 0
                /// When a read last returned without waiting: the backlog was still coming then.
                var lastFastNs = Clock.monotonicNanoseconds()
                /// Blocking reads in windows of 4: a window that took 2 periods or more came about as fast as
                /// real time; two such windows in a row mean the backlog is over (a writer that runs ahead of
                /// the reader makes some reads return at once, so one fast read proves nothing; one slow window
                /// may be a plugin fetching a late backlog).
                var windowStartNs = lastFastNs, windowReads = 0, slowWindows = 0
                /// The last read followed a wait for data (EAGAIN): what it got is fresh, not backlog.
                var afterWait = false
                /// The device overran on top (`recover` flagged the xrun; timestamps measure the gap).
                var overran = false
                while skipped < limit {
                    let t0 = Clock.monotonicNanoseconds()
                    let kicks = interrupts.load(ordering: .acquiring)
                    let r = snd_pcm_readi(h, bytes, snd_pcm_uframes_t(period))
                    if let code = interrupted(since: kicks) { return code }
                    let endNs = Clock.monotonicNanoseconds()
                    // A read that had to wait (or EAGAIN) means the backlog is gone and fresh audio comes
                    // (devices whose reads block, like the `file` plugin on a FIFO, never say EAGAIN) — once
                    // about the stall's worth has been read. Before that, a plugin whose own client thread was
                    // stopped too (pulse after SIGCONT) hands over what it buffered and says EAGAIN while it
                    // fetches the backlog, in bursts; so reading goes on until no burst came for
                    // `lateBacklogGraceNs` (CI run of stop 22: the backlog was delivered as current audio and a
                    // 500 ms gap reported as 480 samples). Blocking reads end the skip once they come at real
                    // time for 8 reads (see `slowWindows`). A device that kept less than the stall loses that
                    // much fresh audio, and its gap is measured from timestamps (below).
                    let caughtUp = skipped + max(0, r) >= expected - 2 * period
                    if r > 0 {
                        skipped += r
                        lastDataNs = endNs
                        let waited = endNs - t0 > periodNs / 2 || afterWait
                        afterWait = false
                        if waited && caughtUp { break }
                        windowReads += 1
                        if windowReads == 4 {
                            slowWindows = endNs - windowStartNs >= 2 * periodNs ? slowWindows + 1 : 0
                            windowReads = 0
                            windowStartNs = endNs
                            if slowWindows >= 2 { break }
                        }
                        if !waited { lastFastNs = endNs }
                        continue
                    }
                    if r == -EAGAIN || r == -EINTR {
                        if caughtUp || endNs - lastFastNs > Self.lateBacklogGraceNs { break }
                        let lost = waitForData()
                        if lost != 0 { return lost }
                        if isStopping { return 0 }
                        afterWait = true
                        continue
                    }
                    let lost = recover(Int32(r))
                    if lost != 0 { return lost }
                    overran = true
                    break
                }
                if overran {
                    // A hardware overrun on top of the stall: the device dropped the backlog itself and
                    // `recover` flagged the xrun; the next period's timestamp measures the gap. The stall ends
                    // here: no second xrun, no fresh audio skipped (review of this session).
                    stallDetectedNs = 0
                    lastTopNs = 0
                    continue
                }
                if skipped == 0 {
                    // The backlog may not have reached the plugin yet (its client thread was stopped too):
                    // wait for it for a while rather than reading it as if it were current.
                    if topNs - stallDetectedNs > stallThresholdNs {
                        // None came: the stall's audio is gone. A gap all the same, measured from timestamps.
                        stallDetectedNs = 0
                        skipGapSamples = -1
                        _xruns.add(1, ordering: .relaxed)
                        post(.xrun, errno: 0, value: Int64(xruns))
                        pending |= CaptureStamp.Discontinuity.xrun
                        continue
                    }
                    let lost = waitForData()
                    if lost != 0 { return lost }
                    if isStopping { return 0 }
                    lastTopNs = 0  // this wait is not a stall
                    continue
                }
                // Exact when nothing else is pending, the stall was shorter than any server-side buffer could
                // hold (10 s) and the device did hold the stall's audio (all but 2 % and 3 periods of it came);
                // else the next period's timestamp measures it: a blocking source whose writer paused (the
                // `file` plugin on a FIFO: the read itself blocked, so it looks like a stall) never had that
                // audio, and counting only what was read reported a 3.3 s pause as 960 samples and left the
                // timeline behind the clock for good (attack run D3 of stop 22).
                let stalledNs = topNs - stallFromNs
                stallDetectedNs = 0
                let held = skipped >= expected - expected / 50 - 3 * period
                skipped += filled  // a partly read period is stale too (its time is in the gap)
                skipGapSamples = pending == 0 && lastEndNs != 0 && stalledNs < 10_000_000_000 && held ? Int64(skipped) : -1
                filled = 0
                memset(bytes, 0, period * frameBytes)
                lastPeriodReadNs = Clock.monotonicNanoseconds()
                lastDataNs = lastPeriodReadNs
                lastTopNs = 0
                _xruns.add(1, ordering: .relaxed)
                post(.xrun, errno: 0, value: Int64(xruns))
                pending |= CaptureStamp.Discontinuity.xrun
                continue
            }
            let injected = faultErrno.exchange(0, ordering: .acquiring)
            let kicks = interrupts.load(ordering: .acquiring)
            let n =
                injected != 0
                ? -Int(injected) : snd_pcm_readi(h, bytes + filled * frameBytes, snd_pcm_uframes_t(period - filled))
            if let code = interrupted(since: kicks) {
                memset(bytes, 0, period * frameBytes)
                return code
            }
            if n < 0 {
                let err = Int32(n)
                if err == -EAGAIN {
                    let lost = waitForData()
                    if lost != 0 { return lost }
                    continue
                }
                let lost = recover(err)
                if lost != 0 { return lost }
                continue
            }
            if n == 0 { continue }
            filled += n
            lastDataNs = Clock.monotonicNanoseconds()
            // The read itself blocked for longer than the bound (a blocking device — the `file` plugin on a
            // FIFO — whose writer paused, or this process stopped inside the read): what it returned is either
            // the backlog or the first audio after a pause, not a contiguous period. It goes into the skip,
            // which tells the two apart (attack run of this build, F1: published as contiguous, it hid the
            // stall, made the skip expect nothing and left the timeline behind the clock).
            if maxBacklogNs > 0 && lastPeriodReadNs != 0 && pending == 0 && lastDataNs - topNs > stallThresholdNs {
                stallDetectedNs = lastDataNs
                stallFromNs = topNs
                carriedSkip = filled
                filled = 0
                continue
            }
            if filled < period { continue }
            filled = 0
            lastPeriodReadNs = lastDataNs

            // Capture time of the period's first frame (see the type's documentation).
            var avail: snd_pcm_uframes_t = 0
            var ts = timespec()
            rc = snd_pcm_htimestamp(h, &avail, &ts)
            let nowNs = Clock.monotonicNanoseconds()
            var tNs = Int64(ts.tv_sec) &* 1_000_000_000 &+ Int64(ts.tv_nsec)
            var source = CaptureTimestampSource.deviceTimestamp
            if rc < 0 || tNs == 0 || tNs > nowNs + 1_000_000_000 || tNs < nowNs - 1_000_000_000 {
                tNs = nowNs
                source = .clockAtRead
                let a = snd_pcm_avail_update(h)
                avail = a > 0 ? snd_pcm_uframes_t(a) : 0
            }
            var firstNs = tNs - (Int64(avail) + Int64(period)) * 1_000_000_000 / rate
            // Contiguous periods are one period apart on the sample clock. A device that clamps `avail` (the
            // pulse plugin while the reader catches up after a stall) makes `firstNs` too late for every period
            // of the backlog, which would give them all about the same time. So a contiguous period may start
            // at most one period plus 1/64 of one (device clock tolerance) after the previous one: the backlog
            // keeps sample-clock times, and a device clock slower than CLOCK_MONOTONIC is still followed.
            if pending == 0 && lastEndNs != 0 {
                firstNs = min(firstNs, lastEndNs + periodNs / 64)
            } else if skipGapSamples >= 0 && pending == CaptureStamp.Discontinuity.xrun && lastEndNs != 0 {
                firstNs = lastEndNs + skipGapSamples * 1_000_000_000 / rate
            }

            let replaced = sideRing == nil
                ? convertToMono(bytes, format: format, frames: period, channels: channels, channel: channel, into: floats)
                : stride == 1
                ? convertToMidSide(bytes, format: format, frames: period, mid: floats, side: sideFloats)
                : convertToMidAndChannels(bytes, format: format, frames: period, channels: channels, mid: floats,
                                          channelSamples: sideFloats)
            if replaced.total != 0 {
                _nonFiniteChannelSamples.add(replaced.nonFinite, ordering: .relaxed)
                _clampedChannelSamples.add(replaced.clamped, ordering: .relaxed)
            }
            // Zero-fill for the next read: a device that returns frames without writing them (the `file`
            // plugin past the end of its infile) then yields silence, not stale samples.
            memset(bytes, 0, period * frameBytes)

            var gap: Int64 = 0
            let gapFlags = CaptureStamp.Discontinuity.xrun | CaptureStamp.Discontinuity.suspend
                | CaptureStamp.Discontinuity.reconnect
            if pending & gapFlags != 0 && lastEndNs != 0 {
                gap = skipGapSamples >= 0 && pending == CaptureStamp.Discontinuity.xrun
                    ? skipGapSamples : Int64(min((Double(max(0, firstNs - lastEndNs)) * Double(rate) / 1e9).rounded(), 1e15))
                _gapSamples.add(Int(gap), ordering: .relaxed)
            }
            skipGapSamples = -1
            let stamp = CaptureStamp(
                firstSample: Int64(samples.written), frames: Int32(period), monotonicNs: firstNs,
                wallNs: firstNs &+ Clock.wallMinusMonotonicNanoseconds(), discontinuity: pending,
                gapSamples: gap, sideFirst: sideRing.map { r in r._withUnsafeGuaranteedRef { Int64($0.written) } } ?? -1,
                sideStride: Int32(stride))
            pending = 0
            // Side first: a stamp the DSP thread sees has its side samples in place.
            sideRing?._withUnsafeGuaranteedRef { $0.write(UnsafeBufferPointer(start: sideFloats, count: period * stride)) }
            samples.write(UnsafeBufferPointer(start: floats, count: period))
            stamps.write(stamp)
            lastEndNs = firstNs + periodNs
            _periods.add(1, ordering: .relaxed)
            _frames.add(period, ordering: .relaxed)
            if firstPeriod {
                firstPeriod = false
                _timestampSource.store(source.rawValue, ordering: .relaxed)
                _state.store(CaptureState.running.rawValue, ordering: .releasing)
                post(.timestampSource, value: Int64(source.rawValue))
            }
            if let c = periodConsumer { c.function(c.context) } else { wake.signal() }
        }
        return 0
    }
}
