/// A message the daemon sends on the socket: one JSON object on one line, `type` first.
///
/// Implementation requirements: `type` is unique among the messages; ``encodeMembers(into:)`` writes each
/// member once with ``JSONWriter/key(_:)`` or a `member` helper, never `type`, never a newline (strings are
/// escaped by the writer); a message clients read back also conforms to ``DecodableServerMessage``, whose
/// decoder accepts exactly what the encoder writes (`MessageTests` checks the round trip of each one).
/// Encoding allocates: messages are built off the capture and DSP threads.
///
/// Every wire message has exactly one type here and one encoder (``encodeMembers(into:)``, wrapped by
/// ``line()``), except `frame` and `onset`, which the per-frame encoder (`FrameEncoder` in EarshotPipeline)
/// writes without allocating; ``FrameMessage`` and ``OnsetMessage`` name their fields.
public protocol ServerMessage: Sendable {
    /// The `type` member.
    static var type: String { get }
    /// Writes the members after `type`.
    func encodeMembers(into w: inout JSONWriter)
}

extension ServerMessage {
    /// The NDJSON line, trailing `\n` included.
    public func line() -> [UInt8] {
        var w = JSONWriter(capacity: 256)
        w.beginMessage(Self.type)
        encodeMembers(into: &w)
        w.endMessage()
        return w.bytes
    }

    /// ``line()`` as text (tests, logs).
    public var text: String { String(decoding: line(), as: UTF8.self) }
}

/// Seconds with 6 decimals from nanoseconds (the `t` of replies, status and stats).
func seconds(_ ns: Int64) -> Double { Double(ns) / 1e9 }

// MARK: hello

/// Sent first on every connection and again when the stream parameters change (reload).
public struct HelloMessage: ServerMessage, Equatable {
    public static let type = "hello"

    /// The server's limits (`hello.limits`).
    public struct Limits: Sendable, Equatable {
        public var maxLineBytes: Int
        public var queueMessages: Int
        public var queueBytes: Int
        public var stallLimitSeconds: Double
        public var backfillSeconds: Double
        public var maxClients: Int
        public var maxClientsPerUID: Int
        public var queueBytesTotal: Int
        public var idleTimeoutSeconds: Double

        public init(maxLineBytes: Int, queueMessages: Int, queueBytes: Int, stallLimitSeconds: Double,
                    backfillSeconds: Double, maxClients: Int, maxClientsPerUID: Int, queueBytesTotal: Int,
                    idleTimeoutSeconds: Double) {
            self.maxLineBytes = maxLineBytes; self.queueMessages = queueMessages; self.queueBytes = queueBytes
            self.stallLimitSeconds = stallLimitSeconds; self.backfillSeconds = backfillSeconds
            self.maxClients = maxClients; self.maxClientsPerUID = maxClientsPerUID
            self.queueBytesTotal = queueBytesTotal; self.idleTimeoutSeconds = idleTimeoutSeconds
        }
    }

    public var daemonVersion: String
    public var sampleRate: Int
    public var nFFT: Int
    public var hop: Int
    public var nMels: Int
    public var nMFCC: Int
    /// `n_mels + 2` edges, 2 decimals on the wire.
    public var melBandEdgesHz: [Double]
    /// `dBFS` or `dB SPL`.
    public var levelUnit: String
    public var device: String
    /// Latency the causal onset picker adds (ms, 3 decimals).
    public var onsetLookAheadMs: Double
    /// Enabled features; listed in catalogue order with unit and summary.
    public var features: Set<Feature>
    public var limits: Limits
    /// Input health when the daemon judges it: `ok`, or the active faults joined by commas
    /// (`silence,clipping`; see ``HealthMessage``); nil (absent) with `health.enabled: false`.
    public var health: String?
    /// The microphone calibration (`levels.calibration_*`); the `calibration` member is sent only when set.
    public var calibration: CalibrationInfo? = nil

