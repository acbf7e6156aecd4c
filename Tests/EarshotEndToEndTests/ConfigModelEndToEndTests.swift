#if canImport(Glibc)
import Glibc
#endif
import EarshotCapture
import Foundation
import Testing

/// Issue 10: one configuration model. check-config, analyze --set, run and a SIGHUP reload accept and refuse
/// the same values with the same YAML-keyed message; command-line device names are strings; a socket
/// directory systemd creates at start is not a configuration error for check-config. Real binary, real
/// ALSA (`file` plugin through a paced FIFO, and the `null` PCM).
extension EndToEnd {
    @Suite("one configuration model") struct ConfigModel {
        static let refusal = "analysis.onset.post_max_frames: 2 is out of range: must be between 0 and 1"

        func wav(in dir: URL) throws -> String {
            let path = dir.appendingPathComponent("tone.wav").path
            let samples = (0..<48_000).map { Float(0.25 * sin(2 * Double.pi * 1000 * Double($0) / 48_000)) }
            try writeWAV(path: path, samples: samples, sampleRate: 48_000)
            return path
        }

        @Test func postMaxFramesTwoIsRefusedTheSameWayByEveryCommand() throws {
            let dir = try makeTemporaryDirectory("earshot-cfgmodel")
            defer { try? FileManager.default.removeItem(at: dir) }
            let wav = try wav(in: dir)
            let bad = dir.appendingPathComponent("bad.yaml").path
            try "analysis:\n  onset:\n    post_max_frames: 2\n".write(toFile: bad, atomically: true, encoding: .utf8)
            let fromFile = "\(bad):3: \(Self.refusal)"
            let fromSet = "--set analysis.onset.post_max_frames=2: \(Self.refusal)"

            let runs: [([String], String)] = [
                (["check-config", bad], fromFile),
                (["check-config", "--set", "analysis.onset.post_max_frames=1", "--set", "analysis.onset.post_max_frames=2"], fromSet),
                (["analyze", wav, "--config", bad], fromFile),
                (["analyze", wav, "--set", "analysis.onset.post_max_frames=2"], fromSet),
                (["run", "--config", bad, "--no-socket", "--duration", "1"], fromFile),
                (["run", "--no-socket", "--duration", "1", "--set", "analysis.onset.post_max_frames=2"], fromSet),
            ]
            for (args, message) in runs {
                let r = try DaemonProcess.run(args)
                #expect(r.termination == .exited(78), "\(args): \(r.stderr)")
                #expect(r.stderr.contains(message), "\(args): \(r.stderr)")
                #expect(!r.stderr.contains("invalid analyzer config") && !r.stderr.contains("postMaxFrames"), "\(r.stderr)")
            }
            // The edge of the range is accepted by all of them, and the analyzer runs with it.
            let ok = try DaemonProcess.run(["analyze", wav, "--set", "analysis.onset.post_max_frames=1", "--features", "rms_dbfs"])
            #expect(ok.termination == .exited(0), "\(ok.stderr)")
            #expect(ok.lines.count >= 90)
            let zero = try DaemonProcess.run(["analyze", wav, "--set", "analysis.onset.post_max_frames=0", "--features", "rms_dbfs"])
            #expect(zero.termination == .exited(0), "\(zero.stderr)")
            // A value the file's own sample rate makes impossible names the key and the file.
            let low = dir.appendingPathComponent("low.wav").path
            try writeWAV(path: low, samples: [Float](repeating: 0, count: 8_000), sampleRate: 8_000)
            let nyquist = try DaemonProcess.run(["analyze", low])
            #expect(nyquist.termination == .exited(65), "\(nyquist.stderr)")
            #expect(nyquist.stderr.contains("\(low): capture.sample_rate: 8000 puts the Nyquist frequency (4000 Hz) below analysis.fmax (8000)"), "\(nyquist.stderr)")
            let fixed = try DaemonProcess.run(["analyze", low, "--set", "analysis.fmax=4000", "--features", "rms_dbfs"])
            #expect(fixed.termination == .exited(0), "\(fixed.stderr)")
        }

        /// SIGHUP with post_max_frames 2 is refused with the same FILE:LINE: key: message, the daemon keeps
        /// running; the same file with 0 is applied.
        @Test func reloadRefusesWhatCheckConfigRefuses() throws {
            let dir = try makeTemporaryDirectory("earshot-cfgmodel-reload")
            defer { try? FileManager.default.removeItem(at: dir) }
            let device = try PacedFIFODevice(directory: dir, samples: serviceTestSignal())
            defer { device.stop() }
            let config = dir.appendingPathComponent("earshot.yaml").path
            func write(_ postMax: Int) throws {
                try """
                    capture:
                      device: \(device.pcmName)
                      format: FLOAT_LE
                    socket:
                      path: \(dir.appendingPathComponent("earshot.sock").path)
                    analysis:
                      onset:
                        post_max_frames: \(postMax)
                    """.write(toFile: config, atomically: true, encoding: .utf8)
            }
            try write(1)
            var env = baseChildEnvironment()
            for (k, v) in device.environment { env[k] = v }
            let daemon = try DaemonProcess(earshot: ["run", "--config", config], environment: env)
            defer { daemon.killAndReap() }
            #expect(daemon.wait(until: 15) { _ in FileManager.default.fileExists(atPath: dir.appendingPathComponent("earshot.sock").path) }, "\(daemon.stderr)")

            try write(2)
            let check = try DaemonProcess.run(["check-config", config, "--quiet"], environment: env)
            #expect(check.termination == .exited(78))
            #expect(check.stderr.contains("\(config):8: \(Self.refusal)"), "\(check.stderr)")
            daemon.signal(SIGHUP)
            #expect(daemon.wait(until: 5) { $0.stderr.contains("reload failed, keeping the running configuration: \(config):8: \(Self.refusal)") },
                    "\(daemon.stderr)")
            #expect(daemon.isRunning)

