#if canImport(Glibc)
import Glibc
#endif
import EarshotRealtime
import Synchronization

/// Why the metrics HTTP server could not start.
public struct MetricsServerError: Error, CustomStringConvertible, Sendable {
    /// What failed (`socket`, `bind 127.0.0.1:9464`, …).
    public var operation: String
    /// errno, or 0 for a malformed address.
    public var errno: Int32
    public var description: String {
        errno == 0 ? "metrics: \(operation)" : "metrics: \(operation): \(String(cString: strerror(errno)))"
    }
}

/// A minimal HTTP/1.x server for `GET /metrics`, on its own thread (`es-metrics-http`) with a `poll(2)`
/// loop: no NIO, no Foundation.
///
/// Behaviour: one request per connection (`Connection: close`), requests are read until the blank line that
/// ends the headers (partial reads are fine, bodies are ignored), at most ``maxRequestBytes`` (larger → 431)
/// and at most ``clientTimeoutSeconds`` per connection (slower → closed); the request head must arrive within
/// ``requestTimeoutSeconds`` of the connect. `GET`/`HEAD /metrics` (any query string) → 200 with the
/// Prometheus text format; any other path → 404; another method → 405; a line that is not an HTTP request →
/// 400. At most ``maxClients`` connections at once and ``maxClientsPerUID`` per local peer uid (found in
/// `/proc/net/tcp*` for a loopback peer): when a new connection would exceed either, the oldest connection
/// of that scope still waiting for its request is closed to make room (idle connections cannot lock
/// `/metrics` out); if every one is already being answered, the new connection is closed.
/// Responses are written non-blocking with `MSG_NOSIGNAL`, so a client that vanishes cannot kill the daemon.
public final class MetricsHTTPServer: @unchecked Sendable {
    /// The port actually bound (useful with port 0).
    public let port: Int
    public let host: String
    public let maxRequestBytes: Int
    public let maxClients: Int
    public let maxClientsPerUID: Int
    public let clientTimeoutSeconds = 5.0
    public let requestTimeoutSeconds: Double
    let listenFD: Int32
    let wake = EventNotifier()
    let render: @Sendable () -> [UInt8]
    let running = Atomic<Bool>(false)
    var thread: RealtimeThread.Handle?
    let _requests = Atomic<Int>(0)
    let _evicted = Atomic<Int>(0)

    /// Connections closed before their request arrived to make room for a newer one (or refused).
    public var evicted: Int { _evicted.load(ordering: .relaxed) }

    /// Requests answered (any status).
    public var requestsServed: Int { _requests.load(ordering: .relaxed) }

