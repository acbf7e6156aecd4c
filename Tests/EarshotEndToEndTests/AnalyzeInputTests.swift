#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// Issue 9 item 9 through the binary: a header is no longer trusted before it is read, and pipes/FIFOs are
/// read in order and never hang.
extension EndToEnd.Analyze {
    /// A 48-byte file whose `fmt ` chunk declares 4 GiB − 1 bytes. The old reader allocated (and zeroed) the
    /// declared size; under a 1 GB address-space limit that fails, now it is refused as truncated at once.
    @Test func hugeDeclaredChunkIsRefusedWithoutAllocating() throws {
        let dir = try makeTemporaryDirectory("earshot-analyze-huge")
        defer { try? FileManager.default.removeItem(at: dir) }
        var d = Data("RIFF".utf8)
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        u32(40)
        d.append(contentsOf: Array("WAVEfmt ".utf8))
        u32(0xFFFF_FFFF)
        d.append(Data(count: 48 - d.count))
        #expect(d.count == 48)
        let path = dir.appendingPathComponent("huge.wav").path
        try d.write(to: URL(fileURLWithPath: path))
        let p = try DaemonProcess(
            executable: "/bin/sh",
            arguments: ["-c", "ulimit -v 1000000; exec \"$0\" analyze \"$1\"", try EarshotBinary.require(), path],
            environment: baseChildEnvironment())
        let t0 = Date()
        let end = p.wait(timeout: 20)
        if end == nil { p.killAndReap() }
        #expect(end == .exited(65), "\(String(describing: end)): \(p.stderr)")
        #expect(p.stderr.contains("'fmt ' chunk declares 4294967295 bytes"), "\(p.stderr)")
        #expect(Date().timeIntervalSince(t0) < 5)
    }

    static func sineWAV(seconds: Double, rate: Int = 16_000, dataSize: UInt32? = nil) -> Data {
        let samples = (0..<Int(seconds * Double(rate))).map { Int16(8000 * sin(Double($0) * 0.07)) }
        var d = Data("RIFF".utf8)
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        u32(UInt32(36 + 8 + 6 + samples.count * 2))
        d.append(contentsOf: Array("WAVE".utf8))
        d.append(contentsOf: Array("LIST".utf8)); u32(5); d.append(contentsOf: [1, 2, 3, 4, 5, 0])  // odd size, padded
        d.append(contentsOf: Array("fmt ".utf8)); u32(16)
        u16(1); u16(1); u32(UInt32(rate)); u32(UInt32(rate * 2)); u16(2); u16(16)
        d.append(contentsOf: Array("data".utf8)); u32(dataSize ?? UInt32(samples.count * 2))
        samples.withUnsafeBytes { d.append(contentsOf: $0) }
        return d
    }

    /// A FIFO that nobody opens for writing: exit 65 after `--input-timeout`, naming the input (it used to
    /// hang in `open`).
    @Test func fifoWithoutWriterTimesOut() throws {
        let dir = try makeTemporaryDirectory("earshot-analyze-fifo")
        defer { try? FileManager.default.removeItem(at: dir) }
        let fifo = dir.appendingPathComponent("in.fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let t0 = Date()
        let r = try DaemonProcess.run(["analyze", fifo, "--input-timeout", "1"], timeout: 15)
        let elapsed = Date().timeIntervalSince(t0)
        #expect(r.termination == .exited(65), "\(String(describing: r.termination)): \(r.stderr)")
        #expect(r.stderr.contains(fifo) && r.stderr.contains("no data for 1.0 s"), "\(r.stderr)")
        #expect(elapsed < 5, "took \(elapsed) s")
    }

    /// The same WAV through a FIFO (streaming writer: data size 0xFFFFFFFF, written in small pieces) and
    /// through stdin gives exactly the frames of the regular file.
    @Test func fifoAndStdinAreReadSequentially() throws {
        let dir = try makeTemporaryDirectory("earshot-analyze-stream")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("tone.wav")
        try Self.sineWAV(seconds: 1).write(to: file)
        let reference = try DaemonProcess.run(["analyze", file.path])
        #expect(reference.termination == .exited(0), "\(reference.stderr)")
        #expect(reference.lines.count > 20)

        let fifo = dir.appendingPathComponent("in.fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let streamed = Self.sineWAV(seconds: 1, dataSize: 0xFFFF_FFFF)
        let writer = Thread {
            let fd = open(fifo, O_WRONLY)
            guard fd >= 0 else { return }
            var off = 0
            while off < streamed.count {
                let n = streamed.withUnsafeBytes { write(fd, $0.baseAddress! + off, min(997, $0.count - off)) }
                if n <= 0 { break }
                off += n
                usleep(200)
            }
            close(fd)
        }
        writer.start()
        let viaFIFO = try DaemonProcess.run(["analyze", fifo, "--input-timeout", "5"])
        #expect(viaFIFO.termination == .exited(0), "\(viaFIFO.stderr)")
        #expect(viaFIFO.lines == reference.lines)

        let p = try DaemonProcess(
            executable: "/bin/sh", arguments: ["-c", "exec \"$0\" analyze - < \"$1\"", try EarshotBinary.require(), file.path],
            environment: baseChildEnvironment())
        let end = p.wait(timeout: 30)
        if end == nil { p.killAndReap() }
        #expect(end == .exited(0), "\(p.stderr)")
        #expect(p.lines == reference.lines)
    }

    /// A stream that ends before the data size its header declares is refused as truncated (65) after the
    /// frames it did hold.
    @Test func truncatedStreamIsRefused() throws {
        let dir = try makeTemporaryDirectory("earshot-analyze-trunc")
        defer { try? FileManager.default.removeItem(at: dir) }
        let wav = Self.sineWAV(seconds: 1)
        let cut = dir.appendingPathComponent("cut.wav")
        try wav.prefix(wav.count / 2).write(to: cut)
        let p = try DaemonProcess(
            executable: "/bin/sh", arguments: ["-c", "cat \"$1\" | exec \"$0\" analyze -", try EarshotBinary.require(), cut.path],
            environment: baseChildEnvironment())
        let end = p.wait(timeout: 30)
        if end == nil { p.killAndReap() }
        #expect(end == .exited(65), "\(p.stderr)")
        #expect(p.stderr.contains("stdin: truncated"), "\(p.stderr)")
        // The regular file is refused up front, as before.
        let r = try DaemonProcess.run(["analyze", cut.path])
        #expect(r.termination == .exited(65) && r.stderr.contains("truncated"), "\(r.stderr)")
    }
}
