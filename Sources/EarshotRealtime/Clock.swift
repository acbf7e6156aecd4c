#if canImport(Glibc)
import Glibc
#endif

/// Clock readings in nanoseconds. `clock_gettime` goes through the vDSO: no syscall, safe on RT threads.
public enum Clock {
    /// CLOCK_MONOTONIC in nanoseconds (the clock ALSA timestamps use when set to monotonic).
    @inline(__always)
    public static func monotonicNanoseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) &* 1_000_000_000 &+ Int64(ts.tv_nsec)
    }

    /// CLOCK_REALTIME in nanoseconds since the UNIX epoch.
    @inline(__always)
    public static func wallNanoseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) &* 1_000_000_000 &+ Int64(ts.tv_nsec)
    }

    /// Offset to add to a monotonic reading to get wall time (sampled now; re-sample occasionally).
    public static func wallMinusMonotonicNanoseconds() -> Int64 {
        let m1 = monotonicNanoseconds()
        let w = wallNanoseconds()
        let m2 = monotonicNanoseconds()
        return w &- (m1 &+ (m2 &- m1) / 2)
    }
}
