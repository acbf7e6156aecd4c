import EarshotCapture
import EarshotDSP
import EarshotDaemon
import EarshotSinks

/// Fuzz target body (corpus: Fuzz/corpus/config). Must be total: no trap, no hang, bounded memory, for any bytes.
///
/// The bytes are a configuration file: size bound, anchor/alias and nesting scan, Yams, the per-key checks, the
/// cross-field and memory checks (no system checks: nothing on disk is looked at), then rendering. The first
/// line is also tried as a `--set key=value` override, which exercises the text forms of every value type.
/// Invariant (one configuration model): whatever validates also builds the analyzer and passes every
/// library `validate()` — a configuration check-config accepts never fails later in the daemon.
public func fuzzConfigLoader(_ data: UnsafeRawBufferPointer) {
    guard let text = String(validating: data.bindMemory(to: UInt8.self), as: UTF8.self) else { return }
    var builder = ConfigBuilder()
    do throws(ConfigError) {
        try builder.applyYAML(text, file: "<fuzz>")
        let config = try builder.validated(ConfigValidationOptions(checkSystem: false))
        _ = config.flatDescription
        _ = config.memoryEstimate.totalBytes
        do { try config.analyzerConfig.validate() } catch { fatalError("validated config refused by AnalyzerConfig: \(error)") }
        do { try config.captureConfig.validate() } catch { fatalError("validated config refused by CaptureConfig: \(error)") }
        do { try config.alertConfiguration.validate(); try config.socketConfiguration.validate()
             try config.rollingConfiguration.validate(); try config.metricsConfiguration.validate()
             try config.latencyConfiguration.validate() } catch { fatalError("validated config refused by a sink: \(error)") }
    } catch {
        _ = error.description
    }
    if let firstLine = text.split(separator: "\n", maxSplits: 1).first, firstLine.contains("=") {
        var overrides = ConfigBuilder()
        do throws(ConfigError) {
            try overrides.applyOverrides([String(firstLine)])
            _ = try overrides.validated(ConfigValidationOptions(checkSystem: false))
        } catch {
            _ = error.description
        }
    }
}
