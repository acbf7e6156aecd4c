#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// Issue 11 item 1 against the built binary: input-health faults synthesised and played through real ALSA
/// capture (the `file` plugin reading a paced FIFO), with short holds so one run covers every fault.
extension EndToEnd.Service {
    /// The script: healthy noise (−30 dBFS), then each fault separated by healthy noise; the writer is
    /// stopped at the end (a source that stays open and delivers nothing).
    struct HealthScript {
        static let rate = 48_000
        static let segments: [(name: String, seconds: Double)] = [
            ("healthy", 5), ("zeros", 3), ("healthy", 3), ("dc", 3), ("healthy", 3), ("drop40", 4), ("healthy", 3),
            ("clipped", 3), ("healthy", 30),
        ]

        static func noise(_ i: Int, _ rms: Double) -> Float {
            var x = UInt64(truncatingIfNeeded: i) &* 0x9E37_79B9_7F4A_7C15
            x ^= x >> 31; x = x &* 0xBF58_476D_1CE4_E5B9; x ^= x >> 29
            return Float((Double(x % 2_000_001) / 1_000_000 - 1) * rms * 1.732)
        }

        static func samples() -> [Float] {
            var out: [Float] = []
            for (name, seconds) in segments {
                let n = Int(seconds * Double(rate))
                let base = out.count
                for k in 0..<n {
                    let i = base + k
                    let healthy = noise(i, 0.03) + Float(0.05 * sin(2 * Double.pi * 330 * Double(i) / Double(rate)))
                    switch name {
                    case "zeros": out.append(0)
                    case "dc": out.append(healthy + 0.3)
                    case "drop40": out.append(healthy * 0.01)
                    case "clipped": out.append(max(-1, min(1, healthy * 40)))
                    default: out.append(healthy)
                    }
                }
            }
            return out
        }

        /// Short holds (the defaults are tens of seconds).
        static let yaml = """
            health:
              silence_s: 1
              dc_hold_s: 1
              floor_hold_s: 1.5
              floor_baseline_s: 20
              clip_hold_s: 1
              clear_s: 1
              no_data_s: 1.5
            """
    }

    struct HealthEvent {
        var kind: String, state: String, t: Double, received: Double, line: String
    }

    @Test func healthFaultsThroughRealCaptureStartAndEnd() throws {
        let rig = try PublishingRig("health", samples: HealthScript.samples(), extraYAML: HealthScript.yaml)
        defer { rig.cleanup() }
        let device = rig.device, socketPath = rig.socketPath
        let notify = try NotifyListener(path: rig.dir.appendingPathComponent("notify.sock").path)
        let daemon = try rig.start(environment: ["NOTIFY_SOCKET": notify.path])
        let client = try SocketLineClient(path: socketPath)
        let hello = client.readUntil(timeout: 5) { $0.contains("\"type\":\"hello\"") } ?? ""
        #expect(hello.contains("\"health\":\"ok\""), "hello: \(hello)")
        client.send(#"{"op":"subscribe","streams":["alert","stats"]}"#)

        var events: [HealthEvent] = []
        var helloDuringSilence = ""
        var statsDuringFault = ""
        var stoppedAt: Double?
        let deadline = Date().addingTimeInterval(45)
        while Date() < deadline {
            guard let line = client.readLine(timeout: 0.2) else {
                if stoppedAt == nil, events.contains(where: { $0.kind == "clipping" && $0.state == "end" }) {
                    Thread.sleep(forTimeInterval: 2)
                    device.pause()  // the writer stops; the device stays open
                    stoppedAt = Date().timeIntervalSince1970
                }
                if events.contains(where: { $0.kind == "no_data" && $0.state == "start" }) { device.resume() }
                if events.contains(where: { $0.kind == "no_data" && $0.state == "end" }) { break }
                continue
            }
            if line.contains("\"type\":\"stats\""), line.contains("\"health_dc_offset\":1") { statsDuringFault = line }
            guard line.contains("\"type\":\"health\"") else { continue }
            let f = fieldsOf(line)
            events.append(HealthEvent(kind: f["kind"] ?? "", state: f["state"] ?? "", t: Double(f["t"] ?? "") ?? 0,
                                      received: Date().timeIntervalSince1970, line: line))
            if f["kind"] == "silence", f["state"] == "start" {
                let second = try SocketLineClient(path: socketPath)
                helloDuringSilence = second.readUntil(timeout: 3) { $0.contains("\"type\":\"hello\"") } ?? ""
            }
        }
        let sequence = events.map { "\($0.kind) \($0.state)" }
        print("health events: " + events.map { "\($0.kind) \($0.state) t=\($0.t) decided after \(String(format: "%.2f", $0.received - $0.t)) s" }.joined(separator: "; "))
        #expect(sequence == [
            "silence start", "silence end", "dc_offset start", "dc_offset end", "low_floor start", "low_floor end",
            "clipping start", "clipping end", "no_data start", "no_data end",
        ], "\(sequence)\n\(daemon.stderr)")
        func event(_ kind: String, _ state: String) -> HealthEvent? { events.first { $0.kind == kind && $0.state == state } }
        // Each fault lasted as long as its segment (± a 0.5 s block and the clear hold), and each was decided
        // within its hold (+ 1 s of blocks, batching and socket delivery) after it began.
        for (kind, seconds, hold) in [("silence", 3.0, 1.0), ("dc_offset", 3, 1), ("low_floor", 4, 1.5), ("clipping", 3, 1)] {
            guard let s = event(kind, "start"), let e = event(kind, "end") else { continue }
            #expect(abs((e.t - s.t) - seconds) <= 0.75, "\(kind) lasted \(e.t - s.t) s, segment \(seconds) s")
            #expect(s.received - s.t <= hold + 1.0, "\(kind) decided \(s.received - s.t) s after it began (hold \(hold))")
            #expect(e.received - e.t <= 1.0 + 1.0, "\(kind) ended \(e.received - e.t) s after it cleared")
        }
        // The starts follow the script: zeros at 5 s, DC at 11, drop at 17, clipping at 24 (± 0.75 s).
        if let z = event("silence", "start") {
            for (kind, offset) in [("dc_offset", 6.0), ("low_floor", 12), ("clipping", 19)] {
                if let s = event(kind, "start") { #expect(abs(s.t - z.t - offset) <= 0.75, "\(kind) at +\(s.t - z.t) s") }
            }
        }
        if let stoppedAt, let s = event("no_data", "start") {
            #expect(s.received - stoppedAt <= 1.5 + 1.0, "no_data decided \(s.received - stoppedAt) s after the writer stopped")
        }
        #expect(helloDuringSilence.contains("\"health\":\"silence\""), "hello during the silence: \(helloDuringSilence)")
        // The log lines, at warning (start) and notice (end).
        let log = daemon.stderr
        #expect(log.contains("alert=health kind=silence state=start"), "\(log)")
        #expect(log.contains("alert=health kind=no_data state=end"))
        // STATUS= carries the health state (every 5 s); stats the per-kind gauges and event counts.
        let statuses = notify.messages.map(\.text).filter { $0.contains("STATUS=") }
        #expect(statuses.contains { $0.contains("health=ok") }, "\(statuses)")
        #expect(statuses.allSatisfy { $0.contains("health=") }, "\(statuses)")
        if !statsDuringFault.isEmpty {
            #expect(statsDuringFault.contains("\"health_events_silence\":1") && statsDuringFault.contains("\"health\":\"dc_offset\""), "\(statsDuringFault)")
        }
        daemon.signal(SIGTERM)
        #expect(daemon.wait(timeout: 5) == .exited(0))
    }

