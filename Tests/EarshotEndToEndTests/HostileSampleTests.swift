#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// A steady 1 kHz sine at amplitude 0.1 (A-weighted Fast level −23.01 dBFS once settled) with a 1e20 sample
/// at `at` (alone in its frames: this is what trapped) and, 0.5 s later, NaN, +inf and −inf in a row.
func hostileSampleSignal(seconds: Double, at: Int, rate: Int = 48_000) -> [Float] {
    var x = (0..<Int(seconds * Double(rate))).map { Float(0.1 * sin(2 * Double.pi * 1000 * Double($0) / Double(rate))) }
    x[at] = 1e20
    x[at + rate / 2] = .nan
    x[at + rate / 2 + 1] = .infinity
    x[at + rate / 2 + 2] = -.infinity
    return x
}

/// The level of ``hostileSampleSignal(seconds:at:rate:)``'s tone on `laf`.
let hostileToneLaf = -23.01

extension EndToEnd {
    @Suite("hostile float samples (issue 9, items 1 and 2)") struct HostileSamples {
        /// A FLOAT_LE capture delivering NaN, ±inf and 1e20 (before: the daemon trapped in the spectral flatness,
        /// exit 132, and a NaN pinned laf/las/lcf/lzf at −200 for good): the daemon keeps running, every frame
        /// stays on the socket with finite values, laf is back on the tone 2 s after the blast (the clamped
        /// 1e20 is +60 dBFS and decays at Fast's 34.7 dB/s) and 1.5 s after the NaN and infinities, and the
        /// samples are reported: a
        /// `samples_sanitized` status, the `stats` counters and a log line.
        @Test func captureSurvivesAndLevelsRecover() throws {
            let rate = 48_000
            // 8 s loop, the blast at 4 s: the first `stats` (5 s after start) follows the first blast only.
            let rig = try PublishingRig("hostile", samples: hostileSampleSignal(seconds: 8, at: 4 * rate))
            defer { rig.cleanup() }
            let daemon = try rig.start()
            let fd = connectUnix(rig.socketPath)
            defer { close(fd) }
            try #require(fd >= 0)
            let log = StreamLog(name: "hostile", keepDetail: true)
            let readers = PollingReaders(fds: [fd], logs: [log], threads: 1)
            defer { readers.stop() }
            #expect(sendAll(fd, Array(#"{"op":"subscribe","streams":["frame","status","stats"],"fields":["laf"]}"#.utf8) + [0x0A]))

            // The blast is the first frame above 0 dBFS; wait for 3.5 s of frames after it and a `stats` after it.
            func blast() -> Int? { log.frameRecords.firstIndex { $0.laf > 0 } }
            func lastStats() -> [String: Any]? { log.stats.last { (int($0["clamped_samples"]) ?? 0) > 0 && (int($0["nonfinite_samples"]) ?? 0) > 0 } }
            let seen = waitFor(25) {
                guard let b = blast() else { return false }
                return log.frameRecords.count > b + 350 && lastStats() != nil
            }
            readers.stop()
            try #require(seen, "no blast and recovery on the socket (daemon running: \(daemon.isRunning)); \(log.summary); stderr: \(daemon.stderr.suffix(3000))")
            #expect(daemon.isRunning, "\(daemon.stderr.suffix(3000))")
            let frames = log.frameRecords
            let b = try #require(blast())
            // No frame is lost (sanitizing never flags a frame: FrameProcessorTests checks that exactly; an xrun
            // from a loaded machine could, so it is not asserted here).
            #expect(log.gaps.isEmpty, "\(log.summary)")
            #expect(frames.allSatisfy { $0.laf.isFinite }, "a frame without a finite laf")
            #expect(frames[b].laf < 61, "the clamped blast reads at most +60 dBFS: \(frames[b])")
            let after = frames[(b + 200)..<(b + 350)].map(\.laf)
            #expect(after.allSatisfy { abs($0 - hostileToneLaf) < 0.3 }, "laf 2–3.5 s after the blast: \(after.min()!)…\(after.max()!)")

            let status = try #require(log.messages(type: "status").first { $0["event"] as? String == "samples_sanitized" },
                                      "no samples_sanitized status: \(log.messages(type: "status"))")
            #expect((int(status["nonfinite"]) ?? 0) + (int(status["clamped"]) ?? 0) >= 1, "\(status)")
            let stats = try #require(lastStats())
            let nonFinite = int(stats["nonfinite_samples"]) ?? -1, clamped = int(stats["clamped_samples"]) ?? -1
            #expect(clamped >= 1 && nonFinite == 3 * clamped, "stats: nonfinite \(nonFinite), clamped \(clamped)")
            #expect(daemon.stderr.contains("invalid audio samples replaced"), "\(daemon.stderr.suffix(3000))")
            daemon.signal(SIGTERM)
            #expect(daemon.wait(timeout: 5) == .exited(0), "\(daemon.stderr.suffix(3000))")
        }

