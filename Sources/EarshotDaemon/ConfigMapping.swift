public import EarshotCapture
public import EarshotDSP
public import EarshotPipeline
public import EarshotSinks

extension EarshotConfig {
    /// The DSP parameters of `analysis.*` at `capture.sample_rate`.
    public var analyzerConfig: AnalyzerConfig {
        var a = AnalyzerConfig()
        a.sampleRate = capture.sampleRate
        a.nFFT = analysis.nFFT
        a.hop = analysis.hop
        a.nMels = analysis.nMels
        a.fMin = analysis.fmin
        a.fMax = analysis.fmax
        a.nMFCC = analysis.nMFCC
        a.logMelFloorDb = analysis.logmelFloorDB.map { Float($0) }
        a.rolloffPercent = analysis.rolloff
        a.onset.preMaxFrames = analysis.onset.preMaxFrames
        a.onset.postMaxFrames = analysis.onset.postMaxFrames
        a.onset.preAvgFrames = analysis.onset.preAvgFrames
        a.onset.delta = Float(analysis.onset.delta)
        a.onset.waitFrames = analysis.onset.waitFrames
        a.bands = levels.bands
        a.onset.meanWeight = Float(analysis.onset.meanWeight)
        a.onsetFunction.function = analysis.onset.function
        a.onsetFunction.lagFrames = analysis.onset.lagFrames
        a.onsetFunction.maxFilterBands = analysis.onset.maxFilterBands
        a.onsetFunction.floorMarginDb = Float(analysis.onset.floorMarginDb)
        a.onsetFunction.floorSlewDbPerSecond = Float(analysis.onset.floorSlewDbPerSecond)
        a.onsetFunction.memoryDecayDbPerSecond = Float(analysis.onset.memoryDecayDbPerSecond)
        a.onsetFunction.topBands = analysis.onset.topBands
        a.levelChannels = AnalyzerConfig.levelChannels(channels: capture.channels, channel: capture.channel)
        return a
    }

    /// The capture parameters of `capture.*` (period defaults to the hop).
    public var captureConfig: CaptureConfig {
        let format: EarshotCapture.SampleFormat? = switch capture.format {
        case .auto: nil
        case .floatLE: .float32
        case .s32LE: .s32
        case .s24_3LE: .s24Packed
        case .s24LE: .s24In32
        case .s16LE: .s16
        }
        return CaptureConfig(
            device: capture.device, sampleRate: capture.sampleRate, channels: capture.channels,
            channel: capture.channel, format: format, periodFrames: capture.periodFrames ?? max(analysis.hop, 16),
            bufferPeriods: capture.bufferPeriods, fifoPriority: Int32(capture.realtimePriority),
            lockMemory: capture.mlock, reconnectInitial: capture.reconnectInitialSeconds,
            reconnectMax: capture.reconnectMaxSeconds, maxBacklog: capture.maxBacklogMs / 1000)
    }

    /// `levels.calibration_*` for `hello` and `/metrics`: nil until a calibration date is recorded.
    public var calibrationInfo: CalibrationInfo? {
        guard let date = levels.calibrationDate else { return nil }
        return CalibrationInfo(date: date, referenceDb: levels.calibrationReferenceDB, offsetDb: levels.calibrationDB ?? 0)
    }

    /// The frame encoder for `levels.*` (weighted levels offset by the calibration).
    public func frameEncoder(features: Set<Feature> = Set(Feature.allCases)) -> FrameEncoder {
        FrameEncoder(features: features, levelOffsetDb: Float(levels.calibrationDB ?? 0), levelUnit: levels.unit)
    }
}

/// A library's `validate()` refusal, named by its YAML key.
struct LibraryProblem: Equatable {
    var key: String
    var related: String?
    var message: String
    var code: ConfigError.Code { related == nil ? .outOfRange : .invalidCombination }
}

extension EarshotConfig {
    /// The YAML key of an ``AnalyzerConfig`` field's stable key (`n_fft` → `analysis.n_fft`;
    /// `sample_rate` is `capture.sample_rate`).
    public static func yamlKey(analyzerField field: String) -> String {
        field == "sample_rate" ? "capture.sample_rate" : "analysis." + field
    }

