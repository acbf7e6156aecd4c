/// Reading server messages back (clients and tests): ``decode(_:)`` is the inverse of each message's
/// encoder, so `decode(parse(m.line())) == m` up to the wire precision, and a message that carries a key the
/// encoder would not write, or lacks one it would, is refused.
public struct DecodeError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Reads the members of one object, remembering which were read (so unknown keys can be reported).
public struct MessageReader {
    public let object: [String: ProtocolJSON]
    private(set) var read: Set<String> = ["type"]

    public init(_ json: ProtocolJSON, type: String) throws(DecodeError) {
        guard case .object(let o) = json else { throw DecodeError("not an object") }
        guard o["type"]?.stringValue == type else { throw DecodeError("type is not '\(type)'") }
        object = o
    }

    mutating func value(_ key: String) throws(DecodeError) -> ProtocolJSON {
        read.insert(key)
        guard let v = object[key] else { throw DecodeError("'\(key)' is missing") }
        return v
    }
    mutating func optional(_ key: String) -> ProtocolJSON? { read.insert(key); return object[key] }

    mutating func string(_ key: String) throws(DecodeError) -> String {
        guard let s = try value(key).stringValue else { throw DecodeError("'\(key)' is not a string") }
        return s
    }
    mutating func int(_ key: String) throws(DecodeError) -> Int {
        guard let i = try value(key).intValue, let v = Int(exactly: i) else { throw DecodeError("'\(key)' is not an integer") }
        return v
    }
    mutating func int64(_ key: String) throws(DecodeError) -> Int64 {
        guard let i = try value(key).intValue else { throw DecodeError("'\(key)' is not an integer") }
        return i
    }
    /// A number, or `null` (a non-finite value on the wire) read as NaN.
    mutating func double(_ key: String) throws(DecodeError) -> Double {
        let v = try value(key)
        if v == .null { return .nan }
        guard let d = v.doubleValue else { throw DecodeError("'\(key)' is not a number") }
        return d
    }
    mutating func bool(_ key: String) throws(DecodeError) -> Bool {
        guard let b = try value(key).boolValue else { throw DecodeError("'\(key)' is not a boolean") }
        return b
    }
    mutating func strings(_ key: String) throws(DecodeError) -> [String] {
        guard let a = try value(key).arrayValue else { throw DecodeError("'\(key)' is not an array") }
        var out: [String] = []
        for item in a {
            guard let s = item.stringValue else { throw DecodeError("'\(key)' must hold strings") }
            out.append(s)
        }
        return out
    }
    mutating func doubles(_ key: String) throws(DecodeError) -> [Double] {
        guard let a = try value(key).arrayValue else { throw DecodeError("'\(key)' is not an array") }
        var out: [Double] = []
        for item in a {
            if item == .null { out.append(.nan); continue }
            guard let d = item.doubleValue else { throw DecodeError("'\(key)' must hold numbers") }
            out.append(d)
        }
        return out
    }
    func streams(_ names: [String]) throws(DecodeError) -> Set<StreamKind> {
        var out = Set<StreamKind>()
        for n in names {
            guard let k = StreamKind(rawValue: n) else { throw DecodeError("unknown stream '\(n)'") }
            out.insert(k)
        }
        return out
    }
    func features(_ names: [String]) throws(DecodeError) -> Set<Feature> {
        var out = Set<Feature>()
        for n in names {
            guard let f = Feature(rawValue: n) else { throw DecodeError("unknown feature '\(n)'") }
            out.insert(f)
        }
        return out
    }

    /// Throws when the object has keys nobody read.
    public func finish() throws(DecodeError) {
        let extra = Set(object.keys).subtracting(read)
        if !extra.isEmpty { throw DecodeError("unknown keys: \(extra.sorted().joined(separator: ", "))") }
    }
}

/// A server message decoded from its JSON (see ``decodeServerMessage(_:)``).
public protocol DecodableServerMessage: ServerMessage {
    init(reading r: inout MessageReader) throws(DecodeError)
}

extension DecodableServerMessage {
    /// Decodes `json`; refuses a missing or mistyped member and any unknown key.
    public static func decode(_ json: ProtocolJSON) throws(DecodeError) -> Self {
        var r = try MessageReader(json, type: type)
        let m = try Self(reading: &r)
        try r.finish()
        return m
    }
}

