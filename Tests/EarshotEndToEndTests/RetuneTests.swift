#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// Issue 10 item 4 against the real binary (paced FIFO through ALSA's `file` plugin, a real socket): a
/// threshold change on SIGHUP is retuned in place — no discontinuity, no seq gap, no level-meter reset —
/// while a client stays connected, and the new thresholds are in effect. A re-plan on the same rig is the
/// control that shows the checks see a reset when there is one.
extension EndToEnd {
    @Suite("reload retunes in place", .serialized) struct Retune {
        /// What the client read: frames (seq, las, discontinuity), onsets, alerts and statuses, with times.
        final class Recording {
            var frames: [(seq: Int, las: Double, discontinuity: Bool, at: Double)] = []
            var onsets: [Double] = []
            var alerts: [(line: String, at: Double)] = []
            var statuses: [(line: String, at: Double)] = []
            var rolling: [(window: Double, at: Double, complete: Bool)] = []
            let start = Date()

            func read(_ client: SocketLineClient, for seconds: Double) {
                let end = Date().addingTimeInterval(seconds)
                while Date() < end {
                    guard let line = client.readLine(timeout: 0.1) else { continue }
                    let at = Date().timeIntervalSince(start)
                    guard let obj = jsonObject(Array(line.utf8)), let type = obj["type"] as? String else { continue }
                    switch type {
                    case "frame":
                        frames.append((int(obj["seq"]) ?? -1, dbl(obj["las"]) ?? .nan, obj["discontinuity"] != nil, at))
                    case "onset": onsets.append(at)
                    case "alert": alerts.append((line, at))
                    case "status": statuses.append((line, at))
                    case "rolling": rolling.append((dbl(obj["window_s"]) ?? -1, at, obj["complete"] as? Bool ?? false))
                    default: break
                    }
                }
            }

            var now: Double { Date().timeIntervalSince(start) }

            /// Largest |Δlas| between consecutive frames received in `[from, to)`.
            func largestLevelStep(from: Double, to: Double) -> Double {
                let f = frames.filter { $0.at >= from && $0.at < to }
                return zip(f, f.dropFirst()).map { abs($1.las - $0.las) }.max() ?? 0
            }

            func seqGaps(from: Double) -> [(Int, Int)] {
                let f = frames.filter { $0.at >= from }
                return zip(f, f.dropFirst()).filter { $1.seq != $0.seq + 1 }.map { ($0.seq, $1.seq) }
            }
        }

        static func yaml(delta: Double, thresholdDB: Double, rolloff: Double = 0.85, windows: String = "[1]") -> String {
            """
            rolling:
              windows_s: \(windows)
            analysis:
              rolloff: \(rolloff)
              onset:
                delta: \(delta)
            alerts:
              level:
                threshold_db: \(thresholdDB)
                min_duration_ms: 100
            """
        }

        /// Reloads that restart the sinks while a level alert is on. One that keeps the alert's measure (a
        /// rolling window added) keeps the alert — no second `start`, no `end` — because the new alert sink
        /// takes over the old one's state (attack run: each such reload lost the end and started the event
        /// again). One that changes its measure (the weighting) ends it once with `reason=reconfigured` in the
        /// old terms, and the new measure starts a new alert (the signal is still above the threshold).
        @Test func sinkRestartingReloadsKeepAnOngoingLevelAlert() throws {
            let rig = try PublishingRig("retune-alert", extraYAML: Self.yaml(delta: 2, thresholdDB: -80))
            defer { rig.cleanup() }
            let base = try String(contentsOf: rig.config, encoding: .utf8)
            let daemon = try rig.start()
            func levelAlertLines() -> [String] { daemon.stderr.split(separator: "\n").map(String.init).filter { $0.contains("alert=level") } }
            #expect(daemon.wait(until: 10) { _ in levelAlertLines().count == 1 }, "\(daemon.stderr.suffix(1500))")
            let steps = [
                base.replacingOccurrences(of: "windows_s: [1]", with: "windows_s: [1, 2]"),
                base.replacingOccurrences(of: "windows_s: [1]", with: "windows_s: [1, 2]")
                    .replacingOccurrences(of: "min_duration_ms: 100", with: "min_duration_ms: 100\n    weighting: las"),
            ]
            for (i, text) in steps.enumerated() {
                #expect(text != base)
                Thread.sleep(forTimeInterval: 1.1)  // reloads are coalesced to one per second
                try text.write(to: rig.config, atomically: true, encoding: .utf8)
                daemon.signal(SIGHUP)
                #expect(daemon.wait(until: 5) { $0.stderr.components(separatedBy: "reload applied").count - 1 > i },
                        "\(daemon.stderr.suffix(1500))")
                if i == 0 {
                    Thread.sleep(forTimeInterval: 0.5)
                    #expect(levelAlertLines().count == 1, "the same measure: carried, \(levelAlertLines())")
                }
            }
            Thread.sleep(forTimeInterval: 1)
            #expect(daemon.stderr.contains("restarting sinks") || daemon.stderr.contains("rolling.windows_s"), "\(daemon.stderr.suffix(1500))")
            #expect(daemon.wait(until: 5) { _ in levelAlertLines().count >= 3 }, "\(levelAlertLines())")
            let lines = levelAlertLines()
            #expect(lines.count == 3, "\(lines)")
            if lines.count == 3 {
                #expect(lines[0].contains("state=start"))
                #expect(lines[1].contains("state=end") && lines[1].contains("reason=reconfigured"), "\(lines[1])")
                #expect(lines[2].contains("state=start"))
            }
            daemon.signal(SIGTERM)
            #expect(daemon.wait(timeout: 5) == .exited(0))
        }

