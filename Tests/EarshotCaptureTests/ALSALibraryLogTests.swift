#if canImport(Glibc)
import Glibc
#endif
import EarshotCapture
import EarshotTestKit
import Foundation
import Testing

extension CaptureTests {
    /// Issue 9 item 12 (capture part): libasound's own error lines are captured (for the daemon to log with a
    /// level) instead of going to stderr, and device names cannot forge log lines.
    @Suite struct ALSALibraryErrors {
        /// A `file` PCM whose infile is missing: libasound reports `open … for reading failed` through its
        /// error handler; the line is queued with its source and errno, not printed.
        @Test func libasoundErrorsAreQueuedNotPrinted() throws {
            let dir = try ALSAFilePlugin.makeTemporaryDirectory(prefix: "earshot-alsalog")
            defer { try? FileManager.default.removeItem(at: dir) }
            let missing = dir.appendingPathComponent("missing.raw").path
            let plugin = try ALSAFilePlugin(
                directory: dir, bytes: [0, 0], pcmName: "unused",
                extraConfig: #"pcm.noinfile { type file slave.pcm "null" file "/dev/null" infile "\#(missing)" format "raw" }"#)
            plugin.install()
            defer { ALSAFilePlugin.uninstall() }
            ALSALibraryLog.capture()
            _ = ALSALibraryLog.drain()
            #expect(throws: CaptureError.self) {
                _ = try CaptureThread.probe(CaptureConfig(device: "noinfile", format: .float32))
            }
            let lines = ALSALibraryLog.drain().lines
            let line = try #require(lines.first { $0.message.contains(missing) }, "\(lines)")
            #expect(line.message.contains("for reading failed"))
            #expect(line.errno == ENOENT)
            #expect(line.source.hasPrefix("pcm_file.c:") && line.source.contains("snd_pcm_file_open"), "\(line.source)")
        }

        /// A device name with a newline (from configuration): libasound's "Unknown PCM" line and the
        /// `CaptureError` text both keep it on one line.
        @Test func deviceNamesCannotForgeLogLines() throws {
            ALSALibraryLog.capture()
            _ = ALSALibraryLog.drain()
            let name = "nosuch\n<3>earshot: forged"
            var caught: CaptureError?
            do { _ = try CaptureThread.probe(CaptureConfig(device: name)) } catch { caught = error }
            let error = try #require(caught)
            #expect(!error.description.contains("\n"))
            #expect(error.description.contains(#"'nosuch\n<3>earshot: forged'"#), "\(error)")
            let lines = ALSALibraryLog.drain().lines
            #expect(lines.contains { $0.message.contains("nosuch?<3>earshot: forged") }, "\(lines)")
            #expect(!lines.contains { $0.message.contains("\n") || $0.source.contains("\n") })
        }

        /// The queue is bounded: 70 errors keep the newest 64, and the 6 overwritten are counted.
        @Test func queueIsBoundedAndCountsWhatItDrops() throws {
            ALSALibraryLog.capture()
            _ = ALSALibraryLog.drain()
            for i in 0..<70 {
                _ = try? CaptureThread.probe(CaptureConfig(device: "nosuch-\(i)"))
            }
            let (lines, dropped) = ALSALibraryLog.drain()
            let unknown = lines.filter { $0.message.contains("Unknown PCM nosuch-") }
            #expect(lines.count == 64 && dropped >= 6, "\(lines.count) lines, \(dropped) dropped")
            #expect(unknown.last?.message.contains("nosuch-69") == true, "\(String(describing: unknown.last))")
            #expect(ALSALibraryLog.drain().lines.isEmpty)
        }
    }
}
