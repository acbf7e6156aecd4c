#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// Issue 9 item 6, against the built binary: a capture source that stops delivering but stays open (the
/// `file` plugin reading a FIFO whose writer pauses) blocks the capture thread in `read(2)` inside libasound.
/// Before the fix, SIGTERM was ignored for as long as the stall lasted (the supervisor waited for the capture
/// thread), and a SIGHUP that changed `capture.*` wedged the supervisor the same way.
extension EndToEnd.Service {
    @Test func sigtermDuringAStalledCaptureExitsWithinTheBound() throws {
        let rig = try Rig("stall-term")
        defer { rig.cleanup() }
        let daemon = try DaemonProcess(earshot: ["run", "--config", rig.config.path], environment: rig.environment())
        defer { daemon.killAndReap() }
        #expect(daemon.wait(until: 15) { _ in FileManager.default.fileExists(atPath: rig.socketPath) }, "\(daemon.stderr)")
        let client = try SocketLineClient(path: rig.socketPath)
        client.send(#"{"op":"subscribe","streams":["frame"],"fields":["laf"]}"#)
        #expect(client.readUntil(timeout: 5) { $0.contains("\"type\":\"frame\"") } != nil, "no frames: \(daemon.stderr)")

        rig.device.pause()
        Thread.sleep(forTimeInterval: 0.5)
        _ = client.readUntil(timeout: 0.2) { _ in false }  // drain what was in flight
        #expect(client.readUntil(timeout: 0.5) { $0.contains("\"type\":\"frame\"") } == nil, "frames while the source is stalled")

        let t0 = Date()
        daemon.signal(SIGTERM)
        let end = daemon.wait(timeout: 10)
        let elapsed = Date().timeIntervalSince(t0)
        #expect(end == .exited(0), "\(String(describing: end)); \(daemon.stderr)")
        // The capture thread's stop is bounded by 1 s; the rest is flushing sinks and removing the socket.
        #expect(elapsed < 2.0, "SIGTERM → exit took \(elapsed) s")
        #expect(!FileManager.default.fileExists(atPath: rig.socketPath))
        print("SIGTERM during a stalled capture read → exit 0 after \(String(format: "%.0f", elapsed * 1000)) ms")
    }

    /// A `capture.*` change on SIGHUP during the stall: the reopen happens on the capture thread, so the
    /// supervisor stays responsive (the reload completes and is announced, `stats` keep coming, READY=1 is
    /// sent again, SIGTERM still works); when the source resumes, frames flow with the new period and the
    /// first one reports the gap in samples.
    @Test func captureReloadDuringAStallKeepsTheSupervisorResponsive() throws {
        let rig = try Rig("stall-reload")
        defer { rig.cleanup() }
        let notify = try NotifyListener(path: rig.dir.appendingPathComponent("notify.sock").path)
        let daemon = try DaemonProcess(earshot: ["run", "--config", rig.config.path], environment: rig.environment([
            "NOTIFY_SOCKET": notify.path,
        ]))
        defer { daemon.killAndReap() }
        #expect(daemon.wait(until: 15) { _ in !notify.times(of: "READY=1").isEmpty }, "no READY=1; \(daemon.stderr)")
        let client = try SocketLineClient(path: rig.socketPath)
        client.send(#"{"op":"subscribe","streams":["frame","status","stats"],"fields":["laf"]}"#)
        #expect(client.readUntil(timeout: 5) { $0.contains("\"type\":\"frame\"") } != nil)

        rig.device.pause()
        Thread.sleep(forTimeInterval: 0.7)
        try rig.write("", capture: "  period_frames: 960")
        let hupAt = notify.now
        daemon.signal(SIGHUP)
        let reloaded = client.readUntil(timeout: 3) { $0.contains("\"type\":\"status\"") && $0.contains("\"event\":\"reload\"") }
        #expect(reloaded != nil, "no reload status while the capture is stalled; \(daemon.stderr)")
        #expect(daemon.wait(until: 3) { _ in notify.times(of: "READY=1").contains { $0 > hupAt } }, "no READY=1 after the reload")
        #expect(daemon.stderr.contains("reload applied"))
        // The supervisor keeps ticking: a `stats` message (every 5 s) arrives during the stall.
        let stats = client.readUntil(timeout: 7) { $0.contains("\"type\":\"stats\"") }
        #expect(stats != nil, "no stats during the stall")

        rig.device.resume()
        let gapFrame = client.readUntil(timeout: 5) { $0.contains("\"type\":\"frame\"") && $0.contains("\"discontinuity\":true") }
        #expect(gapFrame != nil, "no discontinuity frame after the reopen; \(daemon.stderr)")
        if let gapFrame, let r = gapFrame.range(of: "\"gap_samples\":") {
            let digits = gapFrame[r.upperBound...].prefix { $0.isNumber }
            #expect((Int(digits) ?? 0) >= 48_000, "the stall (> 1 s) is reported in samples: \(gapFrame)")
        }
        #expect(daemon.stderr.contains("period_frames=960"), "not reopened with the new period: \(daemon.stderr)")
        let t0 = Date()
        daemon.signal(SIGTERM)
        #expect(daemon.wait(timeout: 5) == .exited(0))
        #expect(Date().timeIntervalSince(t0) < 2.0)
    }

    /// libasound's own error lines (here: a `file` PCM whose infile is missing, which the daemon waits for)
    /// reach the log through the logger, with a level and one line each, not as bare `ALSA lib …` stderr.
    @Test func libasoundErrorLinesAreLoggedWithALevel() throws {
        let dir = try makeTemporaryDirectory("earshot-alsalog")
        defer { try? FileManager.default.removeItem(at: dir) }
        let missing = dir.appendingPathComponent("missing.fifo").path
        let daemon = try runOnFilePCM("broken", infile: missing, format: "FLOAT_LE", in: dir)
        defer { daemon.killAndReap() }
        #expect(daemon.wait(until: 10) { d in d.stderr.contains("libasound:") }, "\(daemon.stderr)")
        daemon.signal(SIGTERM)
        #expect(daemon.wait(timeout: 5) == .exited(0))
        let lines = daemon.stderr.split(separator: "\n")
        let logged = lines.filter { $0.contains("libasound:") && $0.contains(missing) }
        #expect(!logged.isEmpty && logged.allSatisfy { $0.contains("warning") || $0.hasPrefix("<4>") }, "\(daemon.stderr)")
        #expect(logged.allSatisfy { $0.contains("source=") && $0.contains("pcm_file.c") })
        #expect(!lines.contains { $0.hasPrefix("ALSA lib") }, "\(daemon.stderr)")
    }

    /// A `file` PCM reading a regular file over a `null` slave returns at its end as fast as it is read, and
    /// libasound prints `invalid frames 0` for every read (attack run: ~600 journal lines/s, plus a line per
    /// drain of lost ones). Each distinct line is logged at most every 10 s with the unlogged count; the daemon
    /// stays up and exits 0 on SIGTERM.
    @Test func repeatedLibasoundLinesAreRateLimited() throws {
        let dir = try makeTemporaryDirectory("earshot-alsaspin")
        defer { try? FileManager.default.removeItem(at: dir) }
        let infile = dir.appendingPathComponent("in.raw")
        try Data(count: 9600).write(to: infile)
        let daemon = try runOnFilePCM("spin", infile: infile.path, format: "S16_LE", in: dir)
        defer { daemon.killAndReap() }
        #expect(daemon.wait(until: 10) { d in d.stderr.contains("libasound: invalid frames") }, "\(daemon.stderr.suffix(3000))")
        Thread.sleep(forTimeInterval: 3)
        daemon.signal(SIGTERM)
        #expect(daemon.wait(timeout: 5) == .exited(0))
        let lines = daemon.stderr.split(separator: "\n")
        let repeated = lines.filter { $0.contains("libasound: invalid frames") }
        #expect(repeated.count == 1, "\(repeated.count) lines in ~3 s: \(repeated.prefix(3))")
        #expect(lines.filter { $0.contains("libasound error lines lost") }.count <= 1)
        #expect(lines.count < 40, "\(lines.count) log lines in ~3 s")
    }

    /// Signals the daemon has no use for are ignored (attack run: SIGUSR1 and co. ended it with no log line
    /// and no socket cleanup); SIGXCPU stops it cleanly like SIGTERM.
    @Test func unusedSignalsAreIgnoredAndSIGXCPUStopsCleanly() throws {
        let dir = try makeTemporaryDirectory("earshot-signals")
        defer { try? FileManager.default.removeItem(at: dir) }
        let fifo = dir.appendingPathComponent("sig.fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let daemon = try runOnFilePCM("sig", infile: fifo, format: "S16_LE", in: dir)
        defer { daemon.killAndReap() }
        #expect(daemon.wait(until: 8) { d in d.stderr.contains("started") }, "\(daemon.stderr)")
        for sig in [SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF] { daemon.signal(sig) }
        Thread.sleep(forTimeInterval: 0.5)
        #expect(daemon.isRunning, "\(daemon.stderr)")
        daemon.signal(SIGXCPU)
        #expect(daemon.wait(timeout: 5) == .exited(0), "\(daemon.stderr)")
        #expect(daemon.stderr.contains("stopped"), "\(daemon.stderr)")
    }

    /// A capture FIFO that nobody writes to: the start-up probe gives up after 2 s (it used to hang in
    /// `open`), the daemon waits for the device, and SIGTERM still exits 0 at once.
    @Test func fifoDeviceWithoutWriterDoesNotHangStartOrStop() throws {
        let dir = try makeTemporaryDirectory("earshot-nowriter")
        defer { try? FileManager.default.removeItem(at: dir) }
        let fifo = dir.appendingPathComponent("nowriter.fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let daemon = try runOnFilePCM("nowriter", infile: fifo, format: "FLOAT_LE", in: dir)
        defer { daemon.killAndReap() }
        #expect(daemon.wait(until: 8) { d in d.stderr.contains("started") }, "\(daemon.stderr)")
        #expect(daemon.stderr.contains("not available yet, waiting for it"), "\(daemon.stderr)")
        Thread.sleep(forTimeInterval: 0.5)
        let t0 = Date()
        daemon.signal(SIGTERM)
        #expect(daemon.wait(timeout: 5) == .exited(0), "\(daemon.stderr)")
        #expect(Date().timeIntervalSince(t0) < 2.0)
    }
}

/// `earshot run --no-socket` on a `file` PCM named `name` (`null` slave) reading `infile`, with `format`.
private func runOnFilePCM(_ name: String, infile: String, format: String, in dir: URL) throws -> DaemonProcess {
    let asoundrc = dir.appendingPathComponent("asoundrc")
    try #"pcm.\#(name) { type file slave.pcm "null" file "/dev/null" infile "\#(infile)" format "raw" }"#
        .write(to: asoundrc, atomically: true, encoding: .utf8)
    let config = dir.appendingPathComponent("earshot.yaml")
    try "capture:\n  device: \(name)\n  format: \(format)\n".write(to: config, atomically: true, encoding: .utf8)
    var env = baseChildEnvironment()
    env["ALSA_CONFIG_PATH"] = "/usr/share/alsa/alsa.conf:\(asoundrc.path)"
    return try DaemonProcess(earshot: ["run", "--config", config.path, "--no-socket"], environment: env)
}
