#if canImport(Glibc)
import Glibc
#endif
import EarshotTestKit
import Foundation
import Testing

/// "No allocation on the capture and DSP hot path", measured on the **release** build (what ships:
/// the optimizer decides what allocates): `earshot-alloc-check` built here with `swift build -c release
/// --product earshot-alloc-check --scratch-path .build-alloc-check` (its own directory: `swift test` holds
/// the lock of `.build`; an incremental no-op when up to date;
/// `$EARSHOT_ALLOC_CHECK_DIR` names a directory holding an already built one instead) runs the DSP
/// thread (rings → framing → analysis → FrameBus, with an xrun gap and a ring overrun) and the ALSA
/// capture thread (file plugin, real libasound) under malloc-interposer, and
/// counts every malloc/calloc/realloc made in the process while they run; first the analyzer alone with
/// every output mask `earshot analyze --features` can select (an array literal in `process` once
/// allocated 4 times per frame: caught here). A control phase allocates
/// once on another thread to prove the counter is live.
/// Top level, not under `EndToEnd` (whose 3-minute limit applies to nested suites): the first release
/// build in a fresh checkout takes longer.
@Suite("real-time path allocations (release build)", .timeLimit(.minutes(30))) struct Allocations {
    /// The directory of the release `earshot-alloc-check` and `libMallocInterposerSwift.so`.
    static func releaseToolDirectory() throws -> URL {
        if let dir = ProcessInfo.processInfo.environment["EARSHOT_ALLOC_CHECK_DIR"], !dir.isEmpty {
            return URL(fileURLWithPath: dir)
        }
        let root = EarshotBinary.packageRoot
        let swift = ProcessInfo.processInfo.environment["SWIFT_EXEC_DRIVER"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (FileManager.default.isExecutableFile(atPath: "/opt/swift/usr/bin/swift") ? "/opt/swift/usr/bin/swift" : Subprocess.which("swift"))
        let driver = try #require(swift, "no swift driver on PATH")
        // Its own scratch directory: `swift test` holds the lock of `.build` while the tests run.
        let scratch = root.appendingPathComponent(".build-alloc-check")
        let build = try Subprocess.run(driver, ["build", "-c", "release", "--product", "earshot-alloc-check", "--scratch-path", scratch.path],
                                       in: root.path)
        try #require(build.status == 0,
                     "swift build -c release --product earshot-alloc-check --scratch-path .build-alloc-check failed:\n\(build.output)")
        return scratch.appendingPathComponent("release")
    }

    @Test func captureAndDSPThreadsDoNotAllocate() throws {
        let dir = try Self.releaseToolDirectory()
        let tool = dir.appendingPathComponent("earshot-alloc-check").path
        let interposer = dir.appendingPathComponent("libMallocInterposerSwift.so").path
        try #require(FileManager.default.isExecutableFile(atPath: tool), "\(tool) missing: swift build -c release --product earshot-alloc-check --scratch-path .build-alloc-check")
        try #require(FileManager.default.fileExists(atPath: interposer), "\(interposer) missing: swift build -c release --product earshot-alloc-check --scratch-path .build-alloc-check")
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
        for mask in ["all", "spectral", "statistics", "levels", "mfcc", "none", "levels_bands_octave", "levels_bands_third"] {
            #expect(int("analyzer_" + mask, "frames") == 200, "\(p.lines)")
            #expect(int("analyzer_" + mask, "mallocs") == 0, "allocations in FrameAnalyzer.process (outputs \(mask)): \(p.lines)")
        }
        #expect(int("dsp", "frames") >= 1000, "\(p.lines)")
        #expect(int("dsp", "nonfinite_samples") > 0, "the sanitizing path was not exercised: \(p.lines)")
        #expect(int("dsp", "discontinuities") >= 2, "the xrun gap and the ring overrun should be exercised: \(p.lines)")
        #expect(int("dsp", "retunes") >= 4, "the retune mailbox was not exercised: \(p.lines)")
        // The on-demand consumer's wake filter was judged on the DSP thread: woken once in each of the 24
        // batches it spent parked with the match-every-frame filter (the tool waits for that wake-up before it
        // changes the filter back; without that wait the count depended on timing — 4 on a loaded CI machine —
        // because a drain defers its wake-ups to its end and judges them by the filter set then).
        #expect(int("dsp", "on_demand_frames") >= 1000 && int("dsp", "on_demand_wakes") >= 20, "\(p.lines)")
        #expect(int("dsp", "mallocs") == 0, "allocations on the DSP path: \(p.lines)")
        #expect(int("dsp", "clip_tap_samples") >= 1000 * 480, "the clip tap (clips enabled) was not exercised: \(p.lines)")
        #expect(int("capture", "periods") >= 1000, "\(p.lines)")
        #expect(int("capture", "mallocs") == 0, "allocations on the capture path: \(p.lines)")
        #expect(int("capture_stereo", "periods") >= 1000 && int("capture_stereo", "side_samples") > 0, "\(p.lines)")
        #expect(int("capture_stereo", "mallocs") == 0, "allocations on the 2-channel capture path: \(p.lines)")
        // The daemon's path: the DSP stage on the capture thread (LivePipeline), 2 channels, bands on.
        #expect(int("capture_dsp", "periods") >= 2000 && int("capture_dsp", "frames") >= 1900, "\(p.lines)")
        #expect(phases["capture_dsp"]?["inline"] as? Bool == true, "\(p.lines)")
        #expect(int("capture_dsp", "mallocs") == 0, "allocations on the capture thread running the DSP stage: \(p.lines)")
        #expect(int("capture_dsp_4ch", "periods") >= 2000 && int("capture_dsp_4ch", "frames") >= 1900, "\(p.lines)")
        #expect(int("capture_dsp_4ch", "side_floats") >= 4 * 480 * 2000, "4 floats per sample in the side ring: \(p.lines)")
        // ... and the DSP stage took them (a stride mismatch would leave the per-channel path unexercised).
        #expect(int("capture_dsp_4ch", "side_reads") >= 1900, "the level channels were not read: \(p.lines)")
        #expect(int("capture_dsp_4ch", "mallocs") == 0, "allocations on the 4-channel capture + DSP path: \(p.lines)")
    }
}
