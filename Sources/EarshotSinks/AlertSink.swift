#if canImport(Glibc)
import Glibc
#endif
public import EarshotPipeline
import EarshotDSP
import EarshotRealtime
public import Logging
import Synchronization

/// Level and onset alerts: one `key=value` log line each (journal-friendly) plus the same alert as NDJSON on
/// the socket's `alert` stream.
///
/// All timing is audio time (the frames' `wallNs`), so a recording analysed offline raises the same alerts
/// at the same `t` as live capture did.
///
/// **Level alerts** (on the configured weighting, calibration applied; thresholds in the level unit):
/// - *start*: once the level has stayed ≥ `thresholdDB` on every frame for `minDurationMs` (measured
///   between the first frame at or above the threshold and the current frame's start), a
///   `alert=level state=start level_db=… threshold_db=… t=… seq=…` line is logged at `.warning`; `t` and
///   `seq` are those of the **first** frame above the threshold, `level_db` is the level of the deciding
///   frame, whose `seq` is `decided_seq`. The decision therefore comes `minDurationMs` (rounded up to a hop) after `t`.
/// - *end*: once the level has stayed < `thresholdDB − hysteresisDB` for `minDurationMs`,
///   `alert=level state=end level_db=… threshold_db=… t=… seq=… duration_s=… max_db=…` at `.notice`; `t`/`seq`
///   are the first frame below the release level, `duration_s` = end `t` − start `t`, `max_db` the highest
///   level during the alert, `sel_db` (with `sel=LAE|LCE|LZE`) the sound exposure level of the alert (below).
/// - *re-arm*: after an end, frames earlier than end `t` + `rearmMs` cannot begin a new start.
/// - A discontinuity (gap) restarts the start/end qualification: durations are never bridged across a gap.
/// - *Sound exposure level* (IEC 61672-1 `L_E`: LAE for `laf`/`las`, LCE for `lcf`, LZE for `lzf`; none for
///   `rms_dbfs`): `10·log10(Σ y² / fs / 1 s)` + the calibration offset, from the exact per-sample energies of
///   the weighted signal (``LevelSums``) of the new samples of the frames from the start frame (`t`/`seq` of
///   the start) up to, not including, the end frame: the alert's `duration_s` of audio, the start hold
///   included (those frames were above the threshold) and the release hold excluded (they were below the
///   release level). Audio lost in a gap counts as silence. For a burst of steady level `L` and duration `T`
///   well above the threshold this is `L + 10·log10(T / 1 s)`.
///
/// **Onset alerts**: an onset with strength ≥ `minStrength` logs `alert=onset strength=… t=… seq=…
/// suppressed=N` at `.warning` (`t`, `seq` = the onset frame). Onsets closer than `minIntervalMs` to the
/// previous alerted onset are debounced (ignored, not counted). More than `maxPerMinute` alerts in any
/// 60 s of audio time are suppressed and counted: `suppressed` on the next emitted alert is the count since
/// the previous emitted one, and every `summaryIntervalSeconds` with suppressions an
/// `alert=onset_summary suppressed=N emitted=M period_s=P` line is logged at `.notice`.
///
/// Threading: the evaluation runs on the sink's own thread (`es-alerts`); ``update(configuration:)`` may
/// be called from any thread and is picked up at the next frame. No allocation per frame (only per alert).
///
/// Wake-ups: `es-alerts` is an on-demand reader of the frame bus. After each drain it tells the DSP stage
/// (``wakeFilter()``, a ``FrameWakeFilter``) which frames could make it *emit* something, and the DSP stage
/// wakes it at the end of the drain that publishes such a frame; every other frame waits for the next such
/// wake-up or the 1 s backstop (``backstopMilliseconds``) and is then evaluated in order as before. Only
/// the moment of evaluation changes, never its outcome, so an alert is logged from the same drain as when
/// every frame was delivered at once. While the level stays below the threshold (no alert, no candidate)
/// and no onset could raise an alert, no frame wakes it: one wake-up a second instead of ten.
public final class AlertSink: ConfigurableSink, @unchecked Sendable {
    /// Mirrors the daemon's `alerts.*` section.
    public struct Configuration: Sendable, Equatable {
        public var level: Level
        public var onset: Onset
        /// Seconds (audio time) between `onset_summary` lines, emitted only when alerts were suppressed.
        public var summaryIntervalSeconds: Double

