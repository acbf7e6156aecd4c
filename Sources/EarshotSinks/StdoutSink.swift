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
    public let fileDescriptor: Int32
    public let format: FrameFormat
    public let encoder: FrameEncoder
    let running = Atomic<Bool>(false)
    let _dropped = Atomic<Int>(0)
    let _frames = Atomic<Int>(0)
    var thread: RealtimeThread.Handle?
    var consumer: FrameBus.Consumer?

    public init(fileDescriptor: Int32 = STDOUT_FILENO, format: FrameFormat = .ndjson, encoder: FrameEncoder) {
        self.fileDescriptor = fileDescriptor
        self.format = format
        self.encoder = encoder
    }

    public var dropped: Int { _dropped.load(ordering: .relaxed) }
    /// Records the DSP → stdout hand-off of every frame (set before ``start(bus:stream:)``).
    public var latencyRecorder: StageRecorder?
    /// Frames written.
    public var frames: Int { _frames.load(ordering: .relaxed) }

    public func start(bus: FrameBus, stream: StreamInfo) throws {
        guard let consumer = bus.attach() else { throw SinkError.tooManyConsumers }
        self.consumer = consumer
        running.store(true, ordering: .releasing)
        let (h, _) = RealtimeThread.start(name: "es-stdout", fifoPriority: 0) { [self] in
            loop(consumer: consumer, bus: bus)
        }
        thread = h
    }

    public func stop() {
        guard running.exchange(false, ordering: .acquiringAndReleasing) else { return }
        consumer?.notifier.notify()
        if let thread { RealtimeThread.join(thread) }
        thread = nil
        consumer?.detach()
        consumer = nil
    }

    func loop(consumer: FrameBus.Consumer, bus: FrameBus) {
        let frame = FrameCopy(nMels: bus.nMels, nMFCC: bus.nMFCC)
        let w = ByteWriter(capacity: 1 << 16)
        if format == .csv { encoder.csvHeader(nMels: bus.nMels, nMFCC: bus.nMFCC, into: w) }
        var stopping = false
        while true {
            while case .frame(let lost) = consumer.next(into: frame) {
                if lost > 0 { _dropped.add(lost, ordering: .relaxed) }
                latencyRecorder?.record(frame.header, dequeuedAtNs: Clock.monotonicNanoseconds())
                switch format {
                case .ndjson: encoder.encodeJSON(frame.header, logmel: UnsafeBufferPointer(frame.logmel), mfcc: UnsafeBufferPointer(frame.mfcc), into: w)
                case .csv: encoder.encodeCSV(frame.header, logmel: UnsafeBufferPointer(frame.logmel), mfcc: UnsafeBufferPointer(frame.mfcc), into: w)
                }
                _frames.add(1, ordering: .relaxed)
                if w.count > 1 << 15 { writeAll(w) }
            }
            writeAll(w)
            if stopping { return }
            if !running.load(ordering: .acquiring) { stopping = true; continue }  // one last drain
            consumer.notifier.wait(timeoutMilliseconds: 200)
        }
    }

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
