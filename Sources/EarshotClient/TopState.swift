import EarshotProtocol

/// What `earshot top` knows about the daemon, built from the socket's messages (pure: no I/O, so it is
/// tested with message lines).
public struct TopState {
    /// The connection, as the screen shows it.
    public enum Connection: Equatable, Sendable {
        case connecting
        case connected
        case reconnecting(reason: String, retryIn: Double)
    }

    public var connection = Connection.connecting
    /// From `hello`.
    public var device = "?"
    public var daemonVersion = "?"
    public var sampleRate = 0
    public var hop = 0
    public var levelUnit = "dBFS"
    /// Mel band centres (Hz), from `hello.mel_band_edges_hz`.
    public var melCentresHz: [Double] = []
    /// Log-mel rows, newest first (at most ``waterfallCapacity``).
    public private(set) var waterfall: [[Float]] = []
    public let waterfallCapacity: Int
    public var laf: Double?
    public var las: Double?
    /// Highest LAF of the shown frames within ``peakHoldSeconds``.
    public private(set) var peak: Double?
    var peakTime = 0.0
    public let peakHoldSeconds: Double
    /// Last Leq per rolling window length (seconds).
    public private(set) var leq: [Double: Double] = [:]
    /// The level alert threshold (from the configuration, then from each level alert) and its weighting.
    public var threshold: Double?
    public var weighting = "laf"
    /// A level alert has started and not ended.
    public private(set) var alertActive = false
    /// The last alerts and onsets, newest first, as one line each.
    public private(set) var alerts: [String] = []
    public private(set) var onsets: [String] = []
    /// Lines for a log (alerts, onsets, status, reconnects) since the last ``takeEvents()``.
    public private(set) var events: [String] = []
    /// The counters of the last `stats` (name → value) and its `t`.
    public private(set) var counters: [(name: String, value: Int)] = []
    public private(set) var statsLine: String?
    /// `health` of `hello` or `stats`, when the daemon sends one.
    public private(set) var health: String?
    /// Messages the daemon dropped for this client (`dropped` notices).
    public private(set) var droppedForUs = 0
    /// Reconnections after the first connection.
    public var reconnects = 0
    /// Time of the newest frame.
    public private(set) var lastFrameT: Double?
    public private(set) var frames = 0

    public init(waterfallCapacity: Int = 512, peakHoldSeconds: Double = 3, threshold: Double? = nil, weighting: String = "laf") {
        self.waterfallCapacity = max(1, waterfallCapacity)
        self.peakHoldSeconds = peakHoldSeconds
        self.threshold = threshold
        self.weighting = weighting
    }

    /// Returns and forgets the event lines.
    public mutating func takeEvents() -> [String] {
        defer { events.removeAll() }
        return events
    }

    /// Notes a connection event.
    public mutating func apply(_ event: StreamConnection.Event) {
        switch event {
        case .connected(let reconnect):
            connection = .connected
            if reconnect { reconnects += 1; events.append("reconnected") }
        case .disconnected(let reason, let retryIn):
            if connection == .connected { events.append("connection lost: \(reason); reconnecting") }
            connection = .reconnecting(reason: reason, retryIn: retryIn)
            laf = nil; las = nil
        case .line(let line):
            apply(line: line)
        }
    }