        public init(level: Level = Level(), onset: Onset = Onset(), summaryIntervalSeconds: Double = 60) {
            self.level = level; self.onset = onset; self.summaryIntervalSeconds = summaryIntervalSeconds
        }

        /// `alerts.level.*`.
        public struct Level: Sendable, Equatable {
            public var enabled: Bool
            public var weighting: LevelWeighting
            /// dB in the level unit (dBFS or dB SPL).
            public var thresholdDB: Double
            public var minDurationMs: Double
            public var hysteresisDB: Double
            public var rearmMs: Double
            public init(enabled: Bool = true, weighting: LevelWeighting = .laf, thresholdDB: Double = -20,
                        minDurationMs: Double = 200, hysteresisDB: Double = 3, rearmMs: Double = 1000) {
                self.enabled = enabled; self.weighting = weighting; self.thresholdDB = thresholdDB
                self.minDurationMs = minDurationMs; self.hysteresisDB = hysteresisDB; self.rearmMs = rearmMs
            }
        }

        /// `alerts.onset.*`.
        public struct Onset: Sendable, Equatable {
            public var enabled: Bool
            /// Onset strength (dB, the `superflux` function) an onset needs to raise an alert. Every onset
            /// already has at least `analysis.onset.delta` (8); the default 15 keeps about 94 % of the hits and
            /// chirps of `bench/onset_eval.py`'s development split and drops about two thirds of its false
            /// onsets (distant speech, traffic).
            public var minStrength: Double
            public var minIntervalMs: Double
            /// 0 = unlimited.
            public var maxPerMinute: Int
            public init(enabled: Bool = false, minStrength: Double = 15, minIntervalMs: Double = 100,
                        maxPerMinute: Int = 60) {
                self.enabled = enabled; self.minStrength = minStrength; self.minIntervalMs = minIntervalMs
                self.maxPerMinute = maxPerMinute
            }
        }
    }

    public let name = "alerts"
    public var configSection: String { "alerts" }
    /// Thresholds, durations and rate limits apply live (``update(configuration:)``).
    public func applyLive(_ new: Configuration) -> Bool { update(configuration: new); return true }
    /// `level_alerts`, `onset_alerts`, `onset_alerts_suppressed`.
    public var counters: [(String, Int)] {
        [("level_alerts", levelAlerts), ("onset_alerts", onsetAlerts), ("onset_alerts_suppressed", suppressedOnsetAlerts)]
    }
    let logger: Logger
    let publisher: (any MessagePublisher)?
    /// Set before ``start(bus:stream:)`` to record this sink's hand-off latency.
    public var latencyRecorder: StageRecorder?

    let pending: Mutex<Configuration>
    let generation = Atomic<Int>(0)
    /// Wall time of the last ``update(configuration:)``: frames captured before it — read later, since a quiet
    /// frame waits up to the backstop — are still judged by the settings they were captured under.
    let pendingFromNs = Atomic<Int64>(.min)
    var appliedGeneration = -1
    var config: Configuration
    var levelOffset = 0.0

    /// The slow timer of the on-demand reader: no alert decision waits for it (see the type), it only keeps
    /// the evaluation (counters, SEL sums) at most this far behind the audio. Well inside the bus (the
    /// producer also wakes the reader when half the ring is queued for it).
    static let backstopMilliseconds: Int32 = 1_000
    let backstopMilliseconds: Int32
    let reader: BusReader
    let _levelAlerts = Atomic<Int>(0)
    let _onsetAlerts = Atomic<Int>(0)
    let _suppressed = Atomic<Int>(0)

