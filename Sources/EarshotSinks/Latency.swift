#if canImport(Glibc)
import Glibc
#endif
public import EarshotPipeline
import EarshotRealtime
import Histogram
public import Logging
import Synchronization

/// Latency of one stage, aggregated: counts and HdrHistogram percentiles, in milliseconds.
public struct LatencySummary: Sendable, Equatable {
    public var count: Int
    public var p50Ms: Double
    public var p99Ms: Double
    public var maxMs: Double
    public init(count: Int, p50Ms: Double, p99Ms: Double, maxMs: Double) {
        self.count = count; self.p50Ms = p50Ms; self.p99Ms = p99Ms; self.maxMs = maxMs
    }
}

/// One stage in a ``LatencySnapshot``.
public struct StageLatency: Sendable, Equatable {
    /// `capture`, `dsp`, `sink:<name>` or `end_to_end`.
    public var stage: String
    /// Since the tracker started.
    public var total: LatencySummary
    /// Since the previous `snapshot(resetInterval: true)` (what the `stats` line reports).
    public var interval: LatencySummary
    /// Frames over this stage's budget since start.
    public var overBudget: Int
    /// Exact sum of all recorded latencies, seconds (Prometheus `_sum`).
    public var sumSeconds: Double
    /// Cumulative counts at ``LatencyTracker/bucketBoundsSeconds`` (Prometheus `_bucket{le=…}`; `+Inf` is
    /// `total.count`), exact (counted at record time, not derived from the HdrHistogram).
    public var cumulativeBucketCounts: [Int]
}

/// All stages at one instant.
public struct LatencySnapshot: Sendable, Equatable {
    public var stages: [StageLatency]
    public func stage(_ name: String) -> StageLatency? { stages.first { $0.stage == name } }
}

/// Records one latency stage: its own HdrHistogram (1 µs … 60 s, 3 significant digits) behind its own
/// mutex, its budget and the rate-limited over-budget warning.
///
/// `record` is cheap (a mutex, an array increment, a clock read when over budget) and thread-safe, but it
/// takes a lock: call it from sink threads, never from the capture or DSP thread.
public final class StageRecorder: Sendable {
    /// `capture`, `dsp`, `sink:<name>` or `end_to_end`.
    public let stage: String
    let shared: LatencyShared
    let budgetKind: BudgetKind
    /// Where hand-offs of a sink stage feed the end-to-end value (nil for the other stages).
    let endToEnd: StageRecorder?

    /// Two significant digits (percentiles within 1 %): ~45 KB per histogram instead of ~440 KB with three,
    /// which matters with two histograms per stage on a 24 MB memory budget.
    struct State {
        var total = Histogram<UInt64>(lowestDiscernibleValue: 1_000, highestTrackableValue: 60_000_000_000,
                                      numberOfSignificantValueDigits: .two)
        var interval = Histogram<UInt64>(lowestDiscernibleValue: 1_000, highestTrackableValue: 60_000_000_000,
                                         numberOfSignificantValueDigits: .two)
        var sumNs: Double = 0
        /// Values per ``LatencyTracker/bucketBoundsSeconds`` bucket (non-cumulative; exact).
        var buckets: [Int]
        var overBudget = 0
        /// The open summary interval (``Int64/min``: none): overruns since it opened and the worst of them.
        var windowStartNs: Int64 = .min
        var windowOver = 0
        var windowWorstNs: Int64 = 0
    }
    let state: Mutex<State>

    enum BudgetKind: Sendable { case capture, dsp, sink, endToEnd }

    /// ``LatencyTracker/bucketBoundsSeconds`` in ns.
    let boundsNs: [UInt64]

    init(stage: String, budgetKind: BudgetKind, shared: LatencyShared, endToEnd: StageRecorder? = nil) {
        self.stage = stage; self.budgetKind = budgetKind; self.shared = shared; self.endToEnd = endToEnd
        boundsNs = shared.bucketBoundsSeconds.map { UInt64(($0 * 1e9).rounded()) }
        state = Mutex(State(buckets: [Int](repeating: 0, count: shared.bucketBoundsSeconds.count)))
    }

