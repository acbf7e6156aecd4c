#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

extension EndToEnd {
    /// Issue 12: integrated levels and dead-feature configuration errors, through the real binary.
    @Suite("levels end to end", .serialized)
    struct LevelsEndToEndTests {
        /// A steady 1 kHz tone on a paced FIFO: each 1 s rolling window carries LAeq,T = LAFmax = LAFmin =
        /// 20·log10(a/√2), LCpeak = 20·log10(a), `level_samples` ≈ one second of samples, and (bands: third) the
        /// 1 kHz band Leq = the tone's level.
        @Test func rollingWindowsCarryIntegratedLevels() throws {
            let a = 0.1
            let tone = (0..<48_000).map { Float(a * sin(2 * Double.pi * 1_000 * Double($0) / 48_000)) }
            let rig = try PublishingRig("levels", samples: tone, extraYAML: "rolling:\n  windows_s: [1]\nlevels:\n  bands: third\n")
            defer { rig.cleanup() }
            let daemon = try rig.start()
            let fd = connectUnix(rig.socketPath)
            try #require(fd >= 0)
            defer { close(fd) }
            let log = StreamLog(name: "levels", keepDetail: true, fullJSON: true)
            let readers = PollingReaders(fds: [fd], logs: [log], threads: 1)
            defer { readers.stop() }
            #expect(sendAll(fd, Array(#"{"op":"subscribe","streams":["rolling"],"id":1}"#.utf8) + [0x0A]))
            #expect(waitFor(12) { log.messages(type: "rolling").filter { $0["complete"] as? Bool == true }.count >= 3 },
                    "\(log.summary) \(daemon.stderr)")
            readers.stop()
            let expected = 20 * log10(a / 2.0.squareRoot())
            // The first complete window may hold the meter's first 0.6 s (settling): check the later ones.
            for r in log.messages(type: "rolling").filter({ $0["complete"] as? Bool == true }).dropFirst() {
                let laeq = try #require(dbl(r["laeq"]), "\(r)")
                #expect(abs(laeq - expected) < 0.05, "\(r)")
                #expect(dbl(r["leq"]) == laeq)
                #expect(abs((dbl(r["lafmax"]) ?? 0) - expected) < 0.05 && abs((dbl(r["lafmin"]) ?? 0) - expected) < 0.05, "\(r)")
                #expect(abs((dbl(r["lceq"]) ?? 0) - expected) < 0.05 && abs((dbl(r["lzeq"]) ?? 0) - expected) < 0.05, "\(r)")
                #expect(abs((dbl(r["lcpeak"]) ?? 0) - 20 * log10(a)) < 0.05, "\(r)")
                #expect(abs((int(r["level_samples"]) ?? 0) - 48_000) <= 480, "\(r)")
                // levels.bands: third: 30 bands at 48 kHz; the 1 kHz band holds the tone, its neighbours far less.
                let bands = try #require(r["bands"] as? [String: Any], "\(r)")
                #expect(bands["kind"] as? String == "third")
                let centres = (bands["center_hz"] as? [Any] ?? []).compactMap(dbl), leq = (bands["leq"] as? [Any] ?? []).compactMap(dbl)
                #expect(centres.count == 30 && leq.count == 30 && centres.first == 25 && centres.last == 20_000, "\(bands)")
                if let k = centres.firstIndex(of: 1_000), leq.count == 30 {
                    #expect(abs(leq[k] - expected) < 0.1, "\(bands)")
                    #expect(leq[k - 1] < expected - 15 && leq[k + 1] < expected - 15, "\(bands)")
                }
            }
        }

        /// `n_fft: 512` at 48 kHz leaves mel band 0 without an FFT bin: check-config refuses it (exit 78, FILE:LINE: key).
        @Test func emptyMelBandIsRefusedByCheckConfig() throws {
            let dir = try makeTemporaryDirectory("earshot-melband")
            defer { try? FileManager.default.removeItem(at: dir) }
            let bad = dir.appendingPathComponent("bad.yaml").path
            try "analysis:\n  n_fft: 512\n  hop: 240\n".write(toFile: bad, atomically: true, encoding: .utf8)
            let r = try DaemonProcess.run(["check-config", bad])
            #expect(r.termination == .exited(78), "\(r.stderr)")
            // Named at the line the user wrote (n_fft), against the default n_mels.
            #expect(r.stderr.contains("bad.yaml:2: analysis.n_fft: conflicts with analysis.n_mels (default): mel band 0 (")
                    && r.stderr.contains("contains no FFT bin at n_fft 512"), "\(r.stderr)")
            let set = try DaemonProcess.run(["check-config", "--set", "analysis.n_fft=512", "--set", "analysis.hop=240"])
            #expect(set.termination == .exited(78), "\(set.stderr)")
            let ok = try DaemonProcess.run(["check-config", "--set", "analysis.n_fft=512", "--set", "analysis.hop=240",
                                            "--set", "analysis.n_mels=32"])
            #expect(ok.termination == .exited(0), "\(ok.stderr)")
        }
    }
}
