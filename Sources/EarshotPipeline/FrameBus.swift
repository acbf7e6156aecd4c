#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import EarshotRealtime
import EarshotDSP

/// The fan-out from the DSP thread to the sinks: a preallocated broadcast ring of frame slots (header,
/// log-mel, MFCC) with one read cursor per consumer.
///
/// - The single producer (DSP thread) writes a slot and publishes it with one atomic store, then wakes the
///   *parked* streaming consumers: a consumer parks when ``Consumer/next(into:)`` finds nothing new, and the
///   producer writes its eventfd (one `write(2)`) only if it is parked, clearing the flag. A consumer that is
///   still busy with earlier frames is not woken again: it finds the new frame before it parks. Batch
///   consumers (``attach(wakes:)`` with `wakes: false`) read on their own timer; the producer wakes one
///   only when half the ring is queued for it, or — an on-demand consumer, one that set a
///   ``FrameWakeFilter`` (``Consumer/setWakeFilter(_:)``) — when a frame published while it is parked
///   matches that filter (the alert sink: a level crossing its threshold, an onset). The producer never waits
///   for anyone and never makes a syscall per sample.
/// - Each consumer owns a cursor: it is a bounded queue of `capacity` frames. A consumer that falls more
///   than `capacity` frames behind loses its oldest frames, counted in its ``Consumer/dropped``; other
///   consumers are not affected. Copies are validated seqlock style, so a consumer never sees a torn frame.
/// - Consumers may attach and detach at any time from any thread (up to ``maxConsumers``).
public final class FrameBus: @unchecked Sendable {
    /// Slots in the ring (a power of two).
    public let capacity: Int
    public let nMels: Int
    public let nMFCC: Int
    /// Most consumers attached at once.
    public static let maxConsumers = 32

    let mask: Int
    let headers: UnsafeMutablePointer<FrameHeader>
    let logmel: UnsafeMutablePointer<Float>
    let mfcc: UnsafeMutablePointer<Float>
    /// Frames fully written.
    let published = Atomic<Int>(0)
    /// Announced before a slot is overwritten.
    let reserved = Atomic<Int>(0)
    /// eventfd of each attached consumer, −1 when the entry is free.
    let wakeFDs: UnsafeMutablePointer<Atomic<Int32>>
    /// The published count at which a parked consumer is woken: its position + 1 for a streaming consumer
    /// (the next frame), + `capacity / 2` for a batch consumer (before it could lose frames). One cache
    /// line each.
    let wakeAt: UnsafeMutablePointer<Atomic<Int>>
    static let wakeAtStride = 8
    /// Each entry's ``FrameWakeFilter`` (``filterStride`` words, one cache line: the mode, seven fields): written by its consumer
    /// (``Consumer/setWakeFilter(_:)``), read by the producer for a parked consumer that is not due yet.
    let filters: UnsafeMutablePointer<Atomic<UInt64>>
    static let filterStride = 8
    /// Producer only: frames before this position were judged against the parked consumers' filters (or
    /// published while they were busy, so they read them anyway).
    @exclusivity(unchecked) var filterScanFrom = 0
    /// Set by a consumer that found nothing to read (it is about to wait); cleared by the producer when it
    /// wakes it. Entries padded to a cache line each so consumers do not share lines.
    let parked: UnsafeMutablePointer<Atomic<Bool>>
    static let parkedStride = 64
    let wakeWrites = Atomic<Int>(0)
    /// One eventfd per entry, owned by the bus for its whole life: a detached consumer's descriptor is never
    /// closed while the producer might still be writing to the number it loaded.
    let notifiers: [EventNotifier]
    /// Which entries are attached (guarded by the lock).
    let attachLock = Mutex<[Bool]>([Bool](repeating: false, count: FrameBus.maxConsumers))

    /// Linear power spectra for the `spectrum` stream (nil: the bus carries none).
    public let spectrumTap: SpectrumTap?
    /// `spectrumTap` without reference counting, for the DSP thread.
    let spectrumTapRef: Unmanaged<SpectrumTap>?

