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

    /// The documented range of each field (the YAML schema's `capture.*` bounds are these).
    public enum Limits {
        public static let sampleRate = 8_000...384_000
        public static let channels = 1...64
        public static let periodFrames = 16...1_048_576
        public static let bufferPeriods = 4...1_024
        public static let fifoPriority: ClosedRange<Int32> = 0...99
        /// Seconds.
        public static let maxBacklog = 0.0...60.0
        /// Seconds; greater than 0, at most this.
        public static let reconnectInitialMax = 3_600.0
        /// Seconds; greater than 0, at most this.
        public static let reconnectMaxMax = 86_400.0
    }

    /// Checks the values that do not need the device. Throws ``CaptureError/Code/invalidConfig`` whose
    /// ``CaptureError/parameter`` is the field's stable key (`sample_rate`, `period_frames`,
    /// `reconnect_max_s`: the key the YAML schema binds under `capture.`).
    public func validate() throws(CaptureError) {
        func bad(_ p: String, _ v: String, _ s: String) -> CaptureError {
            CaptureError(code: .invalidConfig, device: device, parameter: p, requested: v, supported: s)
        }
        if device.allSatisfy(\.isWhitespace) { throw bad("device", "\"\(device)\"", "must not be empty") }
        if !Limits.sampleRate.contains(sampleRate) {
            throw bad("sample_rate", "\(sampleRate) Hz", "must be in 8000…384000 Hz")
        }
        if !Limits.channels.contains(channels) { throw bad("channels", "\(channels)", "must be in 1…64") }
        if let channel, channel < 0 || channel >= channels {
            throw bad("channel", "\(channel)", "must be in 0…\(channels - 1) (capture.channels \(channels))")
        }
        if !Limits.periodFrames.contains(periodFrames) {
            throw bad("period_frames", "\(periodFrames)", "must be in 16…1048576")
        }
        if !Limits.bufferPeriods.contains(bufferPeriods) {
            throw bad("buffer_periods", "\(bufferPeriods)", "must be in 4…1024")
        }
        if !Limits.fifoPriority.contains(fifoPriority) {
            throw bad("realtime_priority", "\(fifoPriority)", "must be in 0…99 (0 = normal scheduling)")
        }
        if !Limits.maxBacklog.contains(maxBacklog) {
            throw bad("max_backlog_ms", "\(maxBacklog * 1000) ms", "must be in 0…60000 ms (0 = off)")
        }
        if !(reconnectInitial > 0 && reconnectInitial <= Limits.reconnectInitialMax) {
            throw bad("reconnect_initial_s", "\(reconnectInitial) s", "must be greater than 0 and at most 3600 s")
        }
        if !(reconnectMax > 0 && reconnectMax <= Limits.reconnectMaxMax) {
            throw bad("reconnect_max_s", "\(reconnectMax) s", "must be greater than 0 and at most 86400 s")
        }
        if reconnectMax < reconnectInitial {
            throw bad("reconnect_max_s", "\(reconnectMax) s", "must be at least reconnect_initial_s (\(reconnectInitial) s)")
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