    /// Applies one message line from the socket (unknown or malformed lines are ignored).
    public mutating func apply(line: [UInt8]) {
        guard let parsed = try? ProtocolJSON.parse(line), let type = parsed["type"]?.stringValue else { return }
        let msg = TerminalText.safe(parsed)
        switch type {
        case HelloMessage.type:
            device = msg["device"]?.stringValue ?? device
            daemonVersion = msg["daemon_version"]?.stringValue ?? daemonVersion
            sampleRate = msg["sample_rate"]?.intValue.map { Int($0) } ?? sampleRate
            hop = msg["hop"]?.intValue.map { Int($0) } ?? hop
            levelUnit = msg["level_unit"]?.stringValue ?? levelUnit
            if let edges = msg["mel_band_edges_hz"]?.arrayValue?.compactMap(\.doubleValue), edges.count >= 3 {
                melCentresHz = Array(edges.dropFirst().dropLast())
            }
            waterfall.removeAll()
            if let h = msg["health"] { health = Self.healthText(h) }
        case FrameMessage.type:
            frames += 1
            let t = msg["t"]?.doubleValue ?? 0
            lastFrameT = t
            laf = msg["laf"]?.doubleValue.map { Double(Self.sanitizedDb($0)) }
            las = msg["las"]?.doubleValue.map { Double(Self.sanitizedDb($0)) }
            if let v = laf {
                if peak == nil || v >= peak! || t - peakTime > peakHoldSeconds { peak = v; peakTime = t }
            }
            if let row = msg["logmel"]?.arrayValue {
                waterfall.insert(row.map { Self.sanitizedDb($0.doubleValue) }, at: 0)
                if waterfall.count > waterfallCapacity { waterfall.removeLast() }
            }
        case OnsetMessage.type:
            let line = "\(TailClient.LiveView.clock(msg["t"]?.doubleValue ?? 0))  onset strength \(TailClient.LiveView.format(msg["strength"]?.doubleValue ?? 0, 1))"
            onsets.insert(line, at: 0)
            if onsets.count > 8 { onsets.removeLast() }
            events.append(line)
        case RollingMessage.type:
            if let w = msg["window_s"]?.doubleValue, w.isFinite, let v = msg["leq"]?.doubleValue, leq.count < 16 || leq[w] != nil {
                leq[w] = Double(Self.sanitizedDb(v))
            }
        case AlertMessage.type:
            let kind = msg["alert"]?.stringValue ?? "?"
            let state = msg["state"]?.stringValue
            if kind == "level" {
                if let th = msg["threshold_db"]?.doubleValue { threshold = Double(Self.sanitizedDb(th)) }
                if let w = msg["weighting"]?.stringValue { weighting = w }
                alertActive = state == "start"
            }
            var text = "\(TailClient.LiveView.clock(msg["t"]?.doubleValue ?? 0))  \(kind)\(state.map { " " + $0 } ?? "")"
            if let l = msg["level_db"]?.doubleValue { text += " \(TailClient.LiveView.format(l, 1)) \(levelUnit)" }
            if let s = msg["strength"]?.doubleValue { text += " strength \(TailClient.LiveView.format(s, 1))" }
            if let d = msg["duration_s"]?.doubleValue { text += " for \(TailClient.LiveView.format(d, 1)) s" }
            alerts.insert(text, at: 0)
            if alerts.count > 8 { alerts.removeLast() }
            events.append("alert " + text)
        case StatsMessage.type:
            if case .object(let o) = msg {
                counters = o.keys.sorted().compactMap { k in o[k]!.intValue.map { (k, Int($0)) } }
            }
            statsLine = StatsText.summary(msg)
            if let h = msg["health"] { health = Self.healthText(h) } else if let h = StatsText.health(msg) { health = h }
        case StatusMessage.type:
            events.append("status \(msg["event"]?.stringValue ?? "?")")
        case DroppedMessage.type:
            droppedForUs &+= Int(msg["count"]?.intValue ?? 0)
        case HealthMessage.type:
            // An input-health fault starting or ending (on the `alert` stream): `active` is the whole state.
            if let active = msg["active"]?.arrayValue {
                let kinds = active.compactMap(\.stringValue)
                health = kinds.isEmpty ? "ok" : kinds.joined(separator: ",")
            }
            let kind = msg["kind"]?.stringValue ?? "?", state = msg["state"]?.stringValue ?? "?"
            let text = "\(TailClient.LiveView.clock(msg["t"]?.doubleValue ?? 0))  health \(kind) \(state)"
            alerts.insert(text, at: 0)
            if alerts.count > 8 { alerts.removeLast() }
            events.append("alert " + text)
        default:
            break
        }
    }

    /// A dB value from the socket as the views use it: missing or `null` (non-finite) → −200 (the analyzer's
    /// floor), anything else clamped to ±1000 dB, so no value from the wire can break the scales.
    public static func sanitizedDb(_ v: Double?) -> Float {
        guard let v, v.isFinite else { return -200 }
        return Float(min(1000, max(-1000, v)))
    }

