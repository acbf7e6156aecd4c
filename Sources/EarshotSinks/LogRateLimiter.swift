/// Rate limit for a log line that someone outside the daemon can trigger at will (a refused connection):
/// the first occurrence is logged, then at most one line per ``intervalNs``, carrying how many occurrences
/// were not logged since the previous line. The events themselves stay counted by their metric. Pure.
public struct LogRateLimiter: Sendable {
    public let intervalNs: Int64
    var lastLogNs: Int64?
    var suppressed = 0

    public init(intervalNs: Int64 = 10_000_000_000) { self.intervalNs = intervalNs }

    /// Records one occurrence at `nowNs`: nil when it must not be logged, else the number of occurrences
    /// suppressed since the previous logged one (0 for the first).
    public mutating func admit(nowNs: Int64) -> Int? {
        if let last = lastLogNs, nowNs &- last < intervalNs {
            suppressed &+= 1
            return nil
        }
        lastLogNs = nowNs
        defer { suppressed = 0 }
        return suppressed
    }
}

/// ``LogRateLimiter`` per distinct line (e.g. libasound's error lines, which a misbehaving device repeats
/// hundreds of times a second): each line's first occurrence is logged, then at most one per interval.
/// At most `maxKeys` lines are tracked; beyond that the table starts over (libasound has few messages).
public struct KeyedLogRateLimiter: Sendable {
    public let intervalNs: Int64
    public let maxKeys: Int
    var limiters: [String: LogRateLimiter] = [:]

    public init(intervalNs: Int64 = 10_000_000_000, maxKeys: Int = 64) {
        self.intervalNs = intervalNs; self.maxKeys = maxKeys
    }

    /// ``LogRateLimiter/admit(nowNs:)`` for the line `key`.
    public mutating func admit(_ key: String, nowNs: Int64) -> Int? {
        if limiters[key] == nil && limiters.count >= maxKeys { limiters.removeAll(keepingCapacity: true) }
        return limiters[key, default: LogRateLimiter(intervalNs: intervalNs)].admit(nowNs: nowNs)
    }
}
