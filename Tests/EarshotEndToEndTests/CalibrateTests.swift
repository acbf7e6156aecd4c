#if canImport(Glibc)
import Glibc
#endif
import EarshotCapture
import Foundation
import Testing

/// `earshot calibrate` and `earshot devices --probe/--listen` run as built, on a capture device that is the ALSA
/// `file` plugin reading a FIFO played at 4× real time by ``PacedFIFOWriter`` (no sound card here). The device
/// and format come from `EARSHOT_*` variables, as the service's would.
@Suite(.serialized, .timeLimit(.minutes(2))) struct CalibrateCommandTests {
    static let rate = 48_000

    /// One second (a whole number of cycles: the loop is seamless) of a sine at RMS `dbfs`, with a per-half gain.
    static func loop(hz: Double, dbfs: Double, secondHalfGainDb: Double = 0, clip: Bool = false) -> [Float] {
        let a = pow(10, dbfs / 20) * 2.0.squareRoot()
        return (0..<rate).map { i in
            let g = i < rate / 2 ? 1 : pow(10, secondHalfGainDb / 20)
            let v = a * g * sin(2 * Double.pi * hz * Double(i) / Double(rate))
            return Float(clip ? max(-1, min(1, v)) : v)
        }
    }

    /// A FIFO device `tfifo` playing `samples` in a loop and a `lin16` device (integer formats only), in a temp dir.
    final class Rig {
        let dir: URL
        let writer: PacedFIFOWriter
        var environment: [String: String]
        init(_ samples: [Float]) throws {
            dir = try makeTemporaryDirectory("earshot-calibrate")
            let fifo = dir.appendingPathComponent("capture.fifo").path
            guard mkfifo(fifo, 0o600) == 0 else { throw POSIXError(.EIO) }
            let asoundrc = dir.appendingPathComponent("asoundrc")
            try """
                pcm.tfifo { type file slave.pcm "null" file "/dev/null" infile "\(fifo)" format "raw" }
                pcm.lin16 { type linear slave { pcm "null" format S16_LE } hint { show on description "integer-only test device" } }
                """.write(to: asoundrc, atomically: true, encoding: .utf8)
            writer = PacedFIFOWriter(
                bytes: samples.withUnsafeBytes { Array($0) }, frameBytes: 4, bytesPerSecond: rate * 4 * 4, path: fifo,
                chunkSeconds: 0.02)
            writer.start()
            environment = baseChildEnvironment()
            environment["ALSA_CONFIG_PATH"] = "/usr/share/alsa/alsa.conf:\(asoundrc.path)"
            environment["EARSHOT_CAPTURE_DEVICE"] = "tfifo"
            environment["EARSHOT_CAPTURE_FORMAT"] = "FLOAT_LE"
        }
        deinit {
            writer.stop()
            try? FileManager.default.removeItem(at: dir)
        }
        func config() throws -> String {
            let path = dir.appendingPathComponent("earshot.yaml").path
            if !FileManager.default.fileExists(atPath: path) {
                try FileManager.default.copyItem(atPath: EarshotBinary.packageRoot.appendingPathComponent("config/earshot.yaml").path, toPath: path)
            }
            return path
        }
        func earshot(_ args: [String]) throws -> (status: DaemonProcess.Termination?, stdout: String, stderr: String) {
            let r = try DaemonProcess.run(args, environment: environment, timeout: 30)
            return (r.termination, r.stdout, r.stderr)
        }
    }

    static func offset(in stdout: String) -> Double? {
        guard let line = stdout.split(separator: "\n").first(where: { $0.hasPrefix("levels.calibration_db: ") }) else { return nil }
        return Double(line.dropFirst("levels.calibration_db: ".count).split(separator: " ").first ?? "")
    }

    @Test func offsetOfAPlayedToneAndWriteKeepsTheFile() throws {
        let rig = try Rig(Self.loop(hz: 1000, dbfs: -20))
        let config = try rig.config()
        chmod(config, 0o640)
        let original = try String(contentsOfFile: config, encoding: .utf8)
        let r = try rig.earshot(["calibrate", "--reference-db", "114", "--config", config, "--seconds", "2", "--write"])
        #expect(r.status == .exited(0), "\(r.stderr)")
        let offset = try #require(Self.offset(in: r.stdout), "\(r.stdout)")
        #expect(abs(offset - 134) < 0.1, "\(r.stdout)")  // 114 dB SPL − (−20 dBFS)
        #expect(r.stdout.contains("tone: 1000.0 Hz at -20.0"), "\(r.stdout)")
        // Written: only the levels.calibration_* lines differ, comments and everything else byte for byte.
        let written = try String(contentsOfFile: config, encoding: .utf8)
        func others(_ s: String) -> [Substring] { s.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("  calibration_") } }
        #expect(others(original) == others(written))
        #expect(written.contains("  calibration_db: \(String(format: "%.2f", offset))\n"))
        #expect(written.contains("  calibration_reference_db: 114\n"))
        var st = stat()
        #expect(stat(config, &st) == 0 && st.st_mode & 0o7777 == 0o640)
        // The result passes check-config and loads the new values.
        let check = try rig.earshot(["check-config", config])
        #expect(check.status == .exited(0), "\(check.stderr)")
        let loaded = check.stdout.split(separator: "\n").first { $0.hasPrefix("levels.calibration_db: ") }
        #expect(loaded.flatMap { Double($0.dropFirst("levels.calibration_db: ".count)) } == offset, "\(check.stdout)")
        #expect(check.stdout.contains("levels.calibration_reference_db: 114"))
        let date = try #require(check.stdout.split(separator: "\n").first { $0.hasPrefix("levels.calibration_date: ") })
        #expect(date.contains(String(ISO8601DateFormatter().string(from: Date()).prefix(10))), "\(date)")
        let dateValue = String(date.dropFirst("levels.calibration_date: ".count)).trimmingCharacters(in: CharacterSet(charactersIn: "\""))

        // The daemon on the calibrated file: the date in hello and in /metrics (textfile), promtool-clean.
        let socketPath = rig.dir.appendingPathComponent("s.sock").path
        let prom = rig.dir.appendingPathComponent("earshot.prom").path
        let daemon = try DaemonProcess(earshot: [
            "run", "--config", config, "--socket", socketPath, "--set", "metrics.enabled=true",
            "--set", "metrics.listen=null", "--set", "metrics.textfile=\"\(prom)\"", "--set", "metrics.textfile_interval_s=1",
        ], environment: rig.environment)
        defer { daemon.killAndReap() }
        var fd: Int32 = -1
        #expect(waitFor(15) { fd = connectUnix(socketPath); return fd >= 0 }, "\(daemon.stderr)")  // bound, then listening
        defer { close(fd) }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while read(fd, &byte, 1) == 1, byte != 0x0A { line.append(byte) }
        let hello = try RawJSON.parse(String(decoding: line, as: UTF8.self))
        #expect(hello["type"] == .string("hello") && hello["level_unit"] == .string("dB SPL"))
        #expect(hello["calibration"]?["date"] == .string(dateValue), "\(hello)")
        #expect(hello["calibration"]?["reference_db"]?.double == 114)
        #expect(hello["calibration"]?["offset_db"]?.double == offset)
        #expect(waitFor(10) { ((try? String(contentsOfFile: prom, encoding: .utf8)) ?? "").contains("earshot_calibration_info") })
        let metrics = try String(contentsOfFile: prom, encoding: .utf8)
        let t = try #require(CalibrationInfoSeconds.parse(dateValue))
        #expect(metrics.contains("earshot_calibration_timestamp_seconds{device=\"tfifo\",instance=\"earshot\"} \(t)\n"), "\(metrics)")
        #expect(metrics.contains("earshot_calibration_info{device=\"tfifo\",instance=\"earshot\",date=\"\(dateValue)\",reference_db=\"114\"} 1"), "\(metrics)")
        if let promtool = findExecutable("promtool") {
            let check = Process()
            check.executableURL = URL(fileURLWithPath: promtool)
            check.arguments = ["check", "metrics"]
            check.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: prom))
            let out = Pipe()
            check.standardOutput = out
            check.standardError = out
            try check.run()
            check.waitUntilExit()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(check.terminationStatus == 0 && !text.contains("calibration"), "\(text)")
        } else {
            #expect(ProcessInfo.processInfo.environment["CI"] != "true", "promtool missing under CI=true")
        }
    }

    @Test(arguments: [
        ("500 Hz", "wrong frequency: measured 500.0 Hz"),
        ("level step", "unstable level: it varied by 3.0"),
        ("silence", "silence"),
        ("clipped", "clipping"),
    ])
    func refusesWithTheReason(_ name: String, _ reason: String) throws {
        let samples: [Float] = switch name {
        case "500 Hz": Self.loop(hz: 500, dbfs: -20)
        case "level step": Self.loop(hz: 1000, dbfs: -20, secondHalfGainDb: 3)
        case "silence": [Float](repeating: 0, count: Self.rate)
        default: Self.loop(hz: 1000, dbfs: 0, clip: true)
        }
        let rig = try Rig(samples)
        let config = try rig.config()
        let before = try Data(contentsOf: URL(fileURLWithPath: config))
        let r = try rig.earshot(["calibrate", "--reference-db", "94", "--config", config, "--seconds", "1.5", "--write"])
        #expect(r.status == .exited(65), "\(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("calibration refused: \(reason)"), "\(r.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: config)) == before)  // nothing written
    }

    @Test func devicesProbeAndListen() throws {
        let rig = try Rig(Self.loop(hz: 1000, dbfs: -20))
        let list = try rig.earshot(["devices", "--probe"])
        #expect(list.status == .exited(0), "\(list.stderr)")
        let text = list.stdout
        let lin16 = try #require(text.range(of: "lin16\n"), "\(text)")
        let block = text[lin16.upperBound...].prefix(600)
        #expect(block.contains("integer-only test device"))
        #expect(block.contains("formats: S32_LE, S24_3LE, S24_LE, S16_LE"), "\(block)")
        #expect(block.contains("48000") && block.contains("status: free"), "\(block)")
        let json = try rig.earshot(["devices", "--probe", "--json", "--device", "lin16", "--device", "hw:CARD=NoSuchCard,DEV=0"])
        let lines = json.stdout.split(separator: "\n")
        #expect(lines.count == 2, "\(json.stdout)")
        let first = try RawJSON.parse(String(lines[0]))
        #expect(first["available"] == .bool(true) && first["busy"] == .bool(false) && first["holders"] == .null)
        #expect(first["formats"]?.array?.contains(.string("S16_LE")) == true)
        #expect(first["formats"]?.array?.contains(.string("FLOAT_LE")) == false)
        #expect(first["rates"]?.doubles?.contains(48_000) == true)
        let second = try RawJSON.parse(String(lines[1]))
        #expect(second["available"] == .bool(false) && second["error"] != nil)
        let listen = try rig.earshot(["devices", "--listen", "1", "--device", "tfifo"])
        #expect(listen.status == .exited(0), "\(listen.stderr)")
        let last = try #require(listen.stdout.split(separator: "\n").last, "\(listen.stdout)")
        #expect(last.hasPrefix("1.0 s  tfifo: -20.0 dBFS, peak -17.0 dBFS"), "\(listen.stdout)")
    }
}

