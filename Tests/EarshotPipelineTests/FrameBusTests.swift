import EarshotDSP
import EarshotPipeline
import Foundation
import Synchronization
import Testing

@Suite("FrameBus fan-out")
struct FrameBusTests {
    /// Publishes frame `i` with every vector element derived from `i`, so a torn copy is detectable.
    static func publish(_ bus: FrameBus, _ i: Int64) {
        let buffers = bus.nextFrameBuffers()
        for k in 0..<buffers.logmel.count { buffers.logmel[k] = Float(i) + Float(k) * 0.5 }
        for k in 0..<buffers.mfcc.count { buffers.mfcc[k] = -Float(i) }
        var h = FrameHeader()
        h.seq = i
        h.firstSample = i * 480
        h.features.rmsDbfs = Float(i)
        bus.emit(h)
    }

    static func check(_ f: FrameCopy) -> Bool {
        let i = f.header.seq
        guard f.header.firstSample == i * 480, f.header.features.rmsDbfs == Float(i) else { return false }
        for k in 0..<f.logmel.count where f.logmel[k] != Float(i) + Float(k) * 0.5 { return false }
        for k in 0..<f.mfcc.count where f.mfcc[k] != -Float(i) { return false }
        return true
    }

    @Test func singleThreadOrderAndDrops() {
        let bus = FrameBus(capacity: 8, nMels: 4, nMFCC: 2)
        let fast = bus.attach()!
        let slow = bus.attach()!
        let f = FrameCopy(nMels: 4, nMFCC: 2)
        for i in 0..<5 { Self.publish(bus, Int64(i)) }
        for i in 0..<5 {
            #expect(fast.next(into: f) == .frame(lost: 0))
            #expect(f.header.seq == Int64(i) && Self.check(f))
        }
        #expect(fast.next(into: f) == .empty(lost: 0))
        for i in 5..<20 { Self.publish(bus, Int64(i)) }
        // slow is 20 frames behind with capacity 8: loses the 12 oldest, then reads 12…19 in order.
        #expect(slow.next(into: f) == .frame(lost: 12))
        #expect(f.header.seq == 12 && Self.check(f))
        #expect(slow.dropped == 12)
        var seqs: [Int64] = []
        while case .frame = slow.next(into: f) { seqs.append(f.header.seq) }
        #expect(seqs == Array(13...19))
        // fast is 15 behind: also loses 7, independently.
        #expect(fast.next(into: f) == .frame(lost: 7))
        #expect(fast.dropped == 7)
    }

    @Test func attachLimitAndDetach() {
        let bus = FrameBus(capacity: 4, nMels: 1, nMFCC: 1)
        var consumers = (0..<FrameBus.maxConsumers).compactMap { _ in bus.attach() }
        #expect(consumers.count == FrameBus.maxConsumers)
        #expect(bus.attach() == nil)
        consumers.removeLast()  // deinit detaches
        #expect(bus.attach() != nil)
    }

    final class Result: @unchecked Sendable { var received = 0; var lost = 0; var torn = 0; var outOfOrder = 0 }
    final class Flag: Sendable { let done = Atomic<Bool>(false); let finished = Atomic<Int>(0) }

    static func consume(_ c: FrameBus.Consumer, slow: Bool, _ r: Result, _ flag: Flag) {
        let f = FrameCopy(nMels: 64, nMFCC: 13)
        var last: Int64 = -1
        while true {
            switch c.next(into: f) {
            case .frame(let lost):
                r.lost += lost
                r.received += 1
                if !check(f) { r.torn += 1 }
                if f.header.seq != last + 1 + Int64(lost) { r.outOfOrder += 1 }
                last = f.header.seq
                if slow && r.received % 100 == 0 { usleep(200) }
            case .empty(let lost):
                r.lost += lost
                last += Int64(lost)
                if flag.done.load(ordering: .acquiring) && c.backlog == 0 { flag.finished.add(1, ordering: .releasing); return }
                c.notifier.wait(timeoutMilliseconds: 10)
            }
        }
    }

