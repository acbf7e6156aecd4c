#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

extension EndToEnd {
    /// Levels of 3…64-channel input as the energy mean over the channels, through the real binary (paced FIFO →
    /// ALSA `file` plugin with 4 channels, `earshot analyze` of a 4-channel WAV).
    @Suite("multichannel levels", .serialized)
    struct MultichannelLevelsTests {
        typealias Stereo = StereoLevelsTests

        /// Two 2 s segments of a 1 kHz tone captured as 4 channels: pairs in anti-phase (0.1, −0.1, 0.1, −0.1: the
        /// averaged downmix is silence) and one loud channel (0.3 on channel 2, the others silent). Every 1 s
        /// rolling window inside a segment reads LAeq/LCeq/LZeq = the energy mean over the 4 channels
        /// (−23.01 dB: one channel's level; −19.49 dB: 6.02 dB below channel 2 alone) and LCpeak the loudest
        /// channel's peak.
        @Test func fourChannelCaptureReadsTheEnergyMean() throws {
            let segments: [(gains: [Float], laeq: Double, lcpeak: Double)] = [
                ([0.1, -0.1, 0.1, -0.1], 20 * log10(0.1 / 2.0.squareRoot()), 20 * log10(0.1)),
                ([0, 0, 0.3, 0], 20 * log10(0.3 / 2.0.squareRoot()) - 10 * log10(4), 20 * log10(0.3)),
            ]
            let unit = Stereo.sine(1, seconds: 2)
            var interleaved: [Float] = []
            for s in segments { for v in unit { for g in s.gains { interleaved.append(v * g) } } }
            let rig = try PublishingRig("multichannel", samples: interleaved, extraYAML: "rolling:\n  windows_s: [1]\n", channels: 4)
            defer { rig.cleanup() }
            func complete(_ log: StreamLog) -> [[String: Any]] {
                Array(log.messages(type: "rolling").filter { $0["complete"] as? Bool == true }.dropFirst())
            }
            func seen(_ log: StreamLog, _ laeq: Double) -> [String: Any]? {
                complete(log).first { abs((dbl($0["laeq"]) ?? 0) - laeq) < 0.05 }
            }
            let log = try Stereo.listen(rig, streams: #""rolling","frame""#, seconds: 20) { log in
                segments.allSatisfy { seen(log, $0.laeq) != nil }
            }
            for s in segments {
                let w = try #require(seen(log, s.laeq), "no 1 s window reads \(s.laeq) dB: \(complete(log).map { dbl($0["laeq"]) ?? 0 })")
                #expect(abs((dbl(w["lceq"]) ?? 0) - s.laeq) < 0.05 && abs((dbl(w["lzeq"]) ?? 0) - s.laeq) < 0.05, "\(w)")
                #expect(abs((dbl(w["lcpeak"]) ?? 0) - s.lcpeak) < 0.1, "\(w)")
            }
            let laf = log.frameRecords.dropFirst(100).map(\.laf)
            #expect(laf.count > 150 && laf.allSatisfy { $0 > -40 }, "a frame read \(laf.min() ?? 0) dB: anti-phase channels cancelled")
        }

        /// `earshot analyze` on a 4-channel float WAV (channels a + b, −a + b, a + b, −a + b: a 1 kHz tone in
        /// anti-phase pairs, a 3 kHz tone in phase): every feature but the levels equals, bit for bit, that of the
        /// averaged downmix written as a mono file, and the levels those of one channel alone within 0.05 dB once
        /// settled; `--channel 2` reads channel 2 alone, every feature bit for bit.
        @Test func analyzeFourChannelWAVReadsChannelEnergy() throws {
            let dir = try makeTemporaryDirectory("earshot-e2e-multichannel")
            defer { try? FileManager.default.removeItem(at: dir) }
            let a = Stereo.sine(0.1, seconds: 2), b = Stereo.sine(0.05, seconds: 2, hz: 3_000)
            let plus = zip(a, b).map { $0 + $1 }, minus = zip(a, b).map { -$0 + $1 }
            let mid = (0..<plus.count).map { i in (0 + plus[i] + minus[i] + plus[i] + minus[i]) * (1 / Float(4)) }
            func write(_ name: String, channels: Int, _ x: [Float]) throws -> String {
                let u = dir.appendingPathComponent(name)
                try TestAudio.wav(formatTag: 3, channels: channels, rate: Stereo.rate, bits: 32, data: TestAudio.bytesFloat(x)).write(to: u)
                return u.path
            }
            let four = try write("four.wav", channels: 4, (0..<plus.count).flatMap { [plus[$0], minus[$0], plus[$0], minus[$0]] })
            let midPath = try write("mid.wav", channels: 1, mid), onePath = try write("one.wav", channels: 1, plus)
            func frames(_ args: [String]) throws -> [RawJSON] {
                let r = try DaemonProcess.run(["analyze"] + args)
                #expect(r.termination == .exited(0), "\(args): \(r.stderr)")
                return try NDJSONOutput(lines: r.lines).frames
            }
            let s = try frames([four]), m = try frames([midPath]), l = try frames([onePath])
            #expect(s.count > 150 && s.count == m.count && s.count == l.count)
            let levels: Set<String> = ["laf", "las", "lcf", "lzf"]
            var worst = 0.0
            for (i, (fs, (fm, fl))) in zip(s, zip(m, l)).enumerated() {
                guard case .object(let os) = fs, case .object(let om) = fm else { Issue.record("not an object"); break }
                #expect(os.filter { !levels.contains($0.key) } == om.filter { !levels.contains($0.key) },
                        "frame \(i): a non-level feature differs from the averaged downmix")
                if i >= 100 {
                    for k in levels { worst = max(worst, abs((fs[k]?.double ?? 0) - (fl[k]?.double ?? 99))) }
                }
                // The averaged downmix holds only the 3 kHz tone: 7 dB below (fails with downmix levels).
                if i == s.count - 1 { #expect((fs["lzf"]?.double ?? 0) - (fm["lzf"]?.double ?? 0) > 6, "\(fs) \(fm)") }
            }
            #expect(worst < 0.05, "4-channel levels differ from one channel's by \(worst) dB")
            #expect(try frames([four, "--channel", "2"]) == l, "--channel 2 is channel 2 alone")
        }
    }
}
