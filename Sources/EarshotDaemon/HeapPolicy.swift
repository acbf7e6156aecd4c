#if canImport(Glibc)
import Glibc
#endif
import CEarshotSupport

@_silgen_name("mallopt") private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32

/// How the daemon keeps glibc's heap from creeping over months (issue 9, soak).
///
/// glibc gives each thread that allocates its own arena (up to 8 per core): the daemon's ~14 threads ended up
/// with 13 arenas, and memory freed in one arena is not reused by the threads of another, so the mapped heap
/// (and RSS) crept up with the working sets of the sink threads taking turns (`bench/soak.py --heap-every`:
/// 13 arenas, mapped heap +244 kB and RSS +368 kB over 6 h of audio after warm-up; with 2 arenas the mapped heap
/// stayed flat and RSS grew 4 kB). So:
/// - ``applyAtStart(environment:)`` caps the arenas at ``arenaMax`` before any thread of the daemon starts
///   (an explicit `MALLOC_ARENA_MAX` in the environment wins). The capture and DSP threads never allocate
///   (AllocationTests), so sharing arenas costs them nothing.
/// - ``trimIfDue(nowNs:)`` runs `malloc_trim(0)` every ``trimIntervalNs`` on the supervisor thread: it returns
///   the free pages inside the heap to the system (off the real-time threads; a few ms on a ~10 MB heap).
public enum HeapPolicy {
    /// `M_ARENA_MAX` (`<malloc.h>`).
    static let mArenaMax: Int32 = -8
    public static let arenaMax: Int32 = 2
    public static let trimIntervalNs: Int64 = 300_000_000_000

    /// Caps glibc's arenas; call first thing in `earshot run`, before threads start. Returns whether it was set.
    @discardableResult
    public static func applyAtStart(environment: [String: String]) -> Bool {
        guard environment["MALLOC_ARENA_MAX"] == nil else { return false }
        return glibcMallopt(mArenaMax, arenaMax) == 1
    }

    /// Trims the heap when ``trimIntervalNs`` has passed since `last` (updated); supervisor thread only.
    public static func trimIfDue(nowNs: Int64, last: inout Int64) {
        guard nowNs &- last >= trimIntervalNs else { return }
        last = nowNs
        _ = CEarshot_malloc_trim()
    }
}