    public init(daemonVersion: String, sampleRate: Int, nFFT: Int, hop: Int, nMels: Int, nMFCC: Int,
                melBandEdgesHz: [Double], levelUnit: String, device: String, onsetLookAheadMs: Double,
                features: Set<Feature>, limits: Limits) {
        self.daemonVersion = daemonVersion; self.sampleRate = sampleRate; self.nFFT = nFFT; self.hop = hop
        self.nMels = nMels; self.nMFCC = nMFCC; self.melBandEdgesHz = melBandEdgesHz; self.levelUnit = levelUnit
        self.device = device; self.onsetLookAheadMs = onsetLookAheadMs; self.features = features; self.limits = limits
    }

    public func encodeMembers(into w: inout JSONWriter) {
        w.member("protocol", protocolVersion)
        w.member("daemon_version", daemonVersion)
        w.member("sample_rate", sampleRate)
        w.member("n_fft", nFFT)
        w.member("hop", hop)
        w.member("n_mels", nMels)
        w.member("n_mfcc", nMFCC)
        w.key("mel_band_edges_hz"); w.array(melBandEdgesHz) { w, e in w.fixed(e, decimals: 2) }
        w.member("level_unit", levelUnit)
        w.member("device", device)
        if let calibration { w.key("calibration"); calibration.encode(into: &w) }
        w.member("onset_lookahead_ms", onsetLookAheadMs, decimals: 3)
        w.key("features")
        w.array(Feature.allCases.filter { features.contains($0) }) { w, f in
            w.object { w in
                w.member("name", f.rawValue)
                w.member("unit", f.unit(levelUnit: levelUnit))
                w.member("summary", f.summary)
            }
        }
        w.member("streams", strings: StreamKind.allCases.map(\.rawValue))
        w.key("limits")
        w.object { w in
            w.member("max_line_bytes", limits.maxLineBytes)
            w.member("queue_messages", limits.queueMessages)
            w.member("queue_bytes", limits.queueBytes)
            w.member("stall_limit_s", limits.stallLimitSeconds, decimals: 3)
            w.member("backfill_s", limits.backfillSeconds, decimals: 3)
            w.member("max_clients", limits.maxClients)
            w.member("max_clients_per_uid", limits.maxClientsPerUID)
            w.member("queue_bytes_total", limits.queueBytesTotal)
            w.member("idle_timeout_s", limits.idleTimeoutSeconds, decimals: 3)
        }
        if let health { w.member("health", health) }
    }
}

// MARK: frame, onset (encoded by the per-frame encoder)

/// `{"type":"frame",...}` (stream `frame`), written by `FrameEncoder.encodeJSON` on the per-frame path.
///
/// Members, in order: `seq` (frame index since the pipeline started), `t` (capture time of the frame's first
/// sample, UNIX seconds, 6 decimals), after a gap `discontinuity: true`, `gap_samples`, `cause`
/// (``Cause``), then each enabled (or requested) feature in ``Feature`` catalogue order — scalars as numbers
/// (`null` when not finite), `logmel`/`mfcc` as arrays — then `level_unit` when a weighted level is included
/// (and `dsp_us`, `ready_ms` with `earshot run --stdout --timing`, never on the socket).
public enum FrameMessage {
    public static let type = "frame"
    public static let seq = "seq", t = "t", discontinuity = "discontinuity", gapSamples = "gap_samples"
    public static let cause = "cause", levelUnit = "level_unit"

    /// Why the frame follows a gap.
    public enum Cause: String, Sendable, CaseIterable {
        case xrun, suspend, reconnect, overrun, reload, restart
    }

    /// Every key a frame line carrying `features` may have (`type` included).
    public static func keys(features: Set<Feature>) -> Set<String> {
        Set(["type", seq, t, discontinuity, gapSamples, cause, levelUnit]).union(features.map(\.rawValue))
    }
}

/// `{"type":"onset","seq":S,"t":T,"strength":X,"delay_ms":D,"detected_seq":S2}` (stream `onset`), written
/// by `FrameEncoder.encodeOnsetJSON`. `seq`/`t` are the onset frame; it was decided while processing
/// `detected_seq`, `delay_ms` after the onset frame's first sample; `strength` has 3 decimals.
public enum OnsetMessage {
    public static let type = "onset"
    public static let keys: [String] = ["type", "seq", "t", "strength", "delay_ms", "detected_seq"]
}

// MARK: rolling

