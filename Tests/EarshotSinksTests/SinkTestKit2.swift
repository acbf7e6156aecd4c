import EarshotPipeline
import EarshotDSP
import Logging
import Synchronization

@testable import EarshotSinks

/// Helpers for the rolling/alert/latency/metrics sink tests (one namespace to keep test names apart from
/// the socket publisher's tests in the same target).
enum SinkTestKit2 {
    static let sampleRate = 48_000
    static let hop = 480
    static let hopNs: Int64 = 10_000_000
    static let nMels = 4
    /// A round UNIX time (a multiple of 60 s) so windows start at frame 0.
    static let t0: Int64 = 1_700_000_040 * 1_000_000_000

    static func stream(levelOffsetDb: Float = 0, unit: String = "dBFS", levelChannels: Int = 1) -> StreamInfo {
        var info = StreamInfo(sampleRate: sampleRate, nFFT: 1024, hop: hop, nMels: nMels, nMFCC: 2,
                              melBandEdgesHz: Array(repeating: 0, count: nMels + 2), levelUnit: unit,
                              levelOffsetDb: levelOffsetDb, device: "test", onsetLookAheadMs: 10)
        info.levelChannels = levelChannels
        return info
    }

    /// A frame `seq` at `t0 + seq * hop` with every level (laf…lzf, rms) set to `level`.
    static func header(seq: Int64, level: Float, wallNs: Int64? = nil) -> FrameHeader {
        var h = FrameHeader()
        h.seq = seq
        h.firstSample = seq * Int64(hop)
        h.wallNs = wallNs ?? (t0 + seq * hopNs)
        h.monotonicNs = h.wallNs - t0 + 1_000_000_000
        var f = FrameFeatures()
        f.laf = level; f.las = level; f.lcf = level; f.lzf = level; f.rmsDbfs = level
        f.centroidHz = 1000
        h.features = f
        return h
    }

    /// Marks `h` as deciding an onset in itself with `strength`.
    static func withOnset(_ h: FrameHeader, strength: Float) -> FrameHeader {
        var h = h
        h.hasOnset = true
        h.onset = OnsetEvent(frameIndex: h.seq, detectedAtFrame: h.seq, strength: strength)
        h.onsetWallNs = h.wallNs
        h.features.onsetStrength = strength
        return h
    }

    /// Publishes `headers` through `bus` as the DSP thread would (log-mel = `logmel` for every frame).
    static func publish(_ headers: [FrameHeader], on bus: FrameBus, logmel: [Float]? = nil) {
        for h in headers {
            bus.beginWrite()
            let lm = bus.nextLogmel
            for i in 0..<lm.count { lm[i] = logmel?[i] ?? Float(-50 - i) }
            bus.publish(h)
        }
    }

    /// Captured log records.
    final class LogStore: Sendable {
        struct Record: Sendable { var level: Logger.Level; var message: String }
        let records = Mutex<[Record]>([])
        var all: [Record] { records.withLock { $0 } }
        func messages(containing s: String) -> [String] { all.map(\.message).filter { $0.contains(s) } }

        func logger() -> Logger {
            Logger(label: "test") { _ in Handler(store: self) }
        }

        struct Handler: LogHandler {
            let store: LogStore
            var metadata: Logger.Metadata = [:]
            var logLevel: Logger.Level = .trace
            subscript(metadataKey key: String) -> Logger.Metadata.Value? {
                get { metadata[key] }
                set { metadata[key] = newValue }
            }
            func log(event: LogEvent) {
                store.records.withLock { $0.append(Record(level: event.level, message: "\(event.message)")) }
            }
        }
    }

    /// A `MessagePublisher` that keeps every line.
    final class Publisher: MessagePublisher {
        let lines = Mutex<[(StreamKind, String, Int64)]>([])
        func publish(_ stream: StreamKind, line: [UInt8], wallNs: Int64) {
            lines.withLock { $0.append((stream, String(decoding: line, as: UTF8.self), wallNs)) }
        }
        func lines(_ stream: StreamKind) -> [String] { lines.withLock { $0.filter { $0.0 == stream }.map(\.1) } }
    }

    /// Parses a `key=value key=value` alert line.
    static func fields(_ line: String) -> [String: String] {
        var out: [String: String] = [:]
        for part in line.split(separator: " ") {
            let kv = part.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { out[String(kv[0])] = String(kv[1]) }
        }
        return out
    }
}
