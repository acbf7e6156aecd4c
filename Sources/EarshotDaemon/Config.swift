public import Logging
import EarshotCapture
import EarshotDSP
public import EarshotSinks

// Defaults: each section takes them from the library type that owns the setting (`AnalyzerConfig`,
// `CaptureConfig`, `SocketPublisher.Configuration`, …), so that there is one definition of each. The keys
// only the daemon owns (`capture.ring_seconds`, `levels`, `limits`, `logging`) are defined here.
private let analyzerDefaults = AnalyzerConfig()
private let captureDefaults = CaptureConfig()
private let socketDefaults = SocketPublisher.Configuration()
private let rollingDefaults = RollingAggregator.Configuration()
private let alertDefaults = AlertSink.Configuration()
private let metricsDefaults = MetricsSink.Configuration()

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
    public var mqtt = MQTT()
    public var logging = LoggingSettings()
    public var limits = Limits()
    /// `health.*`: input-health judgement (the health sink's own configuration, composed as it is).
    public var health = Health()
    /// `clips.*`: event clips (the clips sink's own configuration; off unless `clips.directory` is set).
    public var clips = Clips()

    /// A configuration holding every default.
    public init() {}

    /// The built-in defaults (what an empty file gives).
    public static let defaults = EarshotConfig()

    /// `capture.*`: the ALSA device and how it is driven.
    public struct Capture: Sendable, Equatable {
        /// ALSA PCM name, e.g. `default`, `hw:CARD=USB,DEV=0`, `pulse`.
        public var device = captureDefaults.device
        /// Hz.
        public var sampleRate = captureDefaults.sampleRate
        /// Channels opened on the device.
        public var channels = captureDefaults.channels
        /// `nil`: downmix all channels; otherwise the 0-based channel analysed.
        public var channel: Int? = captureDefaults.channel
        public var format: SampleFormat = .auto
        /// ALSA period in frames; `nil` means one hop (`analysis.hop`, at least 16 frames).
        public var periodFrames: Int? = nil
        /// ALSA buffer size in periods (at least 4).
        public var bufferPeriods = captureDefaults.bufferPeriods
        /// Seconds of audio the capture → DSP sample ring holds (how long the DSP thread may stall
        /// before samples are dropped and the next frame is flagged).
        public var ringSeconds = 4.0
        /// Milliseconds the capture thread may fall behind before the piled-up audio is skipped and the
        /// next frame flagged as an overrun (0 = never skip).
        public var maxBacklogMs = captureDefaults.maxBacklog * 1000
        /// 0: normal scheduling; 1–99: SCHED_FIFO priority of the capture and DSP threads (best effort).
        public var realtimePriority = Int(captureDefaults.fifoPriority)
        /// `mlockall(MCL_CURRENT|MCL_FUTURE)` at start (best effort).
        public var mlock = captureDefaults.lockMemory
        /// Seconds before the first reconnect attempt after a device loss.
        public var reconnectInitialSeconds = captureDefaults.reconnectInitial
        /// Cap of the exponential reconnect backoff, seconds.
        public var reconnectMaxSeconds = captureDefaults.reconnectMax
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
        public var nFFT = analyzerDefaults.nFFT
        /// Samples between frame starts.
        public var hop = analyzerDefaults.hop
        public var nMels = analyzerDefaults.nMels
        /// Hz.
        public var fmin = analyzerDefaults.fMin
        /// Hz, at most sample_rate / 2.
        public var fmax = analyzerDefaults.fMax
        public var nMFCC = analyzerDefaults.nMFCC
        /// `nil`: no floor; otherwise an absolute floor in dB (`logmel = max(logmel, floor)`). There is no
        /// whole-signal `top_db`: it would not be causal.
        public var logmelFloorDB: Double? = analyzerDefaults.logMelFloorDb.map(Double.init)
        /// Spectral roll-off fraction (0 < r < 1).
        public var rolloff = analyzerDefaults.rolloffPercent
        public var onset = Onset()
        public init() {}

        /// `analysis.onset.*`: causal peak picking on onset strength.
        public struct Onset: Sendable, Equatable {
            /// Frames before the candidate that it must be the maximum of.
            public var preMaxFrames = analyzerDefaults.onset.preMaxFrames
            /// Frames after the candidate (look-ahead: adds this many hops of latency).
            public var postMaxFrames = analyzerDefaults.onset.postMaxFrames
            /// Frames averaged before the candidate for the adaptive threshold.
            public var preAvgFrames = analyzerDefaults.onset.preAvgFrames
            /// Threshold above the local mean, in onset-strength units.
            public var delta = Double(analyzerDefaults.onset.delta)
            /// Minimum frames between two onsets.
            public var waitFrames = analyzerDefaults.onset.waitFrames
            /// Weight of the local mean in the threshold (`mean_weight × mean + delta`).
            public var meanWeight = Double(analyzerDefaults.onset.meanWeight)
            /// The onset-detection function (`superflux` or librosa's `logmel`).
            public var function = analyzerDefaults.onsetFunction.function
            /// SuperFlux lag (frames).
            public var lagFrames = analyzerDefaults.onsetFunction.lagFrames
            /// SuperFlux frequency max-filter half-width (bands).
            public var maxFilterBands = analyzerDefaults.onsetFunction.maxFilterBands
            /// Reference at least the tracked background level plus this (dB).
            public var floorMarginDb = Double(analyzerDefaults.onsetFunction.floorMarginDb)
            /// Slew rate of the tracked background level, up and down (dB/s).
            public var floorSlewDbPerSecond = Double(analyzerDefaults.onsetFunction.floorSlewDbPerSecond)
            /// Decay of each band's peak memory (dB/s).
            public var memoryDecayDbPerSecond = Double(analyzerDefaults.onsetFunction.memoryDecayDbPerSecond)
            /// Bands averaged into the strength (the largest rises).
            public var topBands = analyzerDefaults.onsetFunction.topBands
            public init() {}
        }
    }

    /// `levels.*`.
    public struct Levels: Sendable, Equatable {
        /// `nil`: levels in dBFS; a number: dB SPL = dBFS + calibration_db.
        public var calibrationDB: Double? = nil
        /// When `earshot calibrate --write` measured `calibration_db` (UTC, `YYYY-MM-DDTHH:MM:SSZ` or
        /// `YYYY-MM-DD`); shown in `hello` and `/metrics`.
        public var calibrationDate: String? = nil
        /// The calibrator's level the offset was measured against, dB SPL.
        public var calibrationReferenceDB: Double? = nil
        /// `levels.bands`: IEC 61260-1 band levels (`off`, `octave`, `third`); computed on the DSP thread only when on.
        public var bands: BandResolution = .off
        public init() {}
        /// The unit levels are published in: `dBFS` or `dB SPL`.
        public var unit: String { calibrationDB == nil ? "dBFS" : "dB SPL" }
    }

    /// `socket.*` (and `rolling.backfill_s`): the socket publisher's own configuration, composed as it is
    /// (its defaults, `Limits` and `validate()` live in `EarshotSinks`).
    public typealias Socket = SocketPublisher.Configuration

    /// `rolling.*`: tumbling-window statistics.
    public struct Rolling: Sendable, Equatable {
        /// Window lengths, seconds, strictly increasing.
        public var windowsSeconds: [Double] = rollingDefaults.windowsSeconds
        public init() {}
    }

    /// `alerts.*`.
    public struct Alerts: Sendable, Equatable {
        public var level = Level()
        public var onset = Onset()
        public init() {}

        /// `alerts.level.*`: threshold alerts on a weighted level.
        public struct Level: Sendable, Equatable {
            public var enabled = alertDefaults.level.enabled
            public var weighting: Weighting = .laf
            /// dB in the level unit (dBFS or dB SPL).
            public var thresholdDB = alertDefaults.level.thresholdDB
            /// Milliseconds the level must stay above the threshold before an alert starts.
            public var minDurationMs = alertDefaults.level.minDurationMs
            /// dB below the threshold the level must fall for the alert to end.
            public var hysteresisDB = alertDefaults.level.hysteresisDB
            /// Milliseconds after an alert ends before a new one may start.
            public var rearmMs = alertDefaults.level.rearmMs
            public init() {}
        }

        /// `alerts.onset.*`: alerts on detected onsets.
        public struct Onset: Sendable, Equatable {
            public var enabled = alertDefaults.onset.enabled
            /// Minimum onset strength that raises an alert.
            public var minStrength = alertDefaults.onset.minStrength
            /// Milliseconds between two onset alerts.
            public var minIntervalMs = alertDefaults.onset.minIntervalMs
            /// Rate limit; extra alerts are suppressed and counted. 0 = unlimited.
            public var maxPerMinute = alertDefaults.onset.maxPerMinute
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
        public var enabled = metricsDefaults.enabled
        /// `host:port` for `/metrics` over HTTP (`[::1]:9464` for IPv6); `nil` disables HTTP. Loopback only
        /// unless ``allowRemote``.
        public var listen: String? = metricsDefaults.listen
        /// Accept a non-loopback `listen` address (the metrics are then reachable from the network).
        public var allowRemote = false  // the daemon's policy (MetricsSink serves whatever it is given)
        /// Path of a node_exporter textfile-collector file (`*.prom`); `nil` disables it.
        public var textfile: String? = metricsDefaults.textfile
        /// Seconds between textfile rewrites.
        public var textfileIntervalSeconds = metricsDefaults.textfileIntervalSeconds
        /// Constant labels on every series (YAML: a list of `name=value`); `instance` and `device` are added
        /// unless given here.
        public var labels: [String: String] = metricsDefaults.constantLabels
        public init() {}
    }

    /// `budgets.*`: per-stage latency budgets, milliseconds (`nil` = no budget), and the warning interval:
    /// the latency tracker's own configuration, composed as it is.
    public typealias Budgets = LatencyTracker.Configuration

    /// `health.*`: thresholds and hold times of the input-health faults (``HealthMonitor``).
    public typealias Health = HealthMonitor.Configuration
    /// `clips.*`: event clips (``ClipSink``).
    public typealias Clips = ClipSink.Configuration
    /// `mqtt.*`: the MQTT sink's own configuration, composed as it is (off unless `mqtt.broker` is set).
    public typealias MQTT = MQTTSink.Configuration

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

extension SocketPublisher.Configuration {
    /// `mode` as the 4-digit octal string used in the YAML (`0660`).
    public var modeString: String { octalString(mode) }
}

func octalString(_ mode: UInt32) -> String {
    let digits = String(mode, radix: 8)
    return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
}