        /// `earshot analyze` of a float WAV holding the same samples (before: exit 132, SIGILL in the flatness):
        /// exit 0, every value finite, the counts on stderr, and exactly the frames of the file with the
        /// documented replacements written in (NaN, ±inf → 0; 1e20 → 1000).
        @Test func analyzeSanitizesFloatWAV() throws {
            let dir = try makeTemporaryDirectory("earshot-e2e-hostile")
            defer { try? FileManager.default.removeItem(at: dir) }
            let rate = 48_000, at = rate / 2
            let hostile = hostileSampleSignal(seconds: 3, at: at)
            var replaced = hostile.map { $0.isFinite ? $0 : 0 }
            replaced[at] = 1000
            let files = [("hostile.wav", hostile), ("replaced.wav", replaced)].map { name, x in
                (dir.appendingPathComponent(name), TestAudio.wav(formatTag: 3, channels: 1, rate: rate, bits: 32, data: TestAudio.bytesFloat(x)))
            }
            for (url, data) in files { try data.write(to: url) }

            let r = try DaemonProcess.run(["analyze", files[0].0.path], timeout: 30)
            #expect(r.termination == .exited(0), "\(r.termination.map { "\($0)" } ?? "timeout"): \(r.stderr.suffix(2000))")
            #expect(r.stderr.contains("3 non-finite sample(s) analyzed as 0, 1 beyond ±1000 clamped"), "\(r.stderr.suffix(2000))")
            let out = try NDJSONOutput(lines: r.lines)
            #expect(out.frames.count == 1 + (3 * rate - 1024) / 480)
            #expect(!r.stdout.contains("null"), "a non-finite value was written")
            let late = out.frames.filter { ($0["t"]?.double ?? 0) >= 2.5 }.compactMap { $0["laf"]?.double }
            #expect(!late.isEmpty && late.allSatisfy { abs($0 - hostileToneLaf) < 0.3 }, "laf 2–2.5 s after the blast: \(late.min() ?? .nan)…\(late.max() ?? .nan)")

            let ref = try DaemonProcess.run(["analyze", files[1].0.path], timeout: 30)
            #expect(ref.termination == .exited(0))
            #expect(!ref.stderr.contains("non-finite"), "the replaced file needs no sanitizing: \(ref.stderr)")
            #expect(r.lines == ref.lines, "frames differ from those of the file with the replacements written in")
        }

        /// A 2-channel float WAV whose right channel is NaN/±inf throughout (attack run: every level read −200
        /// dB, the mix was zeroed after the downmix): the non-finite channel counts as 0, so every frame equals
        /// that of the same file with a silent right channel, and the count is on stderr.
        @Test func analyzeKeepsTheFiniteChannelOfAStereoWAV() throws {
            let dir = try makeTemporaryDirectory("earshot-e2e-hostile-stereo")
            defer { try? FileManager.default.removeItem(at: dir) }
            let rate = 48_000
            let left = (0..<rate).map { Float(0.1 * sin(2 * Double.pi * 1000 * Double($0) / Double(rate))) }
            let bad: [Float] = [.nan, .infinity, -.infinity]
            let files = [("bad.wav", left.indices.map { bad[$0 % 3] }), ("silent.wav", left.map { _ in 0 })].map { name, right in
                (dir.appendingPathComponent(name).path,
                 TestAudio.wav(formatTag: 3, channels: 2, rate: rate, bits: 32, data: TestAudio.bytesFloat(zip(left, right).flatMap { [$0, $1] })))
            }
            for (path, data) in files { try data.write(to: URL(fileURLWithPath: path)) }
            let r = try DaemonProcess.run(["analyze", files[0].0], timeout: 30)
            #expect(r.termination == .exited(0), "\(r.stderr.suffix(2000))")
            #expect(r.stderr.contains("\(rate) non-finite sample(s) analyzed as 0, 0 beyond"), "\(r.stderr.suffix(2000))")
            let ref = try DaemonProcess.run(["analyze", files[1].0], timeout: 30)
            #expect(ref.termination == .exited(0) && !ref.stderr.contains("non-finite"), "\(ref.stderr)")
            #expect(!r.lines.isEmpty && r.lines == ref.lines, "frames differ from those of the file with a silent right channel")
            let laf = try NDJSONOutput(lines: r.lines).frames.last?["laf"]?.double ?? -200
            #expect(abs(laf - (hostileToneLaf - 3.01)) < 0.3, "laf \(laf): the left channel's energy mean over two channels")
        }

        /// Channels near `Float.greatestFiniteMagnitude` (attack run: L = +3e38, R = −3e38 summed to ±inf before
        /// any guard and read as silence, with no warning): each channel is clamped to ±1000 before the mix and
        /// counted, so the file reads as the same file with ±1000 written in.
        @Test func hugeChannelsAreClampedBeforeTheMix() throws {
            let dir = try makeTemporaryDirectory("earshot-e2e-huge-stereo")
            defer { try? FileManager.default.removeItem(at: dir) }
            let rate = 48_000, n = rate / 2
            let sign = (0..<n).map { Float(($0 / 24) % 2 == 0 ? 1 : -1) }  // a 1 kHz square wave
            func write(_ name: String, _ l: Float, _ r: Float) throws -> String {
                let path = dir.appendingPathComponent(name).path
                try TestAudio.wav(formatTag: 3, channels: 2, rate: rate, bits: 32, data: TestAudio.bytesFloat(sign.flatMap { [$0 * l, $0 * r] }))
                    .write(to: URL(fileURLWithPath: path))
                return path
            }
            for (l, r) in [(Float(3e38), Float(-3e38)), (3e38, 3e38)] {
                let huge = try DaemonProcess.run(["analyze", try write("huge.wav", l, r)], timeout: 30)
                let ref = try DaemonProcess.run(["analyze", try write("ref.wav", l.sign == .minus ? -1000 : 1000, r.sign == .minus ? -1000 : 1000)], timeout: 30)
                #expect(huge.termination == .exited(0) && ref.termination == .exited(0), "\(huge.stderr)")
                #expect(huge.stderr.contains("0 non-finite sample(s) analyzed as 0, \(2 * n) beyond ±1000 clamped"), "\(huge.stderr)")
                #expect(!huge.lines.isEmpty && huge.lines == ref.lines, "L \(l) R \(r): frames differ from the clamped file's")
            }
        }
    }
}