    // Level state (sink thread only).
    enum LevelState { case idle, active }
    var levelState = LevelState.idle
    var candidateNs: Int64? = nil
    var candidateSeq: Int64 = 0
    var activeStartNs: Int64 = 0
    var activeMax = -Double.infinity
    var releaseNs: Int64? = nil
    var releaseSeq: Int64 = 0
    /// Sound exposure of the alert so far (Σ y² of the weighting's frequency weighting, full-scale units):
    /// of the frames since the candidate start (`alertEnergy`), and of the release candidate's frames, which
    /// count only if the level rises again (`releaseEnergy`).
    var alertEnergy = 0.0
    var releaseEnergy = 0.0
    var sampleRate = 48_000.0
    /// Samples per hop: a frame contributes one hop of audio to an alert's exposure (the first frame after a
    /// reset carries `n_fft` new samples; their mean square is counted over one hop).
    var hop = 480
    var rearmUntilNs: Int64 = .min
    /// The last frame the level was judged on (its capture time, seq and level by the settings of then): where
    /// an alert ends when a reload takes its measure away (`reason=reconfigured`).
    var lastFrameNs: Int64 = .min
    var lastFrameSeq: Int64 = 0
    var lastLevel = -Double.infinity
    /// What the sink this one took over from measured (set by ``inherit(from:sameBus:)``, compared in
    /// ``start(bus:stream:)``, where this sink's own measure is known).
    var inheritedMeasure: (config: Configuration, levelOffset: Double, sampleRate: Double, unit: String, channels: Int)? = nil
    /// The stream's level unit (`dBFS`, or `dB SPL` when calibrated: a calibration of 0 dB changes the unit only).
    var levelUnit = "dBFS"
    /// The channels the levels are the energy mean of (``StreamInfo/levelChannels``).
    var levelChannels = 1

    // Onset state (sink thread only).
    var recentOnsetAlerts: [Int64] = []  // ring of emitted alert times, capacity maxPerMinute
    var recentHead = 0
    var recentCount = 0
    var lastOnsetAlertNs: Int64 = .min
    var suppressedSinceLast = 0
    var summaryStartNs: Int64 = .min
    var summarySuppressed = 0
    var summaryEmitted = 0

    /// - Parameters:
    ///   - configuration: the initial thresholds.
    ///   - logger: receives the alert lines.
    ///   - publisher: the socket's `alert` stream, or nil.
    public convenience init(configuration: Configuration = Configuration(), logger: Logger, publisher: (any MessagePublisher)?) {
        self.init(configuration: configuration, logger: logger, publisher: publisher, backstopMilliseconds: Self.backstopMilliseconds)
    }

    /// - Parameter backstopMilliseconds: the reader's timer (tests: longer, so only the DSP stage wakes it).
    init(configuration: Configuration, logger: Logger, publisher: (any MessagePublisher)?, backstopMilliseconds: Int32) {
        self.logger = logger
        self.publisher = publisher
        pending = Mutex(configuration)
        config = configuration
        self.backstopMilliseconds = backstopMilliseconds
        reader = BusReader(threadName: "es-alerts", delivery: .onDemand(backstopMilliseconds: backstopMilliseconds))
    }

    public var dropped: Int { reader.dropped }
    /// Level alerts started so far.
    public var levelAlerts: Int { _levelAlerts.load(ordering: .relaxed) }
    /// Onset alerts emitted so far.
    public var onsetAlerts: Int { _onsetAlerts.load(ordering: .relaxed) }
    /// Onset alerts suppressed by the rate limit so far.
    public var suppressedOnsetAlerts: Int { _suppressed.load(ordering: .relaxed) }

    /// The configuration in force (or about to be, after the next frame).
    public var configuration: Configuration { pending.withLock { $0 } }

    /// Replaces thresholds and limits; thread-safe (SIGHUP reload). Applied before the next frame is
    /// evaluated. An ongoing level alert is kept and ends against the new release level; disabling level
    /// alerts or changing their weighting ends it at once with `reason=reconfigured` (its numbers would
    /// otherwise mix two measures).
    public func update(configuration: Configuration) {
        pending.withLock { $0 = configuration }
        pendingFromNs.store(Clock.wallNanoseconds(), ordering: .relaxed)  // published by the generation below
        generation.add(1, ordering: .releasing)
        reader.wake()  // the sink thread takes it at once and gives the DSP stage the new wake filter
    }

