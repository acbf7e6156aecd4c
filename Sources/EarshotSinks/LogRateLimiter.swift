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
