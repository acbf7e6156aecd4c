import Testing

@testable import EarshotRealtime

@Suite struct WakeSignalTests {
    @Test func timesOutWithoutSignalAndWakesWithOne() {
        let s = WakeSignal()
        let t0 = Clock.monotonicNanoseconds()
        #expect(s.wait(timeoutNanoseconds: 20_000_000) == false)
        #expect(Clock.monotonicNanoseconds() - t0 >= 15_000_000)
        s.signal()
        #expect(s.wait(timeoutNanoseconds: 1_000_000_000) == true)
    }

    @Test func alignedBufferIsAlignedAndZeroed() {
        let b = AlignedBuffer<Float>(count: 1000)
        #expect(Int(bitPattern: b.pointer) % 64 == 0)
        #expect(b.buffer.allSatisfy { $0 == 0 })
    }
}
