#if canImport(Glibc)
import Glibc
#endif

/// An error starting the socket publisher; ``code`` is stable, ``message`` names the path or group.
public struct SocketPublisherError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case addressInUse, pathTooLong, notASocket, systemCall, unknownGroup, tooManyConsumers, alreadyStarted
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        /// Another process accepts connections on the path.
        public static let addressInUse = Code(.addressInUse)
        /// The path does not fit in `sockaddr_un.sun_path`.
        public static let pathTooLong = Code(.pathTooLong)
        /// Something that is not a socket exists at the path (it is never removed).
        public static let notASocket = Code(.notASocket)
        /// A system call failed (`errno` in the message).
        public static let systemCall = Code(.systemCall)
        /// `socket.group` does not exist (logged, not fatal).
        public static let unknownGroup = Code(.unknownGroup)
        /// The frame bus has no free consumer slot.
        public static let tooManyConsumers = Code(.tooManyConsumers)
        /// `start` was called twice.
        public static let alreadyStarted = Code(.alreadyStarted)
        public var description: String { "\(base)" }
    }

    public let code: Code
    public let message: String
    public var description: String { message }

    init(_ code: Code, _ message: String) { self.code = code; self.message = message }

    static func errno(_ what: String, _ path: String, _ err: Int32 = Glibc.errno) -> SocketPublisherError {
        SocketPublisherError(.systemCall, "\(what) \(path): \(String(cString: strerror(err)))")
    }
}

/// The listening socket: bound by us, or inherited from systemd socket activation.
struct SocketListener {
    let fd: Int32
    /// The path we bound and must unlink on stop (nil for a systemd socket).
    let ownedPath: String?

    /// Fills a `sockaddr_un` for `path` and calls `body` with it.
    static func withAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) throws(SocketPublisherError) -> R {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity else {
            throw SocketPublisherError(.pathTooLong, "socket path \(path) is empty or longer than \(capacity - 1) bytes")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let len = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1)
        return withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, len) }
        }
    }

    /// The systemd-passed listening socket (fd 3) when `LISTEN_PID` is this process and `LISTEN_FDS` ≥ 1.
    static func systemdSocket() -> Int32? {
        guard let pidText = getenv("LISTEN_PID"), let pid = Int32(String(cString: pidText)), pid == getpid(),
              let fdsText = getenv("LISTEN_FDS"), let n = Int(String(cString: fdsText)), n >= 1
        else { return nil }
        return 3
    }

    /// Binds `path` (replacing a stale socket file), applies `mode` and `group`, listens.
    /// - Returns: the listener and, when the group could not be applied, a warning for the log.
    static func open(path: String, mode: UInt32, group: String?, backlog: Int32 = 128) throws(SocketPublisherError)
        -> (SocketListener, warning: String?)
    {
        if let fd = systemdSocket() {
            let flags = fcntl(fd, F_GETFL)
            guard flags >= 0 else { throw .errno("systemd socket (fd 3) for", path) }
            _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            return (SocketListener(fd: fd, ownedPath: nil), nil)
        }
        try removeStale(path: path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .errno("socket() for", path) }
        let rc = try withAddress(path) { bind(fd, $0, $1) }
        if rc != 0 {
            let err = Glibc.errno
            Glibc.close(fd)
            if err == EADDRINUSE { throw SocketPublisherError(.addressInUse, "another earshot is listening on \(path)") }
            throw .errno("cannot bind", path, err)
        }
        if chmod(path, mode_t(mode)) != 0 {
            let e = SocketPublisherError.errno("cannot chmod", path)
            Glibc.close(fd); unlink(path)
            throw e
        }
        var warning: String? = nil
        if let group {
            switch groupID(named: group) {
            case .some(let gid):
                if chown(path, uid_t.max, gid) != 0 {
                    warning = "cannot chown \(path) to group \(group): \(String(cString: strerror(errno)))"
                }
            case .none:
                warning = "socket group '\(group)' does not exist; \(path) keeps the daemon's group"
            }
        }
        if listen(fd, backlog) != 0 {
            let e = SocketPublisherError.errno("cannot listen on", path)
            Glibc.close(fd); unlink(path)
            throw e
        }
        return (SocketListener(fd: fd, ownedPath: path), warning)
    }

    /// Unlinks `path` if it is a socket nobody accepts on; throws if someone does or if it is not a socket.
    static func removeStale(path: String) throws(SocketPublisherError) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }  // nothing there
        guard st.st_mode & S_IFMT == S_IFSOCK else {
            throw SocketPublisherError(.notASocket, "\(path) exists and is not a socket; not touching it")
        }
        let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard probe >= 0 else { throw .errno("socket() for", path) }
        defer { Glibc.close(probe) }
        let rc = try withAddress(path) { connect(probe, $0, $1) }
        if rc == 0 { throw SocketPublisherError(.addressInUse, "another earshot is listening on \(path)") }
        let err = Glibc.errno
        switch err {
        case ECONNREFUSED:
            if unlink(path) != 0, Glibc.errno != ENOENT { throw .errno("cannot remove stale socket", path) }
        case EAGAIN:  // backlog full: somebody is listening
            throw SocketPublisherError(.addressInUse, "another earshot is listening on \(path)")
        case ENOENT:
            return
        default:
            throw .errno("cannot probe existing socket", path, err)
        }
    }

    static func groupID(named name: String) -> gid_t? {
        if let gid = gid_t(name) { return gid }
        var grp = group()
        var result: UnsafeMutablePointer<group>? = nil
        var buffer = [CChar](repeating: 0, count: 16_384)
        let rc = getgrnam_r(name, &grp, &buffer, buffer.count, &result)
        guard rc == 0, result != nil else { return nil }
        return grp.gr_gid
    }

    /// Closes the descriptor and removes the path we created (never systemd's).
    func close() {
        _ = Glibc.close(fd)
        if let ownedPath { unlink(ownedPath) }
    }
}
