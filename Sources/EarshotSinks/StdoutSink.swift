#if canImport(Glibc)
import Glibc
#endif
public import EarshotPipeline
import EarshotRealtime
import Synchronization

/// Writes every frame (and the onset lines) as NDJSON or CSV to a file descriptor — `earshot run --stdout`,
/// for debugging and shell pipes. Encodes on its own thread; a slow reader of the pipe makes this sink drop
/// (counted), never the DSP thread.
public final class StdoutSink: Sink, @unchecked Sendable {
    public let name = "stdout"
    /// Set up by `--stdout` (no configuration section): a reload has nothing to change, it keeps running.
    public var configSection: String { "" }
    public func applyReload(_ configuration: any Sendable) -> Bool { true }
    public let fileDescriptor: Int32
    public let format: FrameFormat
    public let encoder: FrameEncoder
    let reader = BusReader(threadName: "es-stdout", delivery: .stream)
    let _frames = Atomic<Int>(0)

    public init(fileDescriptor: Int32 = STDOUT_FILENO, format: FrameFormat = .ndjson, encoder: FrameEncoder) {
        self.fileDescriptor = fileDescriptor
        self.format = format
        self.encoder = encoder
    }

    public var dropped: Int { reader.dropped }
    /// Records the DSP → stdout hand-off of every frame (set before ``start(bus:stream:)``).
    public var latencyRecorder: StageRecorder?
    /// Frames written.
    public var frames: Int { _frames.load(ordering: .relaxed) }

    public func start(bus: FrameBus, stream: StreamInfo) throws {
        let w = ByteWriter(capacity: 1 << 16)
        if format == .csv { encoder.csvHeader(nMels: bus.nMels, nMFCC: bus.nMFCC, into: w) }
        try reader.start(bus: bus, recorder: latencyRecorder, onFrame: { [self] frame in
            switch format {
            case .ndjson: encoder.encodeJSON(frame.header, logmel: UnsafeBufferPointer(frame.logmel), mfcc: UnsafeBufferPointer(frame.mfcc), into: w)
            case .csv: encoder.encodeCSV(frame.header, logmel: UnsafeBufferPointer(frame.logmel), mfcc: UnsafeBufferPointer(frame.mfcc), into: w)
            }
            _frames.add(1, ordering: .relaxed)
            if w.count > 1 << 15 { writeAll(w) }
        }, afterDrain: { [self] _ in
            writeAll(w)
            return 200
        })
    }

    public func stop() { reader.stop() }

    func writeAll(_ w: ByteWriter) {
        var off = 0
        let b = w.bytes
        while off < b.count {
            let n = write(fileDescriptor, b.baseAddress! + off, b.count - off)
            if n < 0 { if errno == EINTR { continue }; break }  // EPIPE: reader went away, keep dropping
            off += n
        }
        w.reset()
    }
}

public enum SinkError: Error, CustomStringConvertible, Sendable {
    case tooManyConsumers
    public var description: String {
        switch self {
        case .tooManyConsumers: "too many sinks attached to the frame bus (max \(FrameBus.maxConsumers))"
        }
    }
}