    public func start(bus: FrameBus, stream: StreamInfo) throws {
        levelOffset = Double(stream.levelOffsetDb)
        levelUnit = stream.levelUnit
        levelChannels = stream.levelChannels
        sampleRate = Double(max(1, stream.sampleRate))
        hop = max(1, stream.hop)
        if let old = inheritedMeasure {
            inheritedMeasure = nil
            // A carried alert whose measure changed (weighting, calibration, sample rate, the channels its
            // level is the energy mean of) or that is disabled now ends, in the old terms, before any frame is
            // judged in the new ones.
            if levelState == .active && (!config.level.enabled || old.config.level.weighting != config.level.weighting
                || old.levelOffset != levelOffset || old.sampleRate != sampleRate || old.unit != levelUnit
                || old.channels != levelChannels) {
                let mine = (config, levelOffset, sampleRate)
                (config, levelOffset, sampleRate) = (old.config, old.levelOffset, old.sampleRate)
                endForReconfiguration()
                (config, levelOffset, sampleRate) = mine
            }
        }
        do {
            try reader.start(bus: bus, recorder: latencyRecorder, onFrame: { [self] frame in evaluate(frame.header) },
                             afterDrain: { [self] _ in refreshConfiguration(); return backstopMilliseconds },
                             wakeFilter: { [self] in wakeFilter() })
        } catch {
            // This sink stays stopped (the daemon logs why): an alert carried into it would never end. End it
            // now, as a reload that took its measure away would, so every start has its end.
            endForReconfiguration()
            throw error
        }
    }

    public func stop() { reader.stop() }

    /// A reload that restarts the sinks (a rebuilt pipeline, `levels.*`, `alerts.level.weighting`, another
    /// sink's settings) must not lose an ongoing alert: a stopped `previous` alert sink's level and onset
    /// state and counters move here (so the alert ends once, against the settings in force, and is not
    /// started twice), and on the same bus this sink reads on from the frame where `previous` stopped.
    public func inherit(from previous: any Sink, sameBus: Bool) {
        guard let old = previous as? AlertSink, old !== self else { return }
        levelState = old.levelState; candidateNs = old.candidateNs; candidateSeq = old.candidateSeq
        activeStartNs = old.activeStartNs; activeMax = old.activeMax
        releaseNs = old.releaseNs; releaseSeq = old.releaseSeq
        alertEnergy = old.alertEnergy; releaseEnergy = old.releaseEnergy; rearmUntilNs = old.rearmUntilNs
        recentOnsetAlerts = old.recentOnsetAlerts; recentHead = old.recentHead; recentCount = old.recentCount
        lastOnsetAlertNs = old.lastOnsetAlertNs; suppressedSinceLast = old.suppressedSinceLast
        summaryStartNs = old.summaryStartNs; summarySuppressed = old.summarySuppressed; summaryEmitted = old.summaryEmitted
        _levelAlerts.store(old.levelAlerts, ordering: .relaxed)
        _onsetAlerts.store(old.onsetAlerts, ordering: .relaxed)
        _suppressed.store(old.suppressedOnsetAlerts, ordering: .relaxed)
        lastFrameNs = old.lastFrameNs; lastFrameSeq = old.lastFrameSeq; lastLevel = old.lastLevel
        inheritedMeasure = (old.config, old.levelOffset, old.sampleRate, old.levelUnit, old.levelChannels)
        reader.resumeAt = sameBus ? old.reader.stoppedAt : nil
    }

    /// Ends an ongoing level alert because a reload took its measure away (`reason=reconfigured`), in the
    /// terms of the settings in force (`config`, `levelOffset`): at the release start if one is pending (its
    /// frames, below the release level, are not in the exposure, as at a normal end), else at the last frame
    /// judged. A start candidate is dropped (nothing was announced).
    func endForReconfiguration() {
        defer { levelState = .idle; candidateNs = nil; releaseNs = nil; activeMax = -.infinity }
        guard levelState == .active, lastFrameNs != .min else { return }
        let (t, seq) = releaseNs.map { ($0, releaseSeq) } ?? (lastFrameNs, lastFrameSeq)
        let sel = config.level.weighting.exposureName.map { name in
            (name, 10 * log10(max(alertEnergy / sampleRate, 1e-20)) + levelOffset)
        }
        emitLevel(state: "end", level: lastLevel, t: t, seq: seq, decidedSeq: lastFrameSeq,
                  duration: Double(t - activeStartNs) / 1e9, max: activeMax, sel: sel, reason: "reconfigured")
    }

