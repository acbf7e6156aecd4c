public import EarshotPipeline

/// What a sink knows about the stream it consumes (sent to socket clients in `hello`).
public struct StreamInfo: Sendable, Equatable {
    public var sampleRate: Int
    public var nFFT: Int
    public var hop: Int
    public var nMels: Int
    public var nMFCC: Int
    /// `nMels + 2` mel band edges in Hz.
    public var melBandEdgesHz: [Float]
    public var levelUnit: String
    public var levelOffsetDb: Float
    public var device: String
    /// Look-ahead of the causal onset picker (ms): onsets are reported this much after their frame.
    public var onsetLookAheadMs: Double

    public init(sampleRate: Int, nFFT: Int, hop: Int, nMels: Int, nMFCC: Int, melBandEdgesHz: [Float],
                levelUnit: String, levelOffsetDb: Float, device: String, onsetLookAheadMs: Double) {
        self.sampleRate = sampleRate; self.nFFT = nFFT; self.hop = hop; self.nMels = nMels; self.nMFCC = nMFCC
        self.melBandEdgesHz = melBandEdgesHz; self.levelUnit = levelUnit; self.levelOffsetDb = levelOffsetDb
        self.device = device; self.onsetLookAheadMs = onsetLookAheadMs
    }
}

/// A consumer of frames. Each sink reads the ``FrameBus`` through its own ``FrameBus/Consumer`` (a bounded
/// queue: falling behind drops its oldest frames, counted in ``dropped``) and does its I/O on its own thread
/// or event loop, so it can never stall the DSP thread or another sink.
public protocol Sink: AnyObject, Sendable {
    /// Short name used in logs and metrics (`stdout`, `socket`, `alerts`, `metrics`, …).
    var name: String { get }
    /// Attaches to `bus` and starts the sink's thread.
    func start(bus: FrameBus, stream: StreamInfo) throws
    /// Processes what is queued, stops the thread and releases the consumer. Idempotent.
    func stop()
    /// Frames this sink lost because it fell behind.
    var dropped: Int { get }
}

/// Where non-frame messages go (rolling results, alerts, status, stats): implemented by the socket
/// publisher. Thread-safe, never blocks the caller (bounded; excess is dropped and counted).
public protocol MessagePublisher: AnyObject, Sendable {
    /// `line` is one complete NDJSON object including the trailing `\n`; `wallNs` is the message's
    /// capture time `t` (used for rolling backfill).
    func publish(_ stream: StreamKind, line: [UInt8], wallNs: Int64)
}