        @Test func thresholdChangeOnSighupKeepsStreamAndLevelMeters() throws {
            let rig = try PublishingRig("retune", extraYAML: Self.yaml(delta: 2, thresholdDB: 0))
            defer { rig.cleanup() }
            let base = try String(contentsOf: rig.config, encoding: .utf8)
            let daemon = try rig.start()
            let client = try SocketLineClient(path: rig.socketPath)
            client.send(#"{"op":"subscribe","streams":["frame","onset","alert","status","rolling"],"fields":["las"]}"#)
            let rec = Recording()
            // LAS (1 s time constant) settles before the window that is compared.
            rec.read(client, for: 3.5)
            let before = rec.now
            let onsetsBefore = rec.onsets.filter { $0 > 1.5 }.count
            #expect(onsetsBefore >= 4, "the clicks (every 250 ms) should be onsets at delta 2: \(onsetsBefore)")
            #expect(rec.alerts.isEmpty, "a level alert at threshold 0 dB: \(rec.alerts.map(\.line))")
            let settledStep = rec.largestLevelStep(from: 1.5, to: before)

            #expect(rec.rolling.contains { $0.window == 1 } && !rec.rolling.contains { $0.window == 2 })
            // The retune: an onset delta no click reaches, an alert threshold far below the signal, a budget,
            // and a rolling window more (the rolling sink restarts on the running bus).
            let retuned = base
                .replacingOccurrences(of: Self.yaml(delta: 2, thresholdDB: 0), with: Self.yaml(delta: 1000, thresholdDB: -80, windows: "[1, 2]"))
                .replacingOccurrences(of: "budgets:\n", with: "budgets:\n  dsp_ms: 7\n")
            #expect(retuned.contains("dsp_ms: 7"))
            try retuned.write(to: rig.config, atomically: true, encoding: .utf8)
            daemon.signal(SIGHUP)
            rec.read(client, for: 3)
            let after = rec.now
            #expect(daemon.stderr.contains("onset picker retuned in place"), "\(daemon.stderr.suffix(2000))")
            #expect(!daemon.stderr.contains("re-planned"))
            let reload = rec.statuses.first { $0.line.contains("\"event\":\"reload\"") }
            #expect(reload?.line.contains("\"plan\":\"retune\"") == true, "\(reload?.line ?? "no reload status")")
            let reloadAt = reload?.at ?? before
            // No discontinuity, no gap, the client was never dropped (frames keep coming on the same connection).
            #expect(!rec.frames.contains { $0.at >= before - 1 && $0.discontinuity }, "a frame flagged a discontinuity across the retune")
            #expect(rec.seqGaps(from: 0.5).isEmpty, "seq gaps: \(rec.seqGaps(from: 0.5).prefix(5))")
            #expect(rec.frames.filter { $0.at > reloadAt + 2 }.count > 50, "frames stopped after the reload")
            // LAS continuous: no step larger than the settled signal's own (a reset restarts it ~17 dB low).
            let retuneStep = rec.largestLevelStep(from: before, to: after)
            #expect(retuneStep <= max(1.0, 2 * settledStep), "LAS jumped \(retuneStep) dB across the retune (settled: \(settledStep) dB)")
            // The new parameters are in effect: no onset at delta 1000, a level alert at −80 dB.
            let lateOnsets = rec.onsets.filter { $0 > reloadAt + 0.5 }
            #expect(lateOnsets.isEmpty, "onsets after delta 1000 took effect: \(lateOnsets.count)")
            #expect(rec.alerts.contains { $0.line.contains("\"alert\":\"level\"") && $0.at > reloadAt },
                    "no level alert after the threshold went to -80 dB")
            #expect(rec.rolling.contains { $0.window == 2 && $0.at > reloadAt }, "no 2 s rolling window after the reload")
            // The rolling sink restarted (a window was added) but took its open 1 s window over: every 1 s
            // window after the first (the daemon started mid-second) is complete, across the reload.
            let ones = rec.rolling.filter { $0.window == 1 }.dropFirst()
            #expect(ones.count >= 4 && ones.allSatisfy(\.complete), "1 s windows (at, complete): \(ones.map { ($0.at, $0.complete) })")
            #expect(daemon.stderr.contains("budgets.dsp_ms") && daemon.stderr.contains("rolling.windows_s"), "\(daemon.stderr.suffix(1500))")

            // Control: a re-plan (rolloff) on the same rig is a discontinuity and resets the meters — the
            // checks above would have seen it.
            try retuned.replacingOccurrences(of: "rolloff: 0.85", with: "rolloff: 0.8")
                .write(to: rig.config, atomically: true, encoding: .utf8)
            Thread.sleep(forTimeInterval: 1.1)  // reloads are at most one a second
            let controlFrom = rec.now
            daemon.signal(SIGHUP)
            rec.read(client, for: 2)
            #expect(daemon.stderr.contains("reload: DSP re-planned"), "\(daemon.stderr.suffix(2000))")
            #expect(rec.frames.contains { $0.at >= controlFrom && $0.discontinuity }, "the re-plan was not flagged")
            let replanStep = rec.largestLevelStep(from: controlFrom, to: rec.now)
            #expect(replanStep > max(3.0, 2 * settledStep), "the re-plan's level reset was not visible: \(replanStep) dB")
            #expect(daemon.isRunning)
            daemon.signal(SIGTERM)
            #expect(daemon.wait(timeout: 5) == .exited(0), "\(daemon.stderr.suffix(2000))")
        }
    }
}