    /// Records a sink's hand-off latency for `header` (`dspEndNs` → `dequeuedAtNs`) and feeds the
    /// end-to-end stage. Frames without DSP stamps (offline) are ignored. Sink threads only.
    public func record(_ header: FrameHeader, dequeuedAtNs: Int64) {
        guard header.dspEndNs > 0 else { return }
        record(nanoseconds: dequeuedAtNs &- header.dspEndNs)
        if let endToEnd, header.lastSampleMonotonicNs > 0 {
            let done = shared.handOff(seq: header.seq, endToEndNs: dequeuedAtNs &- header.lastSampleMonotonicNs)
            if let evicted = done.evicted { endToEnd.record(nanoseconds: evicted) }
            if let finished = done.finished { endToEnd.record(nanoseconds: finished) }
        }
    }

    /// ``record(_:dequeuedAtNs:)`` for a reader that takes frames on a schedule: a frame counts as handed
    /// off at the later of its being ready (`dspEndNs`) and `dueNs`, when the drain that took it was due (0:
    /// not scheduled), so the deliberate wait is not counted, a late wake-up or a slow sink still is.
    public func record(_ header: FrameHeader, dequeuedAtNs now: Int64, dueNs: Int64) {
        let late = header.dspEndNs > 0 && dueNs > header.dspEndNs ? dueNs &- header.dspEndNs : 0
        record(header, dequeuedAtNs: now &- min(late, max(0, now &- header.dspEndNs)))
    }

    /// Records one latency value (negative values are recorded as 0), checks the budget.
    ///
    /// Overruns are summarised, not repeated: the first overrun after a quiet interval is logged at once
    /// (`frames=1`); the ones that follow within ``LatencyTracker/Configuration/warnIntervalSeconds`` are
    /// counted and logged as one line when the interval ends (`frames=N worst_ms=W`), so a stage that keeps
    /// overrunning logs one line per interval.
    public func record(nanoseconds: Int64) {
        let v = UInt64(max(0, min(nanoseconds, 60_000_000_000)))
        let budgetNs = shared.budgetNanoseconds(budgetKind)
        let over = budgetNs.map { nanoseconds > $0 } ?? false
        let intervalNs = shared.warnInterval.load(ordering: .relaxed)
        let summary: (frames: Int, worstNs: Int64, total: Int)? = state.withLock { s in
            _ = s.total.record(v)
            _ = s.interval.record(v)
            s.sumNs += Double(v)
            var b = 0
            while b < boundsNs.count && v > boundsNs[b] { b += 1 }
            if b < boundsNs.count { s.buckets[b] += 1 }
            if over { s.overBudget += 1 }
            guard over || s.windowStartNs != .min else { return nil }
            let now = Clock.monotonicNanoseconds()
            if s.windowStartNs == .min {
                // First overrun after a quiet interval: say so now, summarise what follows.
                s.windowStartNs = now
                s.windowOver = 0
                s.windowWorstNs = 0
                return (1, nanoseconds, s.overBudget)
            }
            if over {
                s.windowOver += 1
                s.windowWorstNs = max(s.windowWorstNs, nanoseconds)
            }
            guard now &- s.windowStartNs >= intervalNs else { return nil }
            guard s.windowOver > 0 else {
                s.windowStartNs = .min  // a quiet interval: the next overrun is reported at once
                return nil
            }
            let r = (s.windowOver, s.windowWorstNs, s.overBudget)
            s.windowStartNs = now
            s.windowOver = 0
            s.windowWorstNs = 0
            return r
        }
        if let summary, let budgetNs {
            shared.logger.warning(
                "budget exceeded stage=\(stage) frames=\(summary.frames) worst_ms=\(formatMs(summary.worstNs)) budget_ms=\(formatMs(budgetNs)) interval_s=\(formatSeconds(intervalNs)) over_budget_total=\(summary.total)")
        }
    }

    func snapshot(resetInterval: Bool) -> StageLatency {
        state.withLock { s in
            var cumulative = s.buckets
            for i in cumulative.indices.dropFirst() { cumulative[i] += cumulative[i - 1] }
            let r = StageLatency(
                stage: stage, total: Self.summary(s.total), interval: Self.summary(s.interval),
                overBudget: s.overBudget, sumSeconds: s.sumNs / 1e9, cumulativeBucketCounts: cumulative)
            if resetInterval { s.interval.reset() }
            return r
        }
    }