    func refreshConfiguration() {
        let g = generation.load(ordering: .acquiring)
        guard g != appliedGeneration else { return }
        appliedGeneration = g
        let new = pending.withLock { $0 }
        if config.level.enabled && (!new.level.enabled || new.level.weighting != config.level.weighting) {
            endForReconfiguration()
        }
        config = new
        if !config.level.enabled { levelState = .idle; candidateNs = nil; releaseNs = nil }
        let cap = max(config.onset.maxPerMinute, 0)
        if cap != recentOnsetAlerts.count {
            recentOnsetAlerts = Array(repeating: 0, count: cap)
            recentHead = 0; recentCount = 0
        }
    }

    /// The frames that can make the next evaluation emit something, given the state after the frames
    /// evaluated so far (sink thread; the DSP stage wakes the reader for a frame matching it):
    /// - level, idle: a frame at or above the threshold, except inside `[candidate, candidate + hold)` of a
    ///   known start candidate, or before `rearm end + hold` without one — a start is decided only by a frame
    ///   at or above the threshold at least `hold` after its candidate's first frame, and that candidate is
    ///   either the known one or a later one, itself at or above the threshold (its own first frame wakes
    ///   the reader if it lies before the known candidate: audio time stepping back), and never before the
    ///   re-arm end;
    /// - level, active: a frame below the release level, except inside `[release, release + hold)` of a
    ///   known release candidate (the same argument for the end);
    /// - onsets: an onset with strength ≥ `minStrength` at or after the end of the debounce interval of the
    ///   last alert and, while `maxPerMinute` alerts lie within 60 s, 60 s after the oldest of them (earlier
    ///   ones are debounced or suppressed: counted, not emitted; a suppression only happens in that state);
    /// - the onset summary: with suppressed alerts pending or the rate limit reached, the first frame of the
    ///   next summary period.
    /// Nothing else emits: discontinuities, SEL sums, the maximum and the re-arm only change state, which the
    /// next evaluation (these frames are never skipped, only evaluated later) brings up to date.
    func wakeFilter() -> FrameWakeFilter {
        var f = FrameWakeFilter.never
        if config.level.enabled {
            let c = config.level
            let holdNs = Int64(c.minDurationMs * 1e6)
            f.level = c.weighting.frameLevel
            f.levelOffset = levelOffset
            switch levelState {
            case .idle:
                f.above = true
                f.threshold = c.thresholdDB
                if let start = candidateNs {
                    (f.quietFromNs, f.quietUntilNs) = (start, start.addingSaturating(holdNs))
                } else {
                    (f.quietFromNs, f.quietUntilNs) = (.min, rearmUntilNs.addingSaturating(holdNs))
                }
            case .active:
                f.above = false
                f.threshold = c.thresholdDB - c.hysteresisDB  // the release level, computed as evaluateLevel does
                if let end = releaseNs { (f.quietFromNs, f.quietUntilNs) = (end, end.addingSaturating(holdNs)) }
            }
        }
        if config.onset.enabled {
            let c = config.onset
            f.onsetMinStrength = c.minStrength
            if lastOnsetAlertNs != .min {
                f.onsetNotBeforeNs = lastOnsetAlertNs.addingSaturating(Int64(c.minIntervalMs * 1e6))
            }
            // At the limit (the count is forgotten lazily, so this may be stale-high: an early wake-up only).
            let limited = c.maxPerMinute > 0 && recentCount >= c.maxPerMinute
            if limited {
                f.onsetNotBeforeNs = max(f.onsetNotBeforeNs, oldestRecentOnsetAlert.addingSaturating(60_000_000_000))
            }
            let period = Int64(config.summaryIntervalSeconds * 1e9)
            if (summarySuppressed > 0 || limited) && period > 0 && summaryStartNs != .min {
                f.deadlineNs = summaryStartNs.addingSaturating(period)
            }
        }
        return f
    }

    /// Evaluates one frame. Sink thread only.
    func evaluate(_ h: FrameHeader) {
        // New settings apply from the first frame captured after the reload (the rest of the drain at the
        // latest: afterDrain takes them, so the wake filter reflects them).
        if h.wallNs >= pendingFromNs.load(ordering: .relaxed) { refreshConfiguration() }
        if config.level.enabled { evaluateLevel(h) }
        if config.onset.enabled && h.hasOnset { evaluateOnset(h) }
        if config.onset.enabled { maybeSummary(h.wallNs) }
    }