    /// - Parameter spectrumBins: `n_fft/2 + 1` to carry spectra through a ``SpectrumTap`` (0: none).
    public init(capacity minimumCapacity: Int, nMels: Int, nMFCC: Int, spectrumBins: Int = 0) {
        spectrumTap = spectrumBins > 0 ? SpectrumTap(bins: spectrumBins) : nil
        spectrumTapRef = spectrumTap.map { Unmanaged.passUnretained($0) }
        var c = 2
        while c < minimumCapacity { c <<= 1 }
        capacity = c
        mask = c - 1
        self.nMels = nMels
        self.nMFCC = nMFCC
        headers = .allocate(capacity: c)
        headers.initialize(repeating: FrameHeader(), count: c)
        logmel = .allocate(capacity: c * max(nMels, 1))
        logmel.initialize(repeating: 0, count: c * max(nMels, 1))
        mfcc = .allocate(capacity: c * max(nMFCC, 1))
        mfcc.initialize(repeating: 0, count: c * max(nMFCC, 1))
        notifiers = (0..<Self.maxConsumers).map { _ in EventNotifier() }
        wakeFDs = .allocate(capacity: Self.maxConsumers)
        for i in 0..<Self.maxConsumers { (wakeFDs + i).initialize(to: Atomic<Int32>(-1)) }
        parked = .allocate(capacity: Self.maxConsumers * Self.parkedStride)
        for i in 0..<Self.maxConsumers * Self.parkedStride { (parked + i).initialize(to: Atomic<Bool>(false)) }
        wakeAt = .allocate(capacity: Self.maxConsumers * Self.wakeAtStride)
        for i in 0..<Self.maxConsumers * Self.wakeAtStride { (wakeAt + i).initialize(to: Atomic<Int>(0)) }
        filters = .allocate(capacity: Self.maxConsumers * Self.filterStride)
        for i in 0..<Self.maxConsumers * Self.filterStride { (filters + i).initialize(to: Atomic<UInt64>(0)) }
    }

    deinit {
        headers.deallocate(); logmel.deallocate(); mfcc.deallocate()
        wakeFDs.deinitialize(count: Self.maxConsumers)
        wakeFDs.deallocate()
        parked.deinitialize(count: Self.maxConsumers * Self.parkedStride)
        parked.deallocate()
        wakeAt.deinitialize(count: Self.maxConsumers * Self.wakeAtStride)
        wakeAt.deallocate()
        filters.deinitialize(count: Self.maxConsumers * Self.filterStride)
        filters.deallocate()
    }


    /// Frames published so far (also the `seq`-independent position consumers count in).
    public var publishedCount: Int { published.load(ordering: .acquiring) }

    // MARK: producer (DSP thread only)

    /// Where the producer writes the next frame's vectors before ``publish(_:)``.
    
