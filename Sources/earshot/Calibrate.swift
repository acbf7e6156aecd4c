import ArgumentParser
import EarshotCapture
import EarshotDaemon
import EarshotDSP
import EarshotPipeline
import Foundation

struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure an acoustic calibrator's tone and compute levels.calibration_db (optionally write it).",
        discussion: """
            With a calibrator on the microphone (e.g. 94 or 114 dB SPL at 1 kHz), opens the capture device with
            the configuration's capture.* settings, EARSHOT_* variables and --set overrides (as `earshot run`
            does; stop the service first if it holds a hw: device), drops --settle seconds, measures --seconds,
            and checks the signal is one steady tone at --frequency (±2 %, level steady within 0.5 dB, no
            full-scale samples, above -80 dBFS, 95 % of the power in the tone). It prints the tone's level
            in dBFS (RMS: a full-scale sine is -3.01 dBFS) and levels.calibration_db = reference - level, so that
            levels read dB SPL = dBFS + calibration_db. With --write it stores levels.calibration_db,
            levels.calibration_date (UTC) and levels.calibration_reference_db in the configuration file,
            keeping its comments and layout (atomic replace, same permissions); reload the service to apply.
            Exit codes: 65 calibration refused (the reason is printed), 69 device unusable, 74 write failed,
            78 configuration error, 64 bad option.
            """)

    @Option(help: "The calibrator's level, dB SPL (e.g. 94 or 114).") var referenceDb: Double
    @Option(help: "The calibrator's frequency, Hz.") var frequency: Double = 1000
    @Option(help: "ALSA capture device (capture.device).") var device: String?
    @Option(help: "Seconds to measure.") var seconds: Double = 3
    @Option(help: "Seconds dropped first (device and signal settling).") var settle: Double = 0.5
    @Option(help: "Configuration file (default: $EARSHOT_CONFIG or /etc/earshot/earshot.yaml).") var config: String?
    @Option(name: .customLong("set"), help: "Override a config key (key.path=value), repeatable.")
    var overrides: [String] = []
    @Flag(help: "Store the result in the configuration file.") var write = false

    func run() throws {
        guard referenceDb.isFinite, EarshotConfig.DaemonLimits.calibrationReferenceDB.contains(referenceDb) else {
            fail("--reference-db must be between 0 and 200 dB SPL"); throw ExitCode(ExitStatus.usage)
        }
        guard seconds.isFinite, (0.5...60).contains(seconds), settle.isFinite, (0...10).contains(settle) else {
            fail("--seconds must be in 0.5…60 and --settle in 0…10"); throw ExitCode(ExitStatus.usage)
        }
        ALSALibraryLog.capture()  // libasound's own error lines (an interrupted read at stop) stay off the terminal
        var sets = overrides
        if let device { sets.append(ConfigBuilder.stringOverride("capture.device", device)) }
        let environment = ProcessInfo.processInfo.environment
        let settings: EarshotConfig
        do {
            settings = try EarshotConfig.load(configPath: config, environment: environment, overrides: sets,
                                              options: .init(checkSystem: false))
        } catch {
            fail("\(error)"); throw ExitCode(error.exitCode)
        }
        let capture = settings.captureConfig
        guard frequency.isFinite, frequency > 0, frequency < Double(capture.sampleRate) / 2 else {
            fail("--frequency must be between 0 and half the sample rate (\(capture.sampleRate / 2) Hz)")
            throw ExitCode(ExitStatus.usage)
        }
        let file = EarshotConfig.configFile(flag: config, environment: environment)
        if write, !FileManager.default.fileExists(atPath: file.path) {
            fail("--write: \(file.path) does not exist; pass --config FILE (e.g. a copy of config/earshot.yaml)")
            throw ExitCode(ExitStatus.config)
        }
        FileHandle.standardError.write(Data("earshot: measuring \(CaptureError.printable(capture.device)) for \(formatted(seconds + settle, 1)) s (\(capture.sampleRate) Hz)…\n".utf8))
        let samples: [Float]
        do { samples = try CaptureTap.record(capture, seconds: seconds, skipSeconds: settle) } catch {
            fail("\(error)"); throw ExitCode(ExitStatus.unavailable)
        }
        let result: ToneCalibration
        do {
            result = try ToneCalibration.measure(samples, sampleRate: capture.sampleRate, expectedHz: frequency, referenceDb: referenceDb)
        } catch {
            fail("calibration refused: \(error)"); throw ExitCode(ExitStatus.dataError)
        }
        let offset = (result.offsetDb * 100).rounded() / 100
        print("tone: \(formatted(result.frequencyHz, 1)) Hz at \(formatted(result.levelDbfs, 2)) dBFS (steady within \(formatted(result.variationDb, 2)) dB, \(formatted(result.toneFraction * 100, 1)) % of the power in the tone, peak \(formatted(result.peak, 3)))")
        print("levels.calibration_db: \(formatted(offset, 2))  (\(formatted(result.levelDbfs, 2)) dBFS reads \(formatted(referenceDb, 1)) dB SPL)")
        if let current = settings.levels.calibrationDB {
            print("current levels.calibration_db \(formatted(current, 2)) reads this tone as \(formatted(result.levelDbfs + current, 2)) dB SPL (\(formatted(current - offset, 2)) dB off)")
        }
        guard write else {
            print("not written (add --write to store it in \(file.path))")
            return
        }
        let date = CalibrationInfo.format(unixSeconds: Int64(Date().timeIntervalSince1970))
        let values: [(key: String, yaml: String)] = [
            ("calibration_db", formatted(offset, 2)), ("calibration_date", "\"\(date)\""),
            ("calibration_reference_db", formatNumber(referenceDb)),
        ]
        do {
            _ = try ConfigFileEditor.edit(path: file.path, section: "levels", values: values) { c in
                c.levels.calibrationDB == Double(formatted(offset, 2)) && c.levels.calibrationDate == date
                    && c.levels.calibrationReferenceDB == referenceDb ? nil : "the new values did not load as written"
            }
        } catch let error as ConfigError {
            fail("--write: \(error)"); throw ExitCode(error.exitCode)
        } catch {
            fail("--write: \(error)"); throw ExitCode(ExitStatus.ioError)
        }
        print("written to \(file.path): levels.calibration_db \(formatted(offset, 2)), calibration_date \(date), calibration_reference_db \(formatNumber(referenceDb)) (reload the service: systemctl reload earshot)")
        for key in ["levels.calibration_db", "levels.calibration_date", "levels.calibration_reference_db"] {
            if let variable = EarshotConfig.environmentVariable(for: key), environment[variable] != nil {
                fail("note: \(variable) is set and overrides the file's \(key)")
            }
            if overrides.contains(where: { $0.hasPrefix(key + "=") }) { fail("note: --set \(key) overrides the file") }
        }
    }
}

/// `x` with `decimals` digits after the point.
func formatted(_ x: Double, _ decimals: Int) -> String { String(format: "%.\(decimals)f", x) }

/// A number as a user writes it (`94`, `94.5`).
func formatNumber(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : String(x) }
