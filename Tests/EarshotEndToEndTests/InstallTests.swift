#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

extension EndToEnd {
    /// `make install` lays out binary, units, docs and config under PREFIX/DESTDIR, and never overwrites an
    /// existing configuration (the release build itself is `make install`'s first step; here the copy step
    /// runs with the debug binary).
    @Suite("make install") struct Install {
        @Test func installsFilesAndKeepsExistingConfig() throws {
            let earshot = try EarshotBinary.require()
            let dest = try makeTemporaryDirectory("earshot-install")
            defer { try? FileManager.default.removeItem(at: dest) }
            func make() throws -> (Int32, String) {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                p.arguments = ["make", "-s", "-C", EarshotBinary.packageRoot.path, "install-files",
                               "DESTDIR=\(dest.path)", "PREFIX=/usr", "BIN=\(earshot)"]
                let out = Pipe()
                p.standardOutput = out
                p.standardError = out
                try p.run()
                p.waitUntilExit()
                return (p.terminationStatus, String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
            }
            let (rc, log) = try make()
            #expect(rc == 0, "\(log)")
            let fm = FileManager.default
            let bin = dest.appendingPathComponent("usr/bin/earshot").path
            #expect(fm.isExecutableFile(atPath: bin))
            let unit = try String(contentsOfFile: dest.appendingPathComponent("etc/systemd/system/earshot.service").path, encoding: .utf8)
            #expect(unit.contains("ExecStart=/usr/bin/earshot run --config /etc/earshot/earshot.yaml"))
            #expect(unit.contains("Documentation=file:///usr/share/doc/earshot/README.md"))
            #expect(!unit.contains("/usr/local/"))
            for f in ["etc/systemd/system/earshot@.service", "etc/systemd/system/earshot.socket", "usr/share/doc/earshot/README.md"] {
                #expect(fm.fileExists(atPath: dest.appendingPathComponent(f).path), "\(f)")
            }
            let config = dest.appendingPathComponent("etc/earshot/earshot.yaml")
            let shipped = try String(contentsOf: EarshotBinary.packageRoot.appendingPathComponent("config/earshot.yaml"), encoding: .utf8)
            #expect(try String(contentsOf: config, encoding: .utf8) == shipped)
            // The installed config is valid for the installed binary.
            let check = try DaemonProcess.run(["check-config", config.path, "--quiet", "--set", "socket.path=\(dest.path)/s.sock"])
            #expect(check.termination == .exited(0), "\(check.stderr)")

            try "capture:\n  device: hw:CARD=Mic,DEV=0\n".write(to: config, atomically: true, encoding: .utf8)
            let (rc2, log2) = try make()
            #expect(rc2 == 0)
            #expect(log2.contains("keeping existing"))
            #expect(try String(contentsOf: config, encoding: .utf8) == "capture:\n  device: hw:CARD=Mic,DEV=0\n")
            #expect(fm.fileExists(atPath: config.path + ".example"))
        }
    }
}
