#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import Testing

/// Issue 9 items 5 (supervisor half), 7, 8 and 12 against the real binary: SIGHUP storms, a sink that cannot
/// restart, configurations that would exhaust memory, and hostile configuration values on reload.
extension EndToEnd {
    @Suite("earshot supervisor hardening", .serialized) struct SupervisorHardening {
        /// What a socket subscriber saw: hellos, frames (seq, arrival time), status events.
        final class Subscriber: @unchecked Sendable {
            let client: SocketLineClient
            private let lock = NSLock()
            private var running = true
            private(set) var hellos = 0
            private(set) var frames: [(seq: Int, at: Double)] = []
            private(set) var statuses: [String] = []
            private var done = false
            let start = Date()

            init(path: String) throws {
                client = try SocketLineClient(path: path)
                client.send(#"{"op":"subscribe","streams":["frame","status"],"fields":["laf"]}"#)
                Thread { [self] in
                    while lock.withLock({ running }) {
                        guard let line = client.readLine(timeout: 0.2) else { continue }
                        let now = Date().timeIntervalSince(start)
                        lock.withLock {
                            if line.contains("\"type\":\"hello\"") { hellos += 1 }
                            else if line.contains("\"type\":\"status\"") { statuses.append(line) }
                            else if line.contains("\"type\":\"frame\""), let r = line.range(of: "\"seq\":"),
                                    let seq = Int(line[r.upperBound...].prefix { $0.isNumber }) {
                                frames.append((seq, now))
                            }
                        }
                    }
                    lock.withLock { done = true }
                }.start()
            }

            var snapshot: (hellos: Int, frames: [(seq: Int, at: Double)], statuses: [String]) {
                lock.withLock { (hellos, frames, statuses) }
            }

            func stop() {
                lock.withLock { running = false }
                _ = waitFor(2) { lock.withLock { done } }
            }

            /// Longest time without a frame between `from` and `to` (seconds since the subscriber started).
            func longestHole(from: Double, to: Double) -> Double {
                let times = snapshot.frames.map(\.at).filter { $0 >= from && $0 <= to }
                guard let first = times.first, let last = times.last else { return to - from }
                var hole = max(first - from, to - last)
                for (a, b) in zip(times, times.dropFirst()) { hole = max(hole, b - a) }
                return hole
            }

            /// Frames whose seq does not follow the previous one.
            var seqGaps: [(Int, Int)] {
                let f = snapshot.frames
                return zip(f, f.dropFirst()).filter { $1.seq != $0.seq + 1 }.map { ($0.seq, $1.seq) }
            }
        }

        /// Sends `count` SIGHUPs to `pid`, `perSecond` a second, on a background thread; `each` runs before
        /// each signal (e.g. to rewrite the file).
        static func storm(_ pid: pid_t, perSecond: Double, count: Int, each: @escaping @Sendable (Int) -> Void = { _ in }) -> Thread {
            let t = Thread {
                let start = Date()
                for i in 0..<count {
                    each(i)
                    _ = kill(pid, SIGHUP)
                    let next = start.addingTimeInterval(Double(i + 1) / perSecond)
                    let wait = next.timeIntervalSinceNow
                    if wait > 0 { usleep(UInt32(wait * 1e6)) }
                }
            }
            t.start()
            return t
        }