    public var nextLogmel: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: logmelSlot(published.load(ordering: .relaxed)), count: nMels)
    }
    
    public var nextMFCC: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: mfccSlot(published.load(ordering: .relaxed)), count: nMFCC)
    }

    /// Announces that the next slot is about to be overwritten. Call before writing into ``nextLogmel`` /
    /// ``nextMFCC``; then ``publish(_:)``.
    
    public func beginWrite() {
        let p = published.load(ordering: .relaxed)
        reserved.store(p &+ 1, ordering: .relaxed)
        atomicMemoryFence(ordering: .releasing)
    }

    /// Publishes the header of the slot begun with ``beginWrite()`` and wakes the parked consumers whose
    /// wake-up point it reaches (a streaming consumer: this frame; a batch consumer: half the ring queued).
    ///
    /// The store of `published` and each consumer's store of its parked flag are sequentially consistent,
    /// as are the loads that follow them (Dekker): either the producer sees the flag and wakes the consumer, or
    /// the consumer, re-reading `published` after parking, sees the frame. No wake-up is lost. A consumer
    /// stores its wake-up point before its parked flag; a stale (earlier) point seen by the producer only
    /// wakes it early.
    @inline(__always)
    public func publish(_ header: FrameHeader) {
        let p = published.load(ordering: .relaxed)
        headers[p & mask] = header
        published.store(p &+ 1, ordering: .sequentiallyConsistent)
        if wakesDeferred { return }
        wakeParked(published: p &+ 1)
    }

    /// Producer only: frames published until ``endDeferringWakes()`` wake no consumer; that call then wakes
    /// each parked consumer once for all of them. The DSP stage brackets each drain of the capture rings with
    /// these (a period yields several frames within microseconds: one wake-up of the socket thread for them,
    /// not one per frame, and no preemption of the producer between them). Delays a consumer's wake-up by
    /// the analysis of the rest of the drain only (tens of µs), never across periods.
    @inline(__always)
    public func beginDeferringWakes() { wakesDeferred = true }

    /// Producer only: ends ``beginDeferringWakes()`` and wakes the parked consumers the frames published
    /// meanwhile reach (the same Dekker pairing as ``publish(_:)``: `published` was stored sequentially
    /// consistent before the parked flags are read here).
    @inline(__always)
    public func endDeferringWakes() {
        wakesDeferred = false
        wakeParked(published: published.load(ordering: .relaxed))
    }

    /// Producer state of ``beginDeferringWakes()``.
    @exclusivity(unchecked) var wakesDeferred = false

    /// Wakes each parked consumer that is due: `count` reaches its wake-up point, or (an on-demand consumer)
    /// a frame published since the last call matches its ``FrameWakeFilter``. Frames published while a
    /// consumer is busy are not judged for it: it reads them before it parks (the Dekker pairing of
    /// ``publish(_:)``). The filter words are loaded sequentially consistent after `published` was stored, the
    /// pairing of ``Consumer/setWakeFilter(_:)``.
    @inline(__always)
    func wakeParked(published count: Int) {
        let scanFrom = max(filterScanFrom, count &- capacity)
        filterScanFrom = count
        var one: UInt64 = 1
        for i in 0..<Self.maxConsumers {
            let fd = wakeFDs[i].load(ordering: .relaxed)
            guard fd >= 0 else { continue }
            let k = i &* Self.parkedStride
            guard parked[k].load(ordering: .sequentiallyConsistent) else { continue }
            var due = count >= wakeAt[i &* Self.wakeAtStride].load(ordering: .relaxed)
            if !due && scanFrom < count {
                let f = i &* Self.filterStride
                if filters[f].load(ordering: .sequentiallyConsistent) & FrameWakeFilter.setBit != 0 {
                    let filter = loadFilter(f)
                    var q = scanFrom
                    while q < count && !due {
                        due = filter.matches(headers[q & mask])
                        q &+= 1
                    }
                }
            }
            if due && parked[k].exchange(false, ordering: .sequentiallyConsistent) {
                _ = write(fd, &one, 8)
                wakeWrites.add(1, ordering: .relaxed)
            }
        }
    }

    /// The filter stored at word `f` of ``filters`` (producer side).
    @inline(__always)
    func loadFilter(_ f: Int) -> FrameWakeFilter {
        var filter = FrameWakeFilter()
        let mode = filters[f].load(ordering: .sequentiallyConsistent)
        filter.level = FrameLevel(rawValue: UInt8(truncatingIfNeeded: mode))
        filter.above = mode & FrameWakeFilter.aboveBit != 0
        filter.levelOffset = Double(bitPattern: filters[f &+ 1].load(ordering: .sequentiallyConsistent))
        filter.threshold = Double(bitPattern: filters[f &+ 2].load(ordering: .sequentiallyConsistent))
        filter.quietFromNs = Int64(bitPattern: filters[f &+ 3].load(ordering: .sequentiallyConsistent))
        filter.quietUntilNs = Int64(bitPattern: filters[f &+ 4].load(ordering: .sequentiallyConsistent))
        filter.onsetMinStrength = Double(bitPattern: filters[f &+ 5].load(ordering: .sequentiallyConsistent))
        filter.deadlineNs = Int64(bitPattern: filters[f &+ 6].load(ordering: .sequentiallyConsistent))
        filter.onsetNotBeforeNs = Int64(bitPattern: filters[f &+ 7].load(ordering: .sequentiallyConsistent))
        return filter
    }

    /// eventfd `write`s the producer has made: one per wake-up of a parked consumer.
    public var wakeUps: Int { wakeWrites.load(ordering: .relaxed) }

    func logmelSlot(_ position: Int) -> UnsafeMutablePointer<Float> {
        logmel + (position & mask) * nMels
    }
    func mfccSlot(_ position: Int) -> UnsafeMutablePointer<Float> {
        mfcc + (position & mask) * nMFCC
    }

    /// Copies the most recently published frame's header (for status lines; any thread).
    /// - Returns: false before the first frame.
    public func latestHeader(into header: inout FrameHeader) -> Bool {
        while true {
            let p = published.load(ordering: .acquiring)
            guard p > 0 else { return false }
            header = headers[(p &- 1) & mask]
            atomicMemoryFence(ordering: .acquiring)
            if reserved.load(ordering: .relaxed) &- capacity <= p &- 1 { return true }
        }
    }

    // MARK: consumers

    /// Attaches a consumer that starts with the next published frame.
    /// - Parameter wakes: true (streaming consumer, e.g. the socket): the producer makes its
    ///   ``Consumer/notifier`` readable when a frame is published while it is parked. false (batch consumer,
    ///   e.g. rolling windows): it reads on its own timer, and the producer wakes it only when half the ring
    ///   is queued for it (a burst faster than its timer: frames the DSP catches up with after a stall, a
    ///   faster-than-real-time source), so a batch consumer loses frames only if it is itself too slow.
    /// - Returns: nil when ``maxConsumers`` are attached.
    /// - Parameter resumeAt: where a consumer that replaces a stopped one of the same sink continues (its
    ///   ``Consumer/position`` when it stopped): no frame is skipped or read twice across the replacement. Frames
    ///   the ring no longer holds count as lost on the first read. Nil: from the next frame published.
    public func attach(wakes: Bool = true, resumeAt: Int? = nil) -> Consumer? {
        attachLock.withLock { inUse -> Consumer? in
            for i in 0..<Self.maxConsumers where !inUse[i] {
                inUse[i] = true
                let notifier = notifiers[i]
                notifier.consume()  // wake-ups left over from a previous consumer of this entry
                parked[i &* Self.parkedStride].store(false, ordering: .sequentiallyConsistent)
                wakeAt[i &* Self.wakeAtStride].store(0, ordering: .relaxed)
                filters[i &* Self.filterStride].store(0, ordering: .sequentiallyConsistent)  // no filter
                wakeFDs[i].store(notifier.fileDescriptor, ordering: .releasing)
                let published = publishedCount
                let start = resumeAt.map { min(max($0, 0), published) } ?? published
                return Consumer(bus: self, entry: i, notifier: notifier, start: start,
                                wakeAfter: wakes ? 1 : max(1, capacity / 2))
            }
            return nil
        }
    }

    func detach(entry: Int) {
        attachLock.withLock { inUse in
            wakeFDs[entry].store(-1, ordering: .releasing)
            inUse[entry] = false
        }
    }

    /// One reader of the bus. Not thread-safe: use it from one thread at a time.
    public final class Consumer: @unchecked Sendable {
        public let bus: FrameBus
        /// Poll ``notifier``'s descriptor for `POLLIN`: it becomes readable when a frame is published after
        /// ``next(into:)`` returned ``Next/empty(lost:)`` (the consumer parked). Read until `.empty` before
        /// waiting on it: a consumer that stops reading earlier is not woken for later frames.
        public let notifier: EventNotifier
        let entry: Int
        /// Bus position of the next frame to read.
        public private(set) var position: Int
        /// Frames queued at which the producer wakes this consumer once it parked (1: every frame).
        public let wakeAfter: Int
        /// Frames this consumer lost because it fell more than `capacity` frames behind.
        public private(set) var dropped: Int = 0
        /// The filter set by ``setWakeFilter(_:)`` (nil: none).
        public private(set) var wakeFilter: FrameWakeFilter?
        private var attached = true

        init(bus: FrameBus, entry: Int, notifier: EventNotifier, start: Int, wakeAfter: Int) {
            self.bus = bus; self.entry = entry; self.notifier = notifier; position = start
            self.wakeAfter = wakeAfter
        }

        deinit { detach() }

        /// Stops the wake-ups and frees the entry (also done on deinit).
        public func detach() {
            if attached { attached = false; bus.detach(entry: entry) }
        }

        /// Frames published but not read yet (may exceed capacity: the excess is lost on the next read).
        public var backlog: Int { bus.publishedCount &- position }

        /// Whether this consumer is parked (found nothing to read and has not been woken since; tests).
        public var isParked: Bool { bus.parked[entry &* FrameBus.parkedStride].load(ordering: .sequentiallyConsistent) }

        /// Makes this an on-demand consumer: besides its wake-up point (``wakeAfter`` frames queued), the
        /// producer wakes it when a frame published while it is parked matches `filter` (see
        /// ``FrameWakeFilter``), at the end of the drain that published it. Consumer thread, after reading
        /// until ``Next/empty(lost:)``.
        /// - Returns: true if the filter changed and frames were published meanwhile: the producer may have
        ///   judged them by the old filter, so read again before waiting (this load of `published` follows the
        ///   filter's sequentially consistent stores: either the producer saw the new filter or this sees the
        ///   frame). False when nothing needs reading.
        public func setWakeFilter(_ filter: FrameWakeFilter) -> Bool {
            guard filter != wakeFilter else { return false }
            wakeFilter = filter
            let f = entry &* FrameBus.filterStride
            var mode = FrameWakeFilter.setBit | UInt64(filter.level?.rawValue ?? 0)
            if filter.above { mode |= FrameWakeFilter.aboveBit }
            bus.filters[f &+ 1].store(filter.levelOffset.bitPattern, ordering: .sequentiallyConsistent)
            bus.filters[f &+ 2].store(filter.threshold.bitPattern, ordering: .sequentiallyConsistent)
            bus.filters[f &+ 3].store(UInt64(bitPattern: filter.quietFromNs), ordering: .sequentiallyConsistent)
            bus.filters[f &+ 4].store(UInt64(bitPattern: filter.quietUntilNs), ordering: .sequentiallyConsistent)
            bus.filters[f &+ 5].store(filter.onsetMinStrength.bitPattern, ordering: .sequentiallyConsistent)
            bus.filters[f &+ 6].store(UInt64(bitPattern: filter.deadlineNs), ordering: .sequentiallyConsistent)
            bus.filters[f &+ 7].store(UInt64(bitPattern: filter.onsetNotBeforeNs), ordering: .sequentiallyConsistent)
            bus.filters[f].store(mode, ordering: .sequentiallyConsistent)
            return bus.published.load(ordering: .sequentiallyConsistent) != position
        }

        /// Outcome of ``next(into:)``.
        public enum Next: Equatable, Sendable {
            /// A frame was copied; `lost` frames before it were dropped for this consumer.
            case frame(lost: Int)
            /// Nothing new (the lost count is included if frames were skipped).
            case empty(lost: Int)
        }

        /// Copies the next frame into `frame`. Never blocks.
        public func next(into frame: FrameCopy) -> Next {
            precondition(frame.logmel.count == bus.nMels && frame.mfcc.count == bus.nMFCC)
            var lost = 0
            while true {
                let p = bus.published.load(ordering: .acquiring)
                if p &- position > bus.capacity {
                    lost &+= p &- bus.capacity &- position
                    position = p &- bus.capacity
                }
                if p == position {
                    // Park: from now on the producer wakes us for the next frame. Re-read `published`
                    // after the flag is visible (Dekker with publish): a frame published in between is
                    // read now instead of waiting for a wake-up that the producer may have skipped.
                    let k = entry &* FrameBus.parkedStride
                    bus.wakeAt[entry &* FrameBus.wakeAtStride].store(position &+ wakeAfter, ordering: .relaxed)
                    if !bus.parked[k].load(ordering: .relaxed) {
                        bus.parked[k].store(true, ordering: .sequentiallyConsistent)
                        if bus.published.load(ordering: .sequentiallyConsistent) != position { continue }
                    }
                    dropped &+= lost
                    return .empty(lost: lost)
                }
                frame.header = bus.headers[position & bus.mask]
                frame.logmel.baseAddress!.update(from: bus.logmelSlot(position), count: bus.nMels)
                frame.mfcc.baseAddress!.update(from: bus.mfccSlot(position), count: bus.nMFCC)
                atomicMemoryFence(ordering: .acquiring)
                let r = bus.reserved.load(ordering: .relaxed)
                if r &- bus.capacity > position {  // overwritten while copying: skip what is gone
                    lost &+= r &- bus.capacity &- position
                    position = r &- bus.capacity
                    continue
                }
                position &+= 1
                dropped &+= lost
                return .frame(lost: lost)
            }
        }
    }
}