extension CalibrateCommandTests {
    /// Through PulseAudio (a private server, its null sink's monitor as the `pulse` device): `devices --probe`
    /// reports what the pulse plugin accepts (no holder: not a hw device), and `calibrate` measures a 1 kHz
    /// tone played with paplay at −20 dBFS.
    @Test(.enabled(if: pulseE2EEnabled, "pulseaudio/paplay not installed"))
    func pulseProbeAndCalibration() throws {
        let pulse = try PrivatePulse()
        try pulse.start()
        var env = pulse.clientEnvironment
        env["EARSHOT_CAPTURE_DEVICE"] = "pulse"
        let probe = try DaemonProcess.run(["devices", "--probe", "--json", "--device", "pulse"], environment: env)
        #expect(probe.termination == .exited(0), "\(probe.stderr)")
        let caps = try RawJSON.parse(probe.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(caps["available"] == .bool(true) && caps["busy"] == .bool(false), "\(caps)")
        #expect(caps["formats"]?.array?.contains(.string("S16_LE")) == true)
        #expect(caps["rates"]?.doubles?.contains(48_000) == true)
        #expect(caps["node"] == .null && caps["holders"] == .null)
        let rate = 48_000
        let tone = (0..<(6 * rate)).map { i in Float(0.1 * sin(2 * Double.pi * 1000 * Double(i) / Double(rate))) }
        let wav = pulse.dir.appendingPathComponent("tone.wav")
        try TestAudio.wav(formatTag: 3, channels: 1, rate: rate, bits: 32, data: TestAudio.bytesFloat(tone)).write(to: wav)
        let player = try pulse.play(wav)
        defer { player.killAndReap() }
        usleep(300_000)
        let r = try DaemonProcess.run(["calibrate", "--reference-db", "94", "--seconds", "2", "--settle", "0.7",
                                       "--config", EarshotBinary.packageRoot.appendingPathComponent("config/earshot.yaml").path],
                                      environment: env)
        #expect(r.termination == .exited(0), "\(r.stdout) \(r.stderr)")
        // Peak 0.1 is −23.01 dBFS RMS: the offset is 94 + 23.01.
        let offset = try #require(Self.offset(in: r.stdout), "\(r.stdout) \(r.stderr)")
        #expect(abs(offset - (94 + 23.0103)) < 0.1, "\(r.stdout)")
    }
}

extension CalibrateCommandTests {
    /// The `file` plugin on a regular file delivers as fast as it is read: every sample is still measured in
    /// order (nothing dropped), 16-bit stereo with capture.channel 1 as the service would open it.
    @Test func unpacedFileDeviceStereoInt16() throws {
        let dir = try makeTemporaryDirectory("earshot-calibrate-file")
        defer { try? FileManager.default.removeItem(at: dir) }
        let right = (0..<(3 * Self.rate)).map { i in 0.25 * sin(2 * Double.pi * 1000 * Double(i) / Double(Self.rate)) }
        var interleaved: [Int16] = []
        for v in right { interleaved += [Int16(0), Int16((v * 32767).rounded())] }  // left silent, right the tone
        let raw = dir.appendingPathComponent("tone.raw")
        try Data(interleaved.withUnsafeBytes { Array($0) }).write(to: raw)
        let asoundrc = dir.appendingPathComponent("asoundrc")
        try "pcm.tfile { type file slave.pcm \"null\" file \"/dev/null\" infile \"\(raw.path)\" format \"raw\" }\n"
            .write(to: asoundrc, atomically: true, encoding: .utf8)
        var env = baseChildEnvironment()
        env["ALSA_CONFIG_PATH"] = "/usr/share/alsa/alsa.conf:\(asoundrc.path)"
        let r = try DaemonProcess.run([
            "calibrate", "--reference-db", "94", "--device", "tfile", "--seconds", "2", "--set", "capture.format=S16_LE",
            "--set", "capture.channels=2", "--set", "capture.channel=1",
            "--config", EarshotBinary.packageRoot.appendingPathComponent("config/earshot.yaml").path,
        ], environment: env)
        #expect(r.termination == .exited(0), "\(r.stdout) \(r.stderr)")
        let expected = 94 - 20 * log10(0.25 * 32767 / 32768 / 2.0.squareRoot())
        let offset = try #require(Self.offset(in: r.stdout), "\(r.stdout) \(r.stderr)")
        #expect(abs(offset - expected) < 0.1, "\(r.stdout) expected \(expected)")
    }
}

/// UNIX seconds of a `YYYY-MM-DDTHH:MM:SSZ` date (Foundation's parser: an independent check of the daemon's).
enum CalibrationInfoSeconds {
    static func parse(_ s: String) -> Int64? {
        ISO8601DateFormatter().date(from: s).map { Int64($0.timeIntervalSince1970) }
    }
}
