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
    /// The microphone calibration (`hello.calibration`), nil when `levels.calibration_date` is unset.
    public var calibration: CalibrationInfo? = nil
    /// How many channels the levels are the energy mean of: 1 for mono or one selected channel
    /// (`capture.channel`), else `capture.channels` (stereo and 3…64 channels). Part of a level's measure.
    public var levelChannels: Int = 1

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
///
/// The contract the daemon's sink registry builds on: a name, the configuration section it is configured
/// by, start/stop, apply-reload (whether a new configuration could be taken live), the counters it
/// contributes to `stats` and `/metrics`, and the recorder of its latency hand-off. Only `name`, `start`,
/// `stop` and `dropped` are required; the rest have defaults (no section, never live, no counters, no
/// recorder).
public protocol Sink: AnyObject, Sendable {
    /// Short name used in logs and metrics (`stdout`, `socket`, `alerts`, `metrics`, …).
    var name: String { get }
    /// The configuration section that configures it (`alerts`, `rolling`, `metrics`, `budgets`, …; empty for
    /// a sink set up by command-line options only).
    var configSection: String { get }
    /// Attaches to `bus` and starts the sink's thread.
    func start(bus: FrameBus, stream: StreamInfo) throws
    /// Processes what is queued, stops the thread and releases the consumer. Idempotent.
    func stop()
    /// Frames this sink lost because it fell behind.
    var dropped: Int { get }
    /// Takes a reloaded configuration (the sink's own `Configuration` type) while running. Returns `true` if it
    /// was applied live (or nothing changed), `false` if the sink must be restarted to apply it (or the
    /// value is not its configuration). Thread-safe.
    func applyReload(_ configuration: any Sendable) -> Bool
    /// Totals this sink adds to the `stats` message and `/metrics`, in a stable order (snake_case names).
    var counters: [(String, Int)] { get }
    /// Set before ``start(bus:stream:)`` to record this sink's hand-off latency (`sink:<name>`); nil: none.
    var latencyRecorder: StageRecorder? { get set }
    /// Before ``start(bus:stream:)`` of a sink that replaces `previous` (same name, stopped) on a reload that
    /// restarts the sinks: takes over what must not restart with it (an ongoing alert), and with `sameBus`
    /// continues reading where `previous` stopped. Default: nothing.
    func inherit(from previous: any Sink, sameBus: Bool)
    /// ``stop()`` on a reload that restarts the sinks (`handingOver`): keeps what a successor may take over in
    /// ``inherit(from:sameBus:)`` (the rolling sink's open windows) instead of publishing it at once; the
    /// daemon then calls ``finishHandover()``. Default: ``stop()``.
    func stop(handingOver: Bool)
    /// After the successors started: publishes what none of them took over. Default: nothing.
    func finishHandover()
}

extension Sink {
    public var configSection: String { "" }
    public func applyReload(_ configuration: any Sendable) -> Bool { false }
    public func inherit(from previous: any Sink, sameBus: Bool) {}
    public func stop(handingOver: Bool) { stop() }
    public func finishHandover() {}
    public var counters: [(String, Int)] { [] }
    public var latencyRecorder: StageRecorder? {
        get { nil }
        set {}
    }
}

/// A sink whose configuration is one `Equatable` value: reloading with an equal value is live, a different
/// one is live only if ``applyLive(_:)`` takes it.
public protocol ConfigurableSink: Sink {
    associatedtype Configuration: Sendable & Equatable
    var configuration: Configuration { get }
    /// Applies `new` (different from ``configuration``) while running; `false`: restart needed. Default: false.
    func applyLive(_ new: Configuration) -> Bool
}

extension ConfigurableSink {
    public func applyLive(_ new: Configuration) -> Bool { false }
    public func applyReload(_ configuration: any Sendable) -> Bool {
        guard let new = configuration as? Configuration else { return false }
        return new == self.configuration || applyLive(new)
    }
}

/// Where non-frame messages go (rolling results, alerts, status, stats): implemented by the socket
/// publisher. Thread-safe, never blocks the caller (bounded; excess is dropped and counted).
public protocol MessagePublisher: AnyObject, Sendable {
    /// `line` is one complete NDJSON object including the trailing `\n`; `wallNs` is the message's
    /// capture time `t` (used for rolling backfill).
    func publish(_ stream: StreamKind, line: [UInt8], wallNs: Int64)
}