        /// 100 SIGHUP/s for 4 s with the file unchanged, then 100/s for 3 s while the file changes on every
        /// signal (a DSP re-plan each time it is applied): frames keep flowing (no hole over 0.5 s), seq
        /// never jumps without a discontinuity, reloads are coalesced to at most one a second, and a
        /// subscriber gets one `hello` per applied change — not one per signal.
        @Test func sighupStormIsCoalescedAndFramesKeepFlowing() throws {
            let rig = try PublishingRig("storm")
            defer { rig.cleanup() }
            let daemon = try rig.start()
            let sub = try Subscriber(path: rig.socketPath)
            defer { sub.stop() }
            #expect(waitFor(5) { sub.snapshot.frames.count > 20 }, "no frames before the storm")

            // Phase 1: the file does not change — no reload does anything visible.
            let t1 = Date().timeIntervalSince(sub.start)
            let s1 = Self.storm(daemon.pid, perSecond: 100, count: 400)
            #expect(waitFor(8) { s1.isFinished })
            let t2 = Date().timeIntervalSince(sub.start)
            Thread.sleep(forTimeInterval: 0.5)
            let hole1 = sub.longestHole(from: t1, to: t2)
            #expect(hole1 < 0.5, "longest hole without frames during the unchanged-file storm: \(hole1) s")
            #expect(sub.snapshot.hellos == 1, "hellos during an unchanged-file storm: \(sub.snapshot.hellos)")
            let unchanged = daemon.stderr.components(separatedBy: "reload: configuration file unchanged").count - 1
            #expect(unchanged >= 1 && unchanged <= 6, "reloads run during a 4 s storm: \(unchanged) (at most one a second)")
            #expect(!daemon.stderr.contains("reload applied") && !daemon.stderr.contains("re-planned"))

            // Phase 2: every signal comes with a changed file (onset delta → DSP re-plan when applied).
            let config = rig.config
            let base = try String(contentsOf: config, encoding: .utf8)
            let t3 = Date().timeIntervalSince(sub.start)
            let s2 = Self.storm(daemon.pid, perSecond: 100, count: 300) { i in
                try? (base + "\nanalysis:\n  onset:\n    delta: \(2 + Double(i % 50) / 10)\n").write(to: config, atomically: true, encoding: .utf8)
            }
            #expect(waitFor(8) { s2.isFinished })
            let t4 = Date().timeIntervalSince(sub.start)
            Thread.sleep(forTimeInterval: 1.5)  // the last pending reload
            // Its log line and its hello reach this test on two paths: wait until they agree (a loaded box).
            var applied = 0, hellos = 0
            _ = waitFor(5) {
                applied = daemon.stderr.components(separatedBy: "reload applied").count - 1
                hellos = sub.snapshot.hellos - 1
                return hellos == applied
            }
            // At most one a second (plus the pending one after the storm); at least one: a storm never starves reloads.
            #expect(applied >= 1 && applied <= 5, "reloads applied during a 3 s storm of 300 signals: \(applied)")
            #expect(hellos == applied, "hellos \(hellos) for \(applied) applied reloads")
            let hole2 = sub.longestHole(from: t3, to: t4)
            #expect(hole2 < 0.5, "longest hole without frames during the changing-file storm: \(hole2) s")
            // Seq is continuous: a re-plan continues the sequence (its gap in samples is on the frame).
            #expect(sub.seqGaps.isEmpty, "seq gaps: \(sub.seqGaps.prefix(5))")
            #expect(daemon.isRunning)
            daemon.signal(SIGTERM)
            #expect(daemon.wait(timeout: 5) == .exited(0), "\(daemon.stderr.suffix(2000))")
        }

        /// A free TCP port on 127.0.0.1 (bound then closed).
        static func freePort() -> Int {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_addr.s_addr = inet_addr("127.0.0.1")
            a.sin_port = 0
            _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
            return Int(UInt16(bigEndian: a.sin_port))
        }

        /// A listening TCP socket on 127.0.0.1 (a busy port); returns (fd, port).
        static func busyPort() -> (Int32, Int) {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)  // not inherited by the daemon
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_addr.s_addr = inet_addr("127.0.0.1")
            _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            listen(fd, 4)
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
            return (fd, Int(UInt16(bigEndian: a.sin_port)))
        }

        /// `GET /metrics` from 127.0.0.1:port (nil if nothing answers).
        static func scrape(port: Int) -> String? {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var tv = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_addr.s_addr = inet_addr("127.0.0.1")
            a.sin_port = in_port_t(UInt16(port).bigEndian)
            let r = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard r == 0 else { return nil }
            sendAll(fd, Array("GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n".utf8))
            var out: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 65_536)
            while true {
                let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                out += buf[0..<n]
            }
            return String(decoding: out, as: UTF8.self)
        }