/// One completed tumbling window (stream `rolling`).
public struct RollingMessage: ServerMessage, Equatable {
    public static let type = "rolling"
    public var windowSeconds: Double
    /// Window start and end, UNIX seconds.
    public var t: Double
    public var tEnd: Double
    public var seqFirst: Int64
    public var seqLast: Int64
    public var frames: Int
    /// False when the window was cut short (gap, reload, shutdown).
    public var complete: Bool
    public var levelUnit: String
    /// The level the statistics are computed from (`laf`, `las`, …).
    public var weighting: String
    public var leq: Double, lmax: Double, lmin: Double, l10: Double, l50: Double, l90: Double
    public var onsets: Int
    public var discontinuities: Int
    public var centroidHzMean: Double
    public var logmelMean: [Double]
    /// The window's integrated levels (from every sample), when the analyzer computed levels.
    public var levels: RollingLevels?
    /// Band Leq per window, when `levels.bands` is on.
    public var bands: RollingBands?

    public init(windowSeconds: Double, t: Double, tEnd: Double, seqFirst: Int64, seqLast: Int64, frames: Int,
                complete: Bool, levelUnit: String, weighting: String, leq: Double, lmax: Double, lmin: Double,
                l10: Double, l50: Double, l90: Double, onsets: Int, discontinuities: Int, centroidHzMean: Double,
                logmelMean: [Double], levels: RollingLevels? = nil, bands: RollingBands? = nil) {
        self.levels = levels; self.bands = bands
        self.windowSeconds = windowSeconds; self.t = t; self.tEnd = tEnd; self.seqFirst = seqFirst
        self.seqLast = seqLast; self.frames = frames; self.complete = complete; self.levelUnit = levelUnit
        self.weighting = weighting; self.leq = leq; self.lmax = lmax; self.lmin = lmin; self.l10 = l10
        self.l50 = l50; self.l90 = l90; self.onsets = onsets; self.discontinuities = discontinuities
        self.centroidHzMean = centroidHzMean; self.logmelMean = logmelMean
    }

    public func encodeMembers(into w: inout JSONWriter) {
        w.key("window_s"); w.significant(windowSeconds, digits: 6)
        w.member("t", t, decimals: 6)
        w.member("t_end", tEnd, decimals: 6)
        w.member("seq_first", seqFirst)
        w.member("seq_last", seqLast)
        w.member("frames", frames)
        w.member("complete", complete)
        w.member("level_unit", levelUnit)
        w.member("weighting", weighting)
        w.member("leq", leq, decimals: 3)
        w.member("lmax", lmax, decimals: 3)
        w.member("lmin", lmin, decimals: 3)
        w.member("l10", l10, decimals: 3)
        w.member("l50", l50, decimals: 3)
        w.member("l90", l90, decimals: 3)
        w.member("onsets", onsets)
        w.member("discontinuities", discontinuities)
        w.member("centroid_hz_mean", centroidHzMean, decimals: 2)
        w.key("logmel_mean"); w.array(logmelMean) { w, v in w.fixed(v, decimals: 3) }
        if let levels {
            w.member("laeq", levels.laeq, decimals: 3)
            w.member("lceq", levels.lceq, decimals: 3)
            w.member("lzeq", levels.lzeq, decimals: 3)
            w.member("lafmax", levels.lafmax, decimals: 3)
            w.member("lafmin", levels.lafmin, decimals: 3)
            w.member("lasmax", levels.lasmax, decimals: 3)
            w.member("lcpeak", levels.lcpeak, decimals: 3)
            w.member("level_samples", levels.samples)
        }
        if let bands {
            w.key("bands")
            w.object { w in
                w.member("kind", bands.kind)
                w.key("center_hz"); w.array(bands.centerHz) { w, v in w.significant(v, digits: 6) }
                w.key("leq"); w.array(bands.leq) { w, v in w.fixed(v, decimals: 3) }
            }
        }
    }
}

