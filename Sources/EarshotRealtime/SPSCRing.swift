import Synchronization

/// A preallocated, lock-free single-producer/single-consumer ring of trivially copyable elements.
///
/// The producer never waits: when the consumer falls more than `capacity` elements behind, the oldest
/// elements are overwritten, and the consumer notices on its next read, skips them and counts them in
/// ``overrunCount``. A read validates after copying (seqlock style) that the producer did not lap the region
/// while it was being copied, so the consumer never returns torn data.
///
/// Positions are monotonic 64-bit element counts (`written`, `read`), so they double as sample clocks.
///
/// Threading: ``write(_:)`` from exactly one producer thread, ``read(into:)`` / ``skip(_:)`` from exactly one
/// consumer thread; the counters may be read from anywhere. Neither side allocates, locks or makes a syscall.
public final class SPSCRing<Element: BitwiseCopyable>: @unchecked Sendable {
    /// Number of elements the ring holds; a power of two.
    public let capacity: Int
    @usableFromInline let mask: Int
    @usableFromInline let storage: UnsafeMutablePointer<Element>

    // Producer-owned line.
    @usableFromInline let head = Atomic<Int>(0)
    /// Announced before the producer starts overwriting: elements below `reserved - capacity` may be torn.
    @usableFromInline let reserved = Atomic<Int>(0)
    private let _padHead: (Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0)
    // Consumer-owned line.
    @usableFromInline let tail = Atomic<Int>(0)
    @usableFromInline let overruns = Atomic<Int>(0)
    private let _padTail: (Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0)

    /// Creates a ring of at least `minimumCapacity` elements (rounded up to a power of two).
    public init(minimumCapacity: Int) {
        precondition(minimumCapacity > 0, "SPSCRing capacity must be positive")
        var c = 1
        while c < minimumCapacity { c <<= 1 }
        capacity = c
        mask = c - 1
        storage = UnsafeMutablePointer<Element>.allocate(capacity: c)
    }

    deinit { storage.deallocate() }

    /// Total elements ever written (producer position).
    @inlinable public var written: Int { head.load(ordering: .acquiring) }
    /// Total elements consumed or skipped (consumer position).
    @inlinable public var consumed: Int { tail.load(ordering: .acquiring) }
    /// Elements the consumer lost because the producer lapped it.
    @inlinable public var overrunCount: Int { overruns.load(ordering: .relaxed) }
    /// Elements currently readable (clamped to `capacity`).
    @inlinable public var available: Int { min(written &- consumed, capacity) }

    /// Appends `source`, overwriting the oldest elements if the consumer is behind. Producer thread only.
    @inlinable
    public func write(_ source: UnsafeBufferPointer<Element>) {
        guard let base = source.baseAddress, source.count > 0 else { return }
        var src = base
        var n = source.count
        var h = head.load(ordering: .relaxed)
        if n > capacity {  // only the newest `capacity` elements can survive
            src += n - capacity
            h &+= n - capacity
            n = capacity
        }
        // Seqlock-style announcement: a reader that sees any of the new data will also see `reserved`.
        reserved.store(h &+ n, ordering: .relaxed)
        atomicMemoryFence(ordering: .releasing)
        let start = h & mask
        let first = min(n, capacity - start)
        (storage + start).update(from: src, count: first)
        if first < n { storage.update(from: src + first, count: n - first) }
        head.store(h &+ n, ordering: .releasing)
    }

    /// Appends one element. Producer thread only.
    @inlinable
    public func write(_ element: Element) {
        let h = head.load(ordering: .relaxed)
        reserved.store(h &+ 1, ordering: .relaxed)
        atomicMemoryFence(ordering: .releasing)
        storage[h & mask] = element
        head.store(h &+ 1, ordering: .releasing)
    }

    /// Result of a read: how many elements were copied and how many were lost to overrun just before them.
    public struct ReadResult: Sendable, Equatable {
        public var count: Int
        public var lost: Int
        @inlinable public init(count: Int, lost: Int) { self.count = count; self.lost = lost }
    }

    /// Copies exactly `destination.count` elements if that many are available, else nothing.
    ///
    /// `lost` reports elements skipped because the producer overwrote them before they could be read; the
    /// copied elements follow the loss. Consumer thread only.
    @inlinable
    public func read(into destination: UnsafeMutableBufferPointer<Element>) -> ReadResult {
        read(into: destination, exactly: true)
    }

    /// Copies up to `destination.count` elements (whatever is available). Consumer thread only.
    @inlinable
    public func readAvailable(into destination: UnsafeMutableBufferPointer<Element>) -> ReadResult {
        read(into: destination, exactly: false)
    }

    @inlinable
    func read(into destination: UnsafeMutableBufferPointer<Element>, exactly: Bool) -> ReadResult {
        guard let dst = destination.baseAddress else { return ReadResult(count: 0, lost: 0) }
        let want = min(destination.count, capacity)
        var t = tail.load(ordering: .relaxed)
        var lost = 0
        while true {
            let h = head.load(ordering: .acquiring)
            if h &- t > capacity {  // lapped: the oldest unread elements are gone
                lost &+= h &- capacity &- t
                t = h &- capacity
            }
            let avail = h &- t
            let n = exactly ? (avail >= want ? want : 0) : min(avail, want)
            if n == 0 {
                if lost > 0 { commit(tail: t, lost: lost) }
                return ReadResult(count: 0, lost: lost)
            }
            let start = t & mask
            let first = min(n, capacity - start)
            dst.update(from: storage + start, count: first)
            if first < n { (dst + first).update(from: storage, count: n - first) }
            // Validate: the copy must not have raced with the producer overwriting [t, t+n).
            atomicMemoryFence(ordering: .acquiring)
            let r = reserved.load(ordering: .relaxed)
            if r &- capacity > t {  // some of what we copied may be torn: drop it and retry
                let newT = r &- capacity
                lost &+= newT &- t
                t = newT
                continue
            }
            commit(tail: t &+ n, lost: lost)
            return ReadResult(count: n, lost: lost)
        }
    }

    /// Discards up to `count` readable elements. Consumer thread only.
    @inlinable
    public func skip(_ count: Int) -> Int {
        let t = tail.load(ordering: .relaxed)
        let h = head.load(ordering: .acquiring)
        let n = min(count, h &- t)
        tail.store(t &+ n, ordering: .releasing)
        return n
    }

    @inlinable
    func commit(tail newTail: Int, lost: Int) {
        if lost > 0 { overruns.add(lost, ordering: .relaxed) }
        tail.store(newTail, ordering: .releasing)
    }
}
