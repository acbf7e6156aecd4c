#if canImport(Glibc)
import Glibc
#endif
import EarshotTestKit
import Foundation
import Testing

/// Issue 11 item 2 against the built binary: event clips of a burst played through real ALSA capture (the
/// `file` plugin reading a paced FIFO, FLOAT_LE, so the captured samples are the played ones bit for bit).
extension EndToEnd.Service {
    /// One loop: quiet noise (−60 dBFS) with a 0.4 s loud noise burst (−10 dBFS) at `burstAt` seconds.
    struct ClipScript {
        static let rate = 48_000
        static func noise(_ i: Int, _ rms: Double) -> Float {
            var x = UInt64(truncatingIfNeeded: i) &* 0x9E37_79B9_7F4A_7C15
            x ^= x >> 31; x = x &* 0xBF58_476D_1CE4_E5B9; x ^= x >> 29
            return Float((Double(x % 2_000_001) / 1_000_000 - 1) * rms * 1.732)
        }
        static func samples(seconds: Double, burstAt: Double) -> [Float] {
            let b0 = Int(burstAt * Double(rate)), b1 = b0 + Int(0.4 * Double(rate))
            return (0..<Int(seconds * Double(rate))).map { i in noise(i, (b0..<b1).contains(i) ? 0.3 : 0.001) }
        }
        static func yaml(directory: String, pre: Double, post: Double) -> String {
            """
            alerts:
              level:
                threshold_db: -30
                min_duration_ms: 0
            health:
              enabled: false
            clips:
              directory: \(directory)
              pre_roll_s: \(pre)
              post_roll_s: \(post)
              kinds: [level]
            """
        }
    }

    /// The clip holds exactly the played samples, from `t − pre_roll` to `t + post_roll` of the level alert.
    @Test func clipOfAPlayedBurstHoldsTheExactSourceSamples() throws {
        let loop = ClipScript.samples(seconds: 8, burstAt: 3)
        let clipsDir = try makeTemporaryDirectory("earshot-clips-out")
        defer { try? FileManager.default.removeItem(at: clipsDir) }
        let pre = 1.5, post = 1.0
        let rig = try PublishingRig("clips", samples: loop, extraYAML: ClipScript.yaml(directory: clipsDir.path, pre: pre, post: post),
                                    socketYAML: "")
        defer { rig.cleanup() }
        let daemon = try rig.start(environment: ["EARSHOT_INSTANCE": "porch"])
        let client = try SocketLineClient(path: rig.socketPath)
        client.send(#"{"op":"subscribe","streams":["alert","stats"]}"#)
        var alertT: Double?
        var clipLine: String?
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, clipLine == nil {
            guard let line = client.readLine(timeout: 0.5) else { continue }
            let f = clipFields(line)
            if f["type"] == "alert", f["alert"] == "level", f["state"] == "start", alertT == nil { alertT = Double(f["t"] ?? "") }
            if f["type"] == "clip" { clipLine = line }
        }
        let line = try #require(clipLine, "no clip message; stderr: \(daemon.stderr)")
        let f = clipFields(line)
        let t = try #require(alertT, "the clip came before its alert: \(line)")
        let path = try #require(f["path"])
        #expect(f["kind"] == "level")
        let name = URL(fileURLWithPath: path).lastPathComponent
        #expect(name.hasSuffix("-porch-level.wav") && name.count == "20261202T133501.250Z-porch-level.wav".count, "\(name)")
        #expect(path.hasPrefix(clipsDir.path))
        #expect(daemon.stderr.contains("clip written path=\(path) kind=level"), "\(daemon.stderr)")
        let hop = 480.0 / 48_000
        let start = Double(f["start"] ?? "") ?? 0, end = Double(f["end"] ?? "") ?? 0
        #expect(abs(start - (t - pre)) <= hop, "clip starts \(start - t) s from the alert")
        #expect(abs(end - (t + post)) <= hop + 1.0 / 48_000, "clip ends \(end - t) s from the alert")

        // The file: float32 mono, exactly a contiguous run of the played loop.
        let clip = try readFloatWAV(path)
        #expect(clip.count == Int(f["samples"] ?? "") ?? -1)
        #expect(abs(Double(clip.count) - (pre + post) * 48_000) <= 480, "\(clip.count) samples")
        let key = Array(clip.prefix(32))
        let offsets = (0..<loop.count).filter { o in (0..<key.count).allSatisfy { loop[(o + $0) % loop.count] == key[$0] } }
        try #require(offsets.count == 1, "the clip's first samples are found \(offsets.count) times in the played loop")
        let o = offsets[0]
        let mismatches = clip.indices.filter { clip[$0] != loop[(o + $0) % loop.count] }.count
        #expect(mismatches == 0, "\(mismatches) of \(clip.count) clip samples differ from the played ones")
        // Aligned by the burst: it starts pre_roll after the clip start, give or take the window the alert
        // frame covers (n_fft) and the A-weighted Fast meter's rise.
        let burst = 3 * 48_000
        let burstInClip = (burst - o + loop.count) % loop.count
        #expect(abs(Double(burstInClip) - pre * 48_000) <= 1024 + 3 * 480, "burst at \(Double(burstInClip) / 48_000) s in the clip, pre-roll \(pre) s")
        // No stale .part files; mode 0640.
        let names = try FileManager.default.contentsOfDirectory(atPath: clipsDir.path)
        #expect(!names.contains { $0.hasSuffix(".part") }, "\(names)")
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o640)
        let stats = client.readUntil(timeout: 12) { $0.contains("\"type\":\"stats\"") } ?? ""  // stats come every 5 s
        #expect(stats.contains("\"clips_written\":1") || stats.contains("\"clips_written\":2"), "\(stats)")
        daemon.signal(SIGTERM)
        #expect(daemon.wait(timeout: 5) == .exited(0))
        print("clip: \(clip.count) samples, exact; starts \(String(format: "%.4f", start - t)) s from the alert, burst at \(Double(burstInClip) / 48_000) s")
    }

