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

    /// 4 level channels, periods 5× longer than the pipeline was built for (`maxPeriodFrames` 480: a device
    /// that negotiated a larger period, or a reopen with a larger `capture.period_frames`): the DSP thread reads
    /// the channels in pieces that fit its side scratch, so the levels are still the energy mean of the channels
    /// (anti-phase pairs: one channel's level) — before, such periods got no side and read the silent downmix.
    @Test func periodsLongerThanTheSideScratchKeepTheirChannels() throws {
        var config = AnalyzerConfig()
        config.levelChannels = 4
        let samples = SPSCRing<Float>(minimumCapacity: 1 << 14), side = SPSCRing<Float>(minimumCapacity: 1 << 16)
        let stamps = SPSCRing<CaptureStamp>(minimumCapacity: 256), wake = WakeSignal()
        let bus = FrameBus(capacity: 1024, nMels: config.nMels, nMFCC: config.nMFCC)
        let p = FrameProcessor(analyzer: try FrameAnalyzer(config: config), output: bus, measureTiming: false)
        let dsp = DSPThread(processor: p, samples: samples, side: side, stamps: stamps, wake: wake, maxPeriodFrames: 480)
        let consumer = try #require(bus.attach())
        dsp.start()
        defer { dsp.stop() }
        let period = 2400
        var written: Int64 = 0
        for k in 0..<20 {
            let x = (0..<period).map { Float(0.1 * sin(2 * Double.pi * 1000 * Double(written + Int64($0)) / 48_000)) }
            var chans = [Float](repeating: 0, count: period * 4)
            for j in 0..<period { chans[j * 4] = x[j]; chans[j * 4 + 1] = -x[j]; chans[j * 4 + 2] = x[j]; chans[j * 4 + 3] = -x[j] }
            let sideFirst = Int64(side.written)
            chans.withUnsafeBufferPointer { side.write($0) }
            [Float](repeating: 0, count: period).withUnsafeBufferPointer { samples.write($0) }  // the downmix: silent
            let t = 1_000_000_000 + written * 1_000_000_000 / 48_000
            stamps.write(CaptureStamp(firstSample: written, frames: Int32(period), monotonicNs: t, wallNs: t,
                                      discontinuity: k == 0 ? CaptureStamp.Discontinuity.start : 0, gapSamples: 0,
                                      sideFirst: sideFirst, sideStride: 4))
            written += Int64(period)
            wake.signal()
            // As capture would: the next period once this one is read (the rings must not lap).
            let until = Date().addingTimeInterval(5)
            while Int64(samples.consumed) < written && Date() < until { usleep(1_000) }
        }
        var headers: [FrameHeader] = []
        let f = FrameCopy(nMels: config.nMels, nMFCC: config.nMFCC)
        let end = Date().addingTimeInterval(10)
        while headers.count < 90 && Date() < end {
            if case .frame = consumer.next(into: f) { headers.append(f.header) } else { consumer.notifier.wait(timeoutMilliseconds: 20) }
        }
        #expect(headers.count >= 90)
        // A 0.1-amplitude 1 kHz sine: LAF about −23 dBFS once settled (−200 from the silent downmix).
        for h in headers.dropFirst(60) {
            #expect(abs(h.features.laf - (-23.01)) < 0.1, "frame \(h.seq): laf \(h.features.laf)")
            #expect(h.features.rmsDbfs < -100)
        }
    }
}