/// Every message type the server sends, by `type` (`frame` and `onset` excepted: see ``FrameMessage``).
public let decodableServerMessages: [String: any DecodableServerMessage.Type] = [
    HelloMessage.type: HelloMessage.self, RollingMessage.type: RollingMessage.self, AlertMessage.type: AlertMessage.self,
    HealthMessage.type: HealthMessage.self, ClipMessage.type: ClipMessage.self,
    StatusMessage.type: StatusMessage.self, StatsMessage.type: StatsMessage.self,
    SubscribedMessage.type: SubscribedMessage.self, UnsubscribedMessage.type: UnsubscribedMessage.self,
    PongMessage.type: PongMessage.self, DroppedMessage.type: DroppedMessage.self, ErrorMessage.type: ErrorMessage.self,
    SpectrumMessage.type: SpectrumMessage.self,
]

/// Decodes a server message by its `type`.
public func decodeServerMessage(_ json: ProtocolJSON) throws(DecodeError) -> any DecodableServerMessage {
    guard let type = json["type"]?.stringValue else { throw DecodeError("no 'type'") }
    guard let t = decodableServerMessages[type] else { throw DecodeError("no decoder for type '\(type)'") }
    return try t.decode(json)
}

extension HelloMessage: DecodableServerMessage {
    public init(reading r: inout MessageReader) throws(DecodeError) {
        guard try r.int("protocol") == protocolVersion else { throw DecodeError("unsupported protocol") }
        let levelUnit = try r.string("level_unit")
        var features = Set<Feature>()
        guard let list = try r.value("features").arrayValue else { throw DecodeError("'features' is not an array") }
        for item in list {
            var f = try MessageReader(item.objectValue.map { .object($0.merging(["type": .string("feature")]) { a, _ in a }) } ?? .null, type: "feature")
            let name = try f.string("name")
            guard let feature = Feature(rawValue: name) else { throw DecodeError("unknown feature '\(name)'") }
            guard try f.string("unit") == feature.unit(levelUnit: levelUnit) else { throw DecodeError("wrong unit for '\(name)'") }
            guard try f.string("summary") == feature.summary else { throw DecodeError("wrong summary for '\(name)'") }
            try f.finish()
            features.insert(feature)
        }
        guard try r.streams(r.strings("streams")) == Set(StreamKind.allCases) else { throw DecodeError("'streams' is not every stream") }
        var l = try MessageReader(r.value("limits").objectValue.map { .object($0.merging(["type": .string("limits")]) { a, _ in a }) } ?? .null, type: "limits")
        let limits = try Limits(
            maxLineBytes: l.int("max_line_bytes"), queueMessages: l.int("queue_messages"), queueBytes: l.int("queue_bytes"),
            stallLimitSeconds: l.double("stall_limit_s"), backfillSeconds: l.double("backfill_s"), maxClients: l.int("max_clients"),
            maxClientsPerUID: l.int("max_clients_per_uid"), queueBytesTotal: l.int("queue_bytes_total"),
            idleTimeoutSeconds: l.double("idle_timeout_s"))
        try l.finish()
        self.init(
            daemonVersion: try r.string("daemon_version"), sampleRate: try r.int("sample_rate"), nFFT: try r.int("n_fft"),
            hop: try r.int("hop"), nMels: try r.int("n_mels"), nMFCC: try r.int("n_mfcc"),
            melBandEdgesHz: try r.doubles("mel_band_edges_hz"), levelUnit: levelUnit, device: try r.string("device"),
            onsetLookAheadMs: try r.double("onset_lookahead_ms"), features: features, limits: limits)
        if let h = r.optional("health") {
            guard let text = h.stringValue else { throw DecodeError("'health' is not a string") }
            health = text
        }
        if let c = r.optional("calibration") {
            var cr = try MessageReader(c.objectValue.map { .object($0.merging(["type": .string("calibration")]) { a, _ in a }) } ?? .null, type: "calibration")
            calibration = try CalibrationInfo(reading: &cr)
        }
    }
}