    /// Setting `clips.directory` on reload rebuilds the pipeline (the tap belongs to it) and clips follow.
    @Test func turningClipsOnByReloadRebuildsAndWritesClips() throws {
        let loop = ClipScript.samples(seconds: 3, burstAt: 1.5)
        let clipsDir = try makeTemporaryDirectory("earshot-clips-reload")
        defer { try? FileManager.default.removeItem(at: clipsDir) }
        let rig = try PublishingRig("clips-reload", samples: loop, extraYAML: "alerts:\n  level:\n    threshold_db: -30\n    min_duration_ms: 0\n")
        defer { rig.cleanup() }
        let daemon = try rig.start()
        var yaml = try String(contentsOf: rig.config, encoding: .utf8)
        yaml += "\nclips:\n  directory: \(clipsDir.path)\n  pre_roll_s: 0.5\n  post_roll_s: 0.5\n  kinds: [level]\n"
        try yaml.write(to: rig.config, atomically: true, encoding: .utf8)
        daemon.signal(SIGHUP)
        #expect(daemon.wait(until: 10) { $0.stderr.contains("reload applied: pipeline rebuilt") }, "\(daemon.stderr)")
        #expect(daemon.wait(until: 10) { $0.stderr.contains("clip written path=\(clipsDir.path)/") }, "\(daemon.stderr)")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: clipsDir.path)) ?? []
        #expect(names.contains { $0.hasSuffix("-earshot-level.wav") }, "\(names)")
        daemon.signal(SIGTERM)
        #expect(daemon.wait(timeout: 5) == .exited(0))
    }

