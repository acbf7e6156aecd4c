import EarshotCapture
import EarshotDSP
import EarshotPipeline
import EarshotRealtime
import Foundation
import Testing

/// The DSP thread driven by hand-written capture rings (the capture side is tested against real ALSA in
/// EarshotCaptureTests and end to end): timing from stamps, device gaps, ring overruns.
@Suite("DSP thread")
struct DSPThreadTests {
    final class Rig {
        let samples = SPSCRing<Float>(minimumCapacity: 1 << 14)  // 16384 samples
        let stamps = SPSCRing<CaptureStamp>(minimumCapacity: 1024)
        let wake = WakeSignal()
        let bus = FrameBus(capacity: 4096, nMels: 64, nMFCC: 13)
        let dsp: DSPThread
        let consumer: FrameBus.Consumer
        var written: Int64 = 0

        init() throws {
            let p = FrameProcessor(analyzer: try FrameAnalyzer(config: AnalyzerConfig()), output: bus, measureTiming: true)
            dsp = DSPThread(processor: p, samples: samples, stamps: stamps, wake: wake, maxPeriodFrames: 480)
            consumer = bus.attach()!
        }

        /// One period of `n` samples captured at `monoNs`.
        func period(_ n: Int, monoNs: Int64, flags: UInt32 = 0, gap: Int64 = 0, value: Float = 0.1) {
            let x = [Float](repeating: value, count: n).enumerated().map { $0.element * (($0.offset % 2 == 0) ? 1 : -1) }
            x.withUnsafeBufferPointer { samples.write($0) }
            stamps.write(CaptureStamp(firstSample: written, frames: Int32(n), monotonicNs: monoNs, wallNs: monoNs + 1_000_000_000_000, discontinuity: flags, gapSamples: gap))
            written += Int64(n)
            wake.signal()
        }

        func frames(timeout: Double = 5, until count: Int) -> [FrameHeader] {
            var out: [FrameHeader] = []
            let f = FrameCopy(nMels: 64, nMFCC: 13)
            let end = Date().addingTimeInterval(timeout)
            while out.count < count && Date() < end {
                if case .frame = consumer.next(into: f) { out.append(f.header) } else { consumer.notifier.wait(timeoutMilliseconds: 20) }
            }
            return out
        }
    }

    @Test func timesFromStampsAndDeviceGap() throws {
        let rig = try Rig()
        rig.dsp.start()
        defer { rig.dsp.stop() }
        let periodNs: Int64 = 10_000_000
        var t: Int64 = 5_000_000_000
        rig.period(480, monoNs: t, flags: CaptureStamp.Discontinuity.start)
        for _ in 0..<9 { t += periodNs; rig.period(480, monoNs: t) }
        // 10 periods = 4800 samples → (4800 − 1024) / 480 + 1 = 8 frames.
        let first = rig.frames(until: 8)
        #expect(first.count == 8)
        #expect(!first[0].isDiscontinuity)  // the stream start is not a gap
        for (i, h) in first.enumerated() {
            #expect(h.seq == Int64(i))
            #expect(abs(h.monotonicNs - (5_000_000_000 + Int64(i) * periodNs)) <= 1)
            #expect(h.wallNs - h.monotonicNs == 1_000_000_000_000)
            #expect(h.dspEndNs >= h.dspStartNs && h.dspStartNs > 0)
        }
        // An xrun lost 2400 samples (50 ms): the next frame starts after the gap on the timeline.
        t += periodNs + 50_000_000
        rig.period(480, monoNs: t, flags: CaptureStamp.Discontinuity.xrun, gap: 2400)
        for _ in 0..<3 { t += periodNs; rig.period(480, monoNs: t) }
        let after = rig.frames(until: 2)
        #expect(after.count == 2)
        #expect(after[0].seq == 8)
        #expect(after[0].isDiscontinuity && after[0].flags & FrameFlags.xrun != 0)
        #expect(after[0].gapSamples == 2400)
        #expect(after[0].firstSample == 4800 + 2400)
        #expect(abs(after[0].monotonicNs - (5_000_000_000 + 10 * periodNs + 50_000_000)) <= 1)
        #expect(!after[1].isDiscontinuity)
        #expect(rig.dsp.discontinuities == 1)
    }

    @Test func ringOverrunIsFlagged() throws {
        let rig = try Rig()
        // The DSP thread is not running: write 40 periods (19200 samples) into a 16384-sample ring.
        var t: Int64 = 1_000_000_000
        rig.period(480, monoNs: t, flags: CaptureStamp.Discontinuity.start)
        for _ in 0..<39 { t += 10_000_000; rig.period(480, monoNs: t) }
        rig.dsp.start()
        defer { rig.dsp.stop() }
        let frames = rig.frames(until: 30)
        #expect(!frames.isEmpty)
        let flagged = frames.filter(\.isDiscontinuity)
        #expect(flagged.count == 1)
        let lost = 19_200 - 16_384
        #expect(((flagged.first?.flags ?? 0) & FrameFlags.ringOverrun) != 0)
        #expect(flagged.first?.gapSamples == Int64(lost))
        #expect(rig.dsp.ringOverrunSamples == lost)
        // Timeline keeps counting the lost samples: frames start at or after the first surviving sample.
        #expect((flagged.first?.firstSample ?? 0) >= Int64(lost))
    }
}
