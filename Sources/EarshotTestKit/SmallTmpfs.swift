#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A small tmpfs mounted by a test — a genuinely full file system for the disk-full tests — with a filler
/// file that takes the room left and gives it back. Mounting needs root (and a mount namespace that allows
/// it); ``init(at:kib:)`` returns nil otherwise, and the caller fails under CI=true instead of skipping.
public final class SmallTmpfs {
    public let path: String
    private var mounted = true

    /// Mounts a `kib` KiB tmpfs (mode 0700) on the existing empty directory `path`.
    public init?(at path: String, kib: Int) {
        guard getuid() == 0,
              let result = try? Subprocess.run(Subprocess.which("mount") ?? "/bin/mount",
                                               ["-t", "tmpfs", "-o", "size=\(kib)k,mode=0700", "tmpfs", path]),
              result.status == 0 else { return nil }
        self.path = path
    }

    /// Writes `path/name` until the file system refuses (ENOSPC): no whole page is left (a file's last
    /// partial page may still take a few bytes). Returns the bytes written.
    @discardableResult
    public func fill(name: String = "filler") -> Int {
        let fd = open(path + "/" + name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0x78, count: 4096)
        var total = 0
        for size in [4096, 512, 64, 1] {
            while true {
                let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, size) }
                if n <= 0 { break }
                total += n
            }
        }
        return total
    }

    /// Removes the filler: the room comes back.
    public func free(name: String = "filler") { unlink(path + "/" + name) }

    /// Unmounts (lazily, so a process still holding a file there cannot keep it); idempotent.
    public func unmount() {
        guard mounted else { return }
        mounted = false
        _ = try? Subprocess.run(Subprocess.which("umount") ?? "/bin/umount", ["-l", path])
    }

    deinit { unmount() }
}