    static func summary(_ h: Histogram<UInt64>) -> LatencySummary {
        guard h.totalCount > 0 else { return LatencySummary(count: 0, p50Ms: 0, p99Ms: 0, maxMs: 0) }
        return LatencySummary(count: Int(h.totalCount), p50Ms: Double(h.valueAtPercentile(50)) / 1e6,
                              p99Ms: Double(h.valueAtPercentile(99)) / 1e6, maxMs: Double(h.max) / 1e6)
    }
}

func formatSeconds(_ ns: Int64) -> String {
    let w = ByteWriter(capacity: 32)
    w.significant(Double(ns) / 1e9, digits: 6)
    return String(decoding: w.bytes, as: UTF8.self)
}

/// Milliseconds with 3 decimals, or to the nanosecond below 1 ms (a budget of 0.0002 ms must not read `0`).
func formatMs(_ ns: Int64) -> String {
    let w = ByteWriter(capacity: 32)
    w.fixed(Double(ns) / 1e6, decimals: ns < 1_000_000 ? 6 : 3)
    return String(decoding: w.bytes, as: UTF8.self)
}

/// Per-stage latency of the pipeline with budgets (ARCHITECTURE.md "Latency budgets").
///
/// Stages:
/// - `capture`: `lastSampleMonotonicNs` → `dspStartNs` (the frame's last sample reaching the DSP);
/// - `dsp`: `dspStartNs` → `dspEndNs`;
/// - `sink:<name>`: `dspEndNs` → the moment sink `<name>` dequeued the frame, recorded by the sink through
///   the ``StageRecorder`` from ``makeRecorder(sink:)``;
/// - `end_to_end`: `lastSampleMonotonicNs` → the **last** sink hand-off of the frame. A frame's end-to-end
///   value is final when every recorder has handed it off, or, if some sink dropped it, when its slot in a
///   4096-frame table is reused (~41 s at a 10 ms hop).
///
/// `capture` and `dsp` are read from the frames by the tracker's own bus consumer (thread `es-latency`);
/// frames without stamps (offline analysis: `dspStartNs == 0`) are skipped. Nothing here runs on the capture
/// or DSP thread. A frame over its stage budget increments the stage's counter; the warnings are summarised:
/// `budget exceeded stage=… frames=N worst_ms=… budget_ms=… interval_s=… over_budget_total=T`, at once for the
/// first overrun after a quiet interval, then at most one line per stage per ``Configuration/warnIntervalSeconds``
/// with the number of frames over budget in it and the worst.
public final class LatencyTracker: ConfigurableSink, @unchecked Sendable {
    /// Mirrors the daemon's `budgets.*` section (milliseconds, `nil` = no budget).
    public struct Configuration: Sendable, Equatable {
        public var captureMs: Double?
        public var dspMs: Double?
        /// Applies to every `sink:<name>` stage.
        public var sinksMs: Double?
        public var endToEndMs: Double?
        /// Minimum seconds between two over-budget warnings for the same stage.
        public var warnIntervalSeconds: Double

        /// Defaults hold on a healthy box (measured on a loaded 2-core box, file-plugin capture: DSP max 2 ms,
        /// sink hand-off max 8.6 ms, end to end p50 89 ms — the device's own buffering): a frame's DSP must fit
        /// in one 10 ms hop, a sink hand-off in 50 ms, end to end in `capture.max_backlog_ms` (250 ms).
        public init(captureMs: Double? = nil, dspMs: Double? = 10, sinksMs: Double? = 50, endToEndMs: Double? = 250,
                    warnIntervalSeconds: Double = 10) {
            self.captureMs = captureMs; self.dspMs = dspMs; self.sinksMs = sinksMs; self.endToEndMs = endToEndMs
            self.warnIntervalSeconds = warnIntervalSeconds
        }
    }

