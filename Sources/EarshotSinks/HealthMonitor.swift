#if canImport(Glibc)
import Glibc
#endif
public import EarshotPipeline
public import EarshotProtocol
import EarshotRealtime
public import Logging
import Synchronization

/// Input health: judges the per-frame ``SampleHealth`` statistics the DSP thread computed (digital silence,
/// DC offset, noise-floor collapse, clipping, clock drift) and the absence of frames (a source that stopped
/// delivering), off the real-time threads, with a ``HealthJudge``.
///
/// Each fault start logs `alert=health kind=… state=start value=… threshold=… t=…` at `.warning` and each end
/// `… state=end …` at `.notice` (the same logger and `key=value` shape as ``AlertSink``'s level alerts), and
/// publishes a ``HealthMessage`` on the `alert` stream (through the daemon's ``MessageFanout``: the socket,
/// the clips and MQTT sinks). The faults active now are in ``activeFaults`` (for `hello`, `stats`, `STATUS=`,
/// `/metrics`), the starts per kind in ``events``.
///
/// Threading: its own thread (`es-health`), a batch ``BusReader`` that wakes every ``intervalMilliseconds``
/// (500 ms) even without frames — that wake-up is the timer that notices their absence. The judge works on
/// 0.5 s blocks of audio and dates every transition from the frames' capture times, so the longer interval
/// (2 wake-ups a second instead of 10) changes no hold or clear time, only when a transition is announced
/// (at most 0.5 s later; `no_data` within 0.5 s after `no_data_s`). No allocation per frame (only per block and
/// per transition).
public final class HealthMonitor: ConfigurableSink, @unchecked Sendable {
    /// The `health.*` section. Defaults are chosen to stay quiet on speech, music, street noise and quiet
    /// rooms (measured, see docs/architecture.md) and to catch a dead input within a minute.
    public struct Configuration: Sendable, Equatable {
        /// Judge input health at all (`health.enabled`).
        public var enabled = true
        /// Seconds of digital silence (every sample equal: zeros or a stuck value) before the alarm.
        public var silenceSeconds = 30.0
        /// |mean| (full scale = 1) above which a DC offset is a fault; it ends below 0.8 × this.
        public var dcLimit = 0.1
        public var dcHoldSeconds = 10.0
        /// The quietest LAF of each 0.5 s block more than this many dB below the learned baseline is a
        /// collapsed noise floor (it ends 3 dB above that).
        public var floorDropDB = 30.0
        /// …as is a block whose quietest LAF is below this (dBFS, A-weighted, before calibration).
        public var floorMinDB = -120.0
        public var floorHoldSeconds = 30.0
        /// Seconds of healthy blocks the baseline (their median floor) is learned over; valid after half.
        public var floorBaselineSeconds = 600.0
        /// Share of flat-topped full-scale samples per block that is clipping (ends below half of it)…
        public var clipShare = 0.01
        /// …or this many identical full-scale samples in a row.
        public var clipRunSamples = 64
        public var clipHoldSeconds = 2.0
        /// Sample clock vs CLOCK_MONOTONIC, ppm, measured over ``driftWindowSeconds`` (ends below 0.8 ×).
        public var driftLimitPPM = 2000.0
        public var driftWindowSeconds = 120.0
        /// Seconds without any frame (a stopped or lost source) before `no_data`.
        public var noDataSeconds = 10.0
        /// Seconds a condition must stay clear before its fault ends.
        public var clearSeconds = 5.0

        public init() {}

        /// Ranges of the numeric fields.
        public enum Limits {
            public static let seconds = SinkRange(0, 3600, lowerExclusive: true)
            public static let silenceSeconds = SinkRange(0, 60, lowerExclusive: true)
            public static let dcLimit = SinkRange(0, 1, lowerExclusive: true)
            public static let floorDropDB = SinkRange(0, 200, lowerExclusive: true)
            public static let floorMinDB = SinkRange(-200, 0)
            public static let floorBaselineSeconds = SinkRange(1, 3600)
            public static let clipShare = SinkRange(0, 1, lowerExclusive: true)
            public static let clipRunSamples = 2...1_000_000
            public static let driftLimitPPM = SinkRange(1, 1_000_000)
            public static let driftWindowSeconds = SinkRange(1, 3600)
        }

        public func validate() throws(SinkConfigError) {
            try Limits.silenceSeconds.check("silence_s", silenceSeconds)
            try Limits.dcLimit.check("dc_limit", dcLimit)
            try Limits.seconds.check("dc_hold_s", dcHoldSeconds)
            try Limits.floorDropDB.check("floor_drop_db", floorDropDB)
            try Limits.floorMinDB.check("floor_min_db", floorMinDB)
            try Limits.seconds.check("floor_hold_s", floorHoldSeconds)
            try Limits.floorBaselineSeconds.check("floor_baseline_s", floorBaselineSeconds)
            try Limits.clipShare.check("clip_share", clipShare)
            try checkRange("clip_run_samples", clipRunSamples, Limits.clipRunSamples)
            try Limits.seconds.check("clip_hold_s", clipHoldSeconds)
            try Limits.driftLimitPPM.check("drift_limit_ppm", driftLimitPPM)
            try Limits.driftWindowSeconds.check("drift_window_s", driftWindowSeconds)
            try Limits.seconds.check("no_data_s", noDataSeconds)
            try Limits.seconds.check("clear_s", clearSeconds)
        }
    }