/// The integrated levels of one rolling window (level unit, calibration applied), each from every sample:
/// `laeq`/`lceq`/`lzeq` = `10*log10(Σ y² / N)` of the A/C/Z-weighted samples (LAeq,T, LCeq,T, LZeq,T),
/// `lafmax`/`lafmin`/`lasmax` the largest/smallest value of the per-sample Fast/Slow A-weighted level
/// (LAFmax, LAFmin, LASmax), `lcpeak` the C-weighted peak `20*log10(max |y|)` (LCpeak); `samples` = N.
public struct RollingLevels: Sendable, Equatable {
    public var laeq: Double, lceq: Double, lzeq: Double
    public var lafmax: Double, lafmin: Double, lasmax: Double
    public var lcpeak: Double
    public var samples: Int

    public init(laeq: Double, lceq: Double, lzeq: Double, lafmax: Double, lafmin: Double, lasmax: Double,
                lcpeak: Double, samples: Int) {
        self.laeq = laeq; self.lceq = lceq; self.lzeq = lzeq; self.lafmax = lafmax; self.lafmin = lafmin
        self.lasmax = lasmax; self.lcpeak = lcpeak; self.samples = samples
    }
}

/// Band Leq of one rolling window: `kind` is `octave` or `third`, `centerHz` the nominal (IEC 61260-1 base-10
/// exact) mid-band frequencies, `leq` each band's Leq,T (Z-weighted band energy / N, level unit).
public struct RollingBands: Sendable, Equatable {
    public var kind: String
    public var centerHz: [Double]
    public var leq: [Double]

    public init(kind: String, centerHz: [Double], leq: [Double]) {
        self.kind = kind; self.centerHz = centerHz; self.leq = leq
    }
}

// MARK: alert

/// An alert (stream `alert`): a level threshold crossing, an onset, or the rate limiter's summary.
public enum AlertMessage: ServerMessage, Equatable {
    public static let type = "alert"

    public enum LevelState: String, Sendable { case start, end }

    /// `t`/`seq`: first frame at or above the threshold (start) or below `threshold − hysteresis` (end);
    /// `decidedSeq`: the frame that confirmed it. `durationSeconds`/`maxDb` only on `end`; `selDb` (`sel_db`)
    /// with `sel` (`LAE`, `LCE` or `LZE`): the sound exposure level of the alert, on `end` of a frequency-weighted
    /// level (not `rms_dbfs`). `reason` only on an `end` not decided by the level: `reconfigured` when a reload
    /// disabled level alerts or changed what the level measures (weighting, calibration, sample rate) during
    /// the alert; `t`/`seq` are then the last frame judged by the old settings (or the release start).
    case level(state: LevelState, levelDb: Double, thresholdDb: Double, t: Double, seq: Int64, decidedSeq: Int64,
               durationSeconds: Double?, maxDb: Double?, weighting: String, selDb: Double? = nil, sel: String? = nil,
               reason: String? = nil)
    /// `suppressed`: alerts the rate limit suppressed since the previous one.
    case onset(strength: Double, t: Double, seq: Int64, suppressed: Int)
    /// Once per `periodSeconds` when the rate limit suppressed something.
    case onsetSummary(suppressed: Int, emitted: Int, periodSeconds: Double, t: Double)

    public func encodeMembers(into w: inout JSONWriter) {
        switch self {
        case .level(let state, let level, let threshold, let t, let seq, let decided, let duration, let max, let weighting,
                    let selDb, let sel, let reason):
            w.member("alert", "level")
            w.member("state", state.rawValue)
            w.member("level_db", level, decimals: 1)
            w.member("threshold_db", threshold, decimals: 1)
            w.member("t", t, decimals: 3)
            w.member("seq", seq)
            w.member("decided_seq", decided)
            if let duration { w.member("duration_s", duration, decimals: 3) }
            if let max { w.member("max_db", max, decimals: 1) }
            w.member("weighting", weighting)
            if let selDb, let sel {
                w.member("sel_db", selDb, decimals: 2)
                w.member("sel", sel)
            }
            if let reason { w.member("reason", reason) }
        case .onset(let strength, let t, let seq, let suppressed):
            w.member("alert", "onset")
            w.member("strength", strength, decimals: 2)
            w.member("t", t, decimals: 3)
            w.member("seq", seq)
            w.member("suppressed", suppressed)
        case .onsetSummary(let suppressed, let emitted, let period, let t):
            w.member("alert", "onset_summary")
            w.member("suppressed", suppressed)
            w.member("emitted", emitted)
            w.member("period_s", period, decimals: 3)
            w.member("t", t, decimals: 3)
        }
    }
}