    func evaluateLevel(_ h: FrameHeader) {
        let c = config.level
        let level = Double(c.weighting.dbfs(h)) + levelOffset
        let t = h.wallNs
        let holdNs = Int64(c.minDurationMs * 1e6)
        lastFrameNs = t; lastFrameSeq = h.seq; lastLevel = level
        var energy = c.weighting.energy(h.levels)
        let covered = h.levels.head.samples + h.levels.tail.samples
        if covered > hop { energy *= Double(hop) / Double(covered) }  // first frame after a reset: n_fft samples
        if h.isDiscontinuity {
            candidateNs = nil
            if releaseNs != nil { alertEnergy += releaseEnergy }  // the gap ends the release candidate
            releaseNs = nil
        }
        switch levelState {
        case .idle:
            guard level >= c.thresholdDB, t >= rearmUntilNs else { candidateNs = nil; return }
            if candidateNs == nil { candidateNs = t; candidateSeq = h.seq; activeMax = level; alertEnergy = 0 }
            alertEnergy += energy
            activeMax = max(activeMax, level)
            if let start = candidateNs, t - start >= holdNs {
                levelState = .active
                activeStartNs = start
                releaseNs = nil
                candidateNs = nil
                _levelAlerts.add(1, ordering: .relaxed)
                emitLevel(state: "start", level: level, t: start, seq: candidateSeq, decidedSeq: h.seq, duration: nil, max: nil)
            }
        case .active:
            activeMax = max(activeMax, level)
            guard level < c.thresholdDB - c.hysteresisDB else {
                if releaseNs != nil { alertEnergy += releaseEnergy; releaseNs = nil }
                alertEnergy += energy
                return
            }
            if releaseNs == nil { releaseNs = t; releaseSeq = h.seq; releaseEnergy = 0 }
            releaseEnergy += energy
            if let end = releaseNs, t - end >= holdNs {
                levelState = .idle
                releaseNs = nil
                rearmUntilNs = end + Int64(c.rearmMs * 1e6)
                let sel = c.weighting.exposureName.map { name in
                    (name, 10 * log10(max(alertEnergy / sampleRate, 1e-20)) + levelOffset)
                }
                emitLevel(state: "end", level: level, t: end, seq: releaseSeq, decidedSeq: h.seq,
                          duration: Double(end - activeStartNs) / 1e9, max: activeMax, sel: sel)
                activeMax = -.infinity
            }
        }
    }

    func emitLevel(state: StaticString, level: Double, t: Int64, seq: Int64, decidedSeq: Int64, duration: Double?,
                   max: Double?, sel: (name: StaticString, db: Double)? = nil, reason: StaticString? = nil) {
        let threshold = config.level.thresholdDB
        let text = ByteWriter(capacity: 256)
        text.ascii("alert=level state="); text.ascii(state)
        func field(_ key: StaticString, _ v: Double, _ decimals: Int) {
            text.byte(0x20); text.ascii(key); text.byte(0x3D); text.fixed(v, decimals: decimals)
        }
        field("level_db", level, 1)
        field("threshold_db", threshold, 1)
        field("t", Double(t) / 1e9, 3)
        field("seq", Double(seq), 0)
        field("decided_seq", Double(decidedSeq), 0)
        if let duration { field("duration_s", duration, 3) }
        if let max { field("max_db", max, 1) }
        if let sel { field("sel_db", sel.db, 2); text.ascii(" sel="); text.ascii(sel.name) }
        if let reason { text.ascii(" reason="); text.ascii(reason) }
        let json = AlertMessage.level(
            state: duration == nil ? .start : .end, levelDb: level, thresholdDb: threshold, t: Double(t) / 1e9, seq: seq,
            decidedSeq: decidedSeq, durationSeconds: duration, maxDb: max, weighting: config.level.weighting.rawValue,
            selDb: sel?.db, sel: sel?.name.description, reason: reason?.description)
        let line = String(decoding: text.bytes, as: UTF8.self)
        if duration == nil {  // start
            logger.warning("\(line)")
        } else {
            logger.notice("\(line)")
        }
        publisher?.publish(.alert, line: json.line(), wallNs: t)
    }