    /// A counter of the last `stats` (0 when absent).
    public func counter(_ name: String) -> Int { counters.first { $0.name == name }?.value ?? 0 }

    /// Frames the daemon's sinks dropped (`dropped_frames_*`) plus messages dropped for socket clients.
    public var droppedTotal: Int {
        counters.filter { $0.name.hasPrefix("dropped_frames_") }.reduce(0) { $0 &+ $1.value } &+ counter("socket_dropped_messages")
    }

    /// `health` as a short text: its `state`/`status` member when it is an object, the value otherwise.
    static func healthText(_ h: ProtocolJSON) -> String {
        if let s = h.stringValue { return s }
        if let o = h.objectValue {
            if let s = (o["state"] ?? o["status"])?.stringValue {
                let issues = (o["issues"] ?? o["conditions"])?.arrayValue?.compactMap(\.stringValue) ?? []
                return issues.isEmpty ? s : "\(s) (\(issues.joined(separator: ", ")))"
            }
        }
        return String(h.jsonText.prefix(60))
    }
}

/// `stats` as one readable line (for `earshot tail` and `earshot top`).
public enum StatsText {
    /// `frames 1004  xruns 0  reconnects 0  gaps 0  subscribers 1  dropped 0  alerts 1/3  dsp p99 0.035 ms  end-to-end p99 2.4 ms  over budget 0`,
    /// followed by any other non-zero counter and the health when present.
    public static func summary(_ msg: ProtocolJSON) -> String {
        guard case .object(let o) = msg else { return "" }
        func n(_ k: String) -> Int { Int(o[k]?.intValue ?? 0) }
        let shown: Set<String> = ["frames", "xruns", "reconnects", "discontinuities", "subscribers", "level_alerts", "onset_alerts",
                                  "socket_dropped_messages"]
        let dropped = o.keys.filter { $0.hasPrefix("dropped_frames_") }.reduce(0) { $0 &+ n($1) }
        var parts = ["frames \(n("frames"))", "xruns \(n("xruns"))", "reconnects \(n("reconnects"))", "gaps \(n("discontinuities"))",
                     "subscribers \(n("subscribers"))", "dropped \(dropped) frames/\(n("socket_dropped_messages")) msgs",
                     "alerts \(n("level_alerts")) level/\(n("onset_alerts")) onset"]
        if let lat = o["latency_ms"]?.objectValue {
            for stage in ["dsp", "end_to_end"] {
                if let p99 = lat[stage]?["p99"]?.doubleValue {
                    parts.append("\(stage == "dsp" ? "dsp" : "end-to-end") p99 \(TailClient.LiveView.format(p99, 2)) ms")
                }
            }
        }
        if let over = o["over_budget"]?.objectValue {
            parts.append("over budget \(over.values.reduce(0) { $0 &+ Int($1.intValue ?? 0) })")
        }
        for k in o.keys.sorted() where !shown.contains(k) && !k.hasPrefix("dropped_frames_") && !Self.isHealthFlag(k) {
            if let v = o[k]?.intValue, v != 0, k != "t", k != "connections_total" { parts.append("\(k) \(v)") }
        }
        if let h = o["health"] { parts.append("health \(TopState.healthText(h))") } else if let h = health(msg) { parts.append("health \(h)") }
        return parts.joined(separator: "  ")
    }

    /// `health_<kind>` (1 while the fault is active), not `health_events_<kind>`.
    static func isHealthFlag(_ key: String) -> Bool { key.hasPrefix("health_") && !key.hasPrefix("health_events_") }

    /// The input health from the `health_<kind>` counters of `stats`: `ok`, or the active kinds joined by
    /// commas; nil when the daemon does not judge health.
    public static func health(_ msg: ProtocolJSON) -> String? {
        guard case .object(let o) = msg else { return nil }
        let flags = o.keys.filter(isHealthFlag).sorted()
        guard !flags.isEmpty else { return nil }
        let active = flags.filter { o[$0]?.intValue == 1 }.map { String($0.dropFirst("health_".count)) }
        return active.isEmpty ? "ok" : active.joined(separator: ",")
    }
}