    /// The standard upper bounds (seconds) of the `earshot_stage_latency_seconds` histogram buckets; a tracker
    /// adds its budgets (``bucketBounds(for:)``).
    public static let standardBucketBoundsSeconds: [Double] = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
    ]

    /// The standard bounds plus every budget of `c` (seconds, sorted, unique): a budget is a bucket edge, so
    /// `_bucket{le="<budget>"}` counts exactly the frames within it.
    public static func bucketBounds(for c: Configuration) -> [Double] {
        let budgets = [c.captureMs, c.dspMs, c.sinksMs, c.endToEndMs].compactMap { $0 }.map { $0 / 1000 }
        var out: [Double] = []
        for b in (standardBucketBoundsSeconds + budgets).sorted() where b > 0 && b.isFinite {
            if let last = out.last, abs(last - b) <= last * 1e-9 { continue }
            out.append(b)
        }
        return out
    }

    /// This tracker's bucket upper bounds (seconds): fixed when it is made (from the budgets in force then).
    public var bucketBoundsSeconds: [Double] { shared.bucketBoundsSeconds }

    public let name = "latency"
    public var configSection: String { "budgets" }
    /// Budgets and the warning interval apply live (the histogram's bucket edges stay those of the start).
    public func applyLive(_ new: Configuration) -> Bool { update(configuration: new); return true }
    let shared: LatencyShared
    let _configuration: Mutex<Configuration>

    /// The `capture`, `dsp` and `end_to_end` recorders.
    public let captureStage: StageRecorder
    public let dspStage: StageRecorder
    public let endToEndStage: StageRecorder
    let sinkRecorders = Mutex<[StageRecorder]>([])

    /// Only counts and warns: twice a second is enough (its own hand-off is counted from when a drain was due).
    let reader = BusReader(threadName: "es-latency", delivery: .batch(intervalMilliseconds: 500))

    /// - Parameters:
    ///   - configuration: budgets.
    ///   - logger: receives the over-budget warnings.
    public init(configuration: Configuration = Configuration(), logger: Logger) {
        shared = LatencyShared(logger: logger, bucketBoundsSeconds: Self.bucketBounds(for: configuration))
        _configuration = Mutex(configuration)
        captureStage = StageRecorder(stage: "capture", budgetKind: .capture, shared: shared)
        dspStage = StageRecorder(stage: "dsp", budgetKind: .dsp, shared: shared)
        endToEndStage = StageRecorder(stage: "end_to_end", budgetKind: .endToEnd, shared: shared)
        shared.apply(configuration)
    }

    public var dropped: Int { reader.dropped }

    public var configuration: Configuration { _configuration.withLock { $0 } }

    /// Applies new budgets (SIGHUP reload). Thread-safe; takes effect for the next recorded value.
    public func update(configuration: Configuration) {
        _configuration.withLock { $0 = configuration }
        shared.apply(configuration)
    }

    /// A recorder for sink `name`'s hand-off (stage `sink:<name>`). Call once per sink before frames flow;
    /// every recorder made here is expected to hand off every frame for the end-to-end stage.
    public func makeRecorder(sink name: String) -> StageRecorder {
        let r = StageRecorder(stage: "sink:" + name, budgetKind: .sink, shared: shared, endToEnd: endToEndStage)
        sinkRecorders.withLock { $0.append(r) }
        shared.expectedHandOffs.add(1, ordering: .relaxed)
        return r
    }

    /// Records the `capture` and `dsp` stages of one frame (the tracker's thread; public for offline tools).
    public func recordPipelineStages(_ h: FrameHeader) {
        guard h.dspStartNs > 0, h.dspEndNs > 0 else { return }
        if h.lastSampleMonotonicNs > 0 { captureStage.record(nanoseconds: h.dspStartNs &- h.lastSampleMonotonicNs) }
        dspStage.record(nanoseconds: h.dspEndNs &- h.dspStartNs)
    }

    /// Every stage: `capture`, `dsp`, each `sink:<name>` in creation order, `end_to_end`.
    /// - Parameter resetInterval: start a new interval for the `interval` summaries.
    public func snapshot(resetInterval: Bool = false) -> LatencySnapshot {
        var stages = [captureStage.snapshot(resetInterval: resetInterval),
                      dspStage.snapshot(resetInterval: resetInterval)]
        for r in sinkRecorders.withLock({ $0 }) { stages.append(r.snapshot(resetInterval: resetInterval)) }
        stages.append(endToEndStage.snapshot(resetInterval: resetInterval))
        return LatencySnapshot(stages: stages)
    }

    /// The `stats` line: `{"type":"stats","t":…,<counters>,"latency_ms":{"dsp":{"count":…,"p50":…,"p99":…,
    /// "max":…},…},"over_budget":{"dsp":N,…}}\n`. Latency figures cover the interval since the previous
    /// call (stages without frames in it are omitted from `latency_ms`); `over_budget` totals are since
    /// start.
    /// - Parameter counters: extra integer fields, e.g. `[("frames", 1234), ("xruns", 0)]`.
    public func statsJSON(counters: [(String, Int)], health: String? = nil) -> [UInt8] {
        let snap = snapshot(resetInterval: true)
        return StatsMessage(
            t: Double(Clock.wallNanoseconds()) / 1e9,
            counters: counters.map { (name: $0.0, value: $0.1) },
            latency: snap.stages.filter { $0.interval.count > 0 }.map {
                StatsMessage.Latency(stage: $0.stage, count: $0.interval.count, p50Ms: $0.interval.p50Ms,
                                     p99Ms: $0.interval.p99Ms, maxMs: $0.interval.maxMs)
            },
            overBudget: snap.stages.map { (stage: $0.stage, count: $0.overBudget) },
            health: health
        ).line()
    }

    public func start(bus: FrameBus, stream: StreamInfo) throws {
        try reader.start(bus: bus, recorder: nil, onFrame: { [self] frame in recordPipelineStages(frame.header) },
                         afterDrain: { _ in 500 })
    }

    public func stop() { reader.stop() }
}

