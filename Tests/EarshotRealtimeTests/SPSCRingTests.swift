import Glibc
import Synchronization
import Testing

@testable import EarshotRealtime

@Suite struct SPSCRingTests {
    @Test func roundsCapacityUpToPowerOfTwo() {
        #expect(SPSCRing<Float>(minimumCapacity: 1000).capacity == 1024)
        #expect(SPSCRing<Float>(minimumCapacity: 1024).capacity == 1024)
        #expect(SPSCRing<Float>(minimumCapacity: 1).capacity == 1)
    }

    /// Every write size against every read size, across many wrap-arounds, single thread.
    @Test(arguments: [1, 3, 7, 16, 31], [1, 2, 5, 16, 33])
    func wrapAroundPreservesOrder(writeChunk: Int, readChunk: Int) {
        let ring = SPSCRing<Float>(minimumCapacity: 64)
        var next: Float = 0
        var expected: Float = 0
        var src = [Float](repeating: 0, count: writeChunk)
        var dst = [Float](repeating: -1, count: readChunk)
        for _ in 0..<500 {
            if ring.capacity - ring.available >= writeChunk {
                for i in 0..<writeChunk { src[i] = next; next += 1 }
                src.withUnsafeBufferPointer { ring.write($0) }
            }
            let r = dst.withUnsafeMutableBufferPointer { ring.read(into: $0) }
            #expect(r.lost == 0)
            for i in 0..<r.count {
                #expect(dst[i] == expected)
                expected += 1
            }
        }
        #expect(ring.overrunCount == 0)
    }

    @Test func readExactlyWaitsForEnough() {
        let ring = SPSCRing<Int32>(minimumCapacity: 8)
        [1, 2, 3].withUnsafeBufferPointer { ring.write($0) }
        var dst = [Int32](repeating: 0, count: 4)
        #expect(dst.withUnsafeMutableBufferPointer { ring.read(into: $0) } == .init(count: 0, lost: 0))
        ring.write(4)
        #expect(dst.withUnsafeMutableBufferPointer { ring.read(into: $0) } == .init(count: 4, lost: 0))
        #expect(dst == [1, 2, 3, 4])
    }

    @Test func overrunDropsOldestAndCounts() {
        let ring = SPSCRing<Int32>(minimumCapacity: 8)
        let values = (0..<20).map { Int32($0) }
        values.withUnsafeBufferPointer { ring.write($0) }
        var dst = [Int32](repeating: 0, count: 8)
        let r = dst.withUnsafeMutableBufferPointer { ring.readAvailable(into: $0) }
        #expect(r == .init(count: 8, lost: 12))
        #expect(dst == Array(12..<20))
        #expect(ring.overrunCount == 12)
        #expect(ring.consumed == 20)
    }

    /// A real producer thread and consumer thread: every value arrives in order across wrap-around; with a
    /// consumer that keeps up there is no loss, and any loss is accounted exactly.
    @Test(arguments: [false, true])
    func twoThreadsEveryValueInOrder(slowConsumer: Bool) async {
        let total = 2_000_000
        let ring = SPSCRing<UInt32>(minimumCapacity: 4096)
        let done = Atomic<Bool>(false)
        let producer = RealtimeThread.start(name: "test-producer") {
            var chunk = [UInt32](repeating: 0, count: 480)
            var v: UInt32 = 0
            while Int(v) < total {
                let n = min(chunk.count, total - Int(v))
                if !slowConsumer {
                    // Lossless mode: wait for room instead of overrunning.
                    while ring.capacity - (ring.written - ring.consumed) < n { sched_yield() }
                }
                for i in 0..<n { chunk[i] = v; v &+= 1 }
                chunk.withUnsafeBufferPointer { ring.write(UnsafeBufferPointer(rebasing: $0[0..<n])) }
            }
            done.store(true, ordering: .releasing)
        }
        var expected: UInt32 = 0
        var lostTotal = 0
        var received = 0
        var dst = [UInt32](repeating: 0, count: 333)
        var ordered = true
        while true {
            let finished = done.load(ordering: .acquiring)
            let r = dst.withUnsafeMutableBufferPointer { ring.readAvailable(into: $0) }
            lostTotal += r.lost
            expected &+= UInt32(r.lost)
            for i in 0..<r.count where dst[i] != expected &+ UInt32(i) { ordered = false }
            expected &+= UInt32(r.count)
            received += r.count
            if slowConsumer && r.count > 0 { for _ in 0..<2000 { _ = ring.available } }
            if finished && r.count == 0 && ring.available == 0 { break }
        }
        RealtimeThread.join(producer.thread)
        #expect(ordered)
        #expect(received + lostTotal == total)
        #expect(lostTotal == ring.overrunCount)
        if slowConsumer { #expect(lostTotal > 0, "the slow consumer should have been lapped") } else { #expect(lostTotal == 0) }
    }
}
