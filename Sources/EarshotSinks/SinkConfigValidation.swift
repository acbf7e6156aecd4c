// Each sink's configuration owns its documented ranges and its `validate()`; the daemon's YAML schema takes
// its bounds from these `Limits` and runs these checks (under the YAML key) in check-config, --set, run and
// reload. Kept in one file so that the sinks' own files stay as they are.

/// A bad sink configuration value; ``field`` is its stable snake_case key within the section
/// (`max_clients`, `level.threshold_db`, `windows_s`).
public struct SinkConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var field: String
    public var message: String
    /// The other field of the same section a relation between two fields involves (`reconnect_initial_s`
    /// for "reconnect_max_s must be at least reconnect_initial_s"); nil for a value wrong on its own.
    public var related: String?
    public init(field: String, message: String, related: String? = nil) {
        self.field = field; self.message = message; self.related = related
    }
    public var description: String { "\(field): \(message)" }
}

/// `lower...upper` (or `(lower, upper]` when `lowerExclusive`) for a Double field.
public struct SinkRange: Sendable, Equatable {
    public var lower: Double
    public var upper: Double?
    public var lowerExclusive: Bool
    public init(_ lower: Double, _ upper: Double?, lowerExclusive: Bool = false) {
        self.lower = lower; self.upper = upper; self.lowerExclusive = lowerExclusive
    }
    public func contains(_ v: Double) -> Bool {
        v.isFinite && (lowerExclusive ? v > lower : v >= lower) && (upper.map { v <= $0 } ?? true)
    }
    func check(_ field: String, _ v: Double) throws(SinkConfigError) {
        guard contains(v) else {
            let low = lowerExclusive ? "greater than \(fmt(lower))" : "at least \(fmt(lower))"
            throw SinkConfigError(field: field, message: "\(fmt(v)) is out of range: must be \(low)" + (upper.map { " and at most \(fmt($0))" } ?? ""))
        }
    }
}

func checkRange(_ field: String, _ v: Int, _ r: ClosedRange<Int>) throws(SinkConfigError) {
    guard r.contains(v) else {
        throw SinkConfigError(field: field, message: "\(v) is out of range: must be between \(r.lowerBound) and \(r.upperBound)")
    }
}

private func fmt(_ v: Double) -> String {
    v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v)
}

extension SocketPublisher.Configuration {
    public enum Limits {
        public static let maxClients = 1...65_536
        public static let queueMessages = 1...1_048_576
        public static let stallLimitSeconds = SinkRange(0.5, 86_400)  // 1e-300 disconnected every subscriber as stalled
        public static let maxLineBytes = 256...16_777_216
        public static let maxClientsPerUID = 1...65_536
        public static let idleTimeoutSeconds = SinkRange(0, 86_400, lowerExclusive: true)
        public static let queueBytes = 65_536...1_073_741_824
        public static let queueBytesTotal = 65_536...4_294_967_296
        /// Seconds of `rolling` lines kept (`rolling.backfill_s`).
        public static let backfillSeconds = SinkRange(0, 86_400)
        /// sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
        public static let maxPathBytes = 107
    }

    /// Checks every field; the field keys are those of `socket.*` (`backfill_s` is `rolling.backfill_s`).
    public func validate() throws(SinkConfigError) {
        guard path.hasPrefix("/"), !path.hasSuffix("/") else {
            throw SinkConfigError(field: "path", message: "\"\(path)\" must be an absolute path of a file")
        }
        guard path.utf8.count <= Limits.maxPathBytes else {
            throw SinkConfigError(field: "path", message: "\(path.utf8.count) bytes long; a Unix socket path must be at most \(Limits.maxPathBytes) bytes")
        }
        guard mode <= 0o777 else {
            throw SinkConfigError(field: "mode", message: "only permission bits (at most 0777) are allowed")
        }
        if let group, group.isEmpty || group.contains(where: { $0.isWhitespace || $0 == ":" }) {
            throw SinkConfigError(field: "group", message: "\"\(group)\" is not a valid group name")
        }
        try checkRange("max_clients", maxClients, Limits.maxClients)
        try checkRange("queue_messages", queueMessages, Limits.queueMessages)
        try Limits.stallLimitSeconds.check("stall_limit_s", stallLimitSeconds)
        try checkRange("max_line_bytes", maxLineBytes, Limits.maxLineBytes)
        try checkRange("max_clients_per_uid", maxClientsPerUID, Limits.maxClientsPerUID)
        try Limits.idleTimeoutSeconds.check("idle_timeout_s", idleTimeoutSeconds)
        try checkRange("queue_bytes", queueBytes, Limits.queueBytes)
        try checkRange("queue_bytes_total", queueBytesTotal, Limits.queueBytesTotal)
        try Limits.backfillSeconds.check("backfill_s", backfillSeconds)
    }
}