    /// A real producer thread at full speed and two consumer threads, one fast and one that sleeps:
    /// every frame either arrives intact and in order or is counted as dropped; the slow one does not
    /// hold back the producer or the other consumer.
    @Test func twoThreadsNoTornFrames() async throws {
        let bus = FrameBus(capacity: 64, nMels: 64, nMFCC: 13)
        let total: Int64 = 200_000
        let flag = Flag()
        let fastC = bus.attach()!, slowC = bus.attach()!
        let fastR = Result(), slowR = Result()
        Thread { Self.consume(fastC, slow: false, fastR, flag) }.start()
        Thread { Self.consume(slowC, slow: true, slowR, flag) }.start()
        for i in 0..<total { Self.publish(bus, i) }
        flag.done.store(true, ordering: .releasing)
        while flag.finished.load(ordering: .acquiring) < 2 { try await Task.sleep(for: .milliseconds(5)) }
        for r in [fastR, slowR] {
            #expect(r.torn == 0)
            #expect(r.outOfOrder == 0)
            #expect(r.received + r.lost == Int(total))
        }
        #expect(slowR.lost > 0)  // it did fall behind, and it was counted
        #expect(slowC.dropped == slowR.lost && fastC.dropped == fastR.lost)
    }

    /// The producer writes a consumer's eventfd only when it is parked (its last `next` found nothing): a
    /// consumer busy with earlier frames is not woken again, a batch consumer is not woken for a few frames,
    /// and a parked one is woken exactly once however many frames follow.
    /// A parked batch consumer is woken once half the ring is queued for it (not before), so a burst faster
    /// than its timer does not make it lose frames.
    @Test func batchConsumerIsWokenAtHalfTheRing() {
        let bus = FrameBus(capacity: 16, nMels: 2, nMFCC: 1)
        let batch = bus.attach(wakes: false)!
        #expect(batch.wakeAfter == 8)
        let f = FrameCopy(nMels: 2, nMFCC: 1)
        #expect(batch.next(into: f) == .empty(lost: 0))  // parks at position 0
        for i in 0..<7 { Self.publish(bus, Int64(i)) }
        #expect(batch.notifier.consume() == 0, "woken before half the ring was queued")
        Self.publish(bus, 7)
        #expect(batch.notifier.consume() == 1, "not woken at half the ring")
        for i in 8..<15 { Self.publish(bus, Int64(i)) }
        #expect(batch.notifier.consume() == 0, "woken twice for one parking")
        var seqs: [Int64] = []
        while case .frame(let lost) = batch.next(into: f) { #expect(lost == 0); seqs.append(f.header.seq) }
        #expect(seqs == Array(0..<15))
        // Parked again at 15: the next wake-up is at 23.
        for i in 15..<22 { Self.publish(bus, Int64(i)) }
        #expect(batch.notifier.consume() == 0)
        Self.publish(bus, 22)
        #expect(batch.notifier.consume() == 1)
        #expect(batch.dropped == 0)
    }

    @Test func wakesOnlyParkedStreamingConsumers() {
        let bus = FrameBus(capacity: 16, nMels: 2, nMFCC: 1)
        let stream = bus.attach()!
        let batch = bus.attach(wakes: false)!
        let f = FrameCopy(nMels: 2, nMFCC: 1)
        // Not parked yet (never read): no wake-up.
        Self.publish(bus, 0)
        #expect(bus.wakeUps == 0)
        #expect(stream.notifier.consume() == 0)
        // Reads frame 0, then parks on `.empty`.
        #expect(stream.next(into: f) == .frame(lost: 0))
        #expect(stream.next(into: f) == .empty(lost: 0))
        #expect(batch.next(into: f) == .frame(lost: 0))
        #expect(batch.next(into: f) == .empty(lost: 0))
        // Three frames while parked: one wake-up for the stream consumer, none for the batch one.
        for i in 1...3 { Self.publish(bus, Int64(i)) }
        #expect(bus.wakeUps == 1)
        #expect(stream.notifier.consume() == 1)
        #expect(batch.notifier.consume() == 0)
        // Woken, it reads one frame and is busy (not parked): the next frame makes no wake-up.
        #expect(stream.next(into: f) == .frame(lost: 0))
        Self.publish(bus, 4)
        #expect(bus.wakeUps == 1)
        var seqs: [Int64] = []
        while case .frame = stream.next(into: f) { seqs.append(f.header.seq) }
        #expect(seqs == [2, 3, 4])
        // Parked again: the next frame wakes it.
        Self.publish(bus, 5)
        #expect(bus.wakeUps == 2)
        #expect(stream.notifier.wait(timeoutMilliseconds: 0))
        // The batch consumer got every frame on its own schedule.
        var batchSeqs: [Int64] = []
        while case .frame = batch.next(into: f) { batchSeqs.append(f.header.seq) }
        #expect(batchSeqs == [1, 2, 3, 4, 5])
    }

    /// The DSP stage brackets each drain with begin/endDeferringWakes: the frames of one drain wake a parked
    /// consumer once, at the end, and a drain without frames wakes no one.
    @Test func deferredWakesWakeOncePerDrain() {
        let bus = FrameBus(capacity: 16, nMels: 2, nMFCC: 1)
        let stream = bus.attach()!
        let f = FrameCopy(nMels: 2, nMFCC: 1)
        #expect(stream.next(into: f) == .empty(lost: 0))  // parks
        bus.beginDeferringWakes()
        for i in 0..<3 { Self.publish(bus, Int64(i)) }
        #expect(bus.wakeUps == 0)
        #expect(stream.notifier.consume() == 0)
        bus.endDeferringWakes()
        #expect(bus.wakeUps == 1)
        #expect(stream.notifier.consume() == 1)
        var seqs: [Int64] = []
        while case .frame = stream.next(into: f) { seqs.append(f.header.seq) }
        #expect(seqs == [0, 1, 2])
        // Parked again; an empty drain wakes no one, the next frame outside a drain wakes it at once.
        bus.beginDeferringWakes()
        bus.endDeferringWakes()
        #expect(bus.wakeUps == 1)
        Self.publish(bus, 3)
        #expect(bus.wakeUps == 2)
        #expect(stream.notifier.consume() == 1)
    }

    /// No lost wake-up under a real race: a producer publishing at random short intervals and a consumer
    /// that drains, then sleeps on its notifier with no timeout worth counting on (5 s). Every frame must
    /// arrive, and far fewer wake-ups than frames are made when the producer bursts.
    @Test func noLostWakeUpsUnderRace() async throws {
        let bus = FrameBus(capacity: 1024, nMels: 4, nMFCC: 1)
        let total: Int64 = 20_000
        let (got, stalls) = try await Self.race(bus.attach()!, total: total) {
            var rng = SystemRandomNumberGenerator()
            for i in 0..<total {
                Self.publish(bus, i)
                if UInt8.random(in: 0...255, using: &rng) < 8 { usleep(UInt32.random(in: 0...50, using: &rng)) }
            }
        }
        #expect(got == Int(total))  // received or counted as lost
        #expect(stalls == 0)
        #expect(bus.wakeUps < Int(total))
    }

    /// Runs `c` on a thread of its own that reads until it has accounted for `total` frames (received, or
    /// lost because it fell a whole ring behind on a loaded box): it drains, calls `beforeWait` (true: read
    /// again first), then sleeps on its notifier with no timeout worth counting on (5 s), while `produce`
    /// publishes on the caller. Returns the frames accounted for and the stalls (a wait that timed out with
    /// frames pending: a lost wake-up).
    static func race(_ c: FrameBus.Consumer, total: Int64, beforeWait: @escaping @Sendable () -> Bool = { false },
                     produce: () -> Void) async throws -> (received: Int, stalls: Int) {
        let got = Atomic<Int>(0)
        let stalls = Atomic<Int>(0)
        let done = Atomic<Bool>(false)
        Thread {
            let f = FrameCopy(nMels: c.bus.nMels, nMFCC: c.bus.nMFCC)
            var received = 0
            while received < Int(total) {
                while true {
                    let next = c.next(into: f)
                    switch next {
                    case .frame(let lost): received += 1 + lost
                    case .empty(let lost): received += lost
                    }
                    if case .empty = next { break }
                }
                if received >= Int(total) { break }
                if beforeWait() { continue }
                if !c.notifier.wait(timeoutMilliseconds: 5_000) && c.backlog > 0 { stalls.add(1, ordering: .relaxed) }
            }
            got.store(received, ordering: .releasing)
            done.store(true, ordering: .releasing)
        }.start()
        produce()
        let deadline = ContinuousClock.now + .seconds(60)
        while !done.load(ordering: .acquiring) && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        return (got.load(ordering: .acquiring), stalls.load(ordering: .relaxed))
    }

    // MARK: on-demand consumers (wake filter)

    static func header(_ seq: Int64, laf: Float, wallNs: Int64? = nil, onset: Float? = nil) -> FrameHeader {
        var h = FrameHeader()
        h.seq = seq
        h.wallNs = wallNs ?? seq * 10_000_000
        h.features.laf = laf
        h.features.rmsDbfs = -100
        if let onset {
            h.hasOnset = true
            h.onset = OnsetEvent(frameIndex: seq, detectedAtFrame: seq, strength: onset)
            h.onsetWallNs = h.wallNs
        }
        return h
    }

    static func publish(_ bus: FrameBus, _ h: FrameHeader) {
        _ = bus.nextFrameBuffers()
        bus.emit(h)
    }

    /// What each clause of the filter matches, with the same arithmetic as the consumer's own test.
    @Test func wakeFilterMatches() {
        #expect(!FrameWakeFilter.never.matches(Self.header(0, laf: 1000, wallNs: .max - 1, onset: 1e9)))
        var f = FrameWakeFilter(level: .laf, above: true, levelOffset: 94, threshold: 74)  // −20 dBFS
        #expect(f.matches(Self.header(1, laf: -20)) && !f.matches(Self.header(1, laf: -20.001)))
        #expect(!f.matches(Self.header(1, laf: .nan)))
        f.level = .rmsDbfs  // reads the named level only
        #expect(!f.matches(Self.header(1, laf: -10)))
        f = FrameWakeFilter(level: .laf, above: false, threshold: -23)
        #expect(f.matches(Self.header(1, laf: -23.5)) && !f.matches(Self.header(1, laf: -23)))
        // Quiet window [100, 200) ms: level matches inside it do not count, outside they do.
        f.quietFromNs = 100_000_000; f.quietUntilNs = 200_000_000
        #expect(f.matches(Self.header(9, laf: -30)) && !f.matches(Self.header(10, laf: -30))
                && !f.matches(Self.header(19, laf: -30)) && f.matches(Self.header(20, laf: -30)))
        // An onset at or above the strength, and the deadline, match regardless of the level and the window.
        f.onsetMinStrength = 15
        #expect(f.matches(Self.header(12, laf: 0, onset: 15)) && !f.matches(Self.header(12, laf: 0, onset: 14.9)))
        f.onsetNotBeforeNs = 130_000_000  // compared with the onset's own time
        var early = Self.header(13, laf: 0, onset: 20)
        #expect(f.matches(early))
        early.onsetWallNs = 129_000_000
        #expect(!f.matches(early))
        f.deadlineNs = 150_000_000
        #expect(!f.matches(Self.header(14, laf: 0)) && f.matches(Self.header(15, laf: 0)))
    }

