#if canImport(Glibc)
import Glibc
#endif
import EarshotCapture
import EarshotDSP
import EarshotPipeline
import EarshotRealtime
import EarshotTestKit
import Foundation
import Testing

/// `LivePipeline` runs its DSP stage on the capture thread (no `es-dsp` thread to wake per period): through
/// real libasound (the `file` plugin, which delivers as fast as it is read), every captured sample is framed
/// (the capture thread writes a period and drains it in turn, so its ring cannot overrun however fast the
/// device delivers), a re-plan pauses and resumes the stage, and `stop` leaves nothing in the ring.
@Suite("live pipeline", .serialized)
struct LivePipelineTests {
    static func waitUntil(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let end = Clock.monotonicNanoseconds() + Int64(seconds * 1e9)
        while Clock.monotonicNanoseconds() < end {
            if condition() { return true }
            usleep(2_000)
        }
        return condition()
    }

    /// A pipeline reading 1 s of a float tone, looped, through the `file` plugin in a fresh directory
    /// (removed by the caller's `defer`).
    static func tonePipeline(_ prefix: String, hz: Double) throws -> (LivePipeline, URL) {
        let dir = try ALSAFilePlugin.makeTemporaryDirectory(prefix: prefix)
        let tone = (0..<48_000).map { Float(0.1 * sin(2 * Double.pi * hz * Double($0) / 48_000)) }
        let plugin = try ALSAFilePlugin(directory: dir, bytes: tone.withUnsafeBytes { Array($0) })
        plugin.install()
        let pipeline = LivePipeline(capture: CaptureConfig(device: plugin.pcmName, format: .float32),
                                    analyzer: try FrameAnalyzer(config: AnalyzerConfig()), ringSeconds: 4)
        return (pipeline, dir)
    }

    @Test func dspStageRunsOnTheCaptureThreadAndFramesEverySample() throws {
        let (pipeline, dir) = try Self.tonePipeline("earshot-live", hz: 1000)
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = pipeline.analyzerConfig
        #expect(pipeline.dsp.runsOnCaptureThread)
        let consumer = try #require(pipeline.bus.attach())
        pipeline.start()
        #expect(Self.waitUntil(20) { pipeline.dsp.frames >= 200 }, "frames: \(pipeline.dsp.frames)")

        // The streaming consumer is woken by the producer (parked → eventfd) and sees consecutive frames.
        let f = FrameCopy(nMels: config.nMels, nMFCC: config.nMFCC)
        var last: Int64 = -1, read = 0
        for _ in 0..<50 {
            while case .frame = consumer.next(into: f) {
                if last >= 0 && f.header.seq != last + 1 && !f.header.isDiscontinuity { Issue.record("seq \(last) → \(f.header.seq)") }
                last = f.header.seq; read += 1
            }
            _ = consumer.notifier.wait(timeoutMilliseconds: 100)
        }
        #expect(read > 0)

        #expect(pipeline.stop())
        // Everything captured was framed: (samples − n_fft) / hop + 1 frames, no overrun.
        #expect(pipeline.samples.available == 0)
        #expect(pipeline.dsp.ringOverrunSamples == 0)
        let total = pipeline.capture.frames
        #expect(total >= 200 * config.hop)
        #expect(pipeline.dsp.frames == (total - config.nFFT) / config.hop + 1,
                "captured \(total) samples, framed \(pipeline.dsp.frames)")
        // Stopped: the capture thread no longer drains (nothing left running that could touch the bus).
        let framesAtStop = pipeline.dsp.frames
        usleep(50_000)
        #expect(pipeline.dsp.frames == framesAtStop)
    }

    /// A re-plan pauses the stage (the capture thread keeps filling the ring) and resumes it with the new
    /// analyzer. The `file` plugin delivers far faster than real time, so a pause of a few ms on a loaded
    /// machine may let the ring overrun: then it must be counted and flagged, never silent.
    @Test func replanPausesAndResumesTheStage() throws {
        let (pipeline, dir) = try Self.tonePipeline("earshot-live-replan", hz: 440)
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = pipeline.analyzerConfig
        pipeline.start()
        #expect(Self.waitUntil(20) { pipeline.dsp.frames >= 100 }, "frames: \(pipeline.dsp.frames)")
        var other = config
        other.onset.delta += 1
        let before = pipeline.dsp.frames
        #expect(pipeline.replan(analyzer: try FrameAnalyzer(config: other)))
        #expect(pipeline.analyzerConfig.onset.delta == other.onset.delta)
        #expect(Self.waitUntil(20) { pipeline.dsp.frames >= before + 200 }, "no frames after the re-plan")
        #expect(pipeline.stop())
        #expect(pipeline.samples.available == 0)
        if pipeline.dsp.ringOverrunSamples > 0 { #expect(pipeline.dsp.discontinuities >= 1) }
    }
}
