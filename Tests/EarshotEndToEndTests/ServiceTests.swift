#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// The daemon as a service (issue 5): sd_notify and the watchdog, reload, shutdown, config errors, budgets,
/// and the demo — all against the real binary.
let isCIEnvironment = ProcessInfo.processInfo.environment["CI"] == "true"

extension EndToEnd {
    @Suite("earshot as a service") struct Service {
        struct Rig {
            let dir: URL
            let device: PacedFIFODevice
            let config: URL
            let socketPath: String

            init(_ name: String, extraYAML: String = "") throws {
                dir = try makeTemporaryDirectory("earshot-svc-\(name)")
                device = try PacedFIFODevice(directory: dir, samples: serviceTestSignal())
                socketPath = dir.appendingPathComponent("earshot.sock").path
                config = dir.appendingPathComponent("earshot.yaml")
                try write(extraYAML)
            }

            func write(_ extraYAML: String, capture captureYAML: String = "") throws {
                try """
                    capture:
                      device: \(device.pcmName)
                      format: FLOAT_LE
                    \(captureYAML)
                    socket:
                      path: \(socketPath)
                    \(extraYAML)
                    """.write(to: config, atomically: true, encoding: .utf8)
            }

            func environment(_ extra: [String: String] = [:]) -> [String: String] {
                var env = baseChildEnvironment()
                for (k, v) in device.environment { env[k] = v }
                for (k, v) in extra { env[k] = v }
                return env
            }

            func cleanup() {
                device.stop()
                try? FileManager.default.removeItem(at: dir)
            }
        }

        /// READY=1 after the first frame, STATUS= lines, WATCHDOG=1 at half of WATCHDOG_USEC while frames flow;
        /// a capture source that stops delivering (the capture thread blocks in its read) stops the pings;
        /// they resume with the frames.
        @Test func notifyWatchdogStopsWhenCaptureIsStuck() throws {
            let rig = try Rig("notify")
            defer { rig.cleanup() }
            let notify = try NotifyListener(path: rig.dir.appendingPathComponent("notify.sock").path)
            let daemon = try DaemonProcess(earshot: ["run", "--config", rig.config.path], environment: rig.environment([
                "NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000",
            ]))
            defer { daemon.killAndReap() }
            #expect(daemon.wait(until: 15) { _ in !notify.times(of: "READY=1").isEmpty }, "no READY=1; stderr: \(daemon.stderr)")
            let ready = notify.times(of: "READY=1").first ?? 0
            Thread.sleep(forTimeInterval: 2.2)
            let pingsFlowing = notify.times(of: "WATCHDOG=1").filter { $0 > ready }
            #expect(pingsFlowing.count >= 3, "pings while flowing: \(pingsFlowing)")
            let status = notify.messages.map(\.text).first { $0.contains("STATUS=") } ?? ""
            #expect(status.contains("device=paced") && status.contains("state=") && status.contains("frames=") && status.contains("xruns="), "\(status)")

            rig.device.pause()
            let pausedAt = notify.now
            Thread.sleep(forTimeInterval: 5)
            let quietFrom = pausedAt + Double(2.0) + 0.7  // frames stale after 2 s, plus a tick and one interval
            let pingsWhileStuck = notify.times(of: "WATCHDOG=1").filter { $0 > quietFrom }
            #expect(pingsWhileStuck.isEmpty, "pings kept coming while capture was stuck: \(pingsWhileStuck) (paused at \(pausedAt))")
            #expect(daemon.isRunning)

            rig.device.resume()
            let resumedAt = notify.now
            #expect(daemon.wait(until: 6) { _ in notify.times(of: "WATCHDOG=1").contains { $0 > resumedAt } }, "pings did not resume")
            daemon.signal(SIGTERM)
            #expect(daemon.wait(timeout: 5) == .exited(0))
            #expect(notify.messages.contains { $0.text.contains("STOPPING=1") })
        }

