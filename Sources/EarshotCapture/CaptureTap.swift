import EarshotRealtime
import Foundation

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

    /// Samples were lost while recording.
    public struct RecordError: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Captures `skipSeconds` (dropped: the device and the signal settling) then `seconds` of mono samples.
    /// Gives up with a ``CaptureError`` (`deviceUnavailable`, `ETIMEDOUT`/the device's errno) when the
    /// device is lost or delivers too little within `seconds + skipSeconds + timeoutSlack`, a ``RecordError``
    /// when samples were lost.
    public static func record(
        _ config: CaptureConfig, seconds: Double, skipSeconds: Double = 0, timeoutSlack: Double = 5
    ) throws -> [Float] {
        let tap = try CaptureTap(config: config)
        defer { tap.stop() }
        let skip = Int(skipSeconds * Double(config.sampleRate))
        let want = skip + Int(seconds * Double(config.sampleRate))
        var got: [Float] = []
        got.reserveCapacity(want + 65_536)
        let deadline = Date().addingTimeInterval(seconds + skipSeconds + timeoutSlack)
        while got.count < want {
            tap.wait(seconds: 0.05)
            tap.drain(into: &got)
            if tap.lostSamples > 0 {
                // The ring overflowed: the reader fell behind (or the device is not paced in real time).
                throw RecordError(message: "capture device '\(CaptureError.printable(config.device))': \(tap.lostSamples) samples lost while recording (the device delivers faster than real time, or this process was stalled)")
            }
            if tap.failureErrno != 0 {
                throw CaptureError(code: .deviceUnavailable, device: config.device, alsaError: ALSAError(rawValue: -tap.failureErrno))
            }
            if Date() > deadline {
                throw CaptureError(code: .deviceUnavailable, device: config.device, alsaError: ALSAError(rawValue: -ETIMEDOUT))
            }
        }
        return Array(got[skip..<want])
    }
}