    /// A parked on-demand consumer is woken, once, at the end of the drain that publishes a frame matching its
    /// filter, and not for other frames (its timer and half the ring aside); a new filter applies to the
    /// frames published after it, and `setWakeFilter` says when frames published meanwhile must be read first.
    @Test func onDemandConsumerIsWokenOnlyForMatchingFrames() {
        let bus = FrameBus(capacity: 256, nMels: 2, nMFCC: 1)  // the half-ring wake-up at 128 frames: out of reach
        let c = bus.attach(wakes: false)!
        let f = FrameCopy(nMels: 2, nMFCC: 1)
        #expect(c.next(into: f) == .empty(lost: 0))  // parks at 0
        #expect(c.setWakeFilter(FrameWakeFilter(level: .laf, above: true, threshold: -20, onsetMinStrength: 15)) == false)
        #expect(!c.setWakeFilter(FrameWakeFilter(level: .laf, above: true, threshold: -20, onsetMinStrength: 15)))  // unchanged
        func drain(_ headers: [FrameHeader]) -> Int {
            let before = bus.wakeUps
            bus.beginDeferringWakes()
            for h in headers { Self.publish(bus, h) }
            #expect(bus.wakeUps == before, "woken inside a drain")
            bus.endDeferringWakes()
            return bus.wakeUps - before
        }
        // 20 quiet drains of 2 frames (one with a weak onset): no wake-up.
        for i in 0..<20 {
            let s = Int64(2 * i)
            #expect(drain([Self.header(s, laf: -40), Self.header(s + 1, laf: -21, onset: i == 7 ? 14 : nil)]) == 0)
        }
        #expect(c.isParked && c.notifier.consume() == 0)
        // A frame at the threshold, first of its drain: one wake-up, at the end of that drain.
        #expect(drain([Self.header(40, laf: -20), Self.header(41, laf: -40)]) == 1)
        #expect(c.notifier.consume() == 1 && !c.isParked)
        // Woken (not parked): more matching frames wake nobody; it reads them all before parking.
        #expect(drain([Self.header(42, laf: -10)]) == 0)
        var seqs: [Int64] = []
        while case .frame = c.next(into: f) { seqs.append(f.header.seq) }
        #expect(seqs == Array(0...42))
        // Parked again at 43. A strong onset wakes it.
        #expect(drain([Self.header(43, laf: -40, onset: 15)]) == 1)
        while case .frame = c.next(into: f) {}
        // A new filter (wait for a level below −23, quiet until 0.5 s): no frame was published since the
        // last read, so nothing to read first.
        #expect(!c.setWakeFilter(FrameWakeFilter(level: .laf, above: false, threshold: -23,
                                                 quietFromNs: 440_000_000, quietUntilNs: 500_000_000)))
        #expect(drain([Self.header(44, laf: -30), Self.header(45, laf: -10)]) == 0)  // quiet window; above
        #expect(drain([Self.header(50, laf: -30)]) == 1)  // t = 0.5 s: outside the window
        while case .frame = c.next(into: f) {}
        // Frames published between parking and a filter change: the change reports them.
        #expect(drain([Self.header(51, laf: -10)]) == 0)
        #expect(c.setWakeFilter(FrameWakeFilter(deadlineNs: 0)))
        #expect(c.next(into: f) == .frame(lost: 0) && f.header.seq == 51)
        #expect(c.next(into: f) == .empty(lost: 0))
        #expect(drain([Self.header(52, laf: -100)]) == 1)  // the deadline: every frame
        #expect(c.dropped == 0)
    }

    /// No lost wake-up when the consumer changes its filter after every drain while the producer publishes
    /// (the Dekker pairing of `setWakeFilter` with the producer's judging): every frame matches both filters it
    /// alternates between, the half-ring wake-up is out of reach (a 64 Ki-frame bus), so each frame must wake
    /// the consumer or be found by it before it waits; a lost wake-up shows as a 5 s timeout with frames
    /// pending.
    @Test func noLostWakeUpsWhileTheFilterChanges() async throws {
        let bus = FrameBus(capacity: 1 << 16, nMels: 4, nMFCC: 1)
        let c = bus.attach(wakes: false)!
        let total: Int64 = 20_000
        let flip = Atomic<Bool>(false)  // the consumer thread's: which of the two filters is next
        let (got, stalls) = try await Self.race(c, total: total, beforeWait: {
            let up = !flip.load(ordering: .relaxed)
            flip.store(up, ordering: .relaxed)
            return c.setWakeFilter(FrameWakeFilter(level: .laf, above: true, threshold: up ? -1 : -2))
        }) {
            var rng = SystemRandomNumberGenerator()
            var i: Int64 = 0
            while i < total {
                let n = Int64.random(in: 1...3, using: &rng)
                bus.beginDeferringWakes()
                for _ in 0..<n where i < total { Self.publish(bus, Self.header(i, laf: 0)); i += 1 }
                bus.endDeferringWakes()
                if UInt8.random(in: 0...255, using: &rng) < 16 { usleep(UInt32.random(in: 0...50, using: &rng)) }
            }
        }
        #expect(got == Int(total))
        #expect(c.dropped == 0)  // a 64 Ki-frame ring: every frame was received
        #expect(stalls == 0)
    }
}
