#if canImport(Glibc)
import Glibc
#endif
import EarshotCapture
import EarshotTestKit
import Foundation
import Testing

extension CaptureTests.StalledSource {
    /// `CaptureTap.record` (calibrate) on a source that stalls: the reading thread is interrupted and the call
    /// ends within its deadline, with the interrupt sent only while the (detached) reading thread is alive
    /// (its id is cleared and the signal sent under one lock). Repeated with the stall at different points so
    /// the thread ends around the moment the interrupts start; each run must end bounded, never hang or
    /// signal a dead thread (which could kill the test process or another thread's read).
    @Test func recordOfAStalledSourceEndsWithinItsDeadline() throws {
        let source = try StalledFIFO()
        for round in 0..<3 {
            source.write(frames: 480 * (2 + round))
            let t0 = Date()
            var caught: (any Error)?
            do { _ = try CaptureTap.record(Self.config(), seconds: 0.5, timeoutSlack: 0.2) } catch { caught = error }
            let elapsed = Date().timeIntervalSince(t0)
            let error = try #require(caught as? CaptureTap.RecordError, "round \(round): \(String(describing: caught))")
            #expect(error.message.contains("delivered too little audio"), "\(error)")
            #expect(elapsed >= 0.7 && elapsed < 3.0, "round \(round): record took \(elapsed) s")
        }
        // The source delivers again (from another thread: 96 KB does not fit the pipe's buffer): a full recording
        // still works (the interrupted threads are gone and read nothing more).
        final class Box: @unchecked Sendable { let source: StalledFIFO; init(_ s: StalledFIFO) { source = s } }
        let box = Box(source)
        let writer = Thread { box.source.write(frames: 24_000) }
        writer.start()
        let got = try CaptureTap.record(Self.config(), seconds: 0.5, timeoutSlack: 2)
        #expect(got.count == 24_000)
    }
}