    /// Healthy audio with the default thresholds (short holds): speech-like tone bursts and noise raise nothing.
    @Test func healthyCaptureRaisesNoHealthAlert() throws {
        let rate = 48_000
        // Syllable-like bursts over room noise at −60 dBFS, with pauses.
        let samples: [Float] = (0..<(8 * rate)).map { i in
            let t = Double(i) / Double(rate)
            let syllable = (t.truncatingRemainder(dividingBy: 0.9) < 0.25) ? 0.3 * sin(2 * .pi * 220 * t) * sin(2 * .pi * 3 * t) : 0
            return Float(syllable) + HealthScript.noise(i, 0.001)
        }
        let rig = try PublishingRig("health-ok", samples: samples, extraYAML: """
            health:
              silence_s: 1
              dc_hold_s: 1
              floor_hold_s: 1
              floor_baseline_s: 4
              clip_hold_s: 1
              drift_window_s: 4
            """)
        defer { rig.cleanup() }
        let daemon = try rig.start()
        let socketPath = rig.socketPath
        let client = try SocketLineClient(path: socketPath)
        client.send(#"{"op":"subscribe","streams":["alert","frame"],"fields":["laf"]}"#)
        #expect(client.readUntil(timeout: 5) { $0.contains("\"type\":\"frame\"") } != nil)
        let health = client.readUntil(timeout: 8) { $0.contains("\"type\":\"health\"") }
        #expect(health == nil, "a health alert on healthy audio: \(health ?? "")")
        #expect(!daemon.stderr.contains("alert=health"), "\(daemon.stderr)")
    }
}

extension EndToEnd.Service {
    /// A device whose sample clock runs fast (the writer delivers 48 480 samples per second to a 48 kHz
    /// device): `clock_drift` within its window, and nothing else.
    @Test func fastSampleClockRaisesClockDrift() throws {
        let rig = try PublishingRig("health-drift", samples: HealthScript.samples().prefix(48_000 * 4).map { $0 },
                                    extraYAML: "health:\n  drift_window_s: 4\n  drift_limit_ppm: 2000\n", pace: 1.01)
        defer { rig.cleanup() }
        let daemon = try rig.start()
        let client = try SocketLineClient(path: rig.socketPath)
        client.send(#"{"op":"subscribe","streams":["alert"]}"#)
        let line = client.readUntil(timeout: 10) { $0.contains("\"type\":\"health\"") }
        let f = fieldsOf(line ?? "")
        #expect(f["kind"] == "clock_drift" && f["state"] == "start", "\(line ?? "none"); \(daemon.stderr)")
        let ppm = Double(f["value"] ?? "") ?? 0
        // Positive: more samples than wall time. (The `file` plugin's capture timestamps come from its `null`
        // slave, which does not follow a writer that is ahead of real time, so the figure is larger than the
        // 10 000 ppm a real 1 %-fast converter would show; the unit tests check the arithmetic.)
        #expect(ppm > 2000, "a fast sample clock reads as positive drift above the limit: \(ppm)")
        print("1 % fast device: clock_drift start at \(ppm) ppm")
    }
}

/// `"key":value` pairs of a flat JSON line (strings unquoted).
private func fieldsOf(_ line: String) -> [String: String] {
    var out: [String: String] = [:]
    let body = line.trimmingCharacters(in: CharacterSet(charactersIn: "{}\n"))
    for part in body.split(separator: ",") {
        let kv = part.split(separator: ":", maxSplits: 1)
        guard kv.count == 2 else { continue }
        out[kv[0].trimmingCharacters(in: CharacterSet(charactersIn: "\""))] = kv[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
    }
    return out
}
