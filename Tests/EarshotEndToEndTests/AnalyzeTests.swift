import EarshotTestKit
import Foundation
import Testing

/// End-to-end tests: the real `earshot` binary as a subprocess. One parent suite so that nothing here runs
/// concurrently (live captures, PulseAudio servers, timing).
@Suite("earshot binary end to end", .serialized, .timeLimit(.minutes(3)))
struct EndToEnd {}

extension EndToEnd {
    @Suite("earshot analyze") struct Analyze {
        static var fixtures: URL { EarshotBinary.packageRoot.appendingPathComponent("Tests/EarshotDSPTests/Fixtures") }

        /// `--set` overrides that pin the analysis to a librosa fixture's configuration.
        static func analysisSets(_ config: [String: Any]) -> [String] {
            func n(_ k: String) -> String { "\((config[k] as! NSNumber))" }
            return [
                "--set", "analysis.n_fft=\(n("n_fft"))", "--set", "analysis.hop=\(n("hop"))",
                "--set", "analysis.n_mels=\(n("n_mels"))", "--set", "analysis.fmin=\(n("fmin"))",
                "--set", "analysis.fmax=\(n("fmax"))", "--set", "analysis.n_mfcc=\(n("n_mfcc"))",
                "--set", "analysis.onset.function=logmel",  // the fixture holds librosa's onset_strength
            ]
        }

        /// front_center.wav (alsa-utils' recording) through `earshot analyze` vs librosa 0.11, with the DSP
        /// tests' tolerances: the 3-decimal NDJSON rounding must fit inside them.
        @Test func recordingMatchesLibrosaFixture() throws {
            let wav = Self.fixtures.appendingPathComponent("front_center.wav")
            let fx = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixtures.appendingPathComponent("front_center.json"))) as! [String: Any]
            let cfg = fx["config"] as! [String: Any]
            func arr(_ k: String) -> [Double] { (fx[k] as! [NSNumber]).map(\.doubleValue) }
            let nM = (cfg["n_mels"] as! NSNumber).intValue, nC = (cfg["n_mfcc"] as! NSNumber).intValue
            let nFrames = (fx["frames"] as! NSNumber).intValue

            let r = try DaemonProcess.run(["analyze", wav.path] + Self.analysisSets(cfg))
            #expect(r.termination == .exited(0), "stderr: \(r.stderr)")
            let out = try NDJSONOutput(lines: r.lines)
            #expect(out.frames.count == nFrames)
            #expect(out.other.isEmpty)

