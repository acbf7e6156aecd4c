import EarshotTestKit
import Foundation
import Testing

extension EndToEnd {
    /// `earshot spectrogram`: the pictures checked with Pillow (scripts/check_spectrogram.py: size, the chirp's
    /// and the tone's frequency tracks in log-mel and --linear, axes, title and colour bar), and the errors.
    @Suite("earshot spectrogram") struct SpectrogramPictures {
        @Test func chirpAndTonePicturesFollowTheirFrequencies() throws {
            let python = try #require(findPython(with: "PIL"), "no python3 with Pillow (python3-pil) is installed")
            let dir = try makeTemporaryDirectory("earshot-spectrogram")
            defer { try? FileManager.default.removeItem(at: dir) }
            let script = EarshotBinary.packageRoot.appendingPathComponent("scripts/check_spectrogram.py").path
            let p = try DaemonProcess(executable: python, arguments: [script, try EarshotBinary.require(), dir.path], environment: baseChildEnvironment())
            let t = p.wait(timeout: 120)
            #expect(t == .exited(0), "\(p.stdout)\n\(p.stderr)")
            #expect(p.lines.filter { $0.hasPrefix("ok ") }.count == 4, "\(p.stdout)")
        }

        /// The README's `earshot spectrogram` examples, run as written on a generated 25 s recording; the PNG
        /// header says the size asked for.
        @Test func readmeExamplesRun() throws {
            let readme = try String(contentsOf: EarshotBinary.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
            let examples = readme.split(separator: "\n").map { $0.split(separator: "#")[0].trimmingCharacters(in: .whitespaces) }
                .filter { $0.hasPrefix("earshot spectrogram ") && $0.contains(".wav") }
            #expect(examples.count >= 3)
            let dir = try makeTemporaryDirectory("earshot-spectrogram-readme")
            defer { try? FileManager.default.removeItem(at: dir) }
            let wav = dir.appendingPathComponent("in.wav")
            var samples = [Int16](repeating: 0, count: 25 * 16_000)
            for i in samples.indices {
                let f: Double = 200 + Double(i % 160_000) / 50
                let x: Double = 6000 * sin(Double(i) * 2 * Double.pi * f / 16_000)
                samples[i] = Int16(i % 8000 == 0 ? 20000 : x)
            }
            try writeWAV16(url: wav, samples: samples, sampleRate: 16_000)
            for example in examples {
                var args = example.split(separator: " ").dropFirst().map(String.init)
                args = args.map { $0.hasSuffix(".wav") ? wav.path : $0.hasSuffix(".png") ? dir.appendingPathComponent($0).path : $0 }
                let r = try DaemonProcess.run(args)
                #expect(r.termination == .exited(0), "\(example): \(r.stderr)")
                let png = try Data(contentsOf: URL(fileURLWithPath: try #require(args.first { $0.hasSuffix(".png") })))
                let size = (png[16..<20].reduce(0) { $0 << 8 | Int($1) }, png[20..<24].reduce(0) { $0 << 8 | Int($1) })
                let w = args.firstIndex(of: "--width").map { Int(args[$0 + 1])! } ?? 1200
                let h = args.firstIndex(of: "--height").map { Int(args[$0 + 1])! } ?? 600
                #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]) && size == (w, h), "\(example): \(size)")
            }
        }

        /// `--socket`: the next seconds of a live daemon (a 440 Hz tone with clicks on a paced FIFO).
        @Test func fromASocket() throws {
            let python = try #require(findPython(with: "PIL"), "no python3 with Pillow (python3-pil) is installed")
            let rig = try PublishingRig("spectrogram-socket")
            defer { rig.cleanup() }
            _ = try rig.start()
            let png = rig.dir.appendingPathComponent("live.png").path
            let r = try DaemonProcess.run(["spectrogram", "--socket", rig.socketPath, "--seconds", "2", "-o", png, "--level", "--onsets"], timeout: 30)
            #expect(r.termination == .exited(0), "\(r.stderr)")
            let geometry = try #require(r.lines.first { $0.contains("plot x=") }, "\(r.stdout)")
            #expect(geometry.contains("1200x600 PNG"), "\(geometry)")
            // About 200 frames in 2 s at a 10 ms hop.
            #expect(geometry.contains(" 19") || geometry.contains(" 20"), "\(geometry)")
            let script = EarshotBinary.packageRoot.appendingPathComponent("scripts/check_spectrogram.py").path
            let check = try DaemonProcess(executable: python, arguments: [script, "--tone", "440", png, geometry, "0.7"], environment: baseChildEnvironment())
            #expect(check.wait(timeout: 60) == .exited(0), "\(check.stdout) \(check.stderr)")
            // --linear through the spectrum stream: the 440 Hz bin (9) is the brightest row.
            let linearPNG = rig.dir.appendingPathComponent("live-linear.png").path
            let linear = try DaemonProcess.run(["spectrogram", "--socket", rig.socketPath, "--linear", "--seconds", "2", "-o", linearPNG], timeout: 30)
            #expect(linear.termination == .exited(0), "\(linear.stderr)")
            let linearGeometry = try #require(linear.lines.first { $0.contains("plot x=") }, "\(linear.stdout)")
            let checkLinear = try DaemonProcess(executable: python, arguments: [script, "--tone", "440", linearPNG, linearGeometry, "0.7", "linear"],
                                                environment: baseChildEnvironment())
            #expect(checkLinear.wait(timeout: 60) == .exited(0), "\(checkLinear.stdout) \(checkLinear.stderr)")
            // A socket nobody listens on.
            let missing = try DaemonProcess.run(["spectrogram", "--socket", rig.dir.appendingPathComponent("none.sock").path, "-o", png + "2"])
            #expect(missing.termination == .exited(69) && missing.stderr.contains("cannot connect"), "\(missing.stderr)")
        }

        @Test func errorsExitNonZeroWithAMessage() throws {
            let dir = try makeTemporaryDirectory("earshot-spectrogram-errors")
            defer { try? FileManager.default.removeItem(at: dir) }
            let wav = dir.appendingPathComponent("short.wav")
            try writeWAV16(url: wav, samples: (0..<48_000).map { Int16(8000 * sin(Double($0) * 0.1)) }, sampleRate: 48_000)
            let garbled = dir.appendingPathComponent("garbled.wav")
            try Data("RIFF\u{0}\u{0}\u{0}\u{0}WAVEjunkjunkjunk".utf8).write(to: garbled)
            let png = dir.appendingPathComponent("out.png").path
            let cases: [(String, [String], Int32, String)] = [
                ("missing file", [dir.appendingPathComponent("nope.wav").path, "-o", png], 66, "no such file"),
                ("garbled file", [garbled.path, "-o", png], 65, "garbled.wav"),
                ("empty range", [wav.path, "-o", png, "--from", "5"], 64, "holds no frame"),
                ("from after to", [wav.path, "-o", png, "--from", "0.5", "--to", "0.2"], 64, "--to"),
                ("unwritable output", [wav.path, "-o", dir.appendingPathComponent("no/such/dir/out.png").path], 74, "No such file"),
                ("too small", [wav.path, "-o", png, "--width", "10"], 64, "--width"),
                ("absurd range", [wav.path, "-o", png, "--from", "1e300"], 64, "--from"),
                ("no input", ["-o", png], 64, "--socket"),
                ("bad config", [wav.path, "-o", png, "--set", "analysis.hop=99999"], 78, "analysis.hop"),
            ]
            for (name, args, code, message) in cases {
                let r = try DaemonProcess.run(["spectrogram"] + args)
                #expect(r.termination == .exited(code), "\(name): \(String(describing: r.termination)) \(r.stderr)")
                #expect(r.stderr.contains(message), "\(name): \(r.stderr)")
            }
            #expect(!FileManager.default.fileExists(atPath: png), "a failed run left a PNG behind")
            // And the good case: a 1 s file, a part of it.
            let ok = try DaemonProcess.run(["spectrogram", wav.path, "-o", png, "--from", "0.2", "--to", "0.8", "--width", "400", "--height", "300"])
            #expect(ok.termination == .exited(0), "\(ok.stderr)")
            #expect(ok.stdout.contains("400x300 PNG"))
        }
    }
}
