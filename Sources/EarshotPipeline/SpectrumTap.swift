#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Hands linear power spectra from the DSP thread to one reader (the socket loop), only while someone wants
/// them: a small preallocated ring of `n_fft/2 + 1`-float slots (at most 1 MiB, 2–64 slots).
///
/// - Producer (DSP thread, ``offer(_:seq:wallNs:)``): one relaxed atomic load per frame when nobody wants
///   spectra (``every`` is 0) — no copy, no store; otherwise, on the frames with `seq % every == 0`, a copy
///   of the bins into the next slot, published like a ``FrameBus`` slot. No allocation, no lock, no syscall.
/// - Reader (one thread, ``next(into:)``): copies slots seqlock style (a slot overwritten while it was copied
///   is skipped and counted as lost); a reader more than `capacity` spectra behind loses the oldest.
public final class SpectrumTap: @unchecked Sendable {
    /// Values per spectrum (`n_fft/2 + 1`).
    public let bins: Int
    /// Slots in the ring (a power of two).
    public let capacity: Int
    let mask: Int
    let values: UnsafeMutablePointer<Float>
    let seqs: UnsafeMutablePointer<Int64>
    let walls: UnsafeMutablePointer<Int64>
    let published = Atomic<Int>(0)
    let reserved = Atomic<Int>(0)
    /// 0: nobody wants spectra; N: copy the frames with `seq % N == 0`.
    let demand = Atomic<Int>(0)
    /// Bytes the ring holds at most.
    public static let maxBytes = 1 << 20

    /// Slots for `bins`-value spectra: a power of two, 2–64, at most ``maxBytes`` of values when 4 or more fit.
    public static func capacity(bins: Int) -> Int {
        var c = 2
        while c < 64, (c << 1) * max(1, bins) * MemoryLayout<Float>.size <= maxBytes { c <<= 1 }
        return c
    }

    /// Bytes a tap for `bins`-value spectra allocates.
    public static func bytes(bins: Int) -> Int { capacity(bins: bins) * (max(1, bins) * MemoryLayout<Float>.size + 16) }

    public init(bins: Int) {
        self.bins = max(1, bins)
        let c = Self.capacity(bins: bins)
        capacity = c
        mask = c - 1
        values = .allocate(capacity: c * self.bins)
        values.initialize(repeating: 0, count: c * self.bins)
        seqs = .allocate(capacity: c)
        seqs.initialize(repeating: 0, count: c)
        walls = .allocate(capacity: c)
        walls.initialize(repeating: 0, count: c)
    }

    deinit { values.deallocate(); seqs.deallocate(); walls.deallocate() }

    /// The decimation the reader wants (0: none; set by the reader's thread, read by the producer).
    public var every: Int {
        get { demand.load(ordering: .relaxed) }
        set { demand.store(max(0, newValue), ordering: .relaxed) }
    }

    /// DSP thread: copies `power` if a spectrum of frame `seq` is wanted.
    @inline(__always)
    public func offer(_ power: UnsafeBufferPointer<Float>, seq: Int64, wallNs: Int64) {
        let e = demand.load(ordering: .relaxed)
        guard e > 0, seq % Int64(e) == 0, let src = power.baseAddress else { return }
        let p = published.load(ordering: .relaxed)
        reserved.store(p &+ 1, ordering: .relaxed)
        atomicMemoryFence(ordering: .releasing)
        let slot = p & mask
        (values + slot &* bins).update(from: src, count: min(bins, power.count))
        seqs[slot] = seq
        walls[slot] = wallNs
        published.store(p &+ 1, ordering: .releasing)
    }

    /// Position of the next spectrum the reader takes.
    var position = 0
    /// Spectra the reader lost (fell behind, or overwritten while copying).
    public private(set) var lost = 0

    /// Reader: starts with the next spectrum offered from now on.
    public func skipToNewest() { position = published.load(ordering: .acquiring) }

    /// Reader: copies the next spectrum (`bins` values) into `buffer`; nil when there is none.
    public func next(into buffer: UnsafeMutableBufferPointer<Float>) -> (seq: Int64, wallNs: Int64)? {
        precondition(buffer.count >= bins)
        while true {
            let p = published.load(ordering: .acquiring)
            if p &- position > capacity { lost &+= p &- capacity &- position; position = p &- capacity }
            guard p != position else { return nil }
            let slot = position & mask
            buffer.baseAddress!.update(from: values + slot &* bins, count: bins)
            let seq = seqs[slot], wall = walls[slot]
            atomicMemoryFence(ordering: .acquiring)
            let r = reserved.load(ordering: .relaxed)
            if r &- capacity > position { lost &+= r &- capacity &- position; position = r &- capacity; continue }
            position &+= 1
            return (seq, wall)
        }
    }
}