        /// The test-only fault switch blocks the DSP thread: the pings stop while it is blocked and resume after.
        @Test func watchdogStopsWhenDSPThreadIsBlocked() throws {
            let rig = try Rig("dspstall")
            defer { rig.cleanup() }
            let notify = try NotifyListener(path: rig.dir.appendingPathComponent("notify.sock").path)
            let start = notify.now
            let daemon = try DaemonProcess(earshot: ["run", "--config", rig.config.path], environment: rig.environment([
                "NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000", "EARSHOT_TEST_FAULT": "dsp_stall=3:4",
            ]))
            defer { daemon.killAndReap() }
            #expect(daemon.wait(until: 15) { _ in daemon.stderr.contains("test fault: stalling the DSP thread") }, "\(daemon.stderr)")
            let stalledAt = notify.now
            #expect(notify.times(of: "WATCHDOG=1").contains { $0 > start && $0 < stalledAt }, "no pings before the stall")
            Thread.sleep(forTimeInterval: 3.5)
            let quiet = notify.times(of: "WATCHDOG=1").filter { $0 > stalledAt + 2.7 && $0 < stalledAt + 3.5 }
            #expect(quiet.isEmpty, "pings during the DSP stall: \(quiet)")
            #expect(daemon.wait(until: 5) { _ in notify.times(of: "WATCHDOG=1").contains { $0 > stalledAt + 4.2 } }, "pings did not resume after the stall")
            daemon.signal(SIGTERM)
            #expect(daemon.wait(timeout: 5) == .exited(0))
        }