/// A consumer-owned copy of one frame (preallocated; reused for every ``FrameBus/Consumer/next(into:)``).
public final class FrameCopy: @unchecked Sendable {
    public var header = FrameHeader()
    public let logmel: UnsafeMutableBufferPointer<Float>
    public let mfcc: UnsafeMutableBufferPointer<Float>

    public init(nMels: Int, nMFCC: Int) {
        logmel = .allocate(capacity: nMels); logmel.initialize(repeating: 0)
        mfcc = .allocate(capacity: nMFCC); mfcc.initialize(repeating: 0)
    }

    deinit { logmel.deallocate(); mfcc.deallocate() }
}

/// One of the frame's level figures (``FrameFeatures``), for a ``FrameWakeFilter``'s level test.
public enum FrameLevel: UInt8, Sendable, Equatable {
    case laf = 1, las, lcf, lzf, rmsDbfs

    /// The figure in dBFS.
    @inline(__always)
    public func value(_ f: FrameFeatures) -> Float {
        switch self {
        case .laf: f.laf
        case .las: f.las
        case .lcf: f.lcf
        case .lzf: f.lzf
        case .rmsDbfs: f.rmsDbfs
        }
    }
}

/// Which frames wake an on-demand consumer of the ``FrameBus`` before its own timer
/// (``FrameBus/Consumer/setWakeFilter(_:)``). Evaluated by the producer (the DSP stage, on the capture
/// thread) for each frame published while the consumer is parked: plain loads and compares, no allocation,
/// lock or reference counting. A frame matches if any of these holds:
/// - **level**: `Double(level) + levelOffset >= threshold` (`above`) or `< threshold` (not `above`) — the
///   same expression in the same precision as the consumer's own test, so the two never disagree — and its
///   `wallNs` is outside `[quietFromNs, quietUntilNs)`;
/// - **onset**: it decided an onset with `Double(strength) >= onsetMinStrength` whose time (`onsetWallNs`) is
///   at or after `onsetNotBeforeNs`;
/// - **deadline**: its `wallNs >= deadlineNs`.
/// The default (``never``) matches no frame.
public struct FrameWakeFilter: Sendable, Equatable {
    /// The level the level test reads; nil: no level test.
    public var level: FrameLevel?
    public var above: Bool
    /// Added to the level before the comparison (the calibration offset).
    public var levelOffset: Double
    public var threshold: Double
    /// Level matches with `wallNs` in `[quietFromNs, quietUntilNs)` do not count (empty when from ≥ until).
    public var quietFromNs: Int64
    public var quietUntilNs: Int64
    /// +∞: onsets never match.
    public var onsetMinStrength: Double
    /// Onsets earlier than this (`onsetWallNs`) do not match (`Int64.min`: none excluded).
    public var onsetNotBeforeNs: Int64
    /// `Int64.max`: no deadline.
    public var deadlineNs: Int64