// MARK: status

/// A daemon event (stream `status`). `t` is the daemon's wall clock when it handled the event.
public struct StatusMessage: ServerMessage, Equatable {
    public static let type = "status"

    public enum Event: Sendable, Equatable {
        case deviceLost(error: String, errno: Int32)
        case deviceRecovered(downSeconds: Double, reconnects: Int)
        /// Rate limited like its log line; `suppressed` counts the others.
        case xrun(xruns: Int, suppressed: Int)
        case discontinuity(count: Int, total: Int, ringOverrunSamples: Int)
        /// `changed`: number of changed keys (nil when the pipeline was rebuilt: `rebuilt: true`); `plan`: what
        /// the reload did (`live`, `retune`, `replan`, `reopen`, `rebuild`).
        case reload(changed: Int?, rebuilt: Bool, plan: String, failedSinks: [String])
        case sinkFailed(sink: String, error: String, failures: Int)
        case samplesSanitized(nonfinite: Int, clamped: Int)

        /// The `event` member.
        public var name: String {
            switch self {
            case .deviceLost: "device_lost"
            case .deviceRecovered: "device_recovered"
            case .xrun: "xrun"
            case .discontinuity: "discontinuity"
            case .reload: "reload"
            case .sinkFailed: "sink_failed"
            case .samplesSanitized: "samples_sanitized"
            }
        }
    }

    public var event: Event
    /// UNIX seconds (6 decimals).
    public var t: Double
    public var device: String

    public init(_ event: Event, t: Double, device: String) { self.event = event; self.t = t; self.device = device }

    public func encodeMembers(into w: inout JSONWriter) {
        w.member("event", event.name)
        w.member("t", t, decimals: 6)
        w.member("device", device)
        switch event {
        case .deviceLost(let error, let errno):
            w.member("error", error); w.member("errno", Int(errno))
        case .deviceRecovered(let down, let reconnects):
            w.member("down_s", down, decimals: 3); w.member("reconnects", reconnects)
        case .xrun(let xruns, let suppressed):
            w.member("xruns", xruns); w.member("suppressed", suppressed)
        case .discontinuity(let count, let total, let overrun):
            w.member("count", count); w.member("total", total); w.member("ring_overrun_samples", overrun)
        case .reload(let changed, let rebuilt, let plan, let failed):
            if let changed { w.member("changed", changed) }
            if rebuilt { w.member("rebuilt", true) }
            w.member("plan", plan)
            w.member("failed_sinks", strings: failed)
        case .sinkFailed(let sink, let error, let failures):
            w.member("sink", sink); w.member("error", error); w.member("failures", failures)
        case .samplesSanitized(let nonfinite, let clamped):
            w.member("nonfinite", nonfinite); w.member("clamped", clamped)
        }
    }
}

// MARK: stats

/// Counters and latency percentiles (stream `stats`, every 5 s).
public struct StatsMessage: ServerMessage, Equatable {
    public static let type = "stats"

    /// One stage's latency over the interval since the previous `stats` (ms, 3 decimals).
    public struct Latency: Sendable, Equatable {
        public var stage: String
        public var count: Int
        public var p50Ms: Double, p99Ms: Double, maxMs: Double
        public init(stage: String, count: Int, p50Ms: Double, p99Ms: Double, maxMs: Double) {
            self.stage = stage; self.count = count; self.p50Ms = p50Ms; self.p99Ms = p99Ms; self.maxMs = maxMs
        }
    }

    public var t: Double
    /// Totals since start, in this order (`frames`, `xruns`, …).
    public var counters: [(name: String, value: Int)]
    /// Stages that had frames in the interval.
    public var latency: [Latency]
    /// Frames over budget per stage since start (every stage).
    public var overBudget: [(stage: String, count: Int)]
    /// Input health: `ok` or the active faults joined by commas (as in `hello`); nil without health.
    public var health: String?