        /// Reload moves `metrics.listen` to a busy port: the metrics sink is reported (error log, `sink_failed`
        /// status, `sink_failures` in stats) and the sinks after it — stdout here — keep running; the log does not
        /// say `reload applied`. Moving it to a free port brings it back with `earshot_sink_up{sink="metrics"} 1`
        /// and `earshot_sink_failures_total{sink="metrics"} 1`.
        @Test func sinkThatFailsToRestartIsReportedAndOthersKeepRunning() throws {
            let (busyFD, busy) = Self.busyPort()
            var busyOpen = true
            defer { if busyOpen { close(busyFD) } }
            let first = Self.freePort()
            let metricsYAML = { (port: Int) in "metrics:\n  enabled: true\n  listen: 127.0.0.1:\(port)\n" }
            let rig = try PublishingRig("sinkfail", extraYAML: metricsYAML(first))
            defer { rig.cleanup() }
            var env = baseChildEnvironment()
            for (k, v) in rig.device.environment { env[k] = v }
            let daemon = try DaemonProcess(earshot: ["run", "--config", rig.config.path, "--stdout"], environment: env)
            defer { daemon.killAndReap() }
            try #require(daemon.wait(until: 15) { $0.stderr.contains("ready: frames are flowing") && FileManager.default.fileExists(atPath: rig.socketPath) },
                         "\(daemon.stderr)")
            #expect(Self.scrape(port: first)?.contains("earshot_frames_total") == true)
            let sub = try Subscriber(path: rig.socketPath)
            defer { sub.stop() }