    /// `socket.*` (and `rolling.backfill_s`) as the socket publisher's configuration.
    public var socketConfiguration: SocketPublisher.Configuration { socket }

    /// `rolling.windows_s` (levels weighted as `alerts.level.weighting`).
    public var rollingConfiguration: RollingAggregator.Configuration {
        RollingAggregator.Configuration(windowsSeconds: rolling.windowsSeconds, weighting: LevelWeighting(alerts.level.weighting))
    }

    /// `alerts.*`.
    public var alertConfiguration: AlertSink.Configuration {
        let l = alerts.level, o = alerts.onset
        return AlertSink.Configuration(
            level: .init(enabled: l.enabled, weighting: LevelWeighting(l.weighting), thresholdDB: l.thresholdDB,
                         minDurationMs: l.minDurationMs, hysteresisDB: l.hysteresisDB, rearmMs: l.rearmMs),
            onset: .init(enabled: o.enabled, minStrength: o.minStrength, minIntervalMs: o.minIntervalMs,
                         maxPerMinute: o.maxPerMinute))
    }

    /// `budgets.*` (already the tracker's configuration type).
    public var latencyConfiguration: LatencyTracker.Configuration { budgets }

    /// `metrics.*`.
    public var metricsConfiguration: MetricsSink.Configuration {
        var c = MetricsSink.Configuration(enabled: metrics.enabled, listen: metrics.listen, textfile: metrics.textfile,
                                          textfileIntervalSeconds: metrics.textfileIntervalSeconds)
        c.constantLabels = metrics.labels
        return c
    }

    /// `mqtt.*` with what the sink takes from elsewhere: the instance (`$EARSHOT_INSTANCE`, as the metrics
    /// label), the rolling windows and weighting (for Home Assistant discovery) and the version.
    public func mqttConfiguration(environment: [String: String]) -> MQTTSink.Configuration {
        var c = mqtt
        c.instance = environment["EARSHOT_INSTANCE"].flatMap { $0.isEmpty ? nil : $0 } ?? "earshot"
        c.windowsSeconds = rolling.windowsSeconds
        c.weighting = alerts.level.weighting.rawValue
        c.version = EarshotVersion.string
        return c
    }

    /// `clips.*` with the file-name instance (`$EARSHOT_INSTANCE`, as the metrics label).
    public func clipsConfiguration(environment: [String: String]) -> ClipSink.Configuration {
        var c = clips
        c.instance = environment["EARSHOT_INSTANCE"].flatMap { $0.isEmpty ? nil : $0 } ?? "earshot"
        return c
    }
    /// Seconds of the pipeline's clip tap (``LivePipeline``'s `clipTapSeconds`): 0 with clips off.
    public var clipTapSeconds: Double { clips.directory == nil ? 0 : ClipSink.Configuration.tapSeconds }

    /// The ranges of the keys the daemon itself owns (no library type holds them).
    public enum DaemonLimits {
        /// `capture.ring_seconds` (the capture → DSP sample ring of ``LivePipeline``).
        public static let ringSeconds = 0.1...120.0
        /// `levels.calibration_db`.
        public static let calibrationDB = -200.0...200.0
        /// `levels.calibration_reference_db`, dB SPL.
        public static let calibrationReferenceDB = 0.0...200.0
        /// `limits.max_memory_mb`.
        public static let maxMemoryMB = 16...16_384
    }

