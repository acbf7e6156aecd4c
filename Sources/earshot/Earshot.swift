import ArgumentParser
import EarshotDaemon
import Foundation

@main
struct Earshot: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "earshot",
        abstract: "Real-time audio analyzer: ALSA capture → log-mel, levels, onsets → Unix socket, journal, metrics.",
        version: EarshotVersion.long,
        subcommands: [Run.self, Analyze.self, Tail.self, Devices.self, CheckConfig.self, Demo.self, Spectrogram.self, Top.self, Calibrate.self],
        defaultSubcommand: nil)
}

/// sysexits.h codes used by the CLI.
enum ExitStatus {
    static let usage: Int32 = 64       // EX_USAGE
    static let dataError: Int32 = 65   // EX_DATAERR: input file is not usable audio
    static let noInput: Int32 = 66     // EX_NOINPUT
    static let unavailable: Int32 = 69 // EX_UNAVAILABLE: device or service
    static let software: Int32 = 70
    static let ioError: Int32 = 74
    static let config: Int32 = 78      // EX_CONFIG
}

/// Prints `earshot: message` to stderr.
func fail(_ message: String) {
    FileHandle.standardError.write(Data("earshot: \(message)\n".utf8))
}
