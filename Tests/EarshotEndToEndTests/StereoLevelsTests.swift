#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

extension EndToEnd {
    /// Issue 12: levels of 2-channel input as the energy mean over the channels, and the sound exposure level of
    /// level alerts, through the real binary (paced FIFO → ALSA `file` plugin, `earshot analyze`).
    @Suite("stereo levels and alert exposure", .serialized)
    struct StereoLevelsTests {
        static let rate = 48_000

        /// Starts the rig's daemon, subscribes to `streams` (JSON strings) and collects messages until `done` holds
        /// (expected within `seconds`).
        static func listen(_ rig: PublishingRig, streams: String, seconds: Double,
                           until done: (StreamLog) -> Bool) throws -> StreamLog {
            let daemon = try rig.start()
            let fd = connectUnix(rig.socketPath)
            try #require(fd >= 0)
            defer { close(fd) }
            let log = StreamLog(name: "stereo", keepDetail: true, fullJSON: true)
            let readers = PollingReaders(fds: [fd], logs: [log], threads: 1)
            defer { readers.stop() }
            #expect(sendAll(fd, Array("{\"op\":\"subscribe\",\"streams\":[\(streams)],\"id\":1}\n".utf8)))
            #expect(waitFor(seconds) { done(log) }, "\(log.summary) \(daemon.stderr)")
            return log
        }

        /// A 1 kHz sine of amplitude `a`, `seconds` long (a whole number of cycles).
        static func sine(_ a: Double, seconds: Double, hz: Double = 1_000) -> [Float] {
            (0..<Int(seconds * Double(rate))).map { Float(a * sin(2 * Double.pi * hz * Double($0) / Double(rate))) }
        }

        /// Three 2 s segments of a 1 kHz tone, captured as 2 channels: anti-phase (L = −R, amplitude 0.1), in
        /// phase (0.05 on both) and one silent channel (0.3 on L, R = 0). Every 1 s rolling window inside a
        /// segment reads LAeq/LCeq/LZeq = the energy mean over the channels and LCpeak = the louder channel's peak:
        /// −23.01 dB (one channel's level: the averaged downmix would read silence), −29.03 dB (as one channel),
        /// −16.48 dB (3.01 dB below L alone).
        @Test func stereoLevelsAreTheEnergyMeanOverChannels() throws {
            let segments: [(l: Double, r: Double, laeq: Double, lcpeak: Double)] = [
                (0.1, -0.1, 20 * log10(0.1 / 2.0.squareRoot()), 20 * log10(0.1)),
                (0.05, 0.05, 20 * log10(0.05 / 2.0.squareRoot()), 20 * log10(0.05)),
                (0.3, 0, 20 * log10(0.3 / 2.0.squareRoot()) - 10 * log10(2), 20 * log10(0.3)),
            ]
            let unit = Self.sine(1, seconds: 2)
            var interleaved: [Float] = []
            interleaved.reserveCapacity(2 * 3 * unit.count)
            for s in segments { for v in unit { interleaved.append(v * Float(s.l)); interleaved.append(v * Float(s.r)) } }
            try Self.expectRollingLevels(of: interleaved, channels: 2, segments.map { ($0.laeq, $0.lcpeak) })
        }

        /// Captures `interleaved` (`channels` channels, one 2 s segment after another) through the daemon: every
        /// segment has a complete 1 s rolling window reading LAeq = LCeq = LZeq = its `laeq` within 0.05 dB and
        /// LCpeak its `lcpeak` within 0.1 dB, a frame reading laf = its `laeq`, and no frame reads below −40 dB.
        static func expectRollingLevels(of interleaved: [Float], channels: Int,
                                        _ segments: [(laeq: Double, lcpeak: Double)]) throws {
            let rig = try PublishingRig("levels\(channels)", samples: interleaved, extraYAML: "rolling:\n  windows_s: [1]\n",
                                        channels: channels)
            defer { rig.cleanup() }
            // The first complete window may hold the meter's first 0.6 s (settling, filter start-up): not that one.
            func complete(_ log: StreamLog) -> [[String: Any]] {
                Array(log.messages(type: "rolling").filter { $0["complete"] as? Bool == true }.dropFirst())
            }
            func seen(_ log: StreamLog, _ laeq: Double) -> [String: Any]? {
                complete(log).first { abs((dbl($0["laeq"]) ?? 0) - laeq) < 0.05 }
            }
            let log = try Self.listen(rig, streams: #""rolling","frame""#, seconds: 20) { log in
                segments.allSatisfy { seen(log, $0.laeq) != nil }
            }
            for s in segments {
                let w = try #require(seen(log, s.laeq), "no 1 s window reads \(s.laeq) dB: \(complete(log).map { dbl($0["laeq"]) ?? 0 })")
                #expect(abs((dbl(w["lceq"]) ?? 0) - s.laeq) < 0.05 && abs((dbl(w["lzeq"]) ?? 0) - s.laeq) < 0.05, "\(w)")
                #expect(abs((dbl(w["lcpeak"]) ?? 0) - s.lcpeak) < 0.1, "\(w)")
            }
            // Per-frame Fast levels settle on the same values (the anti-phase segment does not read silence).
            let laf = log.frameRecords.dropFirst(100).map(\.laf)
            for s in segments {
                #expect(laf.contains { abs($0 - s.laeq) < 0.05 }, "no frame reads laf \(s.laeq): min \(laf.min() ?? 0)")
            }
            #expect(laf.count > 50 * segments.count + 50 && laf.allSatisfy { $0 > -40 },
                    "a frame read \(laf.min() ?? 0) dB: anti-phase channels cancelled")
        }

