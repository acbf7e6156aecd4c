import EarshotCapture
import EarshotDSP
@testable import EarshotPipeline
import EarshotRealtime
import Foundation
import Testing

/// The DSP thread's one-slot retune mailbox: taken between frames by the running thread, newest wins, no
/// discontinuity, refused for a look-ahead change.
@Suite("Retune mailbox")
struct RetuneMailboxTests {
    @Test func runningThreadTakesTheNewestParametersWithoutADiscontinuity() throws {
        // Room for all 41 periods written below (19 680 samples): the DSP thread (SCHED_BATCH) may not run
        // before the burst is written, and an overrun would flag a discontinuity this test is not about.
        let samples = SPSCRing<Float>(minimumCapacity: 1 << 15)
        let stamps = SPSCRing<CaptureStamp>(minimumCapacity: 1024)
        let wake = WakeSignal()
        let bus = FrameBus(capacity: 4096, nMels: 64, nMFCC: 13)
        let p = FrameProcessor(analyzer: try FrameAnalyzer(config: AnalyzerConfig()), output: bus, measureTiming: false)
        let dsp = DSPThread(processor: p, samples: samples, stamps: stamps, wake: wake, maxPeriodFrames: 480)
        let consumer = try #require(bus.attach())
        dsp.start()
        defer { dsp.stop() }
        var written: Int64 = 0
        func period(_ flags: UInt32 = 0) {
            let x = (0..<480).map { Float(0.1 * sin(Double(written + Int64($0)) * 0.05)) }
            x.withUnsafeBufferPointer { samples.write($0) }
            stamps.write(CaptureStamp(firstSample: written, frames: 480, monotonicNs: 1_000_000_000 + written * 20_833,
                                      wallNs: 0, discontinuity: flags, gapSamples: 0))
            written += 480
            wake.signal()
        }
        period(CaptureStamp.Discontinuity.start)
        for _ in 0..<20 { period() }
        var c = OnsetPickerConfig()
        c.delta = 7
        #expect(dsp.retune(onset: c))
        c.delta = 9  // replaces the first if it was not taken yet
        #expect(dsp.retune(onset: c))
        for _ in 0..<20 { period() }
        #expect(waitUntil { dsp.retunesApplied >= 1 && p.analyzer.picker.config.delta == 9 }, "picker delta: \(p.analyzer.picker.config.delta)")
        var lookAhead = OnsetPickerConfig()
        lookAhead.postMaxFrames = 0
        #expect(!dsp.retune(onset: lookAhead), "a look-ahead change is a re-plan")
        // Every frame so far is continuous: no discontinuity, consecutive seq.
        let f = FrameCopy(nMels: 64, nMFCC: 13)
        var seqs: [Int64] = []
        var flagged: [Int64] = []
        let got = waitUntil {
            while case .frame = consumer.next(into: f) {
                if f.header.isDiscontinuity { flagged.append(f.header.seq) }
                seqs.append(f.header.seq)
            }
            return seqs.count >= 35  // 41 periods of 480 → 39 frames
        }
        #expect(got, "frames: \(seqs.count)")
        #expect(flagged.isEmpty, "frames flagged a discontinuity: \(flagged)")
        #expect(seqs == Array(0..<Int64(seqs.count)))
    }

    func waitUntil(_ timeout: Double = 5, _ condition: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end { if condition() { return true }; usleep(5_000) }
        return condition()
    }
}
