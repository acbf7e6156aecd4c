import ArgumentParser
import EarshotCapture
import EarshotDaemon
import EarshotDSP
import EarshotPipeline
import EarshotPlot
import Foundation

struct Spectrogram: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw a WAV file's spectrogram (log-mel, or linear with --linear) as a PNG.",
        discussion: """
            The spectrogram is computed by the same analyzer as `earshot analyze` and the daemon (analysis.*
            from --config/--set): log-mel bands by default, the linear power spectrum (n_fft/2+1 bins) with
            --linear. Colours are the magma map over the top --db-range dB of the picture; the frequency axis
            is in Hz on the scale of the rows (mel-spaced for log-mel, linear for --linear); --onsets marks
            detected onsets above the plot, --level adds the A-weighted Fast level under it.
            Memory is bounded by the picture, not the file: each pixel column keeps the maximum of the frames
            it covers. Exit codes: 64 bad option or empty range, 65 unusable input, 66 missing file,
            74 the PNG cannot be written, 78 bad --config.
            """)

    @Argument(help: "The WAV file.") var file: String
    @Option(name: .shortAndLong, help: "The PNG to write.") var output: String
    @Flag(help: "Linear-frequency power spectrum (n_fft/2+1 bins) instead of log-mel.") var linear = false
    @Option(help: "Start of the range, seconds from the start of the file.") var from: Double = 0
    @Option(help: "End of the range, seconds (default: the end of the file).") var to: Double?
    @Option(help: "Picture width in pixels (\(PlotOptions.minWidth)–\(PlotOptions.maxSide)).") var width = 1200
    @Option(help: "Picture height in pixels (\(PlotOptions.minHeight)–\(PlotOptions.maxSide)).") var height = 600
    @Flag(help: "Mark the detected onsets.") var onsets = false
    @Flag(help: "Draw the A-weighted Fast level (LAF) under the spectrogram.") var level = false
    @Option(help: "dB range of the colour map below the loudest cell.") var dbRange = 80.0
    @Option(help: "0-based channel to analyze instead of the average of all channels.") var channel: Int?
    @Option(help: "Take analysis.* and levels.* from this config file.") var config: String?
    @Option(name: .customLong("set"), help: "Override a config key (key.path=value), repeatable.")
    var overrides: [String] = []

    func validate() throws {
        guard (PlotOptions.minWidth...PlotOptions.maxSide).contains(width),
              (PlotOptions.minHeight...PlotOptions.maxSide).contains(height) else {
            throw ValidationError("--width must be \(PlotOptions.minWidth)–\(PlotOptions.maxSide) and --height \(PlotOptions.minHeight)–\(PlotOptions.maxSide) pixels")
        }
        guard dbRange.isFinite, dbRange > 0, dbRange <= 300 else { throw ValidationError("--db-range must be in (0, 300] dB") }
        guard from.isFinite, from >= 0 else { throw ValidationError("--from must be a number of seconds ≥ 0") }
        if let to { guard to.isFinite, to > from else { throw ValidationError("--to must be a number of seconds after --from") } }
    }

    func run() throws {
        guard FileManager.default.fileExists(atPath: file) else { fail("\(file): no such file"); throw ExitCode(ExitStatus.noInput) }
        let wav: WAVFile
        do { wav = try WAVFile(path: file) } catch { fail("\(error)"); throw ExitCode(ExitStatus.dataError) }
        if let channel, channel < 0 || channel >= wav.channels {
            fail("--channel \(channel): \(file) has \(wav.channels) channel(s), numbered from 0"); throw ExitCode(ExitStatus.usage)
        }
        let settings = try fileAnalysisSettings(file: file, sampleRate: wav.sampleRate, config: config, overrides: overrides)
        let ac = settings.analyzerConfig
        let outputs: AnalyzerOutputs = level ? .levels : .none
        let analyzer: FrameAnalyzer
        do { analyzer = try FrameAnalyzer(config: ac, outputs: outputs) } catch {
            fail("\(EarshotConfig.yamlKey(analyzerField: error.field)): \(error.message)"); throw ExitCode(ConfigError.exitCode)
        }

        // The range and the frames whose centre lies in it.
        let sr = Double(ac.sampleRate)
        let duration = wav.frameCount.map { Double($0) / sr }
        guard let end = to.map({ min($0, duration ?? $0) }) ?? duration else {
            fail("\(file): the length is not in the header; give --to"); throw ExitCode(ExitStatus.usage)
        }
        let totalFrames = wav.frameCount.map { $0 >= ac.nFFT ? ($0 - ac.nFFT) / ac.hop + 1 : 0 } ?? Int.max
        let half = Double(ac.nFFT) / 2
        let first = max(0, Int(((from * sr - half) / Double(ac.hop)).rounded(.up)))
        let last = min(totalFrames, Int(((end * sr - half) / Double(ac.hop)).rounded(.up)))
        guard end > from, last > first else {
            let length = duration.map { " (\(file) is \(SpectrogramPlot.fixed($0, 3)) s long, one frame \(ac.nFFT) samples)" } ?? ""
            fail("the range \(SpectrogramPlot.fixed(from, 3))–\(SpectrogramPlot.fixed(end, 3)) s holds no frame\(length)")
            throw ExitCode(ExitStatus.usage)
        }

        // Fail before the analysis if the PNG cannot be written.
        let existed = FileManager.default.fileExists(atPath: output)
        let probe = open(output, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard probe >= 0 else { fail("\(output): \(String(cString: strerror(errno)))"); throw ExitCode(ExitStatus.ioError) }
        close(probe)

        let layout = PlotLayout(width: width, height: height, level: level)
        let scale = linear ? SpectrogramCollector.linearScale(analyzer) : SpectrogramCollector.melScale(analyzer)
        let grid = SpectrogramGrid(
            scale: scale, start: from, end: end, maxColumns: layout.plot.width, maxRows: layout.plot.height,
            expectedFrames: last - first)
        let collector = SpectrogramCollector(
            analyzer: analyzer, grid: grid, linear: linear, levelOffsetDb: Float(settings.levels.calibrationDB ?? 0))
        let processor = FrameProcessor(analyzer: analyzer, output: collector, measureTiming: false)
        do {
            try OfflineAnalysis.run(
                wav: wav, channel: channel, processor: processor, endSample: Int64((end * sr).rounded(.up)) + Int64(ac.nFFT))
        } catch {
            if !existed { unlink(output) }
            fail("\(error)"); throw ExitCode(ExitStatus.dataError)
        }

        var options = PlotOptions()
        options.width = width
        options.height = height
        options.dbRange = dbRange
        options.showOnsets = onsets
        options.levelLabel = level ? "LAF (\(settings.levels.unit))" : nil
        let kind = linear ? "linear power, \(ac.binCount) bins" : "log-mel, \(ac.nMels) mels \(SpectrogramPlot.hz(Double(ac.fMin)))–\(SpectrogramPlot.hz(Double(ac.fMax))) Hz"
        options.title = "\(URL(fileURLWithPath: file).lastPathComponent) — \(kind), \(ac.sampleRate) Hz, n_fft \(ac.nFFT), hop \(ac.hop)"
        do {
            let used = try SpectrogramPlot.writePNG(collector.grid, options: options, to: output)
            print("\(output): \(width)x\(height) PNG, \(collector.grid.frames) frames in \(collector.grid.columns) columns, \(used.summary)")
        } catch {
            if !existed { unlink(output) }
            fail("\(error)"); throw ExitCode(ExitStatus.ioError)
        }
        let sanitized = processor.sanitizedSamples
        if sanitized.total > 0 {
            fail("warning: \(file): \(sanitized.nonFinite) non-finite sample(s) analyzed as 0, \(sanitized.clamped) beyond ±\(Int(SampleGuard.limit)) clamped")
        }
    }
}
