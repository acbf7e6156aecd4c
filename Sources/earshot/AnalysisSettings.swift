import ArgumentParser
import EarshotDaemon

/// The configuration `analyze` and `spectrogram` run a file with: defaults, `--config`, `--set`, and the
/// file's sample rate as `capture.sample_rate`, validated with the same checks as check-config, run and
/// reload — so a conflict names the YAML key to change and where it was set. Prints the error and throws the
/// exit code on failure (65 when the file's rate is what conflicts).
func fileAnalysisSettings(file: String, sampleRate: Int, config: String?, overrides: [String]) throws -> EarshotConfig {
    let rateOrigin = ConfigOrigin.file(path: file == "-" ? "stdin" : file, line: nil)
    do {
        var builder = ConfigBuilder()
        if let config { try builder.applyFile(at: config, required: true) }
        try builder.applyOverrides(overrides)
        try builder.set("capture.sample_rate", to: String(sampleRate), origin: rateOrigin)
        return try builder.validated(.init(checkSystem: false))
    } catch {
        if error.origin == rateOrigin {
            fail("\(error) (the file's sample rate is \(sampleRate) Hz; adjust analysis.* with --set, or resample)")
            throw ExitCode(ExitStatus.dataError)
        }
        fail("\(error)"); throw ExitCode(error.exitCode)
    }
}
