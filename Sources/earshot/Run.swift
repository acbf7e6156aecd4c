import ArgumentParser
import EarshotDaemon
import EarshotPipeline
import Foundation
import Logging

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the daemon: capture from ALSA, analyze, publish.",
        discussion: """
            Configuration: defaults < the YAML file (--config, else $EARSHOT_CONFIG, else /etc/earshot/earshot.yaml
            if present) < EARSHOT_* environment variables < --set key.path=value < the flags below.
            Exit codes: 78 configuration error, 69 capture device unusable (unknown name, impossible format),
            0 after SIGTERM/SIGINT.
            """)

    @Option(help: "Configuration file.") var config: String?
    @Option(name: .customLong("set"), help: "Override a config key (key.path=value; a value in quotes is a string), repeatable.")
    var overrides: [String] = []
    @Option(help: "ALSA capture device (capture.device), e.g. default, pulse, hw:CARD=Mic,DEV=0.") var device: String?
    @Option(help: "Unix socket path (socket.path).") var socket: String?
    @Flag(help: "Do not serve the Unix socket.") var noSocket = false
    @Flag(help: "Also write every frame as NDJSON to stdout (debugging, pipes).") var stdout = false
    @Option(help: "Format of --stdout: ndjson or csv.") var stdoutFormat: String = "ndjson"
    @Option(help: "Features written by --stdout (comma-separated or all).") var features: String = "all"
    @Flag(help: "With --stdout: add dsp_us (DSP time) and ready_ms (last sample captured → frame ready) to frames.")
    var timing = false
    @Option(help: "Stop after this many seconds.") var duration: Double?
    @Option(help: "Log level (logging.level): trace, debug, info, notice, warning, error, critical.") var logLevel: String?

    func validate() throws { try validateDuration(duration) }

    func run() throws {
        HeapPolicy.applyAtStart(environment: ProcessInfo.processInfo.environment)  // before any thread starts
        var sets = overrides
        // A device or socket named on the command line is a string, always (`--device null` is the ALSA
        // `null` PCM, not YAML null).
        if let device { sets.append(ConfigBuilder.stringOverride("capture.device", device)) }
        if let socket { sets.append(ConfigBuilder.stringOverride("socket.path", socket)) }
        if let logLevel { sets.append("logging.level=\(logLevel)") }
        let settings: EarshotConfig
        var warnings: [String] = []
        do {
            settings = try EarshotConfig.load(configPath: config, overrides: sets, options: .init(checkSystem: !noSocket),
                                              warn: { warnings.append($0) })
        } catch {
            fail("\(error)")
            throw ExitCode(error.exitCode)
        }
        var options = DaemonOptions()
        if stdout {
            guard let f = FrameFormat(rawValue: stdoutFormat) else {
                fail("--stdout-format must be ndjson or csv"); throw ExitCode(ExitStatus.usage)
            }
            options.stdout = f
            do { options.stdoutFeatures = try Feature.parseList(features) } catch {
                fail("--features: \(error)"); throw ExitCode(ExitStatus.usage)
            }
        }
        options.socket = !noSocket
        options.validation = .init(checkSystem: !noSocket)
        options.timing = timing
        options.configPath = config
        options.overrides = sets
        options.configWarnings = warnings
        options.duration = duration
        settings.applyLogging()  // LogLevelSwitch.shared: a reload that changes logging.level applies it
        bootstrapLogging(levelSwitch: .shared)
        let logger = Logger(label: "earshot")
        let daemon: Daemon
        do { daemon = try Daemon(config: settings, options: options, logger: logger) } catch {
            logger.critical("\(error.message)")
            fail(error.message)
            throw ExitCode(error.exitCode)
        }
        let code = daemon.run()
        if code != 0 { throw ExitCode(code) }
    }
}

nonisolated(unsafe) var loggingBootstrapped = false

/// Logs go to stderr; under systemd (`JOURNAL_STREAM`) with `<N>` priority prefixes. The level follows
/// `levelSwitch` (`logging.level`, changed by a reload).
func bootstrapLogging(levelSwitch: LogLevelSwitch) {
    guard !loggingBootstrapped else { return }
    loggingBootstrapped = true
    LoggingSystem.bootstrap { label in JournalLogHandler(label: label, levelSwitch: levelSwitch) }
}

/// `--duration S` of `run` and `demo`: a finite number of seconds ≥ 0 (NaN or inf would mean "forever",
/// which is what leaving the option out says).
func validateDuration(_ duration: Double?) throws {
    if let duration, !(duration.isFinite && duration >= 0 && duration <= 1e9) {
        throw ValidationError("--duration must be a number of seconds, 0–1e9 (leave it out to run until stopped)")
    }
}
