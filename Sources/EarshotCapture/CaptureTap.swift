import EarshotRealtime
import Foundation
import Synchronization
internal import CALSA

/// A capture run for command-line tools (`earshot calibrate`, `earshot devices --listen`): a
/// ``CaptureThread`` with its rings, drained on the caller's thread into an array. Not for the daemon.
public final class CaptureTap {
    public let thread: CaptureThread
    let samples: SPSCRing<Float>
    let stamps: SPSCRing<CaptureStamp>
    let wake = WakeSignal()
    /// Samples lost because the caller drained too late.
    public private(set) var lostSamples = 0
    /// The first ``CaptureEventKind/lost`` or ``CaptureEventKind/retrying`` event's errno (0: none).
    public private(set) var failureErrno: Int32 = 0

    /// Probes `config` (throws the same ``CaptureError`` as `earshot run` would at start, busy and
    /// absent devices included: a tool does not wait for them), then starts capturing.
    public init(config: CaptureConfig, probeTimeout: Double = CaptureThread.probeTimeout) throws(CaptureError) {
        _ = try CaptureThread.probe(config, timeout: probeTimeout)
        samples = SPSCRing<Float>(minimumCapacity: max(1 << 16, config.sampleRate * 4))
        stamps = SPSCRing<CaptureStamp>(minimumCapacity: 1 << 12)
        thread = CaptureThread(config: config, samples: samples, stamps: stamps, wake: wake)
        thread.start()
    }

    deinit { thread.stop() }

    /// Moves what is readable into `into` (appends).
    public func drain(into out: inout [Float]) {
        var buf = [Float](repeating: 0, count: 8192)
        while true {
            let r = buf.withUnsafeMutableBufferPointer { samples.readAvailable(into: $0) }
            lostSamples += r.lost
            if r.count == 0 { break }
            out.append(contentsOf: buf[0..<r.count])
        }
        _ = stamps.skip(Int.max)
        var e = [CaptureEvent](repeating: CaptureEvent(kind: .opened, monotonicNs: 0), count: 32)
        while true {
            let r = e.withUnsafeMutableBufferPointer { thread.events.readAvailable(into: $0) }
            if r.count == 0 { break }
            for ev in e[0..<r.count] where failureErrno == 0 && (ev.kind == .lost || ev.kind == .retrying) {
                failureErrno = ev.errno == 0 ? EIO : ev.errno
            }
        }
    }

    /// Waits up to `seconds` for the capture thread's next period.
    public func wait(seconds: Double) { _ = wake.wait(timeoutNanoseconds: Int64(seconds * 1e9)) }

    /// Stops the thread (bounded by ``CaptureThread/stopTimeout``).
    public func stop() { thread.stop() }

    /// Samples were lost while recording, or the device failed.
    public struct RecordError: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Captures `skipSeconds` (dropped: the device and the signal settling) then `seconds` of mono samples,
    /// reading the device in order on a helper thread: a sound card paces the reads, and a device that
    /// delivers faster than real time (ALSA's `file` plugin on a regular file) is read sample for sample,
    /// nothing dropped. Throws the ``CaptureError`` of the open (as `earshot run` would report it, busy
    /// devices included), or a ``RecordError`` when the device fails, overruns, or has not delivered
    /// everything within `seconds + skipSeconds + timeoutSlack` (a blocked read is interrupted then).
    public static func record(
        _ config: CaptureConfig, seconds: Double, skipSeconds: Double = 0, timeoutSlack: Double = 5
    ) throws -> [Float] {
        _ = try CaptureThread.probe(config)  // bounded; names what is wrong with the device
        CaptureInterrupt.install()
        let skip = Int(skipSeconds * Double(config.sampleRate))
        let want = skip + Int(seconds * Double(config.sampleRate))
        final class Job: @unchecked Sendable {
            let cancelled = Atomic<Bool>(false)
            /// The reading thread's id while it can still receive the interrupt (0 before it starts and once it
            /// is about to exit). The thread is detached: once it has exited its id may name another thread or
            /// nothing, so the id is cleared, and the signal sent, only under this lock — a thread that has
            /// cleared it has stopped reading, and one that has not cannot exit while the signal is sent.
            let thread = Mutex<UInt>(0)
            let done = DispatchSemaphore(value: 0)
            var result: Result<[Float], any Error> = .success([])
        }
        let job = Job()
        Thread.detachNewThread {
            CaptureInterrupt.unblockOnThisThread()
            job.thread.withLock { $0 = UInt(pthread_self()) }
            job.result = Result { try readFrames(config, count: want, cancelled: job.cancelled) }
            job.thread.withLock { $0 = 0 }
            job.done.signal()
        }
        if job.done.wait(timeout: .now() + seconds + skipSeconds + timeoutSlack) == .timedOut {
            job.cancelled.store(true, ordering: .releasing)
            // Interrupt a read blocked inside the plugin until the thread notices (bounded).
            for _ in 0..<200 {
                job.thread.withLock { t in
                    if t != 0 { pthread_kill(pthread_t(t), CaptureInterrupt.signalNumber) }
                }
                if job.done.wait(timeout: .now() + 0.005) == .success { break }
            }
            throw RecordError(message: "capture device '\(CaptureError.printable(config.device))' delivered too little audio within \(Int(seconds + skipSeconds + timeoutSlack)) s")
        }
        let samples = try job.result.get()
        return Array(samples[skip..<want])
    }

    /// Reads `count` mono frames from a fresh open of `config` (the capture thread's negotiation).
    static func readFrames(_ config: CaptureConfig, count: Int, cancelled: borrowing Atomic<Bool>) throws -> [Float] {
        let pcm = try ALSAPCM.open(config)
        let neg = pcm.negotiated
        let h = pcm.handle
        let period = neg.periodFrames
        let bytes = UnsafeMutableRawPointer.allocate(byteCount: period * neg.channels * neg.format.bytesPerSample, alignment: 64)
        defer { bytes.deallocate() }
        let floats = UnsafeMutablePointer<Float>.allocate(capacity: period)
        defer { floats.deallocate() }
        var out: [Float] = []
        out.reserveCapacity(count)
        func fail(_ what: String, _ rc: Int) -> RecordError {
            RecordError(message: "capture device '\(CaptureError.printable(config.device))': \(what) [\(ALSAError(rawValue: Int32(truncatingIfNeeded: rc)))]")
        }
        var rc = snd_pcm_start(h)
        if rc < 0 && rc != -EBADFD { throw fail("cannot start", Int(rc)) }
        while out.count < count {
            if cancelled.load(ordering: .acquiring) { throw RecordError(message: "cancelled") }
            let n = min(period, count - out.count)
            let r = snd_pcm_readi(h, bytes, snd_pcm_uframes_t(n))
            if r > 0 {
                convertToMono(bytes, format: neg.format, frames: r, channels: neg.channels, channel: config.channel, into: floats)
                out.append(contentsOf: UnsafeBufferPointer(start: floats, count: r))
            } else if r == -EAGAIN || r == 0 {
                rc = snd_pcm_wait(h, 100)
                if rc < 0 && rc != -EINTR { throw fail("read failed", Int(rc)) }
            } else if r == -EINTR {
                continue
            } else if r == -EPIPE {
                throw fail("overrun while recording (audio lost; retry on a less busy system)", Int(r))
            } else {
                throw fail("read failed", Int(r))
            }
        }
        return out
    }
}