extension RollingMessage: DecodableServerMessage {
    public init(reading r: inout MessageReader) throws(DecodeError) {
        self.init(
            windowSeconds: try r.double("window_s"), t: try r.double("t"), tEnd: try r.double("t_end"),
            seqFirst: try r.int64("seq_first"), seqLast: try r.int64("seq_last"), frames: try r.int("frames"),
            complete: try r.bool("complete"), levelUnit: try r.string("level_unit"), weighting: try r.string("weighting"),
            leq: try r.double("leq"), lmax: try r.double("lmax"), lmin: try r.double("lmin"), l10: try r.double("l10"),
            l50: try r.double("l50"), l90: try r.double("l90"), onsets: try r.int("onsets"),
            discontinuities: try r.int("discontinuities"), centroidHzMean: try r.double("centroid_hz_mean"),
            logmelMean: try r.doubles("logmel_mean"))
        if r.optional("laeq") != nil {
            levels = RollingLevels(
                laeq: try r.double("laeq"), lceq: try r.double("lceq"), lzeq: try r.double("lzeq"),
                lafmax: try r.double("lafmax"), lafmin: try r.double("lafmin"), lasmax: try r.double("lasmax"),
                lcpeak: try r.double("lcpeak"), samples: try r.int("level_samples"))
        }
        if let b = r.optional("bands") {
            var br = try MessageReader(b.objectValue.map { .object($0.merging(["type": .string("bands")]) { a, _ in a }) } ?? .null, type: "bands")
            let bands = RollingBands(kind: try br.string("kind"), centerHz: try br.doubles("center_hz"), leq: try br.doubles("leq"))
            try br.finish()
            guard bands.centerHz.count == bands.leq.count else { throw DecodeError("'bands': center_hz and leq differ in length") }
            self.bands = bands
        }
    }
}

extension AlertMessage: DecodableServerMessage {
    public init(reading r: inout MessageReader) throws(DecodeError) {
        switch try r.string("alert") {
        case "level":
            guard let state = LevelState(rawValue: try r.string("state")) else { throw DecodeError("unknown level state") }
            let duration = r.optional("duration_s")?.doubleValue
            let max = r.optional("max_db")?.doubleValue
            guard (duration == nil) == (state == .start), (max == nil) == (state == .start) else {
                throw DecodeError("'duration_s'/'max_db' come with state 'end' only")
            }
            let selDb = r.optional("sel_db")?.doubleValue
            let sel = r.optional("sel")?.stringValue
            guard (selDb == nil) == (sel == nil), selDb == nil || state == .end else {
                throw DecodeError("'sel_db' and 'sel' come together, with state 'end' only")
            }
            let reason = r.optional("reason")?.stringValue
            guard reason == nil || state == .end else { throw DecodeError("'reason' comes with state 'end' only") }
            self = .level(state: state, levelDb: try r.double("level_db"), thresholdDb: try r.double("threshold_db"),
                          t: try r.double("t"), seq: try r.int64("seq"), decidedSeq: try r.int64("decided_seq"),
                          durationSeconds: duration, maxDb: max, weighting: try r.string("weighting"), selDb: selDb, sel: sel,
                          reason: reason)
        case "onset":
            self = .onset(strength: try r.double("strength"), t: try r.double("t"), seq: try r.int64("seq"),
                          suppressed: try r.int("suppressed"))
        case "onset_summary":
            self = .onsetSummary(suppressed: try r.int("suppressed"), emitted: try r.int("emitted"),
                                 periodSeconds: try r.double("period_s"), t: try r.double("t"))
        case let other:
            throw DecodeError("unknown alert '\(other)'")
        }
    }
}

