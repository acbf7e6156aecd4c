public import Logging

/// The daemon's whole configuration: a plain value tree with a default for every key.
///
/// Field names are the camelCase form of the snake_case YAML keys (`capture.sample_rate` is
/// `capture.sampleRate`); units are in the names or the docs. Build one with
/// ``EarshotConfig/load(configPath:environment:overrides:options:)`` or ``ConfigBuilder``; every
/// value reaching the daemon that way has passed the per-key range checks and the cross-field checks.
public struct EarshotConfig: Sendable, Equatable {
    public var capture = Capture()
    public var analysis = Analysis()
    public var levels = Levels()
    public var socket = Socket()
    public var rolling = Rolling()
    public var alerts = Alerts()
    public var metrics = Metrics()
    public var budgets = Budgets()
    public var logging = LoggingSettings()
    public var limits = Limits()

    /// A configuration holding every default.
    public init() {}

    /// The built-in defaults (what an empty file gives).
    public static let defaults = EarshotConfig()

    /// `capture.*`: the ALSA device and how it is driven.
    public struct Capture: Sendable, Equatable {
        /// ALSA PCM name, e.g. `default`, `hw:CARD=USB,DEV=0`, `pulse`.
        public var device = "default"
        /// Hz.
        public var sampleRate = 48_000
        /// Channels opened on the device.
        public var channels = 1
        /// `nil`: downmix all channels; otherwise the 0-based channel analysed.
        public var channel: Int? = nil
        public var format: SampleFormat = .auto
        /// ALSA period in frames; `nil` means one hop (`analysis.hop`, at least 16 frames).
        public var periodFrames: Int? = nil
        /// ALSA buffer size in periods (at least 4).
        public var bufferPeriods = 8
        /// Seconds of audio the capture → DSP sample ring holds (how long the DSP thread may stall
        /// before samples are dropped and the next frame is flagged).
        public var ringSeconds = 4.0
        /// Milliseconds the capture thread may fall behind before the piled-up audio is skipped and the
        /// next frame flagged as an overrun (0 = never skip).
        public var maxBacklogMs = 250.0
        /// 0: normal scheduling; 1–99: SCHED_FIFO priority of the capture and DSP threads (best effort).
        public var realtimePriority = 0
        /// `mlockall(MCL_CURRENT|MCL_FUTURE)` at start (best effort).
        public var mlock = false
        /// Seconds before the first reconnect attempt after a device loss.
        public var reconnectInitialSeconds = 0.5
        /// Cap of the exponential reconnect backoff, seconds.
        public var reconnectMaxSeconds = 30.0
        public init() {}
    }

    /// ALSA sample formats accepted in `capture.format`.
    public enum SampleFormat: String, Sendable, Equatable, CaseIterable {
        /// Let the capture layer pick the best format the device offers.
        case auto
        /// The corresponding ALSA constant is `SND_PCM_FORMAT_FLOAT_LE`.
        case floatLE = "FLOAT_LE"
        /// The corresponding ALSA constant is `SND_PCM_FORMAT_S32_LE`.
        case s32LE = "S32_LE"
        /// The corresponding ALSA constant is `SND_PCM_FORMAT_S24_3LE`.
        case s24_3LE = "S24_3LE"
        /// The corresponding ALSA constant is `SND_PCM_FORMAT_S24_LE`.
        case s24LE = "S24_LE"
        /// The corresponding ALSA constant is `SND_PCM_FORMAT_S16_LE`.
        case s16LE = "S16_LE"
    }

    /// `analysis.*`: frame and feature parameters (see ARCHITECTURE.md "Frame conventions").
    public struct Analysis: Sendable, Equatable {
        /// FFT size and frame length in samples; only factors 2, 3, 5 and 7 (FFTW-friendly).
        public var nFFT = 1024
        /// Samples between frame starts.
        public var hop = 480
        public var nMels = 64
        /// Hz.
        public var fmin = 0.0
        /// Hz, at most sample_rate / 2.
        public var fmax = 8000.0
        public var nMFCC = 13
        /// `nil`: no floor; otherwise an absolute floor in dB (`logmel = max(logmel, floor)`). There is no
        /// whole-signal `top_db`: it would not be causal.
        public var logmelFloorDB: Double? = nil
        /// Spectral roll-off fraction (0 < r < 1).
        public var rolloff = 0.85
        public var onset = Onset()
        public init() {}

        /// `analysis.onset.*`: causal peak picking on onset strength.
        public struct Onset: Sendable, Equatable {
            /// Frames before the candidate that it must be the maximum of.
            public var preMaxFrames = 3
            /// Frames after the candidate (look-ahead: adds this many hops of latency).
            public var postMaxFrames = 1
            /// Frames averaged before the candidate for the adaptive threshold.
            public var preAvgFrames = 10
            /// Threshold above the local mean, in onset-strength units.
            public var delta = 2.0
            /// Minimum frames between two onsets.
            public var waitFrames = 5
            public init() {}
        }
    }

    /// `levels.*`.
    public struct Levels: Sendable, Equatable {
        /// `nil`: levels in dBFS; a number: dB SPL = dBFS + calibration_db.
        public var calibrationDB: Double? = nil
        public init() {}
        /// The unit levels are published in: `dBFS` or `dB SPL`.
        public var unit: String { calibrationDB == nil ? "dBFS" : "dB SPL" }
    }