    public let name = "health"
    public var configSection: String { "health" }
    public let configuration: Configuration
    let logger: Logger
    let publisher: (any MessagePublisher)?
    public var latencyRecorder: StageRecorder?
    /// The batch interval of the `es-health` thread (see the type's documentation).
    static let intervalMilliseconds: Int32 = 500
    let reader = BusReader(threadName: "es-health", delivery: .batch(intervalMilliseconds: HealthMonitor.intervalMilliseconds))
    var judge: HealthJudge?
    let faults = Mutex<[HealthMessage.Kind]>([])
    let eventCounts = Mutex<[Int]>([Int](repeating: 0, count: HealthMessage.Kind.allCases.count))
    let onChange: (@Sendable ([HealthMessage.Kind]) -> Void)?

    /// - Parameters:
    ///   - publisher: where `health` messages go (the daemon's fan-out), or nil.
    ///   - onChange: called on the sink thread with the active faults after each transition.
    public init(configuration: Configuration = Configuration(), logger: Logger, publisher: (any MessagePublisher)?,
                onChange: (@Sendable ([HealthMessage.Kind]) -> Void)? = nil) {
        self.configuration = configuration
        self.logger = logger
        self.publisher = publisher
        self.onChange = onChange
    }

    public var dropped: Int { reader.dropped }
    /// The faults active now (empty: healthy), in ``HealthMessage/Kind`` order. Any thread.
    public var activeFaults: [HealthMessage.Kind] { faults.withLock { $0 } }
    /// Fault starts per kind since the sink started. Any thread.
    public var events: [(HealthMessage.Kind, Int)] {
        let counts = eventCounts.withLock { $0 }
        return HealthMessage.Kind.allCases.enumerated().map { ($0.element, counts[$0.offset]) }
    }
    /// `health_<kind>` (1 while active) and `health_events_<kind>` (starts).
    public var counters: [(String, Int)] {
        let active = activeFaults
        return HealthMessage.Kind.allCases.map { ("health_\($0.rawValue)", active.contains($0) ? 1 : 0) }
            + events.map { ("health_events_\($0.0.rawValue)", $0.1) }
    }

    /// `ok`, or the active faults joined by commas (the `STATUS=` field).
    public static func summary(_ active: [HealthMessage.Kind]) -> String {
        active.isEmpty ? "ok" : active.map(\.rawValue).joined(separator: ",")
    }

    static func fixed(_ v: Double, _ decimals: Int) -> String {
        let w = ByteWriter(capacity: 32)
        w.fixed(v, decimals: decimals)
        return String(decoding: w.bytes, as: UTF8.self)
    }

    public func start(bus: FrameBus, stream: StreamInfo) throws {
        judge = HealthJudge(config: configuration, sampleRate: stream.sampleRate, startMonotonicNs: Clock.monotonicNanoseconds())
        try reader.start(bus: bus, recorder: latencyRecorder, onFrame: { [self] frame in
            let now = Clock.monotonicNanoseconds()
            guard let t = judge?.frame(frame.header, nowMonotonicNs: now, nowWallNs: now &+ Clock.wallMinusMonotonicNanoseconds()),
                  !t.isEmpty else { return }
            report(t)
        }, afterDrain: { [self] _ in
            let now = Clock.monotonicNanoseconds()
            if let t = judge?.tick(nowMonotonicNs: now, nowWallNs: now &+ Clock.wallMinusMonotonicNanoseconds()), !t.isEmpty {
                report(t)
            }
            return Self.intervalMilliseconds
        })
    }

    public func stop() { reader.stop() }

    func report(_ transitions: [HealthJudge.Transition]) {
        guard let judge else { return }
        let active = judge.active
        faults.withLock { $0 = active }
        for t in transitions {
            if t.started, let i = HealthMessage.Kind.allCases.firstIndex(of: t.kind) { eventCounts.withLock { $0[i] += 1 } }
            let decimals = t.kind == .clipping || t.kind == .dcOffset ? 4 : 1
            let line = "alert=health kind=\(t.kind.rawValue) state=\(t.started ? "start" : "end")"
                + " value=\(Self.fixed(t.value, decimals)) threshold=\(Self.fixed(t.threshold, decimals))"
                + " t=\(Self.fixed(Double(t.wallNs) / 1e9, 3)) active=\(Self.summary(active))"
            if t.started { logger.warning("\(line)") } else { logger.notice("\(line)") }
            let message = HealthMessage(kind: t.kind, state: t.started ? .start : .end, t: Double(t.wallNs) / 1e9,
                                        value: t.value, threshold: t.threshold, active: active)
            publisher?.publish(.alert, line: message.line(), wallNs: t.wallNs)
        }
        onChange?(active)
    }
}
