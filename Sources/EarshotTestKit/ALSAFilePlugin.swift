import EarshotCapture
import Foundation

/// Test helper: an ALSA configuration with a capture PCM backed by the `file` plugin reading raw samples.
///
/// `install()` sets `ALSA_CONFIG_PATH=/usr/share/alsa/alsa.conf:<dir>/asoundrc` and drops libasound's cached
/// global configuration so the next open sees it. The environment is process-wide: use from serialized
/// tests only.
///
/// Behaviour measured with `slave.pcm "null"` (alsa-lib 1.2.8): reads are not paced (as fast as you read),
/// `avail` always equals the buffer size, timestamps are "now", and once `infile` is exhausted reads keep
/// returning full periods without writing the caller's buffer (the null slave does not touch it), so the
/// capture thread zero-fills its byte buffer before each read: past EOF it captures silence.
public struct ALSAFilePlugin: Sendable {
    /// The PCM name to open.
    public let pcmName: String
    public let directory: URL
    public let rawFile: URL
    public let configFile: URL

    /// Writes `bytes` to `<directory>/samples.raw` and an asoundrc defining `pcm.<pcmName>`, followed by
    /// `extraConfig` (more PCM definitions, e.g. a constrained one for error tests).
    public init(directory: URL, bytes: [UInt8], pcmName: String = "testcap", extraConfig: String = "") throws {
        self.pcmName = pcmName
        self.directory = directory
        rawFile = directory.appendingPathComponent("samples.raw")
        configFile = directory.appendingPathComponent("asoundrc")
        try Data(bytes).write(to: rawFile)
        let conf = """
            pcm.\(pcmName) {
                type file
                slave.pcm "null"
                file "/dev/null"
                infile "\(rawFile.path)"
                format "raw"
            }
            \(extraConfig)

            """
        try conf.write(to: configFile, atomically: true, encoding: .utf8)
    }

    /// Points libasound at this configuration (plus the system one) and reloads it.
    public func install() {
        setenv("ALSA_CONFIG_PATH", "/usr/share/alsa/alsa.conf:\(configFile.path)", 1)
        ALSADevices.reloadConfiguration()
    }

    /// Restores the system configuration.
    public static func uninstall() {
        unsetenv("ALSA_CONFIG_PATH")
        ALSADevices.reloadConfiguration()
    }

    /// A fresh temporary directory.
    public static func makeTemporaryDirectory(prefix: String = "earshot-test") throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
