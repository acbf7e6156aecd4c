import ArgumentParser
import EarshotCapture
import EarshotClient
import EarshotSinks
import Foundation

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the real daemon on a box without a sound card and watch it with `earshot tail`.",
        discussion: """
            Generates a 12 s soundscape (background noise, bird-like chirps, knocks, a loud machine hum that
            trips the level alert), plays it in real time and in a loop into a FIFO read by ALSA's `file`
            plugin (a private asoundrc in a temp dir), starts `earshot run` on that device with its socket in
            the temp dir, and shows `earshot tail` on it until Ctrl-C (or --duration). The daemon's log is
            written to <tempdir>/earshot.log and printed at the end.
            """)

    @Option(help: "Stop after this many seconds (default: until Ctrl-C).") var duration: Double?
    @Flag(help: "Show raw NDJSON instead of the readable view.") var json = false
    @Option(help: "Streams to show.") var streams: String = "frame,onset,alert,rolling,status"
    @Option(help: "Show every Nth frame.") var every: Int = 10
    @Flag(help: "Keep the temp dir (recording, asoundrc, log).") var keep = false

    func validate() throws { try validateDuration(duration) }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("earshot-demo-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { if !keep { try? FileManager.default.removeItem(at: dir) } }
        let rate = 48_000
        let recording = DemoSoundscape.make(sampleRate: rate)
        try writeWAV(path: dir.appendingPathComponent("soundscape.wav").path, samples: recording, sampleRate: rate)
        let fifo = dir.appendingPathComponent("capture.fifo").path
        guard mkfifo(fifo, 0o600) == 0 else { fail("mkfifo \(fifo): \(String(cString: strerror(errno)))"); throw ExitCode(ExitStatus.software) }
        let asoundrc = dir.appendingPathComponent("asoundrc")
        try """
            # Earshot demo: a capture PCM fed by a FIFO that earshot demo writes in real time.
            pcm.earshot_demo {
                type file
                slave.pcm "null"
                file "/dev/null"
                infile "\(fifo)"
                format "raw"
            }
            """.write(to: asoundrc, atomically: true, encoding: .utf8)
        let player = PacedFIFOWriter(samples: recording, sampleRate: rate, path: fifo, chunkSeconds: 0.02)
        player.start()
        defer { player.stop() }

        let socketPath = dir.appendingPathComponent("earshot.sock").path
        let logPath = dir.appendingPathComponent("earshot.log").path
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let configFile = dir.appendingPathComponent("earshot.yaml")
        try """
            # earshot demo configuration (everything else: defaults, see config/earshot.yaml)
            capture:
              device: earshot_demo
              format: FLOAT_LE
            socket:
              path: \(socketPath)
            alerts:
              level:
                threshold_db: -30
                min_duration_ms: 1000
              onset:
                enabled: true
                min_strength: 8
            # The file plugin reports its whole buffer as available, so its capture times read about
            # 90 ms early: end-to-end latency is meaningless here.
            budgets:
              end_to_end_ms: null
            """.write(to: configFile, atomically: true, encoding: .utf8)
        var args = ["run", "--config", configFile.path]
        if let duration { args += ["--duration", String(duration)] }
        daemon.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["ALSA_CONFIG_PATH"] = "/usr/share/alsa/alsa.conf:\(asoundrc.path)"
        env.removeValue(forKey: "EARSHOT_CONFIG")
        daemon.environment = env
        daemon.standardError = FileHandle(forWritingAtPath: logPath)
        daemon.standardOutput = FileHandle.nullDevice
        try daemon.run()
        FileHandle.standardError.write(Data("earshot demo: daemon pid \(daemon.processIdentifier), socket \(socketPath), log \(logPath)\n".utf8))
        // Foundation's Process puts the daemon in its own process group, so the terminal's Ctrl-C does not
        // reach it: forward SIGINT/SIGTERM; the daemon shuts down, the socket closes, tail returns.
        demoDaemonPID = daemon.processIdentifier
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig) { s in if demoDaemonPID > 0 { kill(demoDaemonPID, s == SIGHUP ? SIGHUP : SIGTERM) } }
        }
        defer {
            if daemon.isRunning { kill(daemon.processIdentifier, SIGTERM) }
            daemon.waitUntilExit()
            if let log = try? String(contentsOfFile: logPath, encoding: .utf8) {
                FileHandle.standardError.write(Data("---- daemon log (\(logPath)) ----\n\(log)".utf8))
            }
        }
        // Wait for the socket (the daemon probes the device, then binds).
        let deadline = Date().addingTimeInterval(15)
        while !FileManager.default.fileExists(atPath: socketPath) {
            guard daemon.isRunning, Date() < deadline else {
                fail("the daemon did not open its socket (see \(logPath))")
                throw ExitCode(ExitStatus.software)
            }
            usleep(50_000)
        }
        let code = try runTail(socketPath: socketPath)
        if code != 0 { throw ExitCode(code) }
    }

    func runTail(socketPath: String) throws -> Int32 {
        try TailClient.run(
            socketPath: socketPath, streams: streams.split(separator: ",").map(String.init), every: every,
            json: json, maxSeconds: duration.map { $0 + 5 }, reconnect: false)
    }
}

