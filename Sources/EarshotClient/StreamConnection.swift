#if canImport(Glibc)
import Glibc
#endif
import EarshotProtocol
import EarshotRealtime

/// A subscription to the daemon's socket that survives daemon restarts: it connects, sends its command lines,
/// splits what arrives into lines, and when the connection is lost (EOF, reset, the socket path gone) it
/// reconnects with exponential backoff (`initialBackoff` doubling to `maxBackoff`) and subscribes again.
///
/// Single-threaded and poll-driven, so a caller can wait on it together with other descriptors (a terminal):
/// put ``fd`` (when ≥ 0) in its `poll` set with a timeout of at most ``pollTimeoutMs()``, then call
/// ``service(readable:)``.
public final class StreamConnection {
    /// What happened during one ``service(readable:)``.
    public enum Event: Equatable, Sendable {
        /// Connected and subscribed (`reconnect`: not the first connection).
        case connected(reconnect: Bool)
        /// One line (without its newline).
        case line([UInt8])
        /// The connection was lost (or could not be made); a retry follows in `retryIn` seconds.
        case disconnected(reason: String, retryIn: Double)
    }

    public let path: String
    public let commands: [[UInt8]]
    public let initialBackoff: Double
    public let maxBackoff: Double
    /// The longest line kept (longer ones are cut there; the rest of the line is dropped).
    public let maxLineBytes: Int
    /// The socket while connected, -1 otherwise.
    public private(set) var fd: Int32 = -1
    /// Successful connections so far.
    public private(set) var connections = 0
    /// Failed attempts since the last successful connection.
    public private(set) var failures = 0
    /// Why the last attempt failed or the connection ended (nil while connected).
    public private(set) var lastError: String?
    var nextAttemptNs: Int64 = 0
    var backoff: Double
    var pending: [UInt8] = []
    var discarding = false
    var chunk = [UInt8](repeating: 0, count: 65_536)

    /// - Parameters:
    ///   - path: the daemon's socket.
    ///   - commands: the command lines to send after each connect (``ProtocolCommand/line()``).
    public init(path: String, commands: [ProtocolCommand], initialBackoff: Double = 0.25, maxBackoff: Double = 5, maxLineBytes: Int = 1 << 20) {
        self.path = path
        self.commands = commands.map { $0.line() }
        self.initialBackoff = initialBackoff
        self.maxBackoff = max(initialBackoff, maxBackoff)
        self.maxLineBytes = maxLineBytes
        backoff = initialBackoff
    }

    deinit { if fd >= 0 { close(fd) } }

    public var isConnected: Bool { fd >= 0 }

    /// Seconds until the next connection attempt (0 while connected).
    public var secondsToRetry: Double {
        fd >= 0 ? 0 : max(0, Double(nextAttemptNs - Clock.monotonicNanoseconds()) / 1e9)
    }

    /// The longest `poll` timeout that does not delay a reconnect (-1: wait for the socket only).
    public func pollTimeoutMs() -> Int32 {
        if fd >= 0 { return -1 }
        return Int32(min(60_000, max(0, (nextAttemptNs - Clock.monotonicNanoseconds()) / 1_000_000 + 1)))
    }

    /// Connects when a retry is due, reads when `readable`, and reports what happened.
    public func service(readable: Bool) -> [Event] {
        var events: [Event] = []
        if fd < 0 {
            guard Clock.monotonicNanoseconds() >= nextAttemptNs else { return events }
            attempt(&events)
            return events
        }
        guard readable else { return events }
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        if n < 0 {
            if errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK { return events }
            lose(String(cString: strerror(errno)), &events)
            return events
        }
        if n == 0 {
            lose("the daemon closed the connection", &events)
            return events
        }
        var start = 0
        for i in 0..<n where chunk[i] == 0x0A {
            append(chunk[start..<i])
            if !discarding { events.append(.line(pending)) }
            pending.removeAll(keepingCapacity: true)
            discarding = false
            start = i + 1
        }
        append(chunk[start..<n])
        return events
    }

    func append(_ bytes: ArraySlice<UInt8>) {
        guard !discarding else { return }
        if pending.count + bytes.count > maxLineBytes {
            pending.append(contentsOf: bytes.prefix(max(0, maxLineBytes - pending.count)))
            discarding = true
        } else {
            pending.append(contentsOf: bytes)
        }
    }

    func attempt(_ events: inout [Event]) {
        let s: Int32
        do { s = try TailClient.connect(path) } catch {
            fail(error.errnoText, &events)
            return
        }
        for line in commands where !sendAll(s, line) {
            let why = String(cString: strerror(errno))
            close(s)
            fail(why, &events)
            return
        }
        fd = s
        pending.removeAll(keepingCapacity: true)
        discarding = false
        events.append(.connected(reconnect: connections > 0))
        connections += 1
        failures = 0
        lastError = nil
        backoff = initialBackoff
    }

    func sendAll(_ s: Int32, _ bytes: [UInt8]) -> Bool {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBufferPointer { send(s, $0.baseAddress! + off, $0.count - off, Int32(MSG_NOSIGNAL)) }
            if n < 0 { if errno == EINTR { continue }; return false }
            off += n
        }
        return true
    }

    func lose(_ reason: String, _ events: inout [Event]) {
        close(fd)
        fd = -1
        backoff = initialBackoff
        fail(reason, &events)
    }

    func fail(_ reason: String, _ events: inout [Event]) {
        failures += 1
        lastError = reason
        let wait = backoff
        backoff = min(maxBackoff, backoff * 2)
        nextAttemptNs = Clock.monotonicNanoseconds() + Int64(wait * 1e9)
        events.append(.disconnected(reason: reason, retryIn: wait))
    }
}
