#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

extension EndToEnd {
    /// Issue 10 item 6: `make install` / `make release` install only run-time (build) dependencies, never the
    /// test ones (PulseAudio, NumPy, promtool); the installed binary is stripped; the static user and the
    /// runtime directory come with it.
    @Suite("make install: run-time only, stripped") struct InstallSplit {
        static func make(_ args: [String]) throws -> (Int32, String) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["make", "-C", EarshotBinary.packageRoot.path] + args
            let out = Pipe()
            p.standardOutput = out
            p.standardError = out
            try p.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            return (p.terminationStatus, text)
        }

        @Test func releaseAndInstallDoNotPullTestDependencies() throws {
            for target in ["release", "install", "demo"] {
                let (rc, plan) = try Self.make(["-n", target])
                #expect(rc == 0, "\(plan)")
                #expect(plan.contains("scripts/install-deps.sh build"), "\(target): \(plan)")
                #expect(!plan.contains("install-deps.sh test"), "\(target) installs test dependencies: \(plan)")
            }
            let (rc, plan) = try Self.make(["-n", "test"])
            #expect(rc == 0 && plan.contains("scripts/install-deps.sh test"))
            // The build list itself names no test package.
            let script = try String(contentsOf: EarshotBinary.packageRoot.appendingPathComponent("scripts/install-deps.sh"), encoding: .utf8)
            // BUILD="…" lists one package per line, up to the closing quote.
            let start = try #require(script.range(of: "BUILD=\""))
            let end = try #require(script.range(of: "\"", range: start.upperBound..<script.endIndex))
            let build = Set(script[start.upperBound..<end.lowerBound].split(whereSeparator: \.isWhitespace).map(String.init))
            for pkg in ["pulseaudio", "python3-numpy", "prometheus", "python3", "alsa-utils", "mosquitto", "lintian", "tmux"] {
                #expect(!build.contains(pkg), "\(pkg) in \(build)")
            }
            for pkg in ["libasound2-dev", "libfftw3-dev", "pkg-config", "libmosquitto-dev", "libcairo2-dev"] {
                #expect(build.contains(pkg), "\(pkg) not in \(build)")
            }
        }

        @Test func installedBinaryIsStrippedWithUserAndRuntimeDirectory() throws {
            let earshot = try EarshotBinary.require()
            let dest = try makeTemporaryDirectory("earshot-install-split")
            defer { try? FileManager.default.removeItem(at: dest) }
            let (rc, log) = try Self.make(["-s", "install-files", "DESTDIR=\(dest.path)", "PREFIX=/usr", "BIN=\(earshot)"])
            #expect(rc == 0, "\(log)")
            let bin = dest.appendingPathComponent("usr/bin/earshot").path
            let size = { (p: String) -> Int in (try? FileManager.default.attributesOfItem(atPath: p)[.size] as? Int) ?? -1 }
            #expect(size(bin) > 0 && size(bin) < size(earshot), "installed \(size(bin)) vs built \(size(earshot))")
            // No symbol table: readelf lists no .symtab section.
            if let readelf = findExecutable("readelf") {
                let p = try DaemonProcess(executable: readelf, arguments: ["-S", bin], environment: baseChildEnvironment())
                #expect(p.wait(timeout: 20) == .exited(0))
                #expect(p.stdout.contains(".text") && !p.stdout.contains(".symtab"), "\(p.stdout.prefix(2000))")
            }
            // Still runs.
            let version = try DaemonProcess(executable: bin, arguments: ["--version"], environment: baseChildEnvironment())
            #expect(version.wait(timeout: 20) == .exited(0), "\(version.stderr)")
            for (f, source) in [("usr/lib/sysusers.d/earshot.conf", "systemd/earshot.sysusers.conf"),
                                ("usr/lib/tmpfiles.d/earshot.conf", "systemd/earshot.tmpfiles.conf")] {
                let installed = try String(contentsOf: dest.appendingPathComponent(f), encoding: .utf8)
                let shipped = try String(contentsOf: EarshotBinary.packageRoot.appendingPathComponent(source), encoding: .utf8)
                #expect(installed == shipped, "\(f)")
            }
        }
    }
}