    public init(t: Double, counters: [(name: String, value: Int)], latency: [Latency], overBudget: [(stage: String, count: Int)],
                health: String? = nil) {
        self.t = t; self.counters = counters; self.latency = latency; self.overBudget = overBudget; self.health = health
    }

    public static func == (a: StatsMessage, b: StatsMessage) -> Bool {
        a.t == b.t && a.latency == b.latency && a.counters.elementsEqual(b.counters, by: ==)
            && a.overBudget.elementsEqual(b.overBudget, by: ==) && a.health == b.health
    }

    public func encodeMembers(into w: inout JSONWriter) {
        w.member("t", t, decimals: 6)
        for (name, value) in counters { w.member(name, value) }
        w.key("latency_ms")
        w.object { w in
            for s in latency {
                w.key(s.stage)
                w.object { w in
                    w.member("count", s.count)
                    w.member("p50", s.p50Ms, decimals: 3)
                    w.member("p99", s.p99Ms, decimals: 3)
                    w.member("max", s.maxMs, decimals: 3)
                }
            }
        }
        w.key("over_budget")
        w.object { w in for (stage, n) in overBudget { w.member(stage, n) } }
        if let health { w.member("health", health) }
    }
}

// MARK: replies and notices

/// Reply to `subscribe`: the client's streams after the command, its `every`, its `fields` (`nil` = every
/// enabled feature), and how many rolling lines the backfill replays.
public struct SubscribedMessage: ServerMessage, Equatable {
    public static let type = "subscribed"
    public var streams: Set<StreamKind>
    public var every: Int
    public var fields: Set<Feature>?
    public var backfill: Int
    public var id: ProtocolJSON?
    public init(streams: Set<StreamKind>, every: Int, fields: Set<Feature>?, backfill: Int, id: ProtocolJSON?) {
        self.streams = streams; self.every = every; self.fields = fields; self.backfill = backfill; self.id = id
    }
    public func encodeMembers(into w: inout JSONWriter) {
        w.member("streams", strings: StreamKind.allCases.filter { streams.contains($0) }.map(\.rawValue))
        w.member("every", every)
        w.key("fields")
        if let fields { w.array(Feature.allCases.filter { fields.contains($0) }) { w, f in w.string(f.rawValue) } } else { w.null() }
        w.member("backfill", backfill)
        if let id { w.member("id", id) }
    }
}

/// Reply to `unsubscribe`: the streams left.
public struct UnsubscribedMessage: ServerMessage, Equatable {
    public static let type = "unsubscribed"
    public var streams: Set<StreamKind>
    public var id: ProtocolJSON?
    public init(streams: Set<StreamKind>, id: ProtocolJSON?) { self.streams = streams; self.id = id }
    public func encodeMembers(into w: inout JSONWriter) {
        w.member("streams", strings: StreamKind.allCases.filter { streams.contains($0) }.map(\.rawValue))
        if let id { w.member("id", id) }
    }
}

/// Reply to `ping`, with the server's wall clock (UNIX seconds, 6 decimals).
public struct PongMessage: ServerMessage, Equatable {
    public static let type = "pong"
    public var id: ProtocolJSON?
    public var t: Double
    public init(id: ProtocolJSON?, t: Double) { self.id = id; self.t = t }
    public func encodeMembers(into w: inout JSONWriter) {
        if let id { w.member("id", id) }
        w.member("t", t, decimals: 6)
    }
}

/// `count` messages of `stream` were dropped from the client's queue since the last notice.
public struct DroppedMessage: ServerMessage, Equatable {
    public static let type = "dropped"
    public var count: Int
    public var stream: StreamKind
    public init(count: Int, stream: StreamKind) { self.count = count; self.stream = stream }
    public func encodeMembers(into w: inout JSONWriter) {
        w.member("count", count)
        w.member("stream", stream.rawValue)
    }
}

/// A refused command, or the reason the server closes the connection (`ProtocolError` is its value).
public typealias ErrorMessage = ProtocolError

extension ProtocolError: ServerMessage {
    public static let type = "error"
    public func encodeMembers(into w: inout JSONWriter) {
        w.member("code", code.rawValue)
        w.member("message", message)
        if let id { w.member("id", id) }
    }
}
