#if canImport(Glibc)
import Glibc
#endif
import EarshotTestKit
import Foundation
import Testing

/// The Debian package `make deb` built (.build/deb/earshot_<version>-<revision>_<arch>.deb; `make test` builds it before
/// `swift test`, and `make deb` fails unless `lintian --fail-on error,warning` passes): its contents, Depends
/// computed from the binary, installed with `dpkg -i` into this machine, `/usr/bin/earshot --version`
/// naming the version and the commit of this checkout, `check-config` of the installed conffile, the
/// `earshot_build_info` metric with the commit, then `dpkg -r` keeping /etc/earshot/earshot.yaml, and a purge
/// to leave the machine as it was. Needs root and dpkg; skipped without the package or root unless CI=true.
@Suite(.serialized)
struct DebianPackageTests {
    static let isCI = ProcessInfo.processInfo.environment["CI"] == "true"
    static var version: String? {
        let source = EarshotBinary.packageRoot.appendingPathComponent("Sources/EarshotDaemon/Version.swift")
        guard let text = try? String(contentsOf: source, encoding: .utf8),
              let r = text.range(of: #"static let string = "[^"]+""#, options: .regularExpression) else { return nil }
        return String(text[r].split(separator: "\"")[1])
    }
    static var debPath: String? {
        let dir = EarshotBinary.packageRoot.appendingPathComponent(".build/deb")
        guard let version, let files = try? FileManager.default.contentsOfDirectory(atPath: dir.path) else { return nil }
        return files.first { $0.hasPrefix("earshot_\(version)-") && $0.hasSuffix(".deb") }.map { dir.appendingPathComponent($0).path }
    }
    static let enabled = isCI || (debPath != nil && getuid() == 0)

    /// Runs a tool to completion (≤ `timeout` s); stdout + stderr.
    @discardableResult
    static func run(_ tool: String, _ args: [String], timeout: Double = 120, env: [String: String] = [:]) throws
        -> (status: DaemonProcess.Termination?, out: String)
    {
        let exe = try #require(tool.hasPrefix("/") ? tool : Subprocess.which(tool), "\(tool) is not installed")
        var e = baseChildEnvironment()
        e["DEBIAN_FRONTEND"] = "noninteractive"
        for (k, v) in env { e[k] = v }
        let p = try DaemonProcess(executable: exe, arguments: args, environment: e)
        let t = p.wait(timeout: timeout)
        if t == nil { p.killAndReap() }
        return (t, p.stdout + p.stderr)
    }

    /// The commit this checkout stamps into a build (scripts/git-commit-stamp.sh), or nil outside git.
    static func checkoutCommit() throws -> String? {
        guard Subprocess.which("git") != nil else { return nil }
        let root = EarshotBinary.packageRoot.path
        let (s, out) = try run("git", ["-c", "safe.directory=*", "-C", root, "rev-parse", "--short=12", "HEAD"])
        guard s == .exited(0) else { return nil }
        return out.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test(.enabled(if: enabled, "no .build/deb/earshot_*.deb (make deb) or not root (CI=true fails instead)"))
    func packageInstallsRunsAndRemovesKeepingTheConffile() throws {
        try #require(getuid() == 0, "installing a package needs root")
        let deb = try #require(Self.debPath, "no .build/deb/earshot_<version>-<revision>_<arch>.deb: run `make deb` first (make test does)")
        let version = try #require(Self.version)
        // Never touch a real installation.
        let (pre, preOut) = try Self.run("dpkg-query", ["-W", "-f", "${Status}\\n", "earshot"])
        try #require(pre != .exited(0) || !preOut.contains("installed") || preOut.contains("not-installed"),
                     "an earshot package is already installed here: \(preOut)")
        try #require(!FileManager.default.fileExists(atPath: "/etc/earshot/earshot.yaml"),
                     "/etc/earshot/earshot.yaml exists (a make install?): not overwriting it")

        // Control fields: version, architecture, Depends from dpkg-shlibdeps (ALSA and FFTW at least).
        let (fs, fields) = try Self.run("dpkg-deb", ["-f", deb, "Version", "Architecture", "Depends", "Recommends"])
        #expect(fs == .exited(0), "\(fields)")
        #expect(fields.contains("Version: \(version)-"), "\(fields)")
        #expect(fields.contains("libasound2") && fields.contains("libfftw3-single3") && fields.contains("libc6 (>="), "\(fields)")
        // Opened with dlopen (not NEEDED, so dpkg-shlibdeps cannot see them): recommended explicitly.
        #expect(fields.contains("Recommends: systemd, libmosquitto1 (>= 2.0), libcairo2 (>= 1.10)"), "\(fields)")
        let (cs, contents) = try Self.run("dpkg-deb", ["-c", deb])
        #expect(cs == .exited(0))
        for path in ["./usr/bin/earshot", "./lib/systemd/system/earshot.service", "./lib/systemd/system/earshot@.service",
                     "./lib/systemd/system/earshot.socket", "./usr/lib/sysusers.d/earshot.conf", "./usr/lib/tmpfiles.d/earshot.conf",
                     "./etc/earshot/earshot.yaml", "./usr/share/doc/earshot/copyright", "./usr/share/doc/earshot/changelog.Debian.gz",
                     "./usr/share/doc/earshot/README.md", "./usr/share/doc/earshot/examples/onnx_live.py",
                     "./usr/share/man/man1/earshot.1.gz", "./usr/share/man/man1/earshot-run.1.gz", "./usr/share/man/man1/earshot-analyze.1.gz",
                     "./usr/share/man/man1/earshot-tail.1.gz", "./usr/share/man/man1/earshot-check-config.1.gz"] {
            #expect(contents.contains(" \(path)\n"), "\(path) not in the package")
        }

        // The earshot user stays after a purge (Debian policy); remove it afterwards if this test made it.
        let userExisted = (try? Self.run("getent", ["passwd", "earshot"]))?.status == .exited(0)
        defer {
            _ = try? Self.run("dpkg", ["--purge", "earshot"])
            if !userExisted {
                _ = try? Self.run("userdel", ["earshot"])
                _ = try? Self.run("groupdel", ["earshot"])
            }
        }
        let (inst, instOut) = try Self.run("dpkg", ["-i", "--force-confdef", "--force-confold", deb], timeout: 300)
        #expect(inst == .exited(0), "dpkg -i: \(instOut)")

        let (vs, vout) = try Self.run("/usr/bin/earshot", ["--version"])
        #expect(vs == .exited(0), "\(vout)")
        #expect(vout.hasPrefix("\(version) (commit "), "\(vout)")
        if let commit = try Self.checkoutCommit() {
            #expect(vout.contains("(commit \(commit)"), "built from \(commit): \(vout)")
        } else {
            #expect(vout.contains("(commit unknown)"), "a build outside git: \(vout)")
        }

        let (ccs, ccOut) = try Self.run("/usr/bin/earshot", ["check-config"])
        #expect(ccs == .exited(0), "check-config: \(ccOut)")
        #expect(ccOut.contains("/etc/earshot/earshot.yaml") || ccOut.contains("capture.device"), "\(ccOut.prefix(1500))")

        // The system user from the maintainer script, primary group audio.
        let (us, uout) = try Self.run("id", ["earshot"])
        #expect(us == .exited(0) && uout.contains("(audio)"), "\(uout)")

        // earshot_build_info carries version and commit (a short run on ALSA's null device, metrics to a file).
        let dir = try makeTemporaryDirectory("earshot-deb")
        defer { try? FileManager.default.removeItem(at: dir) }
        let prom = dir.appendingPathComponent("m.prom").path
        let (rs, rout) = try Self.run("/usr/bin/earshot", [
            "run", "--device", "null", "--no-socket", "--duration", "1", "--set", "metrics.enabled=true",
            "--set", "metrics.listen=null", "--set", "metrics.textfile=\(prom)", "--set", "metrics.textfile_interval_s=0.2",
        ], timeout: 30)
        #expect(rs == .exited(0), "\(rout.suffix(1500))")
        let metrics = (try? String(contentsOfFile: prom, encoding: .utf8)) ?? ""
        let info = metrics.split(separator: "\n").first { $0.hasPrefix("earshot_build_info{") } ?? ""
        #expect(info.contains("version=\"\(version)\"") && info.contains("commit=\""), "\(info)")
        if let commit = try Self.checkoutCommit() { #expect(info.contains("commit=\"\(commit)"), "\(info)") }

        let (rm, rmOut) = try Self.run("dpkg", ["-r", "earshot"], timeout: 120)
        #expect(rm == .exited(0), "dpkg -r: \(rmOut)")
        #expect(!FileManager.default.fileExists(atPath: "/usr/bin/earshot"))
        #expect(!FileManager.default.fileExists(atPath: "/lib/systemd/system/earshot.service"))
        #expect(FileManager.default.fileExists(atPath: "/etc/earshot/earshot.yaml"), "the conffile must stay after dpkg -r")
        let (_, st) = try Self.run("dpkg-query", ["-W", "-f", "${Status}\\n", "earshot"])
        #expect(st.contains("config-files"), "\(st)")

        let (pg, pgOut) = try Self.run("dpkg", ["--purge", "earshot"], timeout: 120)
        #expect(pg == .exited(0), "dpkg --purge: \(pgOut)")
        #expect(!FileManager.default.fileExists(atPath: "/etc/earshot/earshot.yaml"), "purge removes the conffile")
    }
}