        /// SIGHUP with a valid change applies it without dropping a connected client (which gets a fresh
        /// hello); SIGHUP with an invalid file keeps the running configuration; SIGTERM exits 0 within 2 s and
        /// removes the socket.
        @Test func reloadKeepsClientsAndSigtermRemovesSocket() throws {
            let rig = try Rig("reload")
            defer { rig.cleanup() }
            let daemon = try DaemonProcess(earshot: ["run", "--config", rig.config.path], environment: rig.environment())
            defer { daemon.killAndReap() }
            #expect(daemon.wait(until: 15) { _ in FileManager.default.fileExists(atPath: rig.socketPath) }, "\(daemon.stderr)")
            let client = try SocketLineClient(path: rig.socketPath)
            let hello = try #require(client.readLine(timeout: 5))
            #expect(hello.contains("\"type\":\"hello\"") && hello.contains("\"level_unit\":\"dBFS\""))
            client.send(#"{"op":"subscribe","streams":["frame","status"],"fields":["laf"]}"#)
            #expect(client.readUntil(timeout: 5) { $0.contains("\"type\":\"frame\"") && $0.contains("\"level_unit\":\"dBFS\"") } != nil)

            try rig.write("levels:\n  calibration_db: 94\n")
            daemon.signal(SIGHUP)
            let hello2 = client.readUntil(timeout: 5) { $0.contains("\"type\":\"hello\"") }
            #expect(hello2?.contains("\"level_unit\":\"dB SPL\"") == true, "\(hello2 ?? "no second hello"); \(daemon.stderr)")
            let calibrated = client.readUntil(timeout: 5) { $0.contains("\"type\":\"frame\"") }
            #expect(calibrated?.contains("\"level_unit\":\"dB SPL\"") == true, "\(calibrated ?? "no frame after reload")")

            // analysis.* without a shape change (and not an onset threshold, which is retuned in place: RetuneTests):
            // the DSP is re-planned, capture keeps running, the next frame is flagged `reload`, seq goes on.
            let seqBefore = lastSeq(client)
            try rig.write("levels:\n  calibration_db: 94\nanalysis:\n  rolloff: 0.8\n  onset:\n    delta: 3.0\n")
            daemon.signal(SIGHUP)
            let replanned = client.readUntil(timeout: 5) { $0.contains("\"cause\":\"reload\"") }
            #expect(replanned != nil, "no frame flagged reload; \(daemon.stderr)")
            #expect(daemon.wait(until: 3) { $0.stderr.contains("reload: DSP re-planned") })
            #expect(!daemon.stderr.contains("capture device reopened"))
            #expect(seq(of: replanned) ?? -1 > seqBefore)
            // A shape change (n_mels) rebuilds the pipeline: new hello with n_mels 40, seq still increasing.
            let seqBeforeRebuild = lastSeq(client)
            try rig.write("levels:\n  calibration_db: 94\nanalysis:\n  n_mels: 40\n  onset:\n    delta: 3.0\n")
            daemon.signal(SIGHUP)
            let hello3 = client.readUntil(timeout: 5) { $0.contains("\"type\":\"hello\"") }
            #expect(hello3?.contains("\"n_mels\":40") == true, "\(hello3 ?? "no hello after the rebuild"); \(daemon.stderr)")
            let rebuilt = client.readUntil(timeout: 5) { $0.contains("\"type\":\"frame\"") }
            #expect(seq(of: rebuilt) ?? -1 > seqBeforeRebuild, "seq restarted after the rebuild: \(rebuilt ?? "")")
            #expect(daemon.stderr.contains("pipeline rebuilt"))
            // capture.* reopens the device, the client stays.
            try rig.write("levels:\n  calibration_db: 94\nanalysis:\n  n_mels: 40\n  onset:\n    delta: 3.0\n",
                          capture: "  buffer_periods: 16")
            daemon.signal(SIGHUP)
            #expect(daemon.wait(until: 5) { $0.stderr.contains("capture device reopened") }, "\(daemon.stderr)")
            #expect(client.readUntil(timeout: 5) { $0.contains("\"type\":\"frame\"") } != nil, "frames stopped after reopening")

            try rig.write("levels:\n  calibration_db: 94\n  calibraton: 3\n")
            daemon.signal(SIGHUP)
            #expect(daemon.wait(until: 5) { $0.stderr.contains("reload failed, keeping the running configuration") })
            #expect(daemon.stderr.contains("earshot.yaml:9: levels.calibraton"), "\(daemon.stderr)")
            let still = client.readUntil(timeout: 5) { $0.contains("\"type\":\"frame\"") }
            #expect(still?.contains("\"level_unit\":\"dB SPL\"") == true, "frames stopped or config changed after a bad reload")
            #expect(daemon.isRunning)

            let t0 = Date()
            daemon.signal(SIGTERM)
            #expect(daemon.wait(timeout: 2) == .exited(0), "stderr: \(daemon.stderr)")
            #expect(Date().timeIntervalSince(t0) < 2)
            #expect(!FileManager.default.fileExists(atPath: rig.socketPath), "socket file left behind")
        }

        /// systemd socket activation (`LISTEN_FDS`/`LISTEN_PID`, through `systemd-socket-activate`): the daemon
        /// serves the passed socket instead of binding `socket.path`, and leaves it in place on exit.
        @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-socket-activate") || isCIEnvironment,
                       "systemd-socket-activate not installed"))
        func socketActivation() throws {
            let rig = try Rig("activate")
            defer { rig.cleanup() }
            let activated = rig.dir.appendingPathComponent("activated.sock").path
            var args = ["-l", activated]
            for (k, v) in rig.device.environment { args += ["-E", "\(k)=\(v)"] }
            args += [try EarshotBinary.require(), "run", "--config", rig.config.path]
            let daemon = try DaemonProcess(executable: "/usr/bin/systemd-socket-activate", arguments: args, environment: rig.environment())
            defer { daemon.killAndReap() }
            #expect(daemon.wait(until: 10) { _ in FileManager.default.fileExists(atPath: activated) })
            let client = try SocketLineClient(path: activated)  // the first connection launches the daemon
            let hello = client.readLine(timeout: 15)
            #expect(hello?.contains("\"type\":\"hello\"") == true, "stderr: \(daemon.stderr)")
            client.send(#"{"op":"subscribe","streams":["frame"],"every":10}"#)
            #expect(client.readUntil(timeout: 10) { $0.contains("\"type\":\"frame\"") } != nil)
            #expect(!FileManager.default.fileExists(atPath: rig.socketPath), "bound socket.path despite socket activation")
            #expect(daemon.stderr.contains("systemd=true"), "\(daemon.stderr)")
            daemon.signal(SIGTERM)
            #expect(daemon.wait(timeout: 5) == .exited(0))
            #expect(FileManager.default.fileExists(atPath: activated), "systemd's socket must not be unlinked")
        }

        /// The `seq` of a frame line.
        func seq(of line: String?) -> Int? {
            guard let line, let r = line.range(of: "\"seq\":") else { return nil }
            return Int(line[r.upperBound...].prefix { $0.isNumber })
        }

        /// Reads frames for a moment and returns the last seq seen.
        func lastSeq(_ client: SocketLineClient) -> Int {
            var last = -1
            let end = Date().addingTimeInterval(0.3)
            while Date() < end, let l = client.readLine(timeout: 0.1) { if let s = seq(of: l) { last = max(last, s) } }
            return last
        }

        /// Every class of configuration error exits 78 naming the file, line and key (check-config and run).
        @Test func configErrorsExit78WithKeyAndLine() throws {
            let dir = try makeTemporaryDirectory("earshot-svc-config")
            defer { try? FileManager.default.removeItem(at: dir) }
            let cases: [(yaml: String, expect: String)] = [
                ("capture:\n  devise: hw:CARD=Mic,DEV=0\n", ":2: capture.devise"),                          // unknown key
                ("analysis:\n  n_fft: lots\n", ":2: analysis.n_fft"),                                       // wrong type
                ("alerts:\n  level:\n    hysteresis_db: -3\n", ":3: alerts.level.hysteresis_db"),           // out of range
                ("analysis:\n  n_fft: 512\n  hop: 1024\n", ":3: analysis.hop"),                             // hop > n_fft
                ("analysis:\n  fmax: 30000\n", ":2: analysis.fmax"),                                        // above Nyquist
                ("socket:\n  path: /nonexistent-dir/earshot.sock\n", ":2: socket.path"),                    // missing directory
                ("capture: [1, 2\n", ":2: YAML syntax error"),                                              // YAML syntax
            ]
            for (i, c) in cases.enumerated() {
                let file = dir.appendingPathComponent("bad\(i).yaml")
                try c.yaml.write(to: file, atomically: true, encoding: .utf8)
                let r = try DaemonProcess.run(["check-config", file.path])
                #expect(r.termination == .exited(78), "case \(i): \(r.termination.map { "\($0)" } ?? "hung") \(r.stderr)")
                #expect(r.stderr.contains(file.path + c.expect), "case \(i): \(r.stderr)")
            }
            let run = try DaemonProcess.run(["run", "--config", dir.appendingPathComponent("bad3.yaml").path, "--no-socket"])
            #expect(run.termination == .exited(78) && run.stderr.contains("analysis.hop"), "\(run.stderr)")
            var env = baseChildEnvironment()
            env["EARSHOT_ANALYSIS_HOP"] = "many"
            let envRun = try DaemonProcess.run(["check-config", dir.appendingPathComponent("bad0.yaml").path], environment: env)
            #expect(envRun.termination == .exited(78))
        }

        /// An impossibly low DSP budget: every frame is over budget, counted on the stats stream, and the
        /// warning is rate limited (one per warn interval, with the number suppressed).
        @Test func budgetsCountAndRateLimitWarnings() throws {
            let rig = try Rig("budget", extraYAML: "budgets:\n  dsp_ms: 0.000001\n  warn_interval_s: 60\n")
            defer { rig.cleanup() }
            let daemon = try DaemonProcess(earshot: ["run", "--config", rig.config.path], environment: rig.environment())
            defer { daemon.killAndReap() }
            #expect(daemon.wait(until: 15) { _ in FileManager.default.fileExists(atPath: rig.socketPath) }, "\(daemon.stderr)")
            let client = try SocketLineClient(path: rig.socketPath)
            client.send(#"{"op":"subscribe","streams":["stats"]}"#)
            let stats = client.readUntil(timeout: 12) { $0.contains("\"type\":\"stats\"") }
            let line = try #require(stats, "no stats message; stderr: \(daemon.stderr)")
            let data = try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let over = try #require(data["over_budget"] as? [String: Any], "\(line)")
            let dspOver = (over["dsp"] as? NSNumber)?.intValue ?? 0
            #expect(dspOver >= 100, "\(line)")
            let latency = data["latency_ms"] as? [String: Any]
            #expect(latency?["dsp"] != nil, "\(line)")
            let warnings = daemon.stderr.split(separator: "\n").filter { $0.contains("budget exceeded stage=dsp") }
            #expect(warnings.count == 1, "\(warnings)")
            daemon.signal(SIGTERM)
            #expect(daemon.wait(timeout: 5) == .exited(0))
        }

        /// `make demo`'s command runs headless: the daemon starts on the generated recording and
        /// `earshot tail --json` (inside the demo) sees frames.
        @Test func demoRunsHeadless() throws {
            let r = try DaemonProcess.run(["demo", "--duration", "10", "--json", "--every", "1"], timeout: 40)
            #expect(r.termination == .exited(0), "\(r.stderr)")
            let frames = r.lines.filter { $0.contains("\"type\":\"frame\"") }
            #expect(frames.count >= 500, "frames seen by tail: \(frames.count); stderr: \(r.stderr)")
            #expect(r.lines.first?.contains("\"type\":\"hello\"") == true)
            #expect(r.stderr.contains("ready: frames are flowing"))
        }
    }
}