    /// A full disk (a 64 KiB tmpfs when root can mount one, else a read-only directory): logged once,
    /// counted, and capture loses nothing.
    @Test func clipsOnAFullDiskAreLoggedOnceAndCaptureLosesNothing() throws {
        let loop = ClipScript.samples(seconds: 2.5, burstAt: 1)
        let base = try makeTemporaryDirectory("earshot-clips-full")
        defer { try? FileManager.default.removeItem(at: base) }
        let dir = base.appendingPathComponent("clips")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: false)
        var mounted = false
        if getuid() == 0 {
            mounted = (try? Subprocess.run("/bin/mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir.path]).status) == 0
        }
        // Not root: a read-only directory. Root without mount (a container): root ignores modes, so the clips
        // directory is under a regular file (ENOTDIR), which no uid can write.
        var clipsPath = dir.path
        if !mounted && getuid() != 0 { chmod(dir.path, 0o500) }
        if !mounted && getuid() == 0 {
            FileManager.default.createFile(atPath: base.appendingPathComponent("file").path, contents: Data())
            clipsPath = base.appendingPathComponent("file/clips").path
        }
        defer { if mounted { _ = try? Subprocess.run("/bin/umount", [dir.path]) } else { chmod(dir.path, 0o700) } }
        // A file to fill the tmpfs first, so the first clip header cannot fit either.
        if mounted { FileManager.default.createFile(atPath: dir.appendingPathComponent("filler").path, contents: Data(count: 60 * 1024)) }
        let rig = try PublishingRig("clips-full", samples: loop, extraYAML: ClipScript.yaml(directory: clipsPath, pre: 0.5, post: 0.5))
        defer { rig.cleanup() }
        let daemon = try rig.start()
        let client = try SocketLineClient(path: rig.socketPath)
        client.send(#"{"op":"subscribe","streams":["stats"]}"#)
        var last = ""
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            guard let line = client.readLine(timeout: 0.5), line.contains("\"type\":\"stats\"") else { continue }
            last = line
            if let n = Int(clipFields(line)["clips_failed"] ?? ""), n >= 3 { break }
        }
        let f = clipFields(last)
        #expect((Int(f["clips_failed"] ?? "") ?? 0) >= 3, "\(last)\n\(daemon.stderr)")
        #expect(f["clips_written"] == "0")
        #expect(f["ring_overrun_samples"] == "0" && f["discontinuities"] == "0" && f["capture_gap_samples"] == "0", "\(last)")
        #expect(f["clip_samples_lost"] == "0", "\(last)")
        let frames = Int(f["frames"] ?? "") ?? 0
        #expect(frames > 400, "\(last)")
        let logged = daemon.stderr.components(separatedBy: "cannot write clip").count - 1
        #expect(logged == 1, "logged \(logged) times: \(daemon.stderr)")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        #expect(!names.contains { $0.hasSuffix(".part") || $0.hasSuffix(".wav") }, "\(names)")
        daemon.signal(SIGTERM)
        #expect(daemon.wait(timeout: 5) == .exited(0))
        print("full disk (\(mounted ? "64 KiB tmpfs" : getuid() == 0 ? "directory under a file" : "0500 directory")): \(f["clips_failed"] ?? "?") clips failed, logged once, \(frames) frames without a gap")
    }
}

/// A mono float32 WAV as the clips sink writes it (44-byte header), checked field by field.
private func readFloatWAV(_ path: String) throws -> [Float] {
    let d = try Data(contentsOf: URL(fileURLWithPath: path))
    func u32(_ o: Int) -> Int { Int(d[o]) | Int(d[o + 1]) << 8 | Int(d[o + 2]) << 16 | Int(d[o + 3]) << 24 }
    func u16(_ o: Int) -> Int { Int(d[o]) | Int(d[o + 1]) << 8 }
    try #require(d.count >= 44 && String(decoding: d[0..<4], as: UTF8.self) == "RIFF" && String(decoding: d[36..<40], as: UTF8.self) == "data")
    #expect(u16(20) == 3 && u16(22) == 1 && u32(24) == 48_000 && u16(34) == 32, "float32 mono 48 kHz")
    #expect(u32(40) == d.count - 44 && u32(4) == d.count - 8)
    return stride(from: 44, to: d.count - 3, by: 4).map { Float(bitPattern: UInt32(u32($0))) }
}

/// `"key":value` pairs of a flat JSON line (strings unquoted; nested objects flattened by key).
private func clipFields(_ line: String) -> [String: String] {
    var out: [String: String] = [:]
    let body = line.trimmingCharacters(in: CharacterSet(charactersIn: "{}\n"))
    for part in body.split(separator: ",") {
        let kv = part.split(separator: ":", maxSplits: 1)
        guard kv.count == 2 else { continue }
        let k = kv[0].trimmingCharacters(in: CharacterSet(charactersIn: "{\""))
        out[k] = kv[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"}"))
    }
    return out
}