    /// The first problem the libraries' own `validate()` find in the configurations built from this one,
    /// or nil. The per-key schema checks run first (with line-precise messages); this is the authority.
    func libraryProblem() -> LibraryProblem? {
        do throws(AnalyzerConfigError) {
            try analyzerConfig.validate()
        } catch {
            return LibraryProblem(key: Self.yamlKey(analyzerField: error.field),
                                  related: error.related.map { Self.yamlKey(analyzerField: $0) },
                                  message: error.message)
        }
        do throws(CaptureError) {
            try captureConfig.validate()
        } catch {
            var message = error.requested.map { "\($0): " } ?? ""
            message += error.supported ?? "invalid"
            let key = "capture." + (error.parameter ?? "device")
            // The two capture checks that relate two keys.
            let related: String? = switch key {
            case "capture.channel": "capture.channels"
            case "capture.reconnect_max_s" where capture.reconnectMaxSeconds > 0
                && capture.reconnectMaxSeconds <= CaptureConfig.Limits.reconnectMaxMax: "capture.reconnect_initial_s"
            default: nil
            }
            return LibraryProblem(key: key, related: related, message: message)
        }
        let sinks: [(String, () throws(SinkConfigError) -> Void)] = [
            ("socket.", { () throws(SinkConfigError) in try socketConfiguration.validate() }),
            ("rolling.", { () throws(SinkConfigError) in try rollingConfiguration.validate() }),
            ("alerts.", { () throws(SinkConfigError) in try alertConfiguration.validate() }),
            ("metrics.", { () throws(SinkConfigError) in try metricsConfiguration.validate() }),
            ("budgets.", { () throws(SinkConfigError) in try latencyConfiguration.validate() }),
            ("health.", { () throws(SinkConfigError) in try health.validate() }),
            ("mqtt.", { () throws(SinkConfigError) in try mqtt.validate() }),
            ("clips.", { () throws(SinkConfigError) in try clips.validate() }),
        ]
        for (prefix, validate) in sinks {
            do throws(SinkConfigError) { try validate() } catch {
                let key = error.field == "backfill_s" ? "rolling.backfill_s" : prefix + error.field
                return LibraryProblem(key: key, related: error.related.map { prefix + $0 }, message: error.message)
            }
        }
        func outside<T: Comparable>(_ v: T, _ r: ClosedRange<T>) -> Bool { !r.contains(v) }
        if outside(capture.ringSeconds, DaemonLimits.ringSeconds) {
            return LibraryProblem(key: "capture.ring_seconds", related: nil, message: "\(formatNumber(capture.ringSeconds)) is out of range: must be between 0.1 and 120")
        }
        if let db = levels.calibrationDB, outside(db, DaemonLimits.calibrationDB) {
            return LibraryProblem(key: "levels.calibration_db", related: nil, message: "\(formatNumber(db)) is out of range: must be between -200 and 200")
        }
        if let db = levels.calibrationReferenceDB, outside(db, DaemonLimits.calibrationReferenceDB) {
            return LibraryProblem(key: "levels.calibration_reference_db", related: nil, message: "\(formatNumber(db)) is out of range: must be between 0 and 200")
        }
        if let date = levels.calibrationDate, CalibrationInfo.unixSeconds(date) == nil {
            return LibraryProblem(key: "levels.calibration_date", related: nil, message: "\"\(date)\" is not a UTC date: write YYYY-MM-DDTHH:MM:SSZ or YYYY-MM-DD")
        }
        if outside(limits.maxMemoryMB, DaemonLimits.maxMemoryMB) {
            return LibraryProblem(key: "limits.max_memory_mb", related: nil, message: "\(limits.maxMemoryMB) is out of range: must be between 16 and 16384")
        }
        // The daemon's own bounds: the live DSP keeps up with at most this many frames per second, and its
        // buffers (sized from all of the above) fit the memory limit.
        if capture.sampleRate > analysis.hop * Self.maxFramesPerSecond {
            return LibraryProblem(key: "analysis.hop", related: "capture.sample_rate",
                                  message: "\(analysis.hop) gives more than \(Self.maxFramesPerSecond) frames per second at capture.sample_rate \(capture.sampleRate)")
        }
        // The daemon's own resource bound (its buffers are sized from all of the above).
        let estimate = memoryEstimate
        if estimate.totalMB > Double(limits.maxMemoryMB), let top = estimate.terms.max(by: { $0.bytes < $1.bytes }) {
            return LibraryProblem(key: top.keys[0], related: "limits.max_memory_mb",
                                  message: "this configuration needs about \(formatNumber(estimate.totalMB.rounded(.up))) MB of buffers, more than limits.max_memory_mb (\(limits.maxMemoryMB))")
        }
        return nil
    }
}