            let text = try String(contentsOf: rig.config, encoding: .utf8)
            try text.replacingOccurrences(of: metricsYAML(first), with: metricsYAML(busy)).write(to: rig.config, atomically: true, encoding: .utf8)
            daemon.signal(SIGHUP)
            #expect(daemon.wait(until: 5) { $0.stderr.contains("reload partly applied") }, "\(daemon.stderr.suffix(2000))")
            let failLine = daemon.stderr.split(separator: "\n").first { $0.contains("the metrics sink failed to start") }
            #expect(failLine?.contains("error") == true, "\(failLine ?? "no sink failure logged")")
            #expect(!daemon.stderr.contains("reload applied"), "the log says reload applied after a sink failed")
            #expect(waitFor(3) { sub.snapshot.statuses.contains { $0.contains("\"event\":\"sink_failed\"") && $0.contains("\"sink\":\"metrics\"") } },
                    "statuses: \(sub.snapshot.statuses)")
            // stdout (started after metrics) keeps writing frames.
            let before = daemon.lineCount
            Thread.sleep(forTimeInterval: 1)
            #expect(daemon.lineCount - before > 50, "stdout frames in the second after the failed restart: \(daemon.lineCount - before)")
            #expect(Self.scrape(port: first) == nil, "the old metrics listener is still up")

            // The port frees up: a SIGHUP with the same file retries the stopped sink.
            close(busyFD); busyOpen = false
            daemon.signal(SIGHUP)
            #expect(daemon.wait(until: 5) { $0.stderr.contains("reload applied") }, "\(daemon.stderr.suffix(2000))")
            #expect(waitFor(4) { Self.scrape(port: busy)?.contains("earshot_frames_total") == true }, "metrics not retried on the freed port")

            // A free port: the sink comes back and says what happened.
            let third = Self.freePort()
            try text.replacingOccurrences(of: metricsYAML(first), with: metricsYAML(third)).write(to: rig.config, atomically: true, encoding: .utf8)
            daemon.signal(SIGHUP)
            #expect(daemon.wait(until: 5) { $0.stderr.contains("reload applied") }, "\(daemon.stderr.suffix(2000))")
            var body = ""
            #expect(waitFor(4) { body = Self.scrape(port: third) ?? ""; return body.contains("earshot_sink_failures_total") })
            // Every series also carries the constant instance/device labels (sorted before the series' own).
            #expect(body.contains(#"instance="earshot",sink="metrics"} 1"#) && body.contains(#"earshot_sink_failures_total{device="#),
                    "\(body.split(separator: "\n").filter { $0.contains("sink_") })")
            #expect(body.split(separator: "\n").contains { $0.hasPrefix("earshot_sink_up{") && $0.contains(#"sink="metrics"} 1"#) })
            #expect(body.split(separator: "\n").contains { $0.hasPrefix("earshot_sink_up{") && $0.contains(#"sink="stdout"} 1"#) })
            daemon.signal(SIGTERM)
            #expect(daemon.wait(timeout: 5) == .exited(0))
        }

        /// Resident memory of `pid`, MB.
        static func rssMB(_ pid: pid_t) -> Double {
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                  let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
                  let kb = Double(line.split(separator: " ").dropFirst().first ?? "") else { return -1 }
            return kb / 1024
        }

        /// Accepted extremes run: the highest frame rate (hop = sample_rate / 1000, the default period follows
        /// it) delivers frames; a configuration near the memory limit (a day-long rolling window: 66 MB of
        /// levels, touched at start) runs with its resident memory within the estimate check-config prints
        /// plus the fixed runtime.
        @Test func acceptedExtremesRunWithinTheirEstimate() throws {
            let fast = try PublishingRig("extreme-rate", extraYAML: "analysis:\n  hop: 48\n")
            defer { fast.cleanup() }
            let d1 = try fast.start()
            let sub = try Subscriber(path: fast.socketPath)
            Thread.sleep(forTimeInterval: 2)
            sub.stop()
            #expect(sub.snapshot.frames.count > 1000, "frames in 2 s at 1000 frames/s: \(sub.snapshot.frames.count)")
            d1.signal(SIGTERM)
            #expect(d1.wait(timeout: 5) == .exited(0))

            let big = try PublishingRig("extreme-memory", extraYAML: "rolling:\n  windows_s: [1, 60, 86400]\n")
            defer { big.cleanup() }
            let check = try DaemonProcess.run(["check-config", big.config.path])
            #expect(check.termination == .exited(0), "\(check.stderr)")
            let estimate = try #require(check.stderr.range(of: "about ").flatMap { r in Double(check.stderr[r.upperBound...].prefix { $0.isNumber }) },
                                        "\(check.stderr)")
            #expect(estimate > 66 && estimate < 256)
            let d2 = try big.start()
            Thread.sleep(forTimeInterval: 2)
            let rss = Self.rssMB(d2.pid)
            #expect(rss > 66, "the 86400 s window's levels are preallocated: RSS \(rss) MB")
            #expect(rss < estimate + 48, "RSS \(rss) MB above the estimate \(estimate) MB + 48 MB of runtime")
            d2.signal(SIGTERM)
            #expect(d2.wait(timeout: 5) == .exited(0))
        }

        /// The shipped `earshot.yaml` of an earlier release, edited by its operator and so kept by dpkg on upgrade,
        /// holds a key this release retired: `check-config` and `run` warn naming file, line and key, and go on.
        @Test func retiredKeyOfAnOlderConffileWarnsAndRuns() throws {
            let dir = try makeTemporaryDirectory("earshot-retired-key")
            defer { try? FileManager.default.removeItem(at: dir) }
            let shipped = try String(contentsOf: EarshotBinary.packageRoot.appendingPathComponent("config/earshot.yaml"), encoding: .utf8)
            var lines = shipped.components(separatedBy: "\n")
            let at = try #require(lines.firstIndex { $0.hasPrefix("    floor_slew_db_per_s:") })
            lines.insert("    floor_rise_db_per_s: 5", at: at)
            let file = dir.appendingPathComponent("earshot.yaml")
            try lines.joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
            let warning = "\(file.path):\(at + 1): analysis.onset.floor_rise_db_per_s: retired and ignored"
            let check = try DaemonProcess.run(["check-config", "--quiet", file.path], timeout: 20)
            #expect(check.termination == .exited(0) && check.stderr.contains("earshot: warning: " + warning), "\(check.stderr)")
            let run = try DaemonProcess.run(["run", "--config", file.path, "--no-socket", "--device", "null", "--duration", "1"], timeout: 20)
            #expect(run.termination == .exited(0) && run.stderr.contains("configuration: " + warning), "\(run.stderr)")
        }

        /// The issue's configurations that exhausted memory or trapped, through `check-config` and `run`: exit 78
        /// naming the file, line and key, quickly, and a bad SIGHUP is refused the same way while the running
        /// configuration keeps going.
        @Test func hostileConfigurationsExit78AndAreRefusedOnReload() throws {
            let dir = try makeTemporaryDirectory("earshot-hostile-config")
            defer { try? FileManager.default.removeItem(at: dir) }
            var bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n"
            for i in 1...9 { bomb += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 9).joined(separator: ", ") + "]\n" }
            bomb += "? *a9\n: 1\n"
            let cases: [(yaml: String, expect: String)] = [
                ("capture:\n  sample_rate: 192000\nanalysis:\n  hop: 192\nrolling:\n  windows_s: [86400]\n", ":6: rolling.windows_s: this configuration needs about"),
                ("capture:\n  period_frames: 1048576\n  buffer_periods: 1024\n", ":2: capture.period_frames: this configuration needs about"),
                ("analysis:\n  hop: 1\n", ":2: analysis.hop: 1 gives 48000 frames per second"),
                (bomb, ":1: YAML anchors and aliases are not supported"),
                ("capture:\n  device: \"x\\nearshot: forged line\"\n", ":2: capture.device: contains a control character (U+000A)"),
                ("socket:\n  path: \"\(dir.path)/a\\0b.sock\"\n", ":2: socket.path: contains a control character (U+0000)"),
                ("metrics:\n  enabled: true\n  listen: 0.0.0.0:9464\n", ":3: metrics.listen: \"0.0.0.0:9464\" is not a loopback address"),
            ]
            for (i, c) in cases.enumerated() {
                let file = dir.appendingPathComponent("hostile\(i).yaml")
                try c.yaml.write(to: file, atomically: true, encoding: .utf8)
                let t0 = Date()
                let r = try DaemonProcess.run(["check-config", file.path], timeout: 20)
                #expect(r.termination == .exited(78), "case \(i): \(r.termination.map { "\($0)" } ?? "hung") \(r.stderr)")
                #expect(r.stderr.contains(file.path + c.expect), "case \(i): \(r.stderr)")
                #expect(Date().timeIntervalSince(t0) < 5, "case \(i) took \(Date().timeIntervalSince(t0)) s")
                let run = try DaemonProcess.run(["run", "--config", file.path, "--no-socket", "--duration", "1"], timeout: 20)
                #expect(run.termination == .exited(78) && run.stderr.contains(c.expect), "case \(i) run: \(run.stderr)")
            }

            // On SIGHUP: each is refused with its line, the running configuration keeps delivering frames.
            let rig = try PublishingRig("hostile-reload")
            defer { rig.cleanup() }
            let daemon = try rig.start()
            let sub = try Subscriber(path: rig.socketPath)
            defer { sub.stop() }
            let good = try String(contentsOf: rig.config, encoding: .utf8)
            let reloadCases: [(yaml: String, expect: String)] = [
                ("rolling:\n  windows_s: [86400]\nanalysis:\n  hop: 48\n", "rolling.windows_s: this configuration needs about"),
                ("analysis:\n  hop: 1\n", "analysis.hop: 1 gives 48000 frames per second"),
                (bomb, "YAML anchors and aliases are not supported"),
                ("alerts:\n  level:\n    weighting: \"laf\\nearshot: forged\"\n", "alerts.level.weighting: contains a control character (U+000A)"),
                ("metrics:\n  enabled: true\n  listen: 0.0.0.0:9464\n", "metrics.listen: \"0.0.0.0:9464\" is not a loopback address"),
            ]
            for (i, c) in reloadCases.enumerated() {
                try (good + "\n" + c.yaml).write(to: rig.config, atomically: true, encoding: .utf8)
                let t0 = Date()
                let failures = daemon.stderr.components(separatedBy: "reload failed, keeping the running configuration").count - 1
                daemon.signal(SIGHUP)
                #expect(daemon.wait(until: 5) { $0.stderr.components(separatedBy: "reload failed, keeping the running configuration").count - 1 > failures },
                        "case \(i) not refused on reload: \(daemon.stderr.suffix(1500))")
                #expect(Date().timeIntervalSince(t0) < 3, "case \(i) reload took \(Date().timeIntervalSince(t0)) s")
                #expect(daemon.stderr.contains("earshot.yaml:") && daemon.stderr.contains(c.expect), "case \(i): \(daemon.stderr.suffix(1500))")
                let seen = sub.snapshot.frames.count
                #expect(waitFor(2) { sub.snapshot.frames.count > seen + 10 }, "frames stopped after bad reload \(i)")
                Thread.sleep(forTimeInterval: 1.05)  // reloads are at most one a second
            }
            #expect(sub.snapshot.hellos == 1)
            #expect(daemon.isRunning)
            daemon.signal(SIGTERM)
            #expect(daemon.wait(timeout: 5) == .exited(0))
        }
    }
}
