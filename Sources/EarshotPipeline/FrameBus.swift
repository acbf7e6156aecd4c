#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import EarshotRealtime

/// The fan-out from the DSP thread to the sinks: a preallocated broadcast ring of frame slots (header,
/// log-mel, MFCC) with one read cursor per consumer.
///
/// - The single producer (DSP thread) writes a slot and publishes it with one atomic store, then wakes every
///   attached consumer's eventfd (one `write(2)` per consumer per frame, never per sample). It never waits
///   for anyone.
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
    /// One eventfd per entry, owned by the bus for its whole life: a detached consumer's descriptor is never
    /// closed while the producer might still be writing to the number it loaded.
    let notifiers: [EventNotifier]
    /// Which entries are attached (guarded by the lock).
    let attachLock = Mutex<[Bool]>([Bool](repeating: false, count: FrameBus.maxConsumers))

    public init(capacity minimumCapacity: Int, nMels: Int, nMFCC: Int) {
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
    }

    deinit {
        headers.deallocate(); logmel.deallocate(); mfcc.deallocate()
        wakeFDs.deinitialize(count: Self.maxConsumers)
        wakeFDs.deallocate()
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

    /// Publishes the header of the slot begun with ``beginWrite()`` and wakes the consumers.
    
    public func publish(_ header: FrameHeader) {
        let p = published.load(ordering: .relaxed)
        headers[p & mask] = header
        published.store(p &+ 1, ordering: .releasing)
        var one: UInt64 = 1
        for i in 0..<Self.maxConsumers {
            let fd = wakeFDs[i].load(ordering: .relaxed)
            if fd >= 0 { _ = write(fd, &one, 8) }
        }
    }

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
    /// - Returns: nil when ``maxConsumers`` are attached.
    public func attach() -> Consumer? {
        attachLock.withLock { inUse -> Consumer? in
            for i in 0..<Self.maxConsumers where !inUse[i] {
                inUse[i] = true
                let notifier = notifiers[i]
                notifier.consume()  // wake-ups left over from a previous consumer of this entry
                wakeFDs[i].store(notifier.fileDescriptor, ordering: .releasing)
                return Consumer(bus: self, entry: i, notifier: notifier, start: publishedCount)
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
        /// Poll ``notifier``'s descriptor for `POLLIN`: it becomes readable when a frame is published.
        public let notifier: EventNotifier
        let entry: Int
        /// Bus position of the next frame to read.
        public private(set) var position: Int
        /// Frames this consumer lost because it fell more than `capacity` frames behind.
        public private(set) var dropped: Int = 0
        private var attached = true

        init(bus: FrameBus, entry: Int, notifier: EventNotifier, start: Int) {
            self.bus = bus; self.entry = entry; self.notifier = notifier; position = start
        }

        deinit { detach() }

        /// Stops the wake-ups and frees the entry (also done on deinit).
        public func detach() {
            if attached { attached = false; bus.detach(entry: entry) }
        }

        /// Frames published but not read yet (may exceed capacity: the excess is lost on the next read).
        public var backlog: Int { bus.publishedCount &- position }

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
