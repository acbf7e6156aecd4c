#if canImport(Glibc)
import Glibc
#endif
import EarshotTestKit
import Foundation
import Testing

/// PulseAudio end-to-end tests must run (and fail if pulseaudio is missing) under CI=true; elsewhere they
/// are skipped when pulseaudio/paplay are not installed.
let pulseE2EEnabled = PulseAudioServer.isAvailable || ProcessInfo.processInfo.environment["CI"] == "true"

/// A private PulseAudio server (null sink `testsink`) in its own runtime directory, like
/// `EarshotTestKit.PulseAudioServer` but without touching this process's environment: the server and every
/// client (the daemon, paplay) get the variables explicitly, so tests in other targets that run in parallel
/// in the same test process keep their own servers.
final class PrivatePulse: @unchecked Sendable {
    let dir: URL
    let sink = "testsink"

    init() throws {
        try #require(PulseAudioServer.isAvailable, "pulseaudio and paplay must be installed (apt-get install pulseaudio pulseaudio-utils libasound2-plugins)")
        dir = try makeTemporaryDirectory("earshot-e2e-pulse")
        try "autospawn = no\n".write(to: dir.appendingPathComponent("client.conf"), atomically: true, encoding: .utf8)
    }

    /// What a client of this server needs (on top of a clean environment).
    var clientEnvironment: [String: String] {
        var env = baseChildEnvironment()
        env["PULSE_RUNTIME_PATH"] = dir.path
        env["PULSE_STATE_PATH"] = dir.path
        env["PULSE_CLIENTCONFIG"] = dir.appendingPathComponent("client.conf").path
        env["PULSE_SERVER"] = "unix:" + dir.appendingPathComponent("native").path
        env["PULSE_SOURCE"] = "\(sink).monitor"
        env["PULSE_SINK"] = sink
        return env
    }

    func start() throws {
        let exe = try #require(PulseAudioServer.which("pulseaudio"))
        var env = clientEnvironment
        env.removeValue(forKey: "PULSE_SERVER")
        let p = try DaemonProcess(executable: exe, arguments: [
            "-n", "--daemonize=yes", "--exit-idle-time=-1", "--disallow-exit", "--use-pid-file=yes",
            "--load=module-null-sink sink_name=\(sink) rate=48000",
            "--load=module-native-protocol-unix",
        ], environment: env)
        let t = p.wait(timeout: 10)
        try #require(t == .exited(0), "pulseaudio failed to start (\(t.map { "\($0)" } ?? "timeout")): \(p.stderr)")
        let socket = dir.appendingPathComponent("native").path
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            if FileManager.default.fileExists(atPath: socket), pid != nil { return }
            usleep(20_000)
        }
        Issue.record("pulseaudio socket \(socket) did not appear: \(p.stderr)")
    }

    var pid: pid_t? {
        guard let s = try? String(contentsOf: dir.appendingPathComponent("pid"), encoding: .utf8),
            let p = pid_t(s.trimmingCharacters(in: .whitespacesAndNewlines)), Glibc.kill(p, 0) == 0
        else { return nil }
        return p
    }

    /// Kills the server (SIGKILL: an abrupt device loss) and waits until it is gone.
    func kill(signal: Int32 = SIGKILL) {
        guard let p = pid else { return }
        _ = Glibc.kill(p, signal)
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline, Glibc.kill(p, 0) == 0 { usleep(10_000) }
        try? FileManager.default.removeItem(at: dir.appendingPathComponent("pid"))
    }

    /// Starts `paplay` of `wav` on the sink (returns the running process).
    func play(_ wav: URL) throws -> DaemonProcess {
        let exe = try #require(PulseAudioServer.which("paplay"))
        return try DaemonProcess(executable: exe, arguments: ["-d", sink, wav.path], environment: clientEnvironment)
    }

    deinit {
        kill(signal: SIGTERM)
        try? FileManager.default.removeItem(at: dir)
    }
}