            let refLog = arr("logmel"), refMfcc = arr("mfcc")
            var maxErr: [String: Double] = [:]
            func note(_ k: String, _ e: Double) { maxErr[k] = max(maxErr[k] ?? 0, e) }
            func rel(_ a: Double, _ b: Double, floor: Double) -> Double { abs(a - b) / max(abs(b), floor) }
            for (t, f) in out.frames.prefix(nFrames).enumerated() {
                #expect(f["seq"]?.text == "\(t)")
                let logmel = try #require(f["logmel"]?.doubles)
                let mfcc = try #require(f["mfcc"]?.doubles)
                #expect(logmel.count == nM && mfcc.count == nC)
                var allAbove = true, prevAbove = true
                let frameMax = (0..<nM).map { refLog[t * nM + $0] }.max()!
                for m in 0..<nM {
                    let ref = refLog[t * nM + m]
                    if ref > max(-80, frameMax - 90) { note("logmel_db", abs(logmel[m] - ref)) } else { allAbove = false }
                    if t > 0 && refLog[(t - 1) * nM + m] <= -80 { prevAbove = false }
                }
                if allAbove { for k in 0..<nC { note("mfcc", abs(mfcc[k] - refMfcc[t * nC + k])) } }
                func v(_ k: String) throws -> Double { try #require(f[k]?.double, "frame \(t) has no \(k)") }
                note("rms_db", abs(try v("rms_dbfs") - arr("rms_db")[t]))
                note("peak_db", abs(try v("peak_dbfs") - arr("peak_db")[t]))
                note("zcr", abs(try v("zcr") - arr("zcr")[t]))
                note("centroid_rel", rel(try v("centroid_hz"), arr("centroid")[t], floor: 1))
                note("bandwidth_rel", rel(try v("bandwidth_hz"), arr("bandwidth")[t], floor: 2500))
                note("rolloff_rel", rel(try v("rolloff_hz"), arr("rolloff")[t], floor: 1))
                note("flatness_rel", rel(try v("flatness"), arr("flatness")[t], floor: 1e-3))
                note("flux_rel", rel(try v("flux"), arr("flux")[t], floor: 1e-3))
                if allAbove && prevAbove { note("onset_strength", abs(try v("onset_strength") - arr("onset_strength")[t])) }
            }
            print("[e2e analyze front_center] max errors:", maxErr.sorted { $0.key < $1.key }.map { "\($0.key)=\(String(format: "%.3g", $0.value))" }.joined(separator: " "))
            #expect(maxErr["logmel_db"] != nil && maxErr["mfcc"] != nil && maxErr["onset_strength"] != nil)
            #expect((maxErr["logmel_db"] ?? 1) <= 0.01)
            #expect((maxErr["mfcc"] ?? 1) <= 0.01)
            #expect((maxErr["rms_db"] ?? 1) <= 0.01)
            #expect((maxErr["peak_db"] ?? 1) <= 0.01)
            #expect((maxErr["zcr"] ?? 1) <= 1e-6 + 5e-7)  // DSP tolerance + the 6-decimal rounding
            for k in ["centroid_rel", "bandwidth_rel", "rolloff_rel", "flatness_rel", "flux_rel"] {
                #expect((maxErr[k] ?? 1) <= 1e-3, "\(k)")
            }
            #expect((maxErr["onset_strength"] ?? 1) <= 0.01)

            // CSV: same numbers, same text.
            let csv = try DaemonProcess.run(["analyze", wav.path, "--format", "csv"] + Self.analysisSets(cfg))
            #expect(csv.termination == .exited(0), "stderr: \(csv.stderr)")
            let rows = csv.lines.map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
            let header = try #require(rows.first)
            #expect(header.prefix(3) == ["seq", "t", "rms_dbfs"])
            #expect(header.suffix(3) == ["discontinuity", "gap_samples", "onset_seq"])
            #expect(rows.count == nFrames + 1)
            var mismatches = 0
            for (row, f) in zip(rows.dropFirst(), out.frames) {
                #expect(row.count == header.count)
                for (name, cell) in zip(header, row) {
                    let expected: String?
                    if name.hasPrefix("logmel_"), let i = Int(name.dropFirst(7)) { expected = f["logmel"]?.array?[i].text }
                    else if name.hasPrefix("mfcc_"), let i = Int(name.dropFirst(5)) { expected = f["mfcc"]?.array?[i].text }
                    else if name == "discontinuity" { expected = "0" }
                    else if name == "gap_samples" { expected = "0" }
                    else if name == "onset_seq" { continue }
                    else { expected = f[name]?.text }
                    if cell != expected { mismatches += 1; if mismatches < 5 { Issue.record("csv \(name)=\(cell) vs ndjson \(expected ?? "nil")") } }
                }
            }
            #expect(mismatches == 0)
            let csvOnsets = rows.dropFirst().compactMap { $0.last.flatMap { $0.isEmpty ? nil : $0 } }
            #expect(csvOnsets == out.onsets.compactMap { $0["seq"]?.text })

            // --features restricts the keys (NDJSON and CSV).
            let some = try DaemonProcess.run(["analyze", wav.path, "--features", "rms_dbfs,logmel"])
            #expect(some.termination == .exited(0))
            let someOut = try NDJSONOutput(lines: some.lines)
            #expect(someOut.frames.count == nFrames)
            for f in someOut.frames { #expect(f.keys == ["type", "seq", "t", "rms_dbfs", "logmel"], "\(f.keys)") }
            #expect(zip(someOut.frames, out.frames).allSatisfy { $0["rms_dbfs"] == $1["rms_dbfs"] && $0["logmel"] == $1["logmel"] })
            let someCSV = try DaemonProcess.run(["analyze", wav.path, "--features", "rms_dbfs", "--format", "csv"])
            #expect(someCSV.lines.first == "seq,t,rms_dbfs,discontinuity,gap_samples,onset_seq")
            let bad = try DaemonProcess.run(["analyze", wav.path, "--features", "loudness"])
            #expect(bad.termination == .exited(64))
            #expect(bad.stderr.contains("loudness"))
        }

        @Test func refusesUnusableInput() throws {
            let dir = try makeTemporaryDirectory("earshot-e2e-refuse")
            defer { try? FileManager.default.removeItem(at: dir) }
            let wav = Self.fixtures.appendingPathComponent("front_center.wav")

            let text = dir.appendingPathComponent("notes.wav")
            try "this is not audio\n".write(to: text, atomically: true, encoding: .utf8)
            let truncated = dir.appendingPathComponent("truncated.wav")
            let whole = try Data(contentsOf: wav)
            try whole.prefix(whole.count / 2).write(to: truncated)
            let mulaw = dir.appendingPathComponent("mulaw.wav")
            // WAVE_FORMAT_MULAW (0x0007), 8 bits, mono, 8 kHz, with the cbSize field.
            try TestAudio.wav(formatTag: 0x0007, channels: 1, rate: 8000, bits: 8, data: [UInt8](repeating: 0xFF, count: 8000), extraFmt: [0, 0]).write(to: mulaw)
            let adpcm = dir.appendingPathComponent("adpcm.wav")
            try TestAudio.wav(formatTag: 0x0011, channels: 1, rate: 8000, bits: 4, blockAlign: 256, data: [UInt8](repeating: 0, count: 1024), extraFmt: [2, 0, 0xF9, 0x01]).write(to: adpcm)

            let cases: [(String, [String], Int32, [String])] = [
                ("non-WAV", [text.path], 65, ["not a WAV file"]),
                ("truncated", [truncated.path], 65, ["truncated"]),
                ("µ-law", [mulaw.path], 65, ["µ-law"]),
                ("IMA ADPCM", [adpcm.path], 65, ["ADPCM"]),
                ("missing", [dir.appendingPathComponent("nope.wav").path], 66, ["nope.wav", "no such file"]),
                ("rate mismatch", [wav.path, "--sample-rate", "44100"], 65, ["48000", "44100"]),
            ]
            for (name, args, code, needles) in cases {
                let r = try DaemonProcess.run(["analyze"] + args, timeout: 20)
                #expect(r.termination == .exited(code), "\(name): \(r.termination.map { "\($0)" } ?? "timeout"), stderr: \(r.stderr)")
                for n in needles { #expect(r.stderr.contains(n), "\(name): stderr should name '\(n)': \(r.stderr)") }
                #expect(r.stdout.isEmpty, "\(name): no frames on refusal")
            }
        }

        /// 24-bit, float and stereo (`--channel 1`) inputs: the same samples give the same frames as float.
        @Test func acceptsPCM24FloatAndStereoChannel() throws {
            let dir = try makeTemporaryDirectory("earshot-e2e-formats")
            defer { try? FileManager.default.removeItem(at: dir) }
            let rate = 48_000
            let x = TestAudio.tonesAndClicks(seconds: 1.0, rate: rate, seed: 11)
            func write(_ name: String, _ d: Data) throws -> String {
                let u = dir.appendingPathComponent(name); try d.write(to: u); return u.path
            }
            // Float reference of the unquantized signal.
            let floatPath = try write("float.wav", TestAudio.wav(formatTag: 3, channels: 1, rate: rate, bits: 32, data: TestAudio.bytesFloat(x)))
            // 24-bit packed, and a float file with exactly the same sample values (q / 2^23 is exact in Float).
            let q24 = x.map { Int32(max(-8_388_608, min(8_388_607, ($0 * 8_388_608).rounded()))) }
            let pcm24 = try write("pcm24.wav", TestAudio.wav(formatTag: 1, channels: 1, rate: rate, bits: 24, data: TestAudio.bytes24(q24)))
            let float24 = try write("float24.wav", TestAudio.wav(formatTag: 3, channels: 1, rate: rate, bits: 32, data: TestAudio.bytesFloat(q24.map { Float($0) / 8_388_608 })))
            // Stereo 16-bit: channel 0 is unrelated noise, channel 1 the signal.
            let q16 = TestAudio.quantize16(x)
            var g = TestAudio.LCG(x: 99)
            var inter: [Int16] = []
            for s in q16 { inter.append(Int16(g.next() * 20_000)); inter.append(s) }
            let stereo = try write("stereo.wav", TestAudio.wav(formatTag: 1, channels: 2, rate: rate, bits: 16, data: TestAudio.bytes16(inter)))
            let float16 = try write("float16.wav", TestAudio.wav(formatTag: 3, channels: 1, rate: rate, bits: 32, data: TestAudio.bytesFloat(q16.map { Float($0) / 32768 })))

            func frames(_ args: [String]) throws -> [RawJSON] {
                let r = try DaemonProcess.run(["analyze"] + args)
                #expect(r.termination == .exited(0), "\(args): \(r.stderr)")
                return try NDJSONOutput(lines: r.lines).frames
            }
            let ref = try frames([floatPath])
            let a24 = try frames([pcm24]), f24 = try frames([float24])
            let s1 = try frames([stereo, "--channel", "1"]), f16 = try frames([float16])
            let expectedFrames = 1 + (rate - 1024) / 480
            #expect(ref.count == expectedFrames)
            #expect(a24 == f24, "24-bit PCM must give exactly the frames of the same samples as float")
            #expect(s1 == f16, "stereo --channel 1 must give exactly the frames of that channel as float")
            #expect(a24.count == expectedFrames && s1.count == expectedFrames)
            // Within quantization of the unquantized float signal.
            for (name, q, tol) in [("24-bit", a24, 0.001), ("16-bit", s1, 0.01)] {
                var worstRMS = 0.0, worstMel = 0.0
                for (a, b) in zip(q, ref) {
                    worstRMS = max(worstRMS, abs(a["rms_dbfs"]!.double! - b["rms_dbfs"]!.double!))
                    let la = a["logmel"]!.doubles!, lb = b["logmel"]!.doubles!
                    let top = lb.max()!
                    for (u, v) in zip(la, lb) where v > top - 50 { worstMel = max(worstMel, abs(u - v)) }
                }
                #expect(worstRMS <= tol, "\(name) rms differs by \(worstRMS) dB")
                #expect(worstMel <= 5 * tol, "\(name) logmel differs by \(worstMel) dB")
            }
            let bad = try DaemonProcess.run(["analyze", stereo, "--channel", "2"])
            #expect(bad.termination == .exited(64))
            #expect(bad.stderr.contains("2 channel"))
        }
    }
}
