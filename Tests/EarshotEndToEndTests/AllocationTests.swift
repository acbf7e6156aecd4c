#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

extension EndToEnd {
    /// "No allocation on the capture and DSP hot path", measured: `earshot-alloc-check` (built next to
    /// `earshot`) runs the DSP thread (rings → framing → analysis → FrameBus, with an xrun gap and a ring
    /// overrun) and the ALSA capture thread (file plugin, real libasound) under malloc-interposer, and
    /// counts every malloc/calloc/realloc made in the process while they run; first the analyzer alone with
    /// every output mask `earshot analyze --features` can select (an array literal in `process` once
    /// allocated 4 times per frame: caught here). A control phase allocates
    /// once on another thread to prove the counter is live.
    @Suite("real-time path allocations") struct Allocations {
        @Test func captureAndDSPThreadsDoNotAllocate() throws {
            let earshot = try EarshotBinary.require()
            let dir = URL(fileURLWithPath: earshot).deletingLastPathComponent()
            let tool = dir.appendingPathComponent("earshot-alloc-check").path
            let interposer = dir.appendingPathComponent("libMallocInterposerSwift.so").path
            try #require(FileManager.default.isExecutableFile(atPath: tool), "\(tool) missing: run `swift build`")
            try #require(FileManager.default.fileExists(atPath: interposer), "\(interposer) missing: run `swift build`")
            var env = baseChildEnvironment()
            env["LD_PRELOAD"] = interposer
            let p = try DaemonProcess(executable: tool, arguments: [], environment: env)
            let term = p.wait(timeout: 90)
            #expect(term == .exited(0), "stderr: \(p.stderr)")
            var phases: [String: [String: Any]] = [:]
            for line in p.lines {
                if let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let name = o["phase"] as? String {
                    phases[name] = o
                }
            }
            func int(_ phase: String, _ key: String) -> Int { (phases[phase]?[key] as? NSNumber)?.intValue ?? -1 }
            #expect(int("control", "mallocs") >= 1, "the interposer did not count the control allocation: \(p.lines)")
            for mask in ["all", "spectral", "statistics", "levels", "mfcc", "none"] {
                #expect(int("analyzer_" + mask, "frames") == 200, "\(p.lines)")
                #expect(int("analyzer_" + mask, "mallocs") == 0, "allocations in FrameAnalyzer.process (outputs \(mask)): \(p.lines)")
            }
            #expect(int("dsp", "frames") >= 1000, "\(p.lines)")
            #expect(int("dsp", "nonfinite_samples") > 0, "the sanitizing path was not exercised: \(p.lines)")
            #expect(int("dsp", "discontinuities") >= 2, "the xrun gap and the ring overrun should be exercised: \(p.lines)")
            #expect(int("dsp", "retunes") >= 4, "the retune mailbox was not exercised: \(p.lines)")
            #expect(int("dsp", "mallocs") == 0, "allocations on the DSP path: \(p.lines)")
            #expect(int("capture", "periods") >= 1000, "\(p.lines)")
            #expect(int("capture", "mallocs") == 0, "allocations on the capture path: \(p.lines)")
        }
    }
}