            try write(0)
            Thread.sleep(forTimeInterval: 1.1)  // reloads are coalesced to one per second
            daemon.signal(SIGHUP)
            #expect(daemon.wait(until: 5) { $0.stderr.contains("reload applied") || $0.stderr.contains("DSP re-planned") }, "\(daemon.stderr)")
            daemon.signal(SIGTERM)
            #expect(daemon.wait(timeout: 5) == .exited(0), "\(daemon.stderr)")
        }

        /// SIGHUP to a device name ALSA does not know is refused like at start (where it exits 69): the daemon
        /// keeps capturing from the running device and says why; it never logs "reload applied".
        @Test func reloadRefusesAnUnknownDevice() throws {
            let dir = try makeTemporaryDirectory("earshot-cfgmodel-device")
            defer { try? FileManager.default.removeItem(at: dir) }
            let device = try PacedFIFODevice(directory: dir, samples: serviceTestSignal())
            defer { device.stop() }
            let config = dir.appendingPathComponent("earshot.yaml").path
            let socketPath = dir.appendingPathComponent("earshot.sock").path
            func write(_ name: String) throws {
                try "capture:\n  device: \(name)\n  format: FLOAT_LE\nsocket:\n  path: \(socketPath)\n"
                    .write(toFile: config, atomically: true, encoding: .utf8)
            }
            try write(device.pcmName)
            var env = baseChildEnvironment()
            for (k, v) in device.environment { env[k] = v }
            let daemon = try DaemonProcess(earshot: ["run", "--config", config], environment: env)
            defer { daemon.killAndReap() }
            #expect(daemon.wait(until: 15) { _ in FileManager.default.fileExists(atPath: socketPath) }, "\(daemon.stderr)")

            try write("earshot_no_such_pcm")
            daemon.signal(SIGHUP)
            #expect(daemon.wait(until: 10) { $0.stderr.contains("reload failed, keeping the running configuration") && $0.stderr.contains("earshot_no_such_pcm") },
                    "\(daemon.stderr)")
            #expect(!daemon.stderr.contains("reload applied"), "\(daemon.stderr)")
            #expect(!daemon.stderr.contains("capture device reopened"), "\(daemon.stderr)")
            // Still capturing from the running device: frames keep arriving on the socket.
            let client = try SocketLineClient(path: socketPath)
            client.send(#"{"op":"subscribe","streams":["frame"],"every":1}"#)
            for _ in 0..<2 {
                #expect(client.readUntil(timeout: 10) { $0.hasPrefix(#"{"type":"frame""#) } != nil, "\(daemon.stderr)")
            }
            #expect(daemon.isRunning)
            daemon.signal(SIGTERM)
            #expect(daemon.wait(timeout: 5) == .exited(0), "\(daemon.stderr)")
        }

        /// `--device null` is ALSA's `null` PCM (a string), not YAML null.
        @Test func deviceNamedNullIsAString() throws {
            let r = try DaemonProcess.run(["run", "--device", "null", "--no-socket", "--duration", "0.5"])
            #expect(!r.stderr.contains("expected a string"), "\(r.stderr)")
            #expect(r.termination == .exited(0), "\(r.stderr)")
            // The same word through --set needs quotes, and the message says so.
            let plain = try DaemonProcess.run(["check-config", "--quiet", "--set", "capture.device=null", "--set", "socket.path=/tmp/x.sock"])
            #expect(plain.termination == .exited(78))
            #expect(plain.stderr.contains("capture.device: expected a string, got null (for the string, quote it: \"null\")"), "\(plain.stderr)")
            let quoted = try DaemonProcess.run(["check-config", "--set", "capture.device=\"null\"", "--set", "socket.path=/tmp/x.sock"])
            #expect(quoted.termination == .exited(0), "\(quoted.stderr)")
            #expect(quoted.stdout.contains("capture.device: \"null\""), "\(quoted.stdout)")
        }

        /// The README's install order: check-config on the shipped file before the service ever started (no
        /// /run/earshot yet) passes; a socket directory that is not systemd's to create still fails.
        @Test func checkConfigBeforeTheFirstStart() throws {
            let shipped = EarshotBinary.packageRoot.appendingPathComponent("config/earshot.yaml").path
            let name = "earshot-e2e-\(getpid())"
            let ok = try DaemonProcess.run(["check-config", shipped, "--set", "socket.path=/run/\(name)/earshot.sock"])
            #expect(ok.termination == .exited(0), "\(ok.stderr)")
            #expect(ok.stderr.contains("directory /run/\(name) does not exist yet; systemd creates it"), "\(ok.stderr)")
            let plain = try DaemonProcess.run(["check-config", shipped, "--quiet"])
            #expect(plain.termination == .exited(0), "\(plain.stderr)")
            for broken in ["/rnu/\(name)/earshot.sock", "/run/\(name)/a/b/earshot.sock", "/tmp/\(name)/earshot.sock"] {
                let r = try DaemonProcess.run(["check-config", shipped, "--quiet", "--set", "socket.path=\(broken)"])
                #expect(r.termination == .exited(78), "\(broken): \(r.stderr)")
                #expect(r.stderr.contains("socket.path: directory"), "\(r.stderr)")
            }
            // `run` itself needs the directory (systemd made it, or the operator did).
            let run = try DaemonProcess.run(["run", "--config", shipped, "--device", "null", "--socket", "/run/\(name)/earshot.sock", "--duration", "0.5"])
            #expect(run.termination == .exited(78), "\(run.stderr)")
        }
    }
}