    func evaluateOnset(_ h: FrameHeader) {
        let c = config.onset
        let strength = Double(h.onset.strength)
        guard strength >= c.minStrength else { return }
        let t = h.onsetWallNs
        if lastOnsetAlertNs != .min && t - lastOnsetAlertNs < Int64(c.minIntervalMs * 1e6) { return }
        if c.maxPerMinute > 0 {
            // Forget alerts older than 60 s.
            while recentCount > 0 {
                let oldest = oldestRecentOnsetAlert
                if t - oldest >= 60_000_000_000 { recentCount -= 1 } else { break }
            }
            if recentCount >= c.maxPerMinute {
                suppressedSinceLast += 1
                summarySuppressed += 1
                _suppressed.add(1, ordering: .relaxed)
                return
            }
            recentOnsetAlerts[recentHead] = t
            recentHead = (recentHead + 1) % recentOnsetAlerts.count
            recentCount += 1
        }
        lastOnsetAlertNs = t
        summaryEmitted += 1
        _onsetAlerts.add(1, ordering: .relaxed)
        let text = ByteWriter(capacity: 128)
        text.ascii("alert=onset strength="); text.fixed(strength, decimals: 2)
        text.ascii(" t="); text.fixed(Double(t) / 1e9, decimals: 3)
        text.ascii(" seq="); text.int(h.onset.frameIndex)
        text.ascii(" suppressed="); text.int(Int64(suppressedSinceLast))
        let json = AlertMessage.onset(strength: strength, t: Double(t) / 1e9, seq: h.onset.frameIndex, suppressed: suppressedSinceLast)
        suppressedSinceLast = 0
        logger.warning("\(String(decoding: text.bytes, as: UTF8.self))")
        publisher?.publish(.alert, line: json.line(), wallNs: t)
    }

    /// The time of the oldest alert in the rate limit's ring (`recentCount > 0`).
    var oldestRecentOnsetAlert: Int64 {
        recentOnsetAlerts[(recentHead - recentCount + recentOnsetAlerts.count) % recentOnsetAlerts.count]
    }

    func maybeSummary(_ t: Int64) {
        if summaryStartNs == .min { summaryStartNs = t; return }
        let period = Int64(config.summaryIntervalSeconds * 1e9)
        guard period > 0, t - summaryStartNs >= period else { return }
        if summarySuppressed > 0 {
            let text = ByteWriter(capacity: 128)
            text.ascii("alert=onset_summary suppressed="); text.int(Int64(summarySuppressed))
            text.ascii(" emitted="); text.int(Int64(summaryEmitted))
            text.ascii(" period_s="); text.fixed(config.summaryIntervalSeconds, decimals: 3)
            text.ascii(" t="); text.fixed(Double(t) / 1e9, decimals: 3)
            let json = AlertMessage.onsetSummary(
                suppressed: summarySuppressed, emitted: summaryEmitted, periodSeconds: config.summaryIntervalSeconds,
                t: Double(t) / 1e9)
            logger.notice("\(String(decoding: text.bytes, as: UTF8.self))")
            publisher?.publish(.alert, line: json.line(), wallNs: t)
        }
        summaryStartNs = t
        summarySuppressed = 0
        summaryEmitted = 0
    }
}

extension Int64 {
    /// `self + other`, clamped to the representable range.
    func addingSaturating(_ other: Int64) -> Int64 {
        let (r, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : r
    }
}

extension LevelWeighting {
    /// Σ y² of this weighting's frequency weighting over the frame's new samples (0 for `rms_dbfs`).
    @inline(__always)
    func energy(_ levels: LevelInterval) -> Double {
        switch self {
        case .laf, .las: levels.head.energyA + levels.tail.energyA
        case .lcf: levels.head.energyC + levels.tail.energyC
        case .lzf: levels.head.energyZ + levels.tail.energyZ
        case .rmsDbfs: 0
        }
    }

    /// The frame bus's name for this weighting's level (``FrameWakeFilter``).
    var frameLevel: FrameLevel {
        switch self {
        case .laf: .laf
        case .las: .las
        case .lcf: .lcf
        case .lzf: .lzf
        case .rmsDbfs: .rmsDbfs
        }
    }

    /// The IEC 61672-1 name of the sound exposure level of this weighting (nil for `rms_dbfs`: no exposure).
    var exposureName: StaticString? {
        switch self {
        case .laf, .las: "LAE"
        case .lcf: "LCE"
        case .lzf: "LZE"
        case .rmsDbfs: nil
        }
    }
}
