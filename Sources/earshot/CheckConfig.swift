import ArgumentParser
import EarshotDaemon
import Foundation

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate a configuration file (plus EARSHOT_* variables and --set overrides) without starting.",
        discussion: "Exit 0 and print the effective configuration when valid; exit 78 with FILE:LINE: key: message when not.")

    @Argument(help: "The YAML file (default: $EARSHOT_CONFIG or /etc/earshot/earshot.yaml).") var file: String?
    @Option(name: .customLong("set"), help: "Override a config key (key.path=value), repeatable.")
    var overrides: [String] = []
    @Flag(help: "Only validate; print nothing on success.") var quiet = false

    func run() throws {
        do {
            let config = try EarshotConfig.load(
                configPath: file, environment: ProcessInfo.processInfo.environment, overrides: overrides)
            if !quiet {
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
