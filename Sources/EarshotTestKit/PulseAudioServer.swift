import Foundation

/// Test helper: a private PulseAudio server with a null sink `testsink`, in its own runtime directory.
///
/// `start()` exports `PULSE_RUNTIME_PATH`, `PULSE_SOURCE=testsink.monitor` and a client config with
/// `autospawn = no` (so a dead server stays dead), then runs
/// `pulseaudio -n --daemonize=yes --exit-idle-time=-1 --disallow-exit --load=module-null-sink … --load=module-native-protocol-unix`.
/// The environment is process-wide: serialized tests only. As root pulseaudio warns and works.
public final class PulseAudioServer: @unchecked Sendable {
    public enum Failure: Error, CustomStringConvertible {
        case notInstalled(String)
        case startFailed(String)
        public var description: String {
            switch self {
            case .notInstalled(let s): "pulseaudio not installed: \(s)"
            case .startFailed(let s): "pulseaudio failed to start: \(s)"
            }
        }
    }

    public let runtimeDirectory: URL
    public let sinkName: String
    public let sampleRate: Int

    public init(runtimeDirectory: URL, sinkName: String = "testsink", sampleRate: Int = 48_000) {
        self.runtimeDirectory = runtimeDirectory
        self.sinkName = sinkName
        self.sampleRate = sampleRate
    }

    /// Path of an executable on `PATH`, or nil.
    public static func which(_ name: String) -> String? { Subprocess.which(name) }

    /// Whether `pulseaudio` and `paplay` are installed.
    public static var isAvailable: Bool { which("pulseaudio") != nil && which("paplay") != nil }

    /// Exports the client environment for this server.
    public func exportEnvironment() throws {
        let clientConf = runtimeDirectory.appendingPathComponent("client.conf")
        try "autospawn = no\n".write(to: clientConf, atomically: true, encoding: .utf8)
        setenv("PULSE_RUNTIME_PATH", runtimeDirectory.path, 1)
        setenv("PULSE_CLIENTCONFIG", clientConf.path, 1)
        setenv("PULSE_SOURCE", "\(sinkName).monitor", 1)
        setenv("PULSE_SINK", sinkName, 1)
    }

    /// Starts the server and waits until its socket accepts clients (≤ 5 s).
    public func start() throws {
        guard let exe = Self.which("pulseaudio") else { throw Failure.notInstalled("pulseaudio not on PATH") }
        try exportEnvironment()
        let (status, output) = try Self.run(exe, [
            "-n", "--daemonize=yes", "--exit-idle-time=-1", "--disallow-exit", "--use-pid-file=yes",
            "--load=module-null-sink sink_name=\(sinkName) rate=\(sampleRate)",
            "--load=module-native-protocol-unix",
        ])
        guard status == 0 else { throw Failure.startFailed("exit \(status): \(output)") }
        let socket = runtimeDirectory.appendingPathComponent("native").path
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            if FileManager.default.fileExists(atPath: socket), pid != nil { return }
            usleep(20_000)
        }
        throw Failure.startFailed("socket \(socket) did not appear: \(output)")
    }

    /// The server's pid from its pid file, if it is running.
    public var pid: pid_t? {
        let file = runtimeDirectory.appendingPathComponent("pid")
        guard let s = try? String(contentsOf: file, encoding: .utf8),
            let p = pid_t(s.trimmingCharacters(in: .whitespacesAndNewlines)), Foundation.kill(p, 0) == 0
        else { return nil }
        return p
    }

    /// Kills the server with `signal` (default SIGKILL: an abrupt loss) and waits until it is gone (≤ 5 s).
    public func kill(signal: Int32 = SIGKILL) {
        guard let p = pid else { return }
        _ = Foundation.kill(p, signal)
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline, Foundation.kill(p, 0) == 0 { usleep(10_000) }
        try? FileManager.default.removeItem(at: runtimeDirectory.appendingPathComponent("pid"))
    }

    /// Stops the server if running.
    public func stop() { kill(signal: SIGTERM) }

    deinit { stop() }

    /// Plays a WAV on the null sink; returns paplay's exit status when playback finished.
    public func play(wav: URL) throws -> Int32 {
        guard let exe = Self.which("paplay") else { throw Failure.notInstalled("paplay not on PATH") }
        return try Self.run(exe, ["-d", sinkName, wav.path]).status
    }

    @discardableResult
    static func run(_ exe: String, _ args: [String]) throws -> (status: Int32, output: String) {
        try Subprocess.run(exe, args)
    }
}

/// Writes a 16-bit PCM WAV file (mono or interleaved), for `paplay`.
public func writeWAV16(url: URL, samples: [Int16], sampleRate: Int, channels: Int = 1) throws {
    var d = Data()
    func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
    func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
    let dataBytes = UInt32(samples.count * 2)
    d.append(contentsOf: Array("RIFF".utf8)); u32(36 + dataBytes); d.append(contentsOf: Array("WAVE".utf8))
    d.append(contentsOf: Array("fmt ".utf8)); u32(16); u16(1); u16(UInt16(channels)); u32(UInt32(sampleRate))
    u32(UInt32(sampleRate * channels * 2)); u16(UInt16(channels * 2)); u16(16)
    d.append(contentsOf: Array("data".utf8)); u32(dataBytes)
    for s in samples { u16(UInt16(bitPattern: s)) }
    try d.write(to: url)
}
