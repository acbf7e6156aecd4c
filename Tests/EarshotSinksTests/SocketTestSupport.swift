#if canImport(Glibc)
import Glibc
#endif
import EarshotDSP
import EarshotPipeline
import EarshotRealtime
@testable import EarshotSinks
import Foundation
import Logging
import Synchronization

/// Pushes generated audio (−20 dBFS 1 kHz tone plus a click every 0.3 s) through a real FrameProcessor
/// into a FrameBus on a background thread, one hop per `intervalMicroseconds`.
final class AudioFeeder: @unchecked Sendable {
    let bus: FrameBus
    let processor: FrameProcessor<FrameBus>
    let info: StreamInfo
    let running = Atomic<Bool>(false)
    var handle: RealtimeThread.Handle?
    let signal: [Float]
    /// Wall-clock ns of each real-time push (index = hop number), for delivery delays that do not count a
    /// feeder the scheduler ran late. Written by the feeder thread before the frame exists, read after.
    let pushWallNs = UnsafeMutableBufferPointer<Int64>.allocate(capacity: 1 << 17)

    init() throws {
        let analyzer = try FrameAnalyzer(config: AnalyzerConfig())
        let c = analyzer.config
        bus = FrameBus(capacity: 1024, nMels: c.nMels, nMFCC: c.nMFCC)
        processor = FrameProcessor(analyzer: analyzer, output: bus, measureTiming: false)
        info = StreamInfo(
            sampleRate: c.sampleRate, nFFT: c.nFFT, hop: c.hop, nMels: c.nMels, nMFCC: c.nMFCC,
            melBandEdgesHz: analyzer.melBank.bandEdgesHz, levelUnit: "dBFS", levelOffsetDb: 0, device: "test",
            onsetLookAheadMs: 31.33)
        let sr = c.sampleRate
        var x = [Float](repeating: 0, count: 3 * sr)
        for i in x.indices { x[i] = 0.1 * Float(sin(2 * Double.pi * 1000 * Double(i) / Double(sr))) }
        var t = 0.1
        while t < 2.9 {
            let start = Int(t * Double(sr))
            for k in 0..<480 { x[start + k] += Float(0.8 * exp(-Double(k) / 60) * (k % 2 == 0 ? 1 : -1)) }
            t += 0.3
        }
        signal = x
        pushWallNs.initialize(repeating: 0)
    }

    deinit { pushWallNs.deallocate() }

    /// Feeds one hop per `intervalMicroseconds` (frame times are nominal), or with `realTime` at the
    /// sample rate on an absolute schedule: each hop is pushed when its last sample is due, so a frame's
    /// `t + n_fft / sample_rate` is the wall time its last sample was "captured".
    func start(intervalMicroseconds: UInt32 = 2000, realTime: Bool = false) {
        running.store(true, ordering: .releasing)
        let (h, _) = RealtimeThread.start(name: "test-feeder") { [self] in
            let hop = processor.config.hop
            let sr = Int64(processor.config.sampleRate)
            let wall0 = Clock.wallNanoseconds()
            let mono0 = Clock.monotonicNanoseconds()
            var position: Int64 = 0
            signal.withUnsafeBufferPointer { all in
                while running.load(ordering: .acquiring) {
                    if realTime {
                        let due = mono0 + (position + Int64(hop)) * 1_000_000_000 / sr
                        let wait = due - Clock.monotonicNanoseconds()
                        if wait > 0 { usleep(UInt32(min(wait / 1000, 1_000_000))) }
                    }
                    let k = Int(position / Int64(hop))
                    if k < pushWallNs.count { pushWallNs[k] = Clock.wallNanoseconds() }
                    let offset = Int(position % Int64(all.count - hop))
                    let chunk = UnsafeBufferPointer(rebasing: all[offset..<(offset + hop)])
                    processor.push(chunk, firstSample: position, monotonicNs: 0, wallNs: wall0 + position * 1_000_000_000 / sr)
                    position += Int64(hop)
                    if !realTime { usleep(intervalMicroseconds) }
                }
            }
        }
        handle = h
    }

    /// Seconds from a frame's `t` (its first sample) to the real-time push that completes it: the hop
    /// holding its last sample (`ceil(n_fft / hop)` hops).
    var completionDelay: Double {
        let c = processor.config
        return Double((c.nFFT + c.hop - 1) / c.hop * c.hop) / Double(c.sampleRate)
    }

    /// Wall-clock seconds when frame `seq` was complete (the push of its last hop), nil if not recorded.
    func completedAt(seq: Int) -> Double? {
        let c = processor.config
        let k = seq + (c.nFFT + c.hop - 1) / c.hop - 1
        guard k >= 0, k < pushWallNs.count, pushWallNs[k] != 0 else { return nil }
        return Double(pushWallNs[k]) / 1e9
    }

    func stop() {
        running.store(false, ordering: .releasing)
        if let handle { RealtimeThread.join(handle) }
        handle = nil
    }
}

struct TestClientError: Error, CustomStringConvertible {
    var description: String
}

/// A blocking test client with a receive timeout.
final class TestClient {
    let fd: Int32
    var buffer: [UInt8] = []
    private(set) var eof = false

    init(path: String, receiveTimeoutSeconds: Int = 5) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestClientError(description: "socket: \(errno)") }
        let rc = try SocketListener.withAddress(path) { connect(fd, $0, $1) }
        if rc != 0 {
            let e = errno
            close(fd)
            throw TestClientError(description: "connect \(path): \(String(cString: strerror(e)))")
        }
        var tv = timeval(tv_sec: receiveTimeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ text: String) { sendBytes(Array(text.utf8)) }

    func sendBytes(_ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBufferPointer { Glibc.send(fd, $0.baseAddress! + off, $0.count - off, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { if errno == EINTR { continue }; return }
            off += n
        }
    }

    /// The next line (without `\n`), or nil on EOF, error or timeout.
    func readLine() -> [UInt8]? {
        while true {
            if let i = buffer.firstIndex(of: 0x0A) {
                let line = Array(buffer[..<i])
                buffer.removeFirst(i + 1)
                return line
            }
            if eof { return nil }
            var chunk = [UInt8](repeating: 0, count: 65_536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { eof = true; return nil }
            buffer.append(contentsOf: chunk[..<n])
        }
    }

    /// The next line parsed as a JSON object.
    func readObject() -> [String: Any]? {
        guard let line = readLine() else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any]
    }

    /// Reads until a message of `type` (returned), skipping others; nil on EOF/timeout.
    func read(type: String, maxLines: Int = 100_000) -> [String: Any]? {
        for _ in 0..<maxLines {
            guard let o = readObject() else { return nil }
            if o["type"] as? String == type { return o }
        }
        return nil
    }
}

/// A fresh short temporary directory (socket paths must fit in 108 bytes).
func makeTempDir() -> String {
    var template = Array("/tmp/es-sock-XXXXXX".utf8CString)
    let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    return String(cString: p!)
}

func openFileDescriptorCount() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
}

func waitUntil(seconds: Double = 5, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(5_000)
    }
    return condition()
}

func testLogger() -> Logger {
    var l = Logger(label: "test.socket", factory: { _ in SwiftLogNoOpLogHandler() })
    l.logLevel = .critical
    return l
}

/// Resident set size of this process, bytes (`/proc/self/statm`).
func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return -1 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return -1 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}