    /// Binds and listens (does not serve until ``start()``).
    /// - Parameters:
    ///   - listen: `host:port`, `[v6addr]:port`; `localhost` means 127.0.0.1; port 0 picks a free one.
    ///   - render: produces the body of `/metrics`; called on the server thread.
    ///   - maxClients, maxClientsPerUID, requestTimeoutSeconds: connection limits (see the type).
    public init(
        listen: String, maxRequestBytes: Int = 8192, maxClients: Int = 16, maxClientsPerUID: Int = 8,
        requestTimeoutSeconds: Double = 2, render: @escaping @Sendable () -> [UInt8]
    ) throws {
        self.maxClients = max(1, maxClients)
        self.maxClientsPerUID = max(1, maxClientsPerUID)
        self.requestTimeoutSeconds = min(max(0.01, requestTimeoutSeconds), 3600)
        guard let (host, port) = Self.parseListen(listen) else {
            throw MetricsServerError(operation: "bad listen address '\(listen)' (want host:port)", errno: 0)
        }
        self.host = host
        self.maxRequestBytes = maxRequestBytes
        self.render = render
        var storage = sockaddr_storage()
        var length: socklen_t
        let family: Int32
        if host.contains(":") {
            family = AF_INET6
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET6, host, &a.sin6_addr) == 1 else {
                throw MetricsServerError(operation: "bad IPv6 address '\(host)'", errno: 0)
            }
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: a, as: sockaddr_in6.self) }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        } else {
            family = AF_INET
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &a.sin_addr) == 1 else {
                throw MetricsServerError(operation: "bad IPv4 address '\(host)'", errno: 0)
            }
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: a, as: sockaddr_in.self) }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        }
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw MetricsServerError(operation: "socket", errno: errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard rc == 0 else {
            let e = errno; close(fd)
            throw MetricsServerError(operation: "bind \(listen)", errno: e)
        }
        guard Glibc.listen(fd, 16) == 0 else {
            let e = errno; close(fd)
            throw MetricsServerError(operation: "listen \(listen)", errno: e)
        }
        var bound = sockaddr_storage()
        length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let boundPort: UInt16 = withUnsafeBytes(of: &bound) { raw in
            family == AF_INET6 ? raw.load(as: sockaddr_in6.self).sin6_port : raw.load(as: sockaddr_in.self).sin_port
        }
        self.port = Int(UInt16(bigEndian: boundPort))
        listenFD = fd
    }

    deinit {
        stop()
        close(listenFD)
    }

    /// Splits `host:port` / `[v6]:port`.
    public static func parseListen(_ s: String) -> (host: String, port: Int)? {
        let host: Substring
        let portText: Substring
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]"), s[s.index(after: close)...].hasPrefix(":") else { return nil }
            host = s[s.index(after: s.startIndex)..<close]
            portText = s[s.index(close, offsetBy: 2)...]
        } else {
            guard let colon = s.lastIndex(of: ":") else { return nil }
            host = s[..<colon]
            portText = s[s.index(after: colon)...]
            if host.contains(":") { return nil }
        }
        guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else { return nil }
        return (String(host), port)
    }

    /// Starts the server thread.
    public func start() {
        guard !running.exchange(true, ordering: .acquiringAndReleasing) else { return }
        thread = RealtimeThread.start(name: "es-metrics-http") { [self] in loop() }.thread
    }

    /// Stops the thread and closes client connections (the listening socket closes on deinit). Idempotent.
    public func stop() {
        guard running.exchange(false, ordering: .acquiringAndReleasing) else { return }
        wake.notify()
        if let thread { RealtimeThread.join(thread) }
        thread = nil
    }

    final class Client {
        let fd: Int32
        var input: [UInt8] = []
        var output: [UInt8] = []
        var written = 0
        var responding = false
        let deadlineNs: Int64
        let requestDeadlineNs: Int64
        let uid: uid_t?
        init(fd: Int32, deadlineNs: Int64, requestDeadlineNs: Int64, uid: uid_t?) {
            self.fd = fd; self.deadlineNs = deadlineNs; self.requestDeadlineNs = requestDeadlineNs; self.uid = uid
        }
    }

    func loop() {
        var clients: [Client] = []
        var fds: [pollfd] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        defer { for c in clients { close(c.fd) } }
        while running.load(ordering: .acquiring) {
            fds.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: wake.fileDescriptor, events: Int16(POLLIN), revents: 0))
            fds.append(pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0))
            for c in clients {
                fds.append(pollfd(fd: c.fd, events: Int16(c.responding ? POLLOUT : POLLIN), revents: 0))
            }
            let n = poll(&fds, nfds_t(fds.count), 500)
            if n < 0 && errno != EINTR { return }
            if fds[0].revents != 0 { wake.consume() }
            var done = Set<Int32>()
            for (i, c) in clients.enumerated() {
                let re = fds[i + 2].revents
                if re == 0 { continue }
                if c.responding {
                    if !flush(c) { done.insert(c.fd) }
                } else if re & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                    let r = buffer.withUnsafeMutableBytes { recv(c.fd, $0.baseAddress, $0.count, 0) }
                    if r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR) { done.insert(c.fd); continue }
                    if r > 0 {
                        c.input.append(contentsOf: buffer[0..<r])
                        if let response = respond(to: c.input) {
                            c.output = response; c.responding = true
                            _requests.add(1, ordering: .relaxed)
                            if !flush(c) { done.insert(c.fd) }
                        }
                    }
                }
            }
            let now = Clock.monotonicNanoseconds()
            for c in clients where now > c.deadlineNs || (!c.responding && now > c.requestDeadlineNs) { done.insert(c.fd) }
            if !done.isEmpty {
                clients.removeAll { c in
                    guard done.contains(c.fd) else { return false }
                    close(c.fd); return true
                }
            }
            if fds[1].revents & Int16(POLLIN) != 0 {
                while true {
                    let fd = accept(listenFD, nil, nil)  // accept4 needs _GNU_SOURCE; set the flags after
                    if fd < 0 { break }
                    _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                    _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                    let uid = Self.loopbackPeerUID(fd)
                    // Over a limit: the oldest connection in that scope still waiting for its request makes
                    // room; if there is none, the new one is closed.
                    if let uid, clients.count(where: { $0.uid == uid }) >= maxClientsPerUID {
                        guard let k = clients.firstIndex(where: { $0.uid == uid && !$0.responding }) else {
                            close(fd); _evicted.add(1, ordering: .relaxed); continue
                        }
                        close(clients.remove(at: k).fd); _evicted.add(1, ordering: .relaxed)
                    }
                    if clients.count >= maxClients {
                        guard let k = clients.firstIndex(where: { !$0.responding }) else {
                            close(fd); _evicted.add(1, ordering: .relaxed); continue
                        }
                        close(clients.remove(at: k).fd); _evicted.add(1, ordering: .relaxed)
                    }
                    clients.append(Client(
                        fd: fd, deadlineNs: now + Int64(clientTimeoutSeconds * 1e9),
                        requestDeadlineNs: now + Int64(requestTimeoutSeconds * 1e9), uid: uid))
                }
            }
        }
    }

    /// The uid owning the other end of an accepted TCP connection when that end is on this host: the
    /// peer's socket is the line of `/proc/net/tcp` (`tcp6`) whose local address is our peer address.
    /// nil when it cannot be found (a remote peer, no procfs).
    static func loopbackPeerUID(_ fd: Int32) -> uid_t? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        guard rc == 0 else { return nil }
        let key: String
        let table: String
        func hex(_ v: UInt32, _ width: Int) -> String {
            let h = String(v, radix: 16, uppercase: true)
            return String(repeating: "0", count: max(0, width - h.count)) + h
        }
        switch Int32(storage.ss_family) {
        case AF_INET:
            let a = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in.self) }
            key = hex(a.sin_addr.s_addr, 8) + ":" + hex(UInt32(UInt16(bigEndian: a.sin_port)), 4)
            table = "/proc/net/tcp"
        case AF_INET6:
            let a = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in6.self) }
            var words = ""
            withUnsafeBytes(of: a.sin6_addr) { raw in
                for k in 0..<4 { words += hex(raw.loadUnaligned(fromByteOffset: 4 * k, as: UInt32.self), 8) }
            }
            key = words + ":" + hex(UInt32(UInt16(bigEndian: a.sin6_port)), 4)
            table = "/proc/net/tcp6"
        default:
            return nil
        }
        guard let f = fopen(table, "r") else { return nil }
        defer { fclose(f) }
        var line: UnsafeMutablePointer<CChar>? = nil
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, f) > 0, let line {
            // "  sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt   uid ..."
            let fields = String(cString: line).split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 7, fields[1] == key else { continue }
            return uid_t(fields[7])
        }
        return nil
    }

    /// Writes what it can; returns false when the connection is finished (all sent, or an error).
    func flush(_ c: Client) -> Bool {
        while c.written < c.output.count {
            let r = c.output.withUnsafeBytes {
                send(c.fd, $0.baseAddress! + c.written, $0.count - c.written, Int32(MSG_NOSIGNAL))
            }
            if r < 0 {
                if errno == EINTR { continue }
                return errno == EAGAIN
            }
            c.written += r
        }
        shutdown(c.fd, Int32(SHUT_WR))
        return false
    }

    /// The full response once `input` holds a complete request head (or is unacceptable), else nil.
    func respond(to input: [UInt8]) -> [UInt8]? {
        guard let end = headEnd(input) else {
            if input.count > maxRequestBytes { return Self.response(431, "Request Header Fields Too Large") }
            // A first line that already cannot be HTTP: answer now rather than wait for more garbage.
            if let nl = input.firstIndex(of: 0x0A), !Self.looksLikeRequestLine(input[..<nl]) {
                return Self.response(400, "Bad Request")
            }
            return nil
        }
        if end > maxRequestBytes { return Self.response(431, "Request Header Fields Too Large") }
        let lineEnd = input.firstIndex(of: 0x0A) ?? end
        let line = input[..<lineEnd]
        guard Self.looksLikeRequestLine(line) else { return Self.response(400, "Bad Request") }
        let parts = line.split(separator: 0x20, omittingEmptySubsequences: true)
        let method = String(decoding: parts[0], as: UTF8.self)
        let target = parts[1].split(separator: 0x3F, maxSplits: 1, omittingEmptySubsequences: false)[0]
        guard method == "GET" || method == "HEAD" else { return Self.response(405, "Method Not Allowed") }
        guard target.elementsEqual("/metrics".utf8) else { return Self.response(404, "Not Found") }
        let body = render()
        var out = Array("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8)
        if method == "GET" { out += body }
        return out
    }

    /// Index just past the `\r\n\r\n` (or `\n\n`) ending the request head.
    func headEnd(_ b: [UInt8]) -> Int? {
        var i = 0
        while i + 1 < b.count {
            if b[i] == 0x0A {
                if b[i + 1] == 0x0A { return i + 2 }
                if b[i + 1] == 0x0D && i + 2 < b.count && b[i + 2] == 0x0A { return i + 3 }
            }
            i += 1
        }
        return nil
    }

    /// `METHOD SP TARGET SP HTTP/x.y` with an uppercase token method and a target starting with `/`.
    static func looksLikeRequestLine(_ line: ArraySlice<UInt8>) -> Bool {
        var l = line
        if l.last == 0x0D { l = l.dropLast() }
        let parts = l.split(separator: 0x20, omittingEmptySubsequences: true)
        guard parts.count == 3, !parts[0].isEmpty, parts[0].count <= 16,
              parts[0].allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }),
              parts[1].first == 0x2F, parts[2].starts(with: "HTTP/".utf8) else { return false }
        return true
    }

    static func response(_ status: Int, _ reason: String) -> [UInt8] {
        let body = "\(status) \(reason)\n"
        return Array("HTTP/1.1 \(status) \(reason)\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)".utf8)
    }
}
