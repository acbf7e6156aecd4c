import ArgumentParser
import EarshotCapture
import EarshotDaemon
import EarshotDSP
import EarshotPipeline
import Foundation

struct Analyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Analyze a WAV file with the live pipeline, as fast as the CPU allows.",
        discussion: """
            Writes one NDJSON object per frame ({"type":"frame",...}) plus onset events ({"type":"onset",...}),
            or CSV with --format csv. Frame times `t` are seconds from the start of the file.
            The file's own sample rate is used; with --sample-rate, a file at another rate is refused (exit 65).
            Reads PCM 16/24/32-bit integer and 32-bit float WAV, up to 256 channels (averaged, or --channel N).
            Float samples that are NaN/infinite are analyzed as 0 and those beyond ±1000 (+60 dBFS) clamped,
            with a warning on stderr giving the counts.
            FILE may be a pipe or FIFO (read in order), or - for stdin; such an input that delivers no bytes
            for --input-timeout seconds (a FIFO nobody writes to) is an error, not a hang.
            Exit codes: 65 unusable input (not PCM, truncated, not WAV, rate mismatch or a rate analysis.* cannot use, input timed out),
            66 missing file, 64 bad option, 78 bad --config.
            """)

    @Argument(help: "The WAV file, a pipe/FIFO, or - for stdin.") var file: String
    @Option(help: "ndjson or csv.") var format: String = "ndjson"
    @Option(help: "Comma-separated features to write (\(Feature.allCases.map(\.rawValue).joined(separator: ",")), or all).")
    var features: String = "all"
    @Option(help: "0-based channel to analyze instead of the average of all channels.") var channel: Int?
    @Option(help: "Require this sample rate (Hz): a file at another rate is refused.") var sampleRate: Int?
    @Option(help: "Take analysis.* and levels.* from this config file.") var config: String?
    @Option(name: .customLong("set"), help: "Override a config key (key.path=value; a value in quotes is a string), repeatable.")
    var overrides: [String] = []
    @Option(name: .shortAndLong, help: "Write to this file instead of stdout.") var output: String?
    @Option(help: "Longest wait (seconds) for bytes from a pipe, FIFO or stdin.") var inputTimeout: Double = WAVFile.defaultTimeout

    func run() throws {
        guard let fmt = FrameFormat(rawValue: format) else {
            fail("--format must be ndjson or csv, not '\(format)'"); throw ExitCode(ExitStatus.usage)
        }
        let selected: Set<Feature>
        do { selected = try Feature.parseList(features) } catch {
            fail("--features: \(error)"); throw ExitCode(ExitStatus.usage)
        }
        guard inputTimeout.isFinite, inputTimeout > 0 else {
            fail("--input-timeout must be a positive number of seconds"); throw ExitCode(ExitStatus.usage)
        }
        guard file == "-" || FileManager.default.fileExists(atPath: file) else {
            fail("\(file): no such file"); throw ExitCode(ExitStatus.noInput)
        }
        let wav: WAVFile
        do {
            wav = file == "-"
                ? try WAVFile(fileDescriptor: STDIN_FILENO, name: "stdin", ownsDescriptor: false, timeout: inputTimeout)
                : try WAVFile(path: file, timeout: inputTimeout)
        } catch {
            fail("\(error)"); throw ExitCode(ExitStatus.dataError)
        }
        if let sampleRate, sampleRate != wav.sampleRate {
            fail("\(file): sample rate \(wav.sampleRate) Hz differs from the required \(sampleRate) Hz; resample it first (e.g. sox \(file) -r \(sampleRate) out.wav) or drop --sample-rate")
            throw ExitCode(ExitStatus.dataError)
        }
        if let channel, channel < 0 || channel >= wav.channels {
            fail("--channel \(channel): \(file) has \(wav.channels) channel(s), numbered from 0")
            throw ExitCode(ExitStatus.usage)
        }
        let settings = try fileAnalysisSettings(file: file, sampleRate: wav.sampleRate, config: config, overrides: overrides)
        var analyzerConfig = settings.analyzerConfig
        // The file's channels (not `capture.*`): 3…64 read whole give the energy mean over them as levels (only
        // decoded and filtered when a level is written).
        if AnalyzerOutputs(features: selected).contains(.levels) {
            analyzerConfig.levelChannels = AnalyzerConfig.levelChannels(channels: wav.channels, channel: channel)
        }
        let analyzer: FrameAnalyzer
        // Compute only what is written (onset strength always; log-mel when asked for or needed by MFCC or the logmel onset function).
        do { analyzer = try FrameAnalyzer(config: analyzerConfig, outputs: AnalyzerOutputs(features: selected)) } catch {
            // Not reached: validated() ran the same checks. Named by the YAML key all the same.
            fail("\(EarshotConfig.yamlKey(analyzerField: error.field)): \(error.message)")
            throw ExitCode(ConfigError.exitCode)
        }
        var fd = STDOUT_FILENO
        if let output {
            fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { fail("\(output): \(String(cString: strerror(errno)))"); throw ExitCode(ExitStatus.ioError) }
        }
        defer { if fd != STDOUT_FILENO { close(fd) } }
        let out = EncodingOutput(
            encoder: settings.frameEncoder(features: selected), format: fmt,
            nMels: analyzerConfig.nMels, nMFCC: analyzerConfig.nMFCC, fileDescriptor: fd)
        let processor = FrameProcessor(analyzer: analyzer, output: out, measureTiming: false)
        do { try OfflineAnalysis.run(wav: wav, channel: channel, processor: processor) } catch {
            out.flush()
            fail("\(error)"); throw ExitCode(ExitStatus.dataError)
        }
        guard out.flush() else {
            if out.writeError == EPIPE { return }
            fail("write failed: \(String(cString: strerror(out.writeError)))"); throw ExitCode(ExitStatus.ioError)
        }
        if let warning = OfflineAnalysis.sanitizedWarning(file: file, wav: wav, processor: processor) { fail(warning) }
    }
}
