public import EarshotCapture
public import EarshotDSP
public import EarshotPipeline

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
            return LibraryProblem(key: "capture." + (error.parameter ?? "device"), related: nil, message: message)
        }
        return nil
    }
}