extension RollingAggregator.Configuration {
    public enum Limits {
        public static let windowCount = 1...16
        /// Each window, seconds: from 0.1 s (ten default hops; shorter ones rounded to 0 ns and trapped the
        /// rolling thread, attack run) to a day.
        public static let windowSeconds = SinkRange(0.1, 86_400)
    }

    /// Windows: 1 to 16, each in [0.1, 86400] s, strictly increasing (field `windows_s`).
    public func validate() throws(SinkConfigError) {
        guard !windowsSeconds.isEmpty else { throw SinkConfigError(field: "windows_s", message: "must list at least one window") }
        guard Limits.windowCount.contains(windowsSeconds.count) else {
            throw SinkConfigError(field: "windows_s", message: "\(windowsSeconds.count) windows; at most \(Limits.windowCount.upperBound) are allowed")
        }
        var previous = 0.0
        for w in windowsSeconds {
            guard Limits.windowSeconds.contains(w) else {
                throw SinkConfigError(field: "windows_s", message: "window \(fmt(w)) is out of range: must be at least 0.1 and at most 86400 seconds")
            }
            guard w > previous else {
                throw SinkConfigError(field: "windows_s", message: "windows must be strictly increasing: \(fmt(w)) follows \(fmt(previous))")
            }
            previous = w
        }
    }
}

extension AlertSink.Configuration {
    public enum Limits {
        public static let thresholdDB = SinkRange(-300, 300)
        public static let durationMs = SinkRange(0, 3_600_000)
        public static let hysteresisDB = SinkRange(0, 200)
        public static let minStrength = SinkRange(0, nil)
        public static let maxPerMinute = 0...60_000
    }

    /// Checks every field; keys as under `alerts.` (`level.threshold_db`, `onset.max_per_minute`).
    public func validate() throws(SinkConfigError) {
        try Limits.thresholdDB.check("level.threshold_db", level.thresholdDB)
        try Limits.durationMs.check("level.min_duration_ms", level.minDurationMs)
        try Limits.hysteresisDB.check("level.hysteresis_db", level.hysteresisDB)
        try Limits.durationMs.check("level.rearm_ms", level.rearmMs)
        try Limits.minStrength.check("onset.min_strength", onset.minStrength)
        try Limits.durationMs.check("onset.min_interval_ms", onset.minIntervalMs)
        try checkRange("onset.max_per_minute", onset.maxPerMinute, Limits.maxPerMinute)
    }
}

extension MetricsSink.Configuration {
    public enum Limits {
        public static let textfileIntervalSeconds = SinkRange(0.005, 86_400)  // 1e-300 rewrote the file in a tight loop (attack run)
        /// Constant labels besides `instance` and `device` (`metrics.labels`), and the bytes of each value.
        public static let constantLabels = 16
        public static let labelValueBytes = 256
    }

    /// Checks every field; keys as under `metrics.`.
    public func validate() throws(SinkConfigError) {
        if let textfile, !textfile.hasPrefix("/") || textfile.hasSuffix("/") {
            throw SinkConfigError(field: "textfile", message: "\"\(textfile)\" must be an absolute path of a file")
        }
        try Limits.textfileIntervalSeconds.check("textfile_interval_s", textfileIntervalSeconds)
        if enabled, listen == nil, textfile == nil {
            throw SinkConfigError(field: "enabled", message: "true, but neither metrics.listen nor metrics.textfile is set")
        }
        let others = constantLabels.keys.filter { $0 != "instance" && $0 != "device" }.count
        guard others <= Limits.constantLabels else {
            throw SinkConfigError(field: "labels", message: "\(others) labels; at most \(Limits.constantLabels) besides instance and device are allowed")
        }
        for (name, value) in constantLabels.sorted(by: { $0.key < $1.key }) {
            guard Self.isLabelName(name), !name.hasPrefix("__") else {
                throw SinkConfigError(field: "labels", message: "label name \"\(name)\" must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __")
            }
            guard !Self.reservedLabels.contains(name) else {
                throw SinkConfigError(field: "labels", message: "label \(name) is one earshot's series already use")
            }
            guard value.utf8.count <= Limits.labelValueBytes else {
                throw SinkConfigError(field: "labels", message: "the value of label \(name) must be at most \(Limits.labelValueBytes) bytes")
            }
        }
    }
}

extension LatencyTracker.Configuration {
    public enum Limits {
        /// Each budget, milliseconds (nil = none).
        public static let budgetMs = SinkRange(0, 60_000, lowerExclusive: true)
        public static let warnIntervalSeconds = SinkRange(1, 86_400)  // 0 logged every overrun (thousands of lines a second)
    }

    /// Checks every field; keys as under `budgets.`.
    public func validate() throws(SinkConfigError) {
        for (field, value) in [("capture_ms", captureMs), ("dsp_ms", dspMs), ("sinks_ms", sinksMs), ("end_to_end_ms", endToEndMs)] {
            if let value { try Limits.budgetMs.check(field, value) }
        }
        try Limits.warnIntervalSeconds.check("warn_interval_s", warnIntervalSeconds)
    }
}