extension StatusMessage: DecodableServerMessage {
    public init(reading r: inout MessageReader) throws(DecodeError) {
        let event: Event
        switch try r.string("event") {
        case "device_lost":
            guard let e = Int32(exactly: try r.int("errno")) else { throw DecodeError("'errno' out of range") }
            event = .deviceLost(error: try r.string("error"), errno: e)
        case "device_recovered": event = .deviceRecovered(downSeconds: try r.double("down_s"), reconnects: try r.int("reconnects"))
        case "xrun": event = .xrun(xruns: try r.int("xruns"), suppressed: try r.int("suppressed"))
        case "discontinuity":
            event = .discontinuity(count: try r.int("count"), total: try r.int("total"), ringOverrunSamples: try r.int("ring_overrun_samples"))
        case "reload":
            let changed = r.optional("changed")
            let rebuilt = r.optional("rebuilt")
            guard changed == nil || changed?.intValue != nil, rebuilt == nil || rebuilt == .bool(true) else {
                throw DecodeError("'changed' must be an integer, 'rebuilt' true")
            }
            event = .reload(changed: changed?.intValue.map { Int($0) }, rebuilt: rebuilt != nil, plan: try r.string("plan"), failedSinks: try r.strings("failed_sinks"))
        case "sink_failed":
            event = .sinkFailed(sink: try r.string("sink"), error: try r.string("error"), failures: try r.int("failures"))
        case "samples_sanitized": event = .samplesSanitized(nonfinite: try r.int("nonfinite"), clamped: try r.int("clamped"))
        case let other: throw DecodeError("unknown status event '\(other)'")
        }
        self.init(event, t: try r.double("t"), device: try r.string("device"))
    }
}

extension StatsMessage: DecodableServerMessage {
    public init(reading r: inout MessageReader) throws(DecodeError) {
        let t = try r.double("t")
        guard let latencyObject = try r.value("latency_ms").objectValue, let overObject = try r.value("over_budget").objectValue else {
            throw DecodeError("'latency_ms' and 'over_budget' must be objects")
        }
        var latency: [Latency] = []
        for stage in latencyObject.keys.sorted() {
            var s = try MessageReader(.object(latencyObject[stage]!.objectValue?.merging(["type": .string("stage")]) { a, _ in a } ?? [:]), type: "stage")
            latency.append(Latency(stage: stage, count: try s.int("count"), p50Ms: try s.double("p50"), p99Ms: try s.double("p99"),
                                   maxMs: try s.double("max")))
            try s.finish()
        }
        var over: [(stage: String, count: Int)] = []
        for stage in overObject.keys.sorted() {
            guard let n = overObject[stage]!.intValue else { throw DecodeError("'over_budget.\(stage)' is not an integer") }
            over.append((stage, Int(n)))
        }
        // Counters: every other integer member, in key order (the wire order is not kept by the parser).
        var counters: [(name: String, value: Int)] = []
        var health: String?
        if let h = r.optional("health") {
            guard let text = h.stringValue else { throw DecodeError("'health' is not a string") }
            health = text
        }
        for key in r.object.keys.sorted() where !["type", "t", "latency_ms", "over_budget", "health"].contains(key) {
            counters.append((key, try r.int(key)))
        }
        self.init(t: t, counters: counters, latency: latency, overBudget: over, health: health)
    }
}

extension SubscribedMessage: DecodableServerMessage {
    public init(reading r: inout MessageReader) throws(DecodeError) {
        let fields = try r.value("fields")
        self.init(
            streams: try r.streams(r.strings("streams")), every: try r.int("every"),
            fields: fields == .null ? nil : try r.features(r.strings("fields")), backfill: try r.int("backfill"),
            id: r.optional("id"))
    }
}

extension UnsubscribedMessage: DecodableServerMessage {
    public init(reading r: inout MessageReader) throws(DecodeError) {
        self.init(streams: try r.streams(r.strings("streams")), id: r.optional("id"))
    }
}

extension PongMessage: DecodableServerMessage {
    public init(reading r: inout MessageReader) throws(DecodeError) {
        self.init(id: r.optional("id"), t: try r.double("t"))
    }
}

extension DroppedMessage: DecodableServerMessage {
    public init(reading r: inout MessageReader) throws(DecodeError) {
        guard let k = StreamKind(rawValue: try r.string("stream")) else { throw DecodeError("unknown stream") }
        self.init(count: try r.int("count"), stream: k)
    }
}

extension ProtocolError: DecodableServerMessage {
    public init(reading r: inout MessageReader) throws(DecodeError) {
        guard let code = Code(rawValue: try r.string("code")) else { throw DecodeError("unknown error code") }
        self.init(code: code, message: try r.string("message"), id: r.optional("id"))
    }
}
