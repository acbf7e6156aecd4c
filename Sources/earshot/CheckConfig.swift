import EarshotSinks
import ArgumentParser
import EarshotDaemon
import Foundation

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate a configuration file (plus EARSHOT_* variables and --set overrides) without starting.",
        discussion: "Exit 0 and print the effective configuration when valid; exit 78 with FILE:LINE: key: message when not.")

    @Argument(help: "The YAML file (default: $EARSHOT_CONFIG or /etc/earshot/earshot.yaml).") var file: String?
    @Option(name: .customLong("set"), help: "Override a config key (key.path=value; a value in quotes is a string), repeatable.")
    var overrides: [String] = []
    @Flag(help: "Only validate; print nothing on success.") var quiet = false

    func run() throws {
        do {
            // A socket directory systemd creates at start (RuntimeDirectory=, e.g. /run/earshot) may not
            // exist yet: checking the file before the first start is the documented install order.
            let config = try EarshotConfig.load(
                configPath: file, environment: ProcessInfo.processInfo.environment, overrides: overrides,
                options: .init(checkSystem: true, runtimeDirectoryMayBeMissing: true),
                warn: { FileHandle.standardError.write(Data("earshot: warning: \($0)\n".utf8)) })
            if !quiet {
                let directory = (config.socket.path as NSString).deletingLastPathComponent
                if !FileManager.default.fileExists(atPath: directory) {
                    FileHandle.standardError.write(Data(
                        "earshot: note: socket.path: directory \(directory) does not exist yet; systemd creates it (RuntimeDirectory=) when the service starts\n".utf8))
                }
                print(config.flatDescription)
                let source = EarshotConfig.configFile(flag: file, environment: ProcessInfo.processInfo.environment)
                let memory = Int(config.memoryEstimate.totalMB.rounded(.up))
                FileHandle.standardError.write(Data(
                    "earshot: \(source.path): configuration OK (buffers: about \(memory) MB of limits.max_memory_mb \(config.limits.maxMemoryMB))\n".utf8))
            }
        } catch {
            fail("\(error)")
            throw ExitCode(error.exitCode)
        }
    }
}
