#if canImport(Glibc)
import Glibc
#endif
@_spi(Testing) import EarshotCapture
import EarshotRealtime
import EarshotTestKit
import Foundation
import Testing

extension CaptureTests {
    /// Issue 9 item 6: a capture source that stops delivering while it stays open (the `file` plugin reading a
    /// FIFO whose writer stops writing but keeps it open) blocks the capture thread inside libasound's `read`.
    /// Before, `stop()` waited for that read forever (SIGTERM ignored) and a reload's reopen did the same on
    /// the supervisor. Real libasound, real FIFO, real blocking read.
    @Suite struct StalledSource {
        /// A FIFO read by the `file` plugin; the test holds it open for writing (`O_RDWR`: never blocks) and
        /// writes what it wants, then stops: the reader blocks.
        final class StalledFIFO {
            let dir: URL
            let fifo: String
            let plugin: ALSAFilePlugin
            let writeFD: Int32

            init() throws {
                dir = try ALSAFilePlugin.makeTemporaryDirectory(prefix: "earshot-stall")
                fifo = dir.appendingPathComponent("capture.fifo").path
                guard mkfifo(fifo, 0o600) == 0 else { throw POSIXError(.EIO) }
                plugin = try ALSAFilePlugin(
                    directory: dir, bytes: [], pcmName: "stalled",
                    extraConfig: #"pcm.stalledfifo { type file slave.pcm "null" file "/dev/null" infile "\#(fifo)" format "raw" }"#)
                writeFD = open(fifo, O_RDWR | O_CLOEXEC)
                guard writeFD >= 0 else { throw POSIXError(.EIO) }
                plugin.install()
            }

            /// Writes `frames` float32 mono frames of a quiet tone.
            func write(frames: Int) {
                let bytes = (0..<frames).map { Float(0.1 * sin(Double($0) * 0.05)) }.withUnsafeBytes { Array($0) }
                var off = 0
                while off < bytes.count {
                    let n = bytes.withUnsafeBytes { Glibc.write(writeFD, $0.baseAddress! + off, $0.count - off) }
                    if n <= 0 { break }
                    off += n
                }
            }

            deinit {
                close(writeFD)
                ALSAFilePlugin.uninstall()
                try? FileManager.default.removeItem(at: dir)
            }
        }

        static func config(period: Int = 480) -> CaptureConfig {
            CaptureConfig(device: "stalledfifo", sampleRate: 48_000, channels: 1, format: .float32, periodFrames: period)
        }

        @Test func stopIsBoundedWhileAReadBlocks() throws {
            let source = try StalledFIFO()
            let h = CaptureHarness(config: Self.config())
            source.write(frames: 480 * 10)
            h.thread.start()
            #expect(h.run(until: 5) { h.thread.periods >= 10 }, "periods: \(h.thread.periods)")
            // The writer is silent now: the capture thread sits in read(2) on the FIFO.
            h.run(seconds: 0.3)
            #expect(h.thread.state == .running)
            let t0 = Date()
            let exited = h.thread.stop()
            let elapsed = Date().timeIntervalSince(t0)
            #expect(exited, "the capture thread had to be abandoned")
            #expect(elapsed < CaptureThread.stopTimeout, "stop took \(elapsed) s")
            #expect(h.thread.state == .stopped)
            print("stop() while a read blocked: \(String(format: "%.1f", elapsed * 1000)) ms")
        }

