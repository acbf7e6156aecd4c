import EarshotPipeline
import EarshotRealtime
import Foundation
import Synchronization
import Testing

@testable import EarshotSinks

/// What a frame consumer costs in wake-ups: a batch reader wakes on its own timer and takes the frames
/// queued since, a stream reader is woken for each frame published while it waits and gets it at once.
@Suite("BusReader wake-ups", .serialized)
struct BusReaderTests {
    final class Seen: @unchecked Sendable {
        let lock = NSLock()
        var seqs: [Int64] = []
        var delaysNs: [Int64] = []
        func add(_ h: FrameHeader) {
            let now = Clock.monotonicNanoseconds()
            lock.lock(); seqs.append(h.seq); delaysNs.append(now - h.dspEndNs); lock.unlock()
        }
        var snapshot: ([Int64], [Int64]) { lock.lock(); defer { lock.unlock() }; return (seqs, delaysNs) }
    }

    /// 100 frames, one every 5 ms (0.5 s): the stream reader drains about once per frame and gets each
    /// within a few ms; the batch reader (100 ms) gets all of them in about 5 drains.
    @Test func batchReaderWakesOnItsTimerStreamReaderPerFrame() throws {
        let bus = FrameBus(capacity: 256, nMels: 2, nMFCC: 1)
        let stream = BusReader(threadName: "es-test-stream", delivery: .stream)
        let batch = BusReader(threadName: "es-test-batch", delivery: .batch(intervalMilliseconds: 100))
        let streamSeen = Seen(), batchSeen = Seen()
        try stream.start(bus: bus, recorder: nil, onFrame: { streamSeen.add($0.header) }, afterDrain: { _ in 1_000 })
        try batch.start(bus: bus, recorder: nil, onFrame: { batchSeen.add($0.header) }, afterDrain: { _ in 1_000 })
        usleep(150_000)  // both parked
        let streamDrains0 = stream.drains.load(ordering: .relaxed), batchDrains0 = batch.drains.load(ordering: .relaxed)
        for i in 0..<100 {
            _ = bus.nextFrameBuffers()
            var h = FrameHeader()
            h.seq = Int64(i)
            h.dspEndNs = Clock.monotonicNanoseconds()
            bus.emit(h)
            usleep(5_000)
        }
        usleep(250_000)
        let streamDrains = stream.drains.load(ordering: .relaxed) - streamDrains0
        let batchDrains = batch.drains.load(ordering: .relaxed) - batchDrains0
        stream.stop(); batch.stop()
        let (s, sd) = streamSeen.snapshot, (b, _) = batchSeen.snapshot
        #expect(s == Array(0..<100))
        #expect(b == Array(0..<100))
        // Woken by the frames, not by its 1 s timer (which gives at most one drain in these 0.75 s): about one
        // drain per frame idle; ≥ 20 leaves room for a loaded box that merges neighbours into one drain.
        #expect(streamDrains >= 20, "stream drains \(streamDrains)")
        // Timer only: the publishing took ≥ 0.5 s, plus 0.25 s after: about 8 turns of 100 ms; never per frame.
        #expect(batchDrains <= 15, "batch drains \(batchDrains)")
        #expect(batchDrains >= 4, "batch drains \(batchDrains)")
        // The stream reader got most frames promptly (the median hand-off, generous for a loaded 2-core box).
        let median = sd.sorted()[sd.count / 2]
        #expect(median < 20_000_000, "median stream hand-off \(Double(median) / 1e6) ms")
    }

    /// A burst of 3 × the bus capacity published at once (the DSP catching up after a stall, or a source
    /// faster than real time): the batch reader is woken at half the ring each time and loses nothing,
    /// although its timer (1 s) would have let it fall a whole ring behind. The producer pauses 2 ms every 16
    /// frames and, should the woken reader not have caught up by then (a loaded box), waits for it rather than
    /// lap it — at most 0.5 s: a reader left to its 1 s timer would not catch up in time.
    @Test func batchReaderKeepsUpWithABurst() throws {
        let bus = FrameBus(capacity: 64, nMels: 2, nMFCC: 1)
        let batch = BusReader(threadName: "es-test-burst", delivery: .batch(intervalMilliseconds: 1_000))
        let seen = Seen()
        try batch.start(bus: bus, recorder: nil, onFrame: { seen.add($0.header) }, afterDrain: { _ in 1_000 })
        usleep(100_000)  // parked
        var longestWaitNs: Int64 = 0
        for i in 0..<192 {
            _ = bus.nextFrameBuffers()
            var h = FrameHeader()
            h.seq = Int64(i)
            bus.emit(h)
            if i % 16 == 15 {
                usleep(2_000)  // a fast burst, but the reader gets the CPU now and then
                // More than half the ring unread (its wake-up point): wait until the woken reader catches up.
                let from = Clock.monotonicNanoseconds()
                while i + 1 - seen.snapshot.0.count > 32, Clock.monotonicNanoseconds() - from < 500_000_000 { usleep(1_000) }
                longestWaitNs = max(longestWaitNs, Clock.monotonicNanoseconds() - from)
            }
        }
        usleep(300_000)
        batch.stop()
        #expect(seen.snapshot.0 == Array(0..<192))
        #expect(batch.dropped == 0)
        #expect(longestWaitNs < 500_000_000, "the reader was not woken at half the ring: waited \(longestWaitNs / 1_000_000) ms")
    }
}
