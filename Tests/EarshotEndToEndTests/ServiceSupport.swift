#if canImport(Glibc)
import Glibc
#endif
import EarshotCapture
import Foundation
import Synchronization
import Testing

/// A capture device paced in real time without a sound card or audio server: ALSA's `file` plugin reading
/// a FIFO that a writer thread fills at 48 kHz (float32). `pause()` stops the writer, so the daemon's
/// capture thread blocks in its read: a stuck capture source.
final class PacedFIFODevice: @unchecked Sendable {
    let directory: URL
    let fifo: String
    let asoundrc: URL
    let pcmName = "paced"
    let rate = 48_000
    private let writer: PacedFIFOWriter

    /// - Parameters:
    ///   - pace: real-time multiple the writer keeps (1.01: a device whose clock runs 1 % fast).
    ///   - channels: interleaved channels in `samples` (float32 each).
    init(directory: URL, samples: [Float], pace: Double = 1, channels: Int = 1) throws {
        self.directory = directory
        fifo = directory.appendingPathComponent("capture.fifo").path
        asoundrc = directory.appendingPathComponent("asoundrc")
        guard mkfifo(fifo, 0o600) == 0 else { throw POSIXError(.EIO) }
        try """
            pcm.\(pcmName) { type file slave.pcm "null" file "/dev/null" infile "\(fifo)" format "raw" }
            """.write(to: asoundrc, atomically: true, encoding: .utf8)
        writer = pace == 1 && channels == 1 ? PacedFIFOWriter(samples: samples, sampleRate: rate, path: fifo)
            : PacedFIFOWriter(bytes: samples.withUnsafeBytes { Array($0) }, frameBytes: 4 * channels,
                              bytesPerSecond: Int((Double(rate * 4 * channels) * pace).rounded()) / (4 * channels) * (4 * channels),
                              path: fifo)
        writer.start()
    }

    /// Environment entries that make libasound see the device.
    var environment: [String: String] { ["ALSA_CONFIG_PATH": "/usr/share/alsa/alsa.conf:\(asoundrc.path)"] }

    func pause() { writer.pause() }
    func resume() { writer.resume() }
    func stop() { writer.stop() }

    deinit { stop() }
}

/// A bound `AF_UNIX` datagram socket standing in for systemd's `NOTIFY_SOCKET`; collects messages with
/// their arrival times on a background thread.
final class NotifyListener: @unchecked Sendable {
    let path: String
    let fd: Int32
    private let lock = NSLock()
    private var _messages: [(time: Double, text: String)] = []
    private let start = Date()

    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { p in
            _ = path.utf8CString.withUnsafeBytes { memcpy(p.baseAddress!, $0.baseAddress!, min(p.count - 1, $0.count)) }
        }
        let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard r == 0 else { throw POSIXError(.EADDRINUSE) }
        var tv = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        // The thread holds the listener weakly: it ends once the test drops the listener (deinit shuts the
        // socket down), instead of keeping it and itself alive for the rest of the test process.
        let t = Thread { [weak self, fd] in
            var buf = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard let self else { return }
                if n < 0 { if errno == EAGAIN || errno == EINTR { continue }; return }
                let text = String(decoding: buf[0..<n], as: UTF8.self)
                self.lock.lock(); self._messages.append((Date().timeIntervalSince(self.start), text)); self.lock.unlock()
            }
        }
        t.start()
    }

    deinit { shutdown(fd, Int32(SHUT_RDWR)); close(fd); unlink(path) }

    var messages: [(time: Double, text: String)] { lock.lock(); defer { lock.unlock() }; return _messages }
    var now: Double { Date().timeIntervalSince(start) }
    /// Arrival times of messages containing `needle` (a message may hold several `\n`-separated fields).
    func times(of needle: String) -> [Double] { messages.filter { $0.text.split(separator: "\n").contains { $0 == needle || $0.hasPrefix(needle) } }.map(\.time) }
}

/// A blocking NDJSON client of the daemon's socket with a read timeout.
final class SocketLineClient {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { p in
            _ = path.utf8CString.withUnsafeBytes { memcpy(p.baseAddress!, $0.baseAddress!, min(p.count - 1, $0.count)) }
        }
        let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard r == 0 else { close(fd); throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .ECONNREFUSED) }
        var tv = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// The next line, or nil after `timeout` seconds / at EOF.
    func readLine(timeout: Double) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let i = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[0..<i], as: UTF8.self)
                buffer.removeSubrange(0...i)
                return line
            }
            if Date() >= deadline { return nil }
            var chunk = [UInt8](repeating: 0, count: 65_536)
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n == 0 { return nil }
            if n > 0 { buffer.append(contentsOf: chunk[0..<n]) }
        }
    }

    /// Reads lines until one satisfies `match` (returns it) or `timeout` passes.
    func readUntil(timeout: Double, _ match: (String) -> Bool) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let l = readLine(timeout: deadline.timeIntervalSinceNow), match(l) { return l }
        }
        return nil
    }
}

/// One second of a 440 Hz tone with a click every 250 ms, for paced devices.
func serviceTestSignal() -> [Float] {
    (0..<48_000).map { i in
        Float(0.2 * sin(2 * Double.pi * 440 * Double(i) / 48_000)) + (i % 12_000 < 32 ? 0.7 : 0)
    }
}