        /// Installs ALSA device `nowriter`: the `file` plugin reading a FIFO that no one ever opens for
        /// writing (its open blocks). Returns the temporary directory.
        static func installWriterlessFIFODevice(prefix: String) throws -> URL {
            let dir = try ALSAFilePlugin.makeTemporaryDirectory(prefix: prefix)
            let fifo = dir.appendingPathComponent("nowriter.fifo").path
            #expect(mkfifo(fifo, 0o600) == 0)
            let plugin = try ALSAFilePlugin(
                directory: dir, bytes: [], pcmName: "unused",
                extraConfig: #"pcm.nowriter { type file slave.pcm "null" file "/dev/null" infile "\#(fifo)" format "raw" }"#)
            plugin.install()
            return dir
        }

        /// A thread blocked in `open(2)` of a FIFO with no writer at all (the `file` plugin opens its infile
        /// in `snd_pcm_open`) stops just as fast.
        @Test func stopIsBoundedWhileOpenBlocks() throws {
            let dir = try Self.installWriterlessFIFODevice(prefix: "earshot-stall-open")
            defer { try? FileManager.default.removeItem(at: dir); ALSAFilePlugin.uninstall() }
            var config = Self.config()
            config.device = "nowriter"
            let h = CaptureHarness(config: config)
            h.thread.start()
            Thread.sleep(forTimeInterval: 0.3)
            #expect(h.thread.state == .starting)
            let t0 = Date()
            let exited = h.thread.stop()
            let elapsed = Date().timeIntervalSince(t0)
            #expect(exited && elapsed < CaptureThread.stopTimeout, "stop took \(elapsed) s, exited: \(exited)")
        }

        /// `probe` of a device whose open blocks (a FIFO with no writer) gives up after its timeout with a
        /// transient "unavailable … timed out" instead of hanging its caller (the daemon's start and reloads).
        @Test func probeOfABlockingOpenTimesOut() throws {
            let dir = try Self.installWriterlessFIFODevice(prefix: "earshot-probe")
            defer { try? FileManager.default.removeItem(at: dir); ALSAFilePlugin.uninstall() }
            var config = Self.config()
            config.device = "nowriter"
            let t0 = Date()
            var caught: CaptureError?
            do { _ = try CaptureThread.probe(config, timeout: 0.5) } catch { caught = error }
            let elapsed = Date().timeIntervalSince(t0)
            let error = try #require(caught)
            #expect(error.code == .deviceUnavailable && error.isTransient)
            #expect(error.alsaError?.errno == ETIMEDOUT, "\(error)")
            #expect(elapsed >= 0.5 && elapsed < 1.0, "probe took \(elapsed) s")
        }

        /// `reconfigure` returns at once while the read blocks; the capture thread reopens with the new
        /// parameters by itself, and the first period after the reopen carries the gap in samples.
        @Test func reconfigureDuringAStallDoesNotBlockAndReportsTheGap() throws {
            let source = try StalledFIFO()
            let h = CaptureHarness(config: Self.config(period: 480))
            source.write(frames: 480 * 10)
            h.thread.start()
            #expect(h.run(until: 5) { h.thread.periods >= 10 })
            h.run(seconds: 0.5)  // stalled for ~0.5 s
            let before = h.capturedStamps.count
            let t0 = Date()
            h.thread.reconfigure(Self.config(period: 960))
            let elapsed = Date().timeIntervalSince(t0)
            #expect(elapsed < 0.1, "reconfigure blocked for \(elapsed) s")
            #expect(h.thread.config.periodFrames == 960)
            #expect(h.run(until: 3) { h.thread.negotiated?.periodFrames == 960 }, "not reopened: \(String(describing: h.thread.negotiated))")
            source.write(frames: 960 * 5)
            #expect(h.run(until: 5) { h.capturedStamps.count >= before + 5 })
            let after = h.capturedStamps[before...]
            let first = try #require(after.first)
            #expect(first.frames == 960)
            #expect(first.discontinuity & CaptureStamp.Discontinuity.reconnect != 0, "flags \(first.discontinuity)")
            // The stall (≥ 0.5 s of missing audio at 48 kHz, less the ~0.1 s the plugin's full buffer puts the
            // stamps back) is reported in samples.
            #expect(first.gapSamples >= 14_400 && first.gapSamples < 144_000, "gap \(first.gapSamples)")
            #expect(after.dropFirst().allSatisfy { $0.discontinuity == 0 && $0.frames == 960 })
            #expect(h.thread.reconnects == 0, "a reload's reopen is not a reconnect")
            #expect(h.capturedEvents.filter { $0.kind == .opened }.count == 2)
            #expect(h.thread.stop())
        }

        /// A reader stall whose backlog reaches the plugin late (the pulse plugin's own client thread was
        /// stopped with the process: after SIGCONT it hands over one buffered period, the next read waits
        /// while it fetches the server's backlog, then the backlog comes at once). The bounded-backlog skip
        /// must not take that first wait for "fresh audio": the backlog is skipped and reported as the gap,
        /// not delivered as current audio (CI run of stop 22: a 500 ms pause reported as a 480-sample gap
        /// and the catch-up frames stamped 10.16 ms apart). Here the `file` plugin reads a FIFO the test
        /// writes: nothing during the stall, then one period, a 20 ms wait, the 500 ms backlog at once, and
        /// real time again.
        @Test func lateBacklogAfterAStallIsSkippedNotDeliveredAsCurrent() throws {
            let source = try StalledFIFO()
            var cfg = Self.config()
            cfg.maxBacklog = 0.25
            let h = CaptureHarness(config: cfg)
            source.write(frames: 480 * 4)
            h.thread.start()
            defer { h.thread.stop() }
            #expect(h.run(until: 5) { h.thread.periods >= 4 }, "periods: \(h.thread.periods)")
            func pace(_ periods: Int) {
                for _ in 0..<periods { source.write(frames: 480); h.run(seconds: 0.01) }
            }
            pace(100)
            h.thread.injectStall(milliseconds: 500)
            let stalledAt = Date()
            pace(1)  // the read in progress returns; the thread stalls at its loop top
            h.run(seconds: 0.49 - Date().timeIntervalSince(stalledAt))
            source.write(frames: 480)  // the one buffered period
            h.run(seconds: 0.03)  // the stall ends; the next read waits
            source.write(frames: 24_000)  // the backlog, at once
            let periodsBeforeRealTime = h.thread.periods
            pace(100)
            h.run(seconds: 0.1)
            h.thread.stop()
            h.drain()
            #expect(h.lostSamples == 0)
            let flagged = h.capturedStamps.filter { $0.discontinuity & CaptureStamp.Discontinuity.xrun != 0 }
            #expect(flagged.count == 1, "flagged: \(flagged)")
            let f = try #require(flagged.first)
            print("late backlog after a 500 ms stall: gap \(f.gapSamples) samples; periods after it \(h.thread.periods - periodsBeforeRealTime)")
            // Skipped: the buffered period, the backlog and at most two fresh periods.
            #expect(f.gapSamples >= 24_000 && f.gapSamples <= 24_000 + 4 * 480, "gap \(f.gapSamples)")
            // What follows the gap is the real-time audio only: one hop apart on the clock, not a burst.
            let after = h.capturedStamps.drop { $0.firstSample < f.firstSample }
            #expect(after.count <= 100 + 2, "\(after.count) periods after the gap for 100 written in real time")
        }

        /// The writer of a blocking source pauses (the `file` plugin on a FIFO: the capture thread's read blocks
        /// for the whole pause, which looks like a stall of its own) and then resumes in real time without a
        /// backlog: the gap is the pause, measured from the next period's time, and the timeline stays in step
        /// with the clock. Before (attack run D3 of stop 22), only the samples read after the pause were counted
        /// as the gap (a 3.3 s pause reported as 960 samples) and every later stamp lagged the clock by the
        /// pause.
        @Test func writerPauseWithoutBacklogIsReportedAsThePause() throws {
            let source = try StalledFIFO()
            let h = CaptureHarness(config: Self.config())
            source.write(frames: 480 * 4)
            h.thread.start()
            defer { h.thread.stop() }
            #expect(h.run(until: 5) { h.thread.periods >= 4 }, "periods: \(h.thread.periods)")
            // Real time by the clock (a loop of write + 10 ms sleeps runs slow, and the timeline follows a
            // slow writer only gradually).
            func pace(seconds: Double) {
                let start = Date()
                var written = 0
                while true {
                    let elapsed = Date().timeIntervalSince(start)
                    if elapsed >= seconds { break }
                    let due = Int(elapsed * 48_000) / 480 * 480 + 480
                    if due > written { source.write(frames: due - written); written = due }
                    h.run(seconds: 0.002)
                }
            }
            pace(seconds: 1.0)
            h.run(seconds: 1.0)  // the writer pauses: the read blocks
            pace(seconds: 1.5)
            let endNs = EarshotRealtime.Clock.monotonicNanoseconds()
            h.thread.stop()
            h.drain()
            let flagged = h.capturedStamps.filter { $0.discontinuity & CaptureStamp.Discontinuity.xrun != 0 }
            #expect(flagged.count == 1, "flagged: \(flagged)")
            let f = try #require(flagged.first)
            let last = try #require(h.capturedStamps.last)
            let lagMs = Double(endNs - (last.monotonicNs + Int64(last.frames) * 1_000_000_000 / 48_000)) / 1e6
            print("writer pause 1 s: gap \(f.gapSamples) samples; last period ends \(lagMs) ms before the test's clock")
            // The pause (1 s, less what the writer's pacing and the plugin put around it) within 150 ms.
            #expect(f.gapSamples >= 48_000 - 7_200 && f.gapSamples <= 48_000 + 7_200, "gap \(f.gapSamples)")
            #expect(lagMs < 250, "the timeline lags the clock by \(lagMs) ms after the pause")
        }
    }
}
