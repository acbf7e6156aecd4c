#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Sends `sd_notify(3)` messages to the service manager, without libsystemd.
///
/// Each message is one `AF_UNIX` `SOCK_DGRAM` datagram to the socket named by `NOTIFY_SOCKET`
/// (a path, or `@name` for the abstract namespace). When `NOTIFY_SOCKET` is absent (not run by
/// systemd, or `Type=simple`) every method is a no-op.
///
/// Thread-safe: all state is immutable after `init`; each send is one non-blocking `sendto(2)` on a
/// socket created once. A send that fails (systemd gone, queue full) is ignored — notification is
/// advisory and must never stall the daemon. Not for the real-time threads (it makes a syscall).
public final class SystemdNotifier: Sendable {
    /// `sockaddr_un` bytes for the notify socket, or nil when notifications are off.
    private let address: [UInt8]?
    private let fd: Int32
    /// Half of `WATCHDOG_USEC` (the interval systemd recommends for pings), or nil when the
    /// watchdog is off or meant for another process (`WATCHDOG_PID`).
    public let watchdogInterval: Duration?
    /// The full `WATCHDOG_USEC` timeout, or nil.
    public let watchdogTimeout: Duration?

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from `environment`.
    /// - Parameters:
    ///   - environment: the process environment (injectable for tests).
    ///   - pid: this process's id, compared with `WATCHDOG_PID`.
    public init(environment: [String: String], pid: Int32 = getpid()) {
        var watchdog: Duration? = nil
        if let usecText = environment["WATCHDOG_USEC"], let usec = UInt64(usecText), usec > 0 {
            let pidMatches = environment["WATCHDOG_PID"].map { Int32($0) == pid } ?? true
            if pidMatches { watchdog = .microseconds(Int64(clamping: usec)) }
        }
        self.watchdogTimeout = watchdog
        self.watchdogInterval = watchdog.map { $0 / 2 }

        guard let socketPath = environment["NOTIFY_SOCKET"], let address = Self.socketAddress(for: socketPath) else {
            self.address = nil
            self.fd = -1
            return
        }
        #if canImport(Glibc)
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        #else
        let fd = socket(AF_UNIX, SOCK_DGRAM, 0)
        #endif
        self.fd = fd
        self.address = fd >= 0 ? address : nil
    }

    /// Reads the current process environment.
    public convenience init() {
        self.init(environment: currentEnvironment())
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    /// Whether `NOTIFY_SOCKET` was set (and a socket could be made).
    public var isEnabled: Bool { address != nil }
    /// Whether systemd expects `WATCHDOG=1` pings from this process.
    public var isWatchdogEnabled: Bool { watchdogInterval != nil }

    /// `READY=1`: startup (or a reload) is complete.
    @discardableResult public func ready(status: String? = nil) -> Bool {
        send("READY=1" + (status.map { "\nSTATUS=" + Self.oneLine($0) } ?? ""))
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (as systemd 253+ requires); send ``ready(status:)`` when done.
    @discardableResult public func reloading() -> Bool {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let usec = UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
        return send("RELOADING=1\nMONOTONIC_USEC=\(usec)")
    }

    /// `STOPPING=1`: shutdown has begun.
    @discardableResult public func stopping() -> Bool {
        send("STOPPING=1")
    }

    /// `STATUS=…`: a one-line health summary shown by `systemctl status` (newlines become spaces).
    @discardableResult public func status(_ line: String) -> Bool {
        send("STATUS=" + Self.oneLine(line))
    }

    /// `WATCHDOG=1`: keep-alive ping. Send it only while frames actually flow.
    @discardableResult public func watchdog() -> Bool {
        send("WATCHDOG=1")
    }

    /// Sends a raw notify message (`KEY=VALUE` lines). Returns whether the datagram was sent;
    /// callers normally ignore the result.
    @discardableResult public func send(_ message: String) -> Bool {
        guard let address, fd >= 0 else { return false }
        var bytes = Array(message.utf8)
        if bytes.isEmpty { bytes = [0x0a] }
        let sent = address.withUnsafeBytes { addr in
            bytes.withUnsafeBytes { buf in
                sendto(fd, buf.baseAddress, buf.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT),
                       addr.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(addr.count))
            }
        }
        return sent == bytes.count
    }

    private static func oneLine(_ s: String) -> String {
        String(s.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }

    /// `sockaddr_un` bytes (family + path, trimmed to the used length) for a `NOTIFY_SOCKET` value.
    static func socketAddress(for socketPath: String) -> [UInt8]? {
        var path = Array(socketPath.utf8)
        guard !path.isEmpty else { return nil }
        if path[0] == UInt8(ascii: "@") {
            path[0] = 0  // abstract namespace: leading NUL, no terminator, length counts exactly
        } else if path[0] != UInt8(ascii: "/") {
            return nil  // only absolute paths and abstract names are valid (sd_notify rejects the rest)
        }
        var addr = sockaddr_un()
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard path.count < capacity || (path[0] == 0 && path.count <= capacity) else { return nil }
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: path)
        }
        let offset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
        let length = offset + path.count + (path[0] == 0 ? 0 : 1)
        return withUnsafeBytes(of: &addr) { Array($0.prefix(length)) }
    }
}