/// The demo's daemon, for the signal handlers (set once before they are installed).
nonisolated(unsafe) var demoDaemonPID: pid_t = 0

/// A deterministic synthetic recording for the demo.
enum DemoSoundscape {
    static func make(sampleRate sr: Int, seconds: Double = 12) -> [Float] {
        let n = Int(seconds * Double(sr))
        var x = [Float](repeating: 0, count: n)
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        var b0: Float = 0, b1: Float = 0, b2: Float = 0
        for i in 0..<n {  // pink-ish background noise around −45 dBFS
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let white = Float(Int32(truncatingIfNeeded: state >> 32)) / Float(Int32.max)
            b0 = 0.99765 * b0 + white * 0.0990460
            b1 = 0.96300 * b1 + white * 0.2965164
            b2 = 0.57000 * b2 + white * 1.0526913
            x[i] = (b0 + b1 + b2 + white * 0.1848) * 0.0035
        }
        func chirp(at t0: Double) {  // a bird-like 3 → 5 kHz sweep, 80 ms
            let start = Int(t0 * Double(sr)), len = Int(0.08 * Double(sr))
            var phase = 0.0
            for k in 0..<len where start + k < n {
                let f = 3000 + 2000 * Double(k) / Double(len)
                phase += 2 * .pi * f / Double(sr)
                let env = sin(.pi * Double(k) / Double(len))
                x[start + k] += Float(0.25 * env * sin(phase))
            }
        }
        func knock(at t0: Double) {  // a damped 180 Hz knock
            let start = Int(t0 * Double(sr)), len = Int(0.15 * Double(sr))
            for k in 0..<len where start + k < n {
                let t = Double(k) / Double(sr)
                x[start + k] += Float(0.6 * exp(-t * 40) * sin(2 * .pi * 180 * t))
            }
        }
        for t in [1.0, 1.3, 4.0, 4.2, 4.4, 10.0] { chirp(at: t) }
        for t in [2.5, 6.0, 6.4, 11.0] { knock(at: t) }
        // A machine hum (120 Hz and harmonics, about −12 dBFS) from 7 to 9.5 s: trips the level alert.
        let hs = Int(7.0 * Double(sr)), he = Int(9.5 * Double(sr))
        for i in hs..<he {
            let t = Double(i) / Double(sr)
            let ramp = min(1, Double(i - hs) / 2400, Double(he - i) / 2400)
            x[i] += Float(ramp * (0.25 * sin(2 * .pi * 120 * t) + 0.12 * sin(2 * .pi * 240 * t) + 0.06 * sin(2 * .pi * 360 * t)))
        }
        return x
    }
}
