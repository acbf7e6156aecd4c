import EarshotCapture
import EarshotRealtime
import EarshotTestKit
import Foundation
import Testing

/// All capture tests touch process-wide state (ALSA_CONFIG_PATH, libasound's config cache, PULSE_* env,
/// PulseAudio servers, timing), so they run one at a time under this parent suite.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct CaptureTests {}

/// Rings + thread for one capture run, and a consumer that drains them on the test thread.
final class CaptureHarness {
    let samples: SPSCRing<Float>
    let stamps: SPSCRing<CaptureStamp>
    let wake = WakeSignal()
    let thread: CaptureThread
    var captured: [Float] = []
    var capturedStamps: [CaptureStamp] = []
    var capturedEvents: [CaptureEvent] = []
    var lostSamples = 0

    init(config: CaptureConfig, sampleCapacity: Int = 1 << 20) {
        samples = SPSCRing<Float>(minimumCapacity: sampleCapacity)
        stamps = SPSCRing<CaptureStamp>(minimumCapacity: 1 << 14)
        thread = CaptureThread(config: config, samples: samples, stamps: stamps, wake: wake)
    }

    /// Moves everything readable from the rings into the arrays.
    func drain() {
        var buf = [Float](repeating: 0, count: 4096)
        while true {
            let r = buf.withUnsafeMutableBufferPointer { samples.readAvailable(into: $0) }
            lostSamples += r.lost
            if r.count == 0 { break }
            captured.append(contentsOf: buf[0..<r.count])
        }
        var s = [CaptureStamp](
            repeating: CaptureStamp(firstSample: 0, frames: 0, monotonicNs: 0, wallNs: 0), count: 256)
        while true {
            let r = s.withUnsafeMutableBufferPointer { stamps.readAvailable(into: $0) }
            if r.count == 0 { break }
            capturedStamps.append(contentsOf: s[0..<r.count])
        }
        drainEvents()
    }

    func drainEvents() {
        var e = [CaptureEvent](repeating: CaptureEvent(kind: .opened, monotonicNs: 0), count: 64)
        while true {
            let r = e.withUnsafeMutableBufferPointer { thread.events.readAvailable(into: $0) }
            if r.count == 0 { break }
            capturedEvents.append(contentsOf: e[0..<r.count])
        }
    }

    /// Drains for `seconds`, waking on the capture thread's signal.
    func run(seconds: Double) {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            wake.wait(timeoutNanoseconds: 20_000_000)
            drain()
        }
    }

    /// Drains until `condition` holds or `timeout` passes; returns whether it held.
    @discardableResult
    func run(until timeout: Double, _ condition: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            wake.wait(timeoutNanoseconds: 20_000_000)
            drain()
            if condition() { return true }
        }
        return condition()
    }
}

/// Deterministic pseudo-random bytes.
func pseudoRandomBytes(count: Int, seed: UInt64) -> [UInt8] {
    var x = seed
    return (0..<count).map { _ in
        x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return UInt8(truncatingIfNeeded: x >> 33)
    }
}

/// `convertToMono` of a whole byte array.
func referenceMono(_ bytes: [UInt8], format: SampleFormat, channels: Int, channel: Int?) -> [Float] {
    let frames = bytes.count / (channels * format.bytesPerSample)
    var out = [Float](repeating: 0, count: frames)
    bytes.withUnsafeBytes { src in
        out.withUnsafeMutableBufferPointer { dst in
            convertToMono(
                src.baseAddress!, format: format, frames: frames, channels: channels, channel: channel,
                into: dst.baseAddress!)
        }
    }
    return out
}

/// PulseAudio tests fail under CI=true when pulseaudio is missing, and are skipped otherwise.
let pulseTestsEnabled =
    PulseAudioServer.isAvailable || ProcessInfo.processInfo.environment["CI"] == "true"

func rmsDB(_ x: ArraySlice<Float>) -> Double {
    var acc = 0.0
    for v in x { acc += Double(v) * Double(v) }
    return 10 * log10(acc / Double(max(x.count, 1)))
}
