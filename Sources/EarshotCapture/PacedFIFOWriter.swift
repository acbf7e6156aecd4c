#if canImport(Glibc)
import Glibc
#endif
import EarshotRealtime
import Foundation
import Synchronization

/// Plays float32 samples into a FIFO at real-time pace, looping, on its own thread; reopens the FIFO when
/// its reader goes away. With ALSA's `file` plugin reading that FIFO (`infile`), this is a capture device
/// paced like a sound card on a box that has none: `earshot demo` and the service tests use it.
/// `pause()` stops writing, so the reader blocks in its read: a stuck capture source.
public final class PacedFIFOWriter: Sendable {
    public let path: String
    /// Bytes written per second of wall time.
    public let bytesPerSecond: Int
    let bytes: [UInt8]
    /// Bytes per write, a whole number of `frameBytes`.
    let chunk: Int
    let paused = Atomic<Bool>(false)
    let stopped = Atomic<Bool>(false)

    /// - Parameters:
    ///   - samples: one loop of mono float32 audio.
    ///   - path: an existing FIFO (`mkfifo`).
    ///   - chunkSeconds: size of each write.
    public convenience init(samples: [Float], sampleRate: Int, path: String, chunkSeconds: Double = 0.01) {
        self.init(bytes: samples.withUnsafeBytes { Array($0) }, frameBytes: 4, bytesPerSecond: sampleRate * 4,
                  path: path, chunkSeconds: chunkSeconds)
    }

    /// Raw interleaved sample bytes of any format, paced at `bytesPerSecond` (a multiple of real time is
    /// fine: tests play faster than real time but still at a pace the reader keeps up with).
    public init(bytes: [UInt8], frameBytes: Int, bytesPerSecond: Int, path: String, chunkSeconds: Double = 0.01) {
        precondition(!bytes.isEmpty && bytes.count % frameBytes == 0)
        self.bytes = bytes
        self.bytesPerSecond = bytesPerSecond
        self.path = path
        chunk = max(frameBytes, Int(Double(bytesPerSecond) * chunkSeconds) / frameBytes * frameBytes)
    }

    /// Starts the writer thread (SIGPIPE is ignored process-wide: a reader that leaves must not kill us).
    public func start() {
        signal(SIGPIPE, SIG_IGN)
        Thread { [self] in run() }.start()
    }

    public func pause() { paused.store(true, ordering: .releasing) }
    public func resume() { paused.store(false, ordering: .releasing) }

    /// Stops the thread, unblocking a pending open by opening the read side once.
    public func stop() {
        stopped.store(true, ordering: .releasing)
        let fd = open(path, O_RDONLY | O_NONBLOCK)
        if fd >= 0 { usleep(50_000); close(fd) }
    }

    func run() {
        while !stopped.load(ordering: .acquiring) {
            let fd = open(path, O_WRONLY | O_CLOEXEC)  // blocks until the reader opens the device
            if fd < 0 { usleep(50_000); continue }
            let t0 = Clock.monotonicNanoseconds()
            var sent = 0, position = 0
            while !stopped.load(ordering: .acquiring) {
                if paused.load(ordering: .acquiring) { usleep(10_000); continue }
                let n = min(chunk, bytes.count - position)
                guard writeAll(fd, from: position, count: n) else { break }  // reader gone: reopen
                position = (position + n) % bytes.count
                sent += n
                let ahead = Double(sent) / Double(bytesPerSecond) - Double(Clock.monotonicNanoseconds() - t0) / 1e9
                if ahead > 0 {
                    usleep(UInt32(ahead * 1e6))
                } else if ahead < -0.5 {  // after a pause: resume real time, do not burst the backlog
                    sent = Int(Double(Clock.monotonicNanoseconds() - t0) / 1e9 * Double(bytesPerSecond))
                }
            }
            close(fd)
        }
    }

    func writeAll(_ fd: Int32, from position: Int, count n: Int) -> Bool {
        bytes.withUnsafeBytes { raw in
            var off = position
            let end = position + n
            while off < end {
                let w = write(fd, raw.baseAddress! + off, end - off)
                if w < 0 { if errno == EINTR { continue }; return false }
                off += w
            }
            return true
        }
    }
}
