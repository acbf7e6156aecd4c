#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// Issue 10 item 6: /run/earshot really is 0750 earshot:audio. DynamicUser=yes with
/// RuntimeDirectoryPreserve=yes kept it under /run/private (root only), so the units now run as the static
/// user from systemd/earshot.sysusers.conf and systemd/earshot.tmpfiles.conf creates /run/earshot at boot.
/// Checked here with the real systemd-sysusers and systemd-tmpfiles in a scratch root (chown needs root).
@Suite("systemd runtime directory and user")
struct SystemdPermissionsTests {
    static func unit(_ name: String) throws -> String {
        try String(contentsOf: packageRoot.appendingPathComponent("systemd/\(name)"), encoding: .utf8)
    }

    static func lines(_ text: String) -> [Substring] {
        text.split(separator: "\n").filter { !$0.hasPrefix("#") }
    }

    @Test(arguments: ["earshot.service", "earshot@.service"])
    func staticUserRestartForeverMemoryCap(unit: String) throws {
        let l = Self.lines(try Self.unit(unit))
        #expect(!l.contains { $0.hasPrefix("DynamicUser=") }, "DynamicUser= keeps preserved runtime dirs under /run/private")
        for line in ["User=earshot", "Group=audio", "StartLimitIntervalSec=0", "RuntimeDirectoryMode=0750"] {
            #expect(l.contains(Substring(line)), "\(unit): missing \(line)")
        }
        let memory = l.first { $0.hasPrefix("MemoryMax=") }
        #expect(memory != nil && memory != "MemoryMax=infinity", "\(unit): no memory cap")
        if unit == "earshot@.service" { #expect(l.contains("Environment=EARSHOT_INSTANCE=%i")) }
        if unit == "earshot.service" { #expect(l.contains("RuntimeDirectoryPreserve=yes")) }
        // StartLimitIntervalSec= belongs to [Unit].
        let text = try Self.unit(unit)
        let unitSection = text.range(of: "[Unit]").map { text[$0.upperBound...] }?.prefix { $0 != "[" } ?? ""
        #expect(unitSection.contains("StartLimitIntervalSec=0"))
    }

    @Test(.enabled(if: getuid() == 0 || isCI, "needs root (chown) for systemd-tmpfiles"))
    func sysusersAndTmpfilesMakeRunEarshot0750EarshotAudio() throws {
        try #require(getuid() == 0, "run as root under CI=true")
        let sysusers = try #require(findExecutable("systemd-sysusers"), "systemd-sysusers missing")
        let tmpfiles = try #require(findExecutable("systemd-tmpfiles"), "systemd-tmpfiles missing")
        let root = try TempDir()
        defer { root.cleanUp() }
        try FileManager.default.createDirectory(atPath: root.path + "/etc", withIntermediateDirectories: true)
        _ = try root.write("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
        _ = try root.write("etc/group", "root:x:0:\naudio:x:29:\n")
        let u = try run(sysusers, ["--root=\(root.path)", packageRoot.appendingPathComponent("systemd/earshot.sysusers.conf").path])
        #expect(u.status == 0, "\(u.output)")
        let passwd = try String(contentsOfFile: root.path + "/etc/passwd", encoding: .utf8)
        let user = try #require(passwd.split(separator: "\n").first { $0.hasPrefix("earshot:") }, "\(passwd)")
        let uid = try #require(UInt32(user.split(separator: ":")[2]))
        #expect(uid > 0 && uid < 1000, "a system user: \(user)")
        let group = try String(contentsOfFile: root.path + "/etc/group", encoding: .utf8)
        #expect(group.contains("audio:x:29:earshot"), "earshot in audio: \(group)")

        let t = try run(tmpfiles, ["--root=\(root.path)", "--create", packageRoot.appendingPathComponent("systemd/earshot.tmpfiles.conf").path])
        #expect(t.status == 0, "\(t.output)")
        var st = stat()
        #expect(stat(root.path + "/run/earshot", &st) == 0)
        #expect(st.st_mode & 0o7777 == 0o750, "mode \(String(st.st_mode & 0o7777, radix: 8))")
        #expect(st.st_uid == uid && st.st_gid == 29, "owner \(st.st_uid):\(st.st_gid)")
    }
}
