import ArgumentParser
import EarshotCapture
import EarshotClient
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

    @Argument(help: "The WAV file (or --socket).") var file: String?
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
    @Option(help: "Draw the next --seconds of a running daemon from this socket instead of a file.") var socket: String?
    @Option(help: "With --socket: seconds to collect.") var seconds = 10.0

    func validate() throws {
        guard (PlotOptions.minWidth...PlotOptions.maxSide).contains(width),
              (PlotOptions.minHeight...PlotOptions.maxSide).contains(height) else {
            throw ValidationError("--width must be \(PlotOptions.minWidth)–\(PlotOptions.maxSide) and --height \(PlotOptions.minHeight)–\(PlotOptions.maxSide) pixels")
        }
        guard dbRange.isFinite, dbRange > 0, dbRange <= 300 else { throw ValidationError("--db-range must be in (0, 300] dB") }
        guard from.isFinite, from >= 0, from <= 1e9 else { throw ValidationError("--from must be a number of seconds, 0–1e9") }
        if let to { guard to.isFinite, to > from, to <= 1e9 else { throw ValidationError("--to must be a number of seconds after --from (at most 1e9)") } }
        guard (file == nil) != (socket == nil) else { throw ValidationError("give either a WAV file or --socket PATH") }
        if socket != nil {
            guard seconds.isFinite, seconds > 0, seconds <= 3600 else { throw ValidationError("--seconds must be in (0, 3600]") }
            guard from == 0, to == nil, channel == nil, config == nil, overrides.isEmpty else {
                throw ValidationError("--from/--to/--channel/--config/--set apply to a file; the socket's frames are the daemon's own")
            }
        }
    }

    func run() throws {
        guard let file else { return try runSocket(socket!) }
        guard FileManager.default.fileExists(atPath: file) else { fail("\(file): no such file"); throw ExitCode(ExitStatus.noInput) }
        let wav: WAVFile
        do { wav = try WAVFile(path: file) } catch { fail("\(error)"); throw ExitCode(ExitStatus.dataError) }
        if let channel, channel < 0 || channel >= wav.channels {
            fail("--channel \(channel): \(file) has \(wav.channels) channel(s), numbered from 0"); throw ExitCode(ExitStatus.usage)
        }
        let settings = try fileAnalysisSettings(file: file, sampleRate: wav.sampleRate, config: config, overrides: overrides)
        var ac = settings.analyzerConfig
        if level { ac.levelChannels = AnalyzerConfig.levelChannels(channels: wav.channels, channel: channel) }
        let outputs: AnalyzerOutputs = level ? [.logmel, .levels] : .logmel
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

        let kind = linear ? "linear power, \(ac.binCount) bins" : "log-mel, \(ac.nMels) mels \(SpectrogramPlot.hz(Double(ac.fMin)))–\(SpectrogramPlot.hz(Double(ac.fMax))) Hz"
        try write(collector.grid, title: "\(URL(fileURLWithPath: file).lastPathComponent) — \(kind), \(ac.sampleRate) Hz, n_fft \(ac.nFFT), hop \(ac.hop)",
                  timeLabel: "time (s)", levelUnit: settings.levels.unit, removeOnFailure: !existed)
        if let warning = OfflineAnalysis.sanitizedWarning(file: file, wav: wav, processor: processor) { fail(warning) }
    }

    /// Draws `grid` into `output` and prints where the plot lies.
    func write(_ grid: SpectrogramGrid, title: String, timeLabel: String, levelUnit: String, removeOnFailure: Bool) throws {
        var options = PlotOptions()
        options.width = width
        options.height = height
        options.dbRange = dbRange
        options.showOnsets = onsets
        options.levelLabel = level ? "LAF (\(levelUnit))" : nil
        options.title = title
        options.timeLabel = timeLabel
        do {
            let used = try SpectrogramPlot.writePNG(grid, options: options, to: output)
            print("\(output): \(width)x\(height) PNG, \(grid.frames) frames in \(grid.columns) columns, \(used.summary)")
        } catch {
            if removeOnFailure { unlink(output) }
            fail("\(error)"); throw ExitCode(ExitStatus.ioError)
        }
    }

    /// `--socket`: the next `seconds` of the daemon's frames, collected live.
    func runSocket(_ path: String) throws {
        let existed = FileManager.default.fileExists(atPath: output)
        let probe = open(output, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard probe >= 0 else { fail("\(output): \(String(cString: strerror(errno)))"); throw ExitCode(ExitStatus.ioError) }
        close(probe)
        func bail(_ message: String, _ code: Int32) throws -> Never {
            if !existed { unlink(output) }
            fail(message); throw ExitCode(code)
        }
        let layout = PlotLayout(width: width, height: height, level: level)
        var collector = SocketSpectrogram(seconds: seconds, linear: linear, maxColumns: layout.plot.width, maxRows: layout.plot.height)
        let connection = StreamConnection(path: path, commands: [collector.command])
        // The window plus time for the first frame (a daemon waiting for its device sends none).
        let deadline = Date().addingTimeInterval(seconds + 15)
        var readable = false
        while !collector.isComplete {
            for event in connection.service(readable: readable) {
                switch event {
                case .connected: break
                case .disconnected(let reason, _):
                    try bail(connection.connections == 0
                        ? "\(TailClient.ConnectError(path: path, errnoText: reason))"
                        : "\(path): the connection ended before the window was complete (\(reason))", ExitStatus.unavailable)
                case .line(let line):
                    do { try collector.apply(line: line) } catch { try bail("\(path): \(error)", ExitStatus.unavailable) }
                }
            }
            guard Date() < deadline else {
                try bail("\(path): \(collector.start == nil ? "no frames" : "the window was not complete") within \(Int(seconds + 15)) s (is the capture device delivering?)", ExitStatus.unavailable)
            }
            readable = false
            if connection.fd >= 0 {
                var p = pollfd(fd: connection.fd, events: Int16(POLLIN), revents: 0)
                readable = poll(&p, 1, 200) > 0
            }
        }
        guard let grid = collector.grid, let stream = collector.stream, let start = collector.start else { try bail("no frames", ExitStatus.unavailable) }
        let from = TailClient.LiveView.clock(start)
        let gaps = collector.discontinuities > 0 ? ", \(collector.discontinuities) gap(s)" : ""
        let kind = linear ? "linear power, \(stream.nFFT / 2 + 1) bins" : "log-mel, \(stream.melCentresHz.count) mels"
        if collector.dropped > 0 { fail("warning: the daemon dropped \(collector.dropped) message(s) for this client (it read too slowly)") }
        try write(grid, title: "\(stream.device) via \(URL(fileURLWithPath: path).lastPathComponent) — \(kind), \(stream.sampleRate) Hz, n_fft \(stream.nFFT), hop \(stream.hop)\(gaps)",
                  timeLabel: "time (s) from \(from) (local time)", levelUnit: stream.levelUnit, removeOnFailure: !existed)
    }
}
