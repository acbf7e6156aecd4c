import Foundation
import Testing

@testable import EarshotDaemon

private let systemdAnalyze = findExecutable("systemd-analyze")
private let unitNames = ["earshot.service", "earshot.socket", "earshot@.service"]

/// Returns systemd-analyze, or records a failure under CI=true (where a skip would hide the check).
private func requireSystemdAnalyze() -> String? {
    if let systemdAnalyze { return systemdAnalyze }
    Issue.record("systemd-analyze is not installed (apt-get install systemd); required under CI=true")
    return nil
}

/// Parses "Overall exposure level for UNIT: N.N …".
func overallExposure(in output: String) -> Double? {
    for line in output.split(separator: "\n") where line.contains("Overall exposure level for") {
        guard let colon = line.lastIndex(of: ":") else { continue }
        let rest = line[line.index(after: colon)...].trimmingSpaces
        return Double(rest.prefix { $0.isNumber || $0 == "." })
    }
    return nil
}

@Suite("systemd units", .enabled(if: systemdAnalyze != nil || isCI, "systemd-analyze not installed"))
struct SystemdUnitTests {
    /// `systemd-analyze verify` checks that ExecStart's binary exists. The units name the installed
    /// path /usr/local/bin/earshot, which a build machine does not have, so the test verifies copies in
    /// a temp dir whose ExecStart/ExecReload point at a dummy executable there — every other line is
    /// verified exactly as shipped.
    @Test func verifyPasses() throws {
        guard let analyze = requireSystemdAnalyze() else { return }
        let dir = try TempDir()
        defer { dir.cleanUp() }
        let dummy = try dir.write("earshot", "#!/bin/sh\nexit 0\n")
        #expect(chmod(dummy, 0o755) == 0)
        for name in unitNames {
            let text = try String(contentsOf: packageRoot.appendingPathComponent("systemd/\(name)"), encoding: .utf8)
            _ = try dir.write(name, text.replacingOccurrences(of: "/usr/local/bin/earshot", with: dummy))
        }
        let result = try run(analyze, ["verify"] + unitNames.map { "./" + $0 }, in: dir.path)
        let ours = result.output.split(separator: "\n").filter { $0.contains("earshot") }
        #expect(result.status == 0, "\(result.output)")
        #expect(ours.isEmpty, "\(ours.joined(separator: "\n"))")
    }

    @Test(arguments: ["earshot.service", "earshot@.service"])
    func securityExposureAtMost1_5(unit: String) throws {
        guard let analyze = requireSystemdAnalyze() else { return }
        let path = packageRoot.appendingPathComponent("systemd/\(unit)").path
        let result = try run(analyze, ["security", "--offline=true", path])
        let exposure = try #require(overallExposure(in: result.output), "no exposure line in:\n\(result.output)")
        #expect(exposure <= 1.5, "\(unit) exposure \(exposure):\n\(result.output)")
    }

    @Test func unitsSayWhatTheBriefAsks() throws {
        let service = try String(contentsOf: packageRoot.appendingPathComponent("systemd/earshot.service"), encoding: .utf8)
        for line in ["Type=notify", "NotifyAccess=main", "ExecStart=/usr/local/bin/earshot run --config /etc/earshot/earshot.yaml",
                     "ExecReload=/bin/kill -HUP $MAINPID", "WatchdogSec=10", "Restart=on-failure", "RestartSec=2",
                     "RuntimeDirectory=earshot", "RuntimeDirectoryMode=0750", "DeviceAllow=char-alsa rw",
                     "SupplementaryGroups=audio", "RestartPreventExitStatus=78"] {
            #expect(service.split(separator: "\n").contains(Substring(line)), "missing \(line)")
        }
        let template = try String(contentsOf: packageRoot.appendingPathComponent("systemd/earshot@.service"), encoding: .utf8)
        #expect(template.contains("--config /etc/earshot/%i.yaml --set socket.path=/run/earshot/%i/earshot.sock"))
        #expect(template.contains("RuntimeDirectory=earshot/%i\n"))
        let socket = try String(contentsOf: packageRoot.appendingPathComponent("systemd/earshot.socket"), encoding: .utf8)
        #expect(socket.contains("ListenStream=/run/earshot/earshot.sock\n"))
        #expect(socket.contains("SocketMode=0660\n") && socket.contains("SocketGroup=audio\n"))
        // The socket path in the unit and the config default agree.
        #expect(EarshotConfig.defaults.socket.path == "/run/earshot/earshot.sock")
    }

    @Test func exposureParser() {
        #expect(overallExposure(in: "→ Overall exposure level for earshot.service: 1.2 OK 🙂") == 1.2)
        #expect(overallExposure(in: "nothing") == nil)
    }
}