/// Budgets, the logger and the end-to-end hand-off table, shared by a tracker's recorders.
final class LatencyShared: Sendable {
    let logger: Logger
    /// Budgets in ns (−1 = none).
    let captureBudget = Atomic<Int64>(-1)
    let dspBudget = Atomic<Int64>(-1)
    let sinkBudget = Atomic<Int64>(-1)
    let endToEndBudget = Atomic<Int64>(-1)
    let warnInterval = Atomic<Int64>(10_000_000_000)
    /// Sinks handing off each frame (the end-to-end stage waits for this many hand-offs).
    let expectedHandOffs = Atomic<Int>(0)

    struct Slot { var seq: Int64 = -1; var maxNs: Int64 = 0; var handOffs = 0 }
    static let slotCount = 4096
    let slots = Mutex<[Slot]>(Array(repeating: Slot(), count: LatencyShared.slotCount))

    /// Upper bounds of the histogram buckets (seconds).
    let bucketBoundsSeconds: [Double]

    init(logger: Logger, bucketBoundsSeconds: [Double]) {
        self.logger = logger
        self.bucketBoundsSeconds = bucketBoundsSeconds
    }

    func apply(_ c: LatencyTracker.Configuration) {
        func ns(_ ms: Double?) -> Int64 { ms.map { Int64(($0 * 1e6).rounded()) } ?? -1 }
        captureBudget.store(ns(c.captureMs), ordering: .relaxed)
        dspBudget.store(ns(c.dspMs), ordering: .relaxed)
        sinkBudget.store(ns(c.sinksMs), ordering: .relaxed)
        endToEndBudget.store(ns(c.endToEndMs), ordering: .relaxed)
        warnInterval.store(Int64(c.warnIntervalSeconds * 1e9), ordering: .relaxed)
    }

    func budgetNanoseconds(_ kind: StageRecorder.BudgetKind) -> Int64? {
        let v = switch kind {
        case .capture: captureBudget.load(ordering: .relaxed)
        case .dsp: dspBudget.load(ordering: .relaxed)
        case .sink: sinkBudget.load(ordering: .relaxed)
        case .endToEnd: endToEndBudget.load(ordering: .relaxed)
        }
        return v < 0 ? nil : v
    }

    /// Folds one hand-off into frame `seq`'s end-to-end value.
    /// - Returns: the frame's value once all expected sinks handed it off, and the value of an unfinished
    ///   older frame whose slot this one reused (a sink dropped it).
    func handOff(seq: Int64, endToEndNs: Int64) -> (finished: Int64?, evicted: Int64?) {
        let expected = expectedHandOffs.load(ordering: .relaxed)
        return slots.withLock { slots in
            var result: (finished: Int64?, evicted: Int64?) = (nil, nil)
            let i = Int(seq & Int64(Self.slotCount - 1))
            if slots[i].seq != seq {
                if slots[i].seq >= 0 && slots[i].handOffs > 0 { result.evicted = slots[i].maxNs }
                slots[i] = Slot(seq: seq, maxNs: endToEndNs, handOffs: 0)
            }
            slots[i].handOffs += 1
            slots[i].maxNs = max(slots[i].maxNs, endToEndNs)
            if slots[i].handOffs >= expected {
                result.finished = slots[i].maxNs
                slots[i].seq = -1
            }
            return result
        }
    }
}