        /// `earshot analyze` on a 2-channel float WAV (L = a + b, R = −a + b: a 1 kHz tone in anti-phase, a 3 kHz
        /// tone in phase): every feature but the levels equals, bit for bit, that of the averaged downmix written
        /// as a mono file, and the levels equal those of one channel alone (both have the same energy), within
        /// 0.05 dB once settled.
        @Test func analyzeStereoWAVKeepsSpectralFeaturesAndReadsChannelEnergy() throws {
            let dir = try makeTemporaryDirectory("earshot-e2e-stereo")
            defer { try? FileManager.default.removeItem(at: dir) }
            let a = Self.sine(0.1, seconds: 2), b = Self.sine(0.05, seconds: 2, hz: 3_000)
            let left = zip(a, b).map { $0 + $1 }, right = zip(a, b).map { -$0 + $1 }
            let mid = zip(left, right).map { (0 + $0 + $1) * 0.5 }
            func write(_ name: String, channels: Int, _ x: [Float]) throws -> String {
                try Self.writeWAV(dir, name, channels: channels, x)
            }
            let stereo = try write("stereo.wav", channels: 2, zip(left, right).flatMap { [$0, $1] })
            let midPath = try write("mid.wav", channels: 1, mid), leftPath = try write("left.wav", channels: 1, left)
            try Self.expectLevelsOfOneChannel(try Self.analyze([stereo]), downmix: try Self.analyze([midPath]),
                                              one: try Self.analyze([leftPath]))
        }

        /// Writes `x` (interleaved) as a float WAV file `name` in `dir`; returns its path.
        static func writeWAV(_ dir: URL, _ name: String, channels: Int, _ x: [Float]) throws -> String {
            let u = dir.appendingPathComponent(name)
            try TestAudio.wav(formatTag: 3, channels: channels, rate: rate, bits: 32, data: TestAudio.bytesFloat(x)).write(to: u)
            return u.path
        }

        /// The frames `earshot analyze ARGS` writes (exit status 0 expected).
        static func analyze(_ args: [String]) throws -> [RawJSON] {
            let r = try DaemonProcess.run(["analyze"] + args)
            #expect(r.termination == .exited(0), "\(args): \(r.stderr)")
            return try NDJSONOutput(lines: r.lines).frames
        }

        /// `s`, the frames of a multi-channel file whose averaged downmix holds only the 3 kHz tone of its
        /// channels: every feature but the levels is that of the downmix `m` bit for bit, the levels those of one
        /// channel `l` within 0.05 dB once settled (and 6 dB above the downmix's at the end).
        static func expectLevelsOfOneChannel(_ s: [RawJSON], downmix m: [RawJSON], one l: [RawJSON]) throws {
            #expect(s.count > 150 && s.count == m.count && s.count == l.count)
            let levels: Set<String> = ["laf", "las", "lcf", "lzf"]
            var worst = 0.0
            for (i, (fs, (fm, fl))) in zip(s, zip(m, l)).enumerated() {
                guard case .object(let os) = fs, case .object(let om) = fm else { Issue.record("not an object"); break }
                #expect(os.filter { !levels.contains($0.key) } == om.filter { !levels.contains($0.key) },
                        "frame \(i): a non-level feature differs from the averaged downmix")
                #expect(os.keys.contains("laf"))
                if i >= 100 {  // Fast (and Slow: same energy throughout) settled
                    for k in levels { worst = max(worst, abs((fs[k]?.double ?? 0) - (fl[k]?.double ?? 99))) }
                }
                // The averaged downmix holds only the 3 kHz tone: 7 dB below (the check fails without the side signal).
                if i == s.count - 1 { #expect((fs["lzf"]?.double ?? 0) - (fm["lzf"]?.double ?? 0) > 6, "\(fs) \(fm)") }
            }
            #expect(worst < 0.05, "multi-channel levels differ from one channel's by \(worst) dB")
        }

        /// A 1 kHz burst of level L = −23.01 dBFS lasting T = 0.5 s, then 3.5 s of silence: the level alert's end
        /// carries LAE = L + 10·log10(T / 1 s) = −26.02 dB within 0.1 dB, on the socket and in the log line.
        @Test func levelAlertEndCarriesTheSoundExposureLevel() throws {
            let a = 0.1, t = 0.5
            let burst = Self.sine(a, seconds: t) + [Float](repeating: 0, count: Int(3.5 * Double(Self.rate)))
            let rig = try PublishingRig("lae", samples: burst, extraYAML: """
                alerts:
                  level:
                    enabled: true
                    weighting: laf
                    threshold_db: -45
                    min_duration_ms: 100
                    hysteresis_db: 3
                    rearm_ms: 500
                """)
            defer { rig.cleanup() }
            func ends(_ log: StreamLog) -> [[String: Any]] {
                log.messages(type: "alert").filter { $0["alert"] as? String == "level" && $0["state"] as? String == "end" }
            }
            let log = try Self.listen(rig, streams: #""alert""#, seconds: 15) { ends($0).count >= 2 }
            let expected = 20 * log10(a / 2.0.squareRoot()) + 10 * log10(t)
            for e in ends(log) {
                #expect(e["sel"] as? String == "LAE", "\(e)")
                #expect(abs((dbl(e["sel_db"]) ?? 0) - expected) < 0.1, "LAE \(dbl(e["sel_db"]) ?? 0) vs \(expected): \(e)")
            }
            #expect(rig.daemon?.stderr.contains("sel=LAE") == true, "\(rig.daemon?.stderr ?? "")")
        }
    }
}