    public init(level: FrameLevel? = nil, above: Bool = true, levelOffset: Double = 0, threshold: Double = .infinity,
                quietFromNs: Int64 = 0, quietUntilNs: Int64 = 0, onsetMinStrength: Double = .infinity,
                onsetNotBeforeNs: Int64 = .min, deadlineNs: Int64 = .max) {
        self.level = level; self.above = above; self.levelOffset = levelOffset; self.threshold = threshold
        self.quietFromNs = quietFromNs; self.quietUntilNs = quietUntilNs; self.onsetMinStrength = onsetMinStrength
        self.onsetNotBeforeNs = onsetNotBeforeNs; self.deadlineNs = deadlineNs
    }

    /// Matches no frame.
    public static let never = FrameWakeFilter()

    /// Bits of the mode word in the bus: the level's raw value in the low byte.
    static let aboveBit: UInt64 = 1 << 8
    static let setBit: UInt64 = 1 << 16

    /// Whether `h` matches (see the type).
    @inline(__always)
    public func matches(_ h: FrameHeader) -> Bool {
        if h.wallNs >= deadlineNs { return true }
        if h.hasOnset && Double(h.onset.strength) >= onsetMinStrength && h.onsetWallNs >= onsetNotBeforeNs { return true }
        guard let level else { return false }
        let v = Double(level.value(h.features)) + levelOffset
        guard above ? v >= threshold : v < threshold else { return false }
        return h.wallNs < quietFromNs || h.wallNs >= quietUntilNs
    }
}