    /// `socket.*`: the NDJSON subscriber socket.
    public struct Socket: Sendable, Equatable {
        /// Absolute path of the listening Unix socket; its directory must exist.
        public var path = "/run/earshot/earshot.sock"
        /// File mode of the socket (YAML: an octal string such as `"0660"`).
        public var mode: UInt32 = 0o660
        /// Group owning the socket; `nil` keeps the daemon's primary group.
        public var group: String? = nil
        public var maxClients = 128
        /// Messages queued per subscriber before the oldest are dropped.
        public var queueMessages = 4096
        /// Seconds a subscriber may go without reading before it is disconnected.
        public var stallLimitSeconds = 10.0
        /// Longest accepted client command line, bytes.
        public var maxLineBytes = 65_536
        /// Connections one peer uid may hold at once.
        public var maxClientsPerUID = 64
        /// Seconds a connection may hold no subscription before it is closed.
        public var idleTimeoutSeconds = 10.0
        /// Bytes queued per subscriber before its oldest data messages are dropped.
        public var queueBytes = 16 << 20
        /// Bytes all subscriber queues together may hold (each gets its share).
        public var queueBytesTotal = 64 << 20
        public init() {}
        /// `mode` as the 4-digit octal string used in the YAML (`0660`).
        public var modeString: String { octalString(mode) }
    }

    /// `rolling.*`: tumbling-window statistics.
    public struct Rolling: Sendable, Equatable {
        /// Window lengths, seconds, strictly increasing.
        public var windowsSeconds: [Double] = [1, 10, 60]
        /// Seconds of rolling results kept for `backfill_s` on subscribe.
        public var backfillSeconds = 600.0
        public init() {}
    }

    /// `alerts.*`.
    public struct Alerts: Sendable, Equatable {
        public var level = Level()
        public var onset = Onset()
        public init() {}

        /// `alerts.level.*`: threshold alerts on a weighted level.
        public struct Level: Sendable, Equatable {
            public var enabled = true
            public var weighting: Weighting = .laf
            /// dB in the level unit (dBFS or dB SPL).
            public var thresholdDB = -20.0
            /// Milliseconds the level must stay above the threshold before an alert starts.
            public var minDurationMs = 200.0
            /// dB below the threshold the level must fall for the alert to end.
            public var hysteresisDB = 3.0
            /// Milliseconds after an alert ends before a new one may start.
            public var rearmMs = 1000.0
            public init() {}
        }

        /// `alerts.onset.*`: alerts on detected onsets.
        public struct Onset: Sendable, Equatable {
            public var enabled = false
            /// Minimum onset strength that raises an alert.
            public var minStrength = 5.0
            /// Milliseconds between two onset alerts.
            public var minIntervalMs = 100.0
            /// Rate limit; extra alerts are suppressed and counted. 0 = unlimited.
            public var maxPerMinute = 60
            public init() {}
        }
    }

    /// Level used by level alerts.
    public enum Weighting: String, Sendable, Equatable, CaseIterable {
        /// A-weighted, Fast (125 ms).
        case laf
        /// A-weighted, Slow (1 s).
        case las
        /// C-weighted, Fast.
        case lcf
        /// Unweighted (Z), Fast.
        case lzf
        /// Frame RMS.
        case rms
    }

    /// `metrics.*`: Prometheus exposition (off by default).
    public struct Metrics: Sendable, Equatable {
        public var enabled = false
        /// `host:port` for `/metrics` over HTTP (`[::1]:9464` for IPv6); `nil` disables HTTP. Loopback only
        /// unless ``allowRemote``.
        public var listen: String? = "127.0.0.1:9464"
        /// Accept a non-loopback `listen` address (the metrics are then reachable from the network).
        public var allowRemote = false
        /// Path of a node_exporter textfile-collector file (`*.prom`); `nil` disables it.
        public var textfile: String? = nil
        /// Seconds between textfile rewrites.
        public var textfileIntervalSeconds = 15.0
        public init() {}
    }

    /// `budgets.*`: per-stage latency budgets, milliseconds; `nil` = no budget.
    public struct Budgets: Sendable, Equatable {
        public var captureMs: Double? = nil
        public var dspMs: Double? = 10
        public var sinksMs: Double? = 50
        public var endToEndMs: Double? = 250
        /// Minimum seconds between two over-budget warnings for the same stage.
        public var warnIntervalSeconds = 10.0
        public init() {}
    }

    /// `limits.*`: resource bounds checked when the configuration is loaded.
    public struct Limits: Sendable, Equatable {
        /// Megabytes (MiB) the buffers of a configuration may take (see ``EarshotConfig/memoryEstimate``).
        public var maxMemoryMB = 256
        public init() {}
    }

    /// `logging.*`.
    public struct LoggingSettings: Sendable, Equatable {
        /// Minimum level: trace, debug, info, notice, warning, error, critical.
        public var level: Logger.Level = .info
        public init() {}
    }
}

func octalString(_ mode: UInt32) -> String {
    let digits = String(mode, radix: 8)
    return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
}
