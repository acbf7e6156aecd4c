import EarshotTestKit
import Foundation

/// The package root (two levels above this file's directory).
let packageRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A fresh temporary directory, removed by the caller with `cleanUp`.
struct TempDir {
    let url: URL
    var path: String { url.path }

    init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("earshot-daemon-tests-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func write(_ name: String, _ text: String) throws -> String {
        let file = url.appendingPathComponent(name)
        try text.write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }

    func cleanUp() {
        try? FileManager.default.removeItem(at: url)
    }
}

/// Runs a program, returning exit status and combined stdout+stderr.
func run(_ executable: String, _ arguments: [String], in directory: String? = nil) throws -> (status: Int32, output: String) {
    try Subprocess.run(executable, arguments, environment: ["SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": ""], in: directory)
}

let isCI = ProcessInfo.processInfo.environment["CI"] == "true"

func findExecutable(_ name: String) -> String? { Subprocess.which(name) }
