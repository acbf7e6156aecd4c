/// What to capture and how; a plain value the daemon builds from its configuration.
public struct CaptureConfig: Sendable, Hashable {
    /// ALSA PCM name (`default`, `hw:CARD=Mic,DEV=0`, `plughw:…`, `pulse`, any name from the config).
    public var device: String
    /// Exact sample rate, 8000…384000 Hz; the device must support it (use `plughw:`/`pulse` to resample).
    public var sampleRate: Int
    /// Channels to open the device with.
    public var channels: Int
    /// The 0-based channel to keep, or `nil` to average all channels into mono.
    public var channel: Int?
    /// Sample format to request, or `nil` to take the first the device supports of
    /// ``CaptureConfig/autoFormatOrder``.
    public var format: SampleFormat?
    /// Frames per period (one read, one stamp, one wake-up). Default: the hop, 480 (10 ms at 48 kHz).
    public var periodFrames: Int
    /// Buffer size in periods (at least 4).
    public var bufferPeriods: Int
    /// `SCHED_FIFO` priority for the capture thread (1…99), 0 for the default policy.
    public var fifoPriority: Int32
    /// Call `mlockall` (best effort) when the capture thread starts.
    public var lockMemory: Bool
    /// First reconnect delay after a device loss, seconds; doubles up to ``reconnectMax``.
    public var reconnectInitial: Double
    /// Longest reconnect delay, seconds.
    public var reconnectMax: Double
    /// A running device that delivers no data for this long (seconds) is treated as lost.
    public var stallTimeout: Double
    /// Bounded latency, seconds (0 = off): when the capture thread itself was not reading for longer than
    /// this (process stopped, not scheduled), the audio that piled up meanwhile is skipped and the next
    /// period is flagged as an overrun with the gap measured from timestamps — what a hardware device does
    /// when its buffer overflows. Needed for devices that never overrun because a server keeps an unbounded
    /// backlog (the PulseAudio plugin keeps ~20 s), so that frames stay current and gaps stay visible.
    public var maxBacklog: Double

    /// Formats tried in order when ``format`` is `nil`.
    public static let autoFormatOrder: [SampleFormat] = [.float32, .s32, .s24Packed, .s24In32, .s16]

    public init(
        device: String = "default", sampleRate: Int = 48_000, channels: Int = 1, channel: Int? = nil,
        format: SampleFormat? = nil, periodFrames: Int = 480, bufferPeriods: Int = 8,
        fifoPriority: Int32 = 0, lockMemory: Bool = false, reconnectInitial: Double = 0.5,
        reconnectMax: Double = 30, stallTimeout: Double = 5, maxBacklog: Double = 0.25
    ) {
        self.device = device
        self.sampleRate = sampleRate
        self.channels = channels
        self.channel = channel
        self.format = format
        self.periodFrames = periodFrames
        self.bufferPeriods = bufferPeriods
        self.fifoPriority = fifoPriority
        self.lockMemory = lockMemory
        self.reconnectInitial = reconnectInitial
        self.reconnectMax = reconnectMax
        self.stallTimeout = stallTimeout
        self.maxBacklog = maxBacklog
    }

    /// Checks the values that do not need the device. Throws ``CaptureError/Code/invalidConfig``.
    public func validate() throws(CaptureError) {
        func bad(_ p: String, _ v: String, _ s: String) -> CaptureError {
            CaptureError(code: .invalidConfig, device: device, parameter: p, requested: v, supported: s)
        }
        if !(8_000...384_000).contains(sampleRate) {
            throw bad("sampleRate", "\(sampleRate) Hz", "must be in 8000…384000 Hz")
        }
        if channels < 1 { throw bad("channels", "\(channels)", "must be ≥ 1") }
        if let channel, channel < 0 || channel >= channels {
            throw bad("channel", "\(channel)", "must be in 0..<\(channels)")
        }
        if periodFrames < 16 { throw bad("periodFrames", "\(periodFrames)", "must be ≥ 16") }
        if bufferPeriods < 4 { throw bad("bufferPeriods", "\(bufferPeriods)", "must be ≥ 4") }
        if !(maxBacklog >= 0) { throw bad("maxBacklog", "\(maxBacklog) s", "must be ≥ 0 (0 = off)") }
        if !(reconnectInitial > 0) || reconnectMax < reconnectInitial {
            throw bad("reconnect", "\(reconnectInitial)…\(reconnectMax)", "need 0 < initial ≤ max")
        }
    }
}

/// Parameters the device actually accepted.
public struct CaptureNegotiated: Sendable, Hashable {
    public var device: String
    public var format: SampleFormat
    public var sampleRate: Int
    public var channels: Int
    public var periodFrames: Int
    public var bufferFrames: Int
}

/// Where a stamp's capture time came from.
public enum CaptureTimestampSource: UInt8, Sendable {
    /// Not known yet (no period read since open).
    case unknown = 0
    /// ALSA's status timestamp (`snd_pcm_htimestamp`, CLOCK_MONOTONIC) minus the frames buffered.
    case deviceTimestamp = 1
    /// The device gave a zero or implausible timestamp: `clock_gettime(MONOTONIC)` at the read, minus the
    /// frames buffered.
    case clockAtRead = 2
}
