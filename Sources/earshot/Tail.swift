import EarshotSinks
import ArgumentParser
import EarshotDaemon
import EarshotClient
import Foundation

struct Tail: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Watch a running daemon: level bar, onsets, alerts (or raw NDJSON with --json).")

    @Option(help: "Socket path (default: socket.path of the configuration, /run/earshot/earshot.sock).") var socket: String?
    @Option(help: "Streams: frame,rolling,onset,alert,status,stats.") var streams: String = "frame,onset,alert,status"
    @Option(help: "Show every Nth frame.") var every: Int = 10
    @Flag(help: "Print the raw NDJSON lines.") var json = false
    @Option(help: "Exit after this many seconds.") var duration: Double?

    func run() throws {
        var path = socket
        if path == nil {
            let env = ProcessInfo.processInfo.environment
            path = (try? EarshotConfig.load(configPath: nil, environment: env, options: .init(checkSystem: false)))?.socket.path
        }
        guard every >= 1 else { fail("--every must be at least 1"); throw ExitCode(ExitStatus.usage) }
        let names = streams.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard !names.contains(where: \.isEmpty) else {
            fail("--streams: empty stream name in '\(streams)'; known: frame, rolling, onset, alert, status, stats, spectrum")
            throw ExitCode(ExitStatus.usage)
        }
        let code = try TailClient.run(
            socketPath: path ?? EarshotConfig.defaults.socket.path,
            streams: names, every: every, json: json, maxSeconds: duration,
            // One line at a time also into a pipe or file (block buffering lost the last lines on SIGINT).
            output: { print($0); fflush(nil) })
        if code != 0 { throw ExitCode(code) }
    }
}
