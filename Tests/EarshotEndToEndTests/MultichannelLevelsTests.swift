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
            try Stereo.expectRollingLevels(of: interleaved, channels: 4, segments.map { ($0.laeq, $0.lcpeak) })
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
            let four = try Stereo.writeWAV(dir, "four.wav", channels: 4,
                                           (0..<plus.count).flatMap { [plus[$0], minus[$0], plus[$0], minus[$0]] })
            let one = try Stereo.analyze([try Stereo.writeWAV(dir, "one.wav", channels: 1, plus)])
            try Stereo.expectLevelsOfOneChannel(try Stereo.analyze([four]),
                                                downmix: try Stereo.analyze([try Stereo.writeWAV(dir, "mid.wav", channels: 1, mid)]),
                                                one: one)
            #expect(try Stereo.analyze([four, "--channel", "2"]) == one, "--channel 2 is channel 2 alone")
        }

        /// A reload from 4 channels to 2 and back rebuilds the pipeline each time (the side ring and the level
        /// meter change size): the daemon keeps running, the connected client keeps receiving frames, and after
        /// coming back to 4 the anti-phase pairs read one channel's level again.
        @Test func reloadBetweenTwoAndFourChannelsRebuilds() throws {
            let unit = Stereo.sine(0.1, seconds: 2)
            var interleaved: [Float] = []
            for v in unit { interleaved += [v, -v, v, -v] }
            let rig = try PublishingRig("multichannel-reload", samples: interleaved, channels: 4)
            defer { rig.cleanup() }
            let daemon = try rig.start()
            let client = try SocketLineClient(path: rig.socketPath)
            client.send(#"{"op":"subscribe","streams":["frame"],"fields":["laf"]}"#)
            let want = 20 * log10(0.1 / 2.0.squareRoot())
            func laf(_ line: String) -> Double? {
                guard line.contains("\"type\":\"frame\""), let r = line.range(of: "\"laf\":") else { return nil }
                return Double(line[r.upperBound...].prefix { $0 == "-" || $0 == "." || $0.isNumber })
            }
            func readsOneChannel() -> Bool { client.readUntil(timeout: 10) { laf($0).map { abs($0 - want) < 0.1 } ?? false } != nil }
            #expect(readsOneChannel(), "4 channels before the reload: \(daemon.stderr)")
            let yaml = try String(contentsOf: rig.config, encoding: .utf8)
            for (channels, rebuilds) in [(2, 1), (4, 2)] {
                try yaml.replacingOccurrences(of: "channels: 4", with: "channels: \(channels)")
                    .write(to: rig.config, atomically: true, encoding: .utf8)
                daemon.signal(SIGHUP)
                #expect(daemon.wait(until: 10) { $0.stderr.components(separatedBy: "pipeline rebuilt").count - 1 == rebuilds },
                        "\(channels) channels: \(daemon.stderr)")
                #expect(client.readUntil(timeout: 10) { laf($0) != nil } != nil, "no frame after the rebuild to \(channels) channels")
            }
            #expect(readsOneChannel(), "4 channels after the reloads: \(daemon.stderr)")
            #expect(daemon.isRunning)
        }
    }
}
