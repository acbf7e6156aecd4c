#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// The MQTT tests need Debian's `mosquitto` and `mosquitto-clients` (and `openssl` for TLS); under CI=true
/// they fail when these are missing instead of being skipped.
let mosquittoAvailable = findExecutable("mosquitto") != nil || FileManager.default.isExecutableFile(atPath: "/usr/sbin/mosquitto")
let mqttTestsEnabled = (mosquittoAvailable && findExecutable("mosquitto_sub") != nil) || ProcessInfo.processInfo.environment["CI"] == "true"

/// A free TCP port on 127.0.0.1 (bound and released; the broker binds it right after).
func freeTCPPort() -> Int { EndToEnd.SupervisorHardening.freePort() }

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
func tcpPortOpen(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = UInt16(port).bigEndian
    return withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
}

/// A real `mosquitto` broker on 127.0.0.1 with a generated configuration, started and stopped by the test.
/// It runs as the test's user (`user`: as root, mosquitto would otherwise switch to `mosquitto` and could
/// not read the test's key files or write its persistence file in the test's directory).
final class MosquittoBroker {
    let dir: URL
    let port: Int
    let configPath: String
    private(set) var process: DaemonProcess?

    /// - Parameter extra: more `mosquitto.conf` lines (password_file, TLS files, …).
    init(dir: URL, port: Int = freeTCPPort(), allowAnonymous: Bool = true, extra: String = "") throws {
        self.dir = dir
        self.port = port
        configPath = dir.appendingPathComponent("mosquitto.conf").path
        try """
            user \(String(cString: getpwuid(getuid())!.pointee.pw_name))
            listener \(port) 127.0.0.1
            allow_anonymous \(allowAnonymous)
            persistence true
            persistence_location \(dir.path)/
            autosave_interval 1
            max_queued_messages 100000
            max_inflight_messages 0
            log_dest stderr
            log_type error
            log_type warning
            log_type notice
            \(extra)
            """.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    static var executable: String {
        findExecutable("mosquitto") ?? "/usr/sbin/mosquitto"
    }

    /// Starts the broker and waits (≤ 10 s) until it accepts connections.
    func start(sourceLocation: SourceLocation = #_sourceLocation) throws {
        let p = try DaemonProcess(executable: Self.executable, arguments: ["-c", configPath], environment: baseChildEnvironment())
        process = p
        let up = waitFor(10) { tcpPortOpen(port) || !p.isRunning }
        try #require(up && p.isRunning, "mosquitto did not start: \(p.stderr)", sourceLocation: sourceLocation)
    }

    /// SIGTERM (mosquitto saves its persistence file) and wait.
    func stop() {
        guard let p = process else { return }
        p.signal(SIGTERM)
        if p.wait(timeout: 10) == nil { p.killAndReap() }
        process = nil
    }

    deinit { stop() }
}

/// One message a subscriber received.
struct MQTTReceived {
    var retained: Bool
    var topic: String
    var payload: String
    var json: [String: Any]? { jsonObject(Array(payload.utf8)) }
}

/// `mosquitto_sub` subscribed to `topics` at QoS 1, printing `retain|topic|payload` lines; `persistentID`
/// makes a persistent session (`-c -i ID`) whose QoS-1 messages the broker keeps while it is away.
final class MQTTSubscriber {
    let process: DaemonProcess

    init(port: Int, topics: [String] = ["#"], persistentID: String? = nil, extra: [String] = []) throws {
        var args = ["-h", "127.0.0.1", "-p", String(port), "-q", "1", "-F", "%r|%t|%p"]
        for t in topics { args += ["-t", t] }
        if let persistentID { args += ["-c", "-i", persistentID] }
        args += extra
        let exe = findExecutable("mosquitto_sub") ?? "/usr/bin/mosquitto_sub"
        process = try DaemonProcess(executable: exe, arguments: args, environment: baseChildEnvironment())
    }

    var messages: [MQTTReceived] {
        process.lines.compactMap { line in
            let parts = line.split(separator: "|", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { return nil }
            return MQTTReceived(retained: parts[0] == "1", topic: String(parts[1]), payload: String(parts[2]))
        }
    }

    func messages(topic: String) -> [MQTTReceived] { messages.filter { $0.topic == topic } }

    func stop() { process.killAndReap() }
    deinit { stop() }
}

/// Runs a tool to completion (≤ 30 s) and requires exit 0.
@discardableResult
func runTool(_ exe: String, _ args: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
    let path = findExecutable(exe) ?? exe
    let p = try DaemonProcess(executable: path, arguments: args, environment: baseChildEnvironment())
    let t = p.wait(timeout: 30)
    try #require(t == .exited(0), "\(exe) \(args.joined(separator: " ")): \(String(describing: t)) \(p.stderr)", sourceLocation: sourceLocation)
    return p.stdout
}

/// A CA and a server certificate for 127.0.0.1 signed by it (openssl), in `dir` with file prefix `name`.
func makeTestCA(in dir: URL, name: String) throws -> (ca: String, cert: String, key: String) {
    let p = dir.appendingPathComponent(name).path
    try runTool("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=earshot-test-ca-\(name)",
                            "-keyout", "\(p)-ca.key", "-out", "\(p)-ca.crt"])
    try runTool("openssl", ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "\(p)-server.key",
                            "-out", "\(p)-server.csr"])
    try "subjectAltName=IP:127.0.0.1,DNS:localhost\n".write(toFile: "\(p)-ext.cnf", atomically: true, encoding: .utf8)
    try runTool("openssl", ["x509", "-req", "-in", "\(p)-server.csr", "-CA", "\(p)-ca.crt", "-CAkey", "\(p)-ca.key",
                            "-CAcreateserial", "-days", "2", "-extfile", "\(p)-ext.cnf", "-out", "\(p)-server.crt"])
    return ("\(p)-ca.crt", "\(p)-server.crt", "\(p)-server.key")
}

/// A TCP relay on 127.0.0.1 in front of a server that delays everything the server sends by
/// `delayFromServer` seconds (a slow or distant broker: its acknowledgements arrive late), one connection at a
/// time is enough for the daemon's MQTT sink. Bytes from the client are forwarded at once.
final class DelayingTCPRelay: @unchecked Sendable {
    let port: Int
    private let listenFD: Int32
    private let target: Int
    private let delay: Double
    private let lock = NSLock()
    private var fds: [Int32] = []
    private var stopped = false

    init(to targetPort: Int, delayFromServer: Double) throws {
        target = targetPort
        delay = delayFromServer
        port = freeTCPPort()
        listenFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(listenFD, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = Self.loopback(port)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listenFD, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(listenFD, 4) == 0 else { close(listenFD); throw POSIXError(.EADDRINUSE) }
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    static func loopback(_ port: Int) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        return addr
    }

    private func acceptLoop() {
        while true {
            let client = accept(listenFD, nil, nil)
            if client < 0 { if errno == EINTR { continue }; return }
            let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = Self.loopback(target)
            let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
            lock.lock()
            let isStopped = stopped
            fds += [client, server]
            lock.unlock()
            guard ok, !isStopped else { shutdown(client, Int32(SHUT_RDWR)); shutdown(server, Int32(SHUT_RDWR)); continue }
            Thread.detachNewThread { [self] in pipe(from: client, to: server, delay: 0) }
            Thread.detachNewThread { [self] in pipe(from: server, to: client, delay: delay) }
        }
    }

    /// Copies until either side closes; each chunk waits `delay` seconds before it is written on.
    private func pipe(from a: Int32, to b: Int32, delay: Double) {
        var buf = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buf.withUnsafeMutableBytes { read(a, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            if delay > 0 { Thread.sleep(forTimeInterval: delay) }
            var off = 0
            while off < n {
                let w = buf.withUnsafeBytes { write(b, $0.baseAddress! + off, n - off) }
                if w < 0 && errno == EINTR { continue }
                guard w > 0 else { shutdown(a, Int32(SHUT_RDWR)); shutdown(b, Int32(SHUT_RDWR)); return }
                off += w
            }
        }
        shutdown(a, Int32(SHUT_RDWR))
        shutdown(b, Int32(SHUT_RDWR))
    }

    func stop() {
        lock.lock()
        stopped = true
        let open = fds
        lock.unlock()
        shutdown(listenFD, Int32(SHUT_RDWR))
        close(listenFD)
        for fd in open { shutdown(fd, Int32(SHUT_RDWR)) }
    }
}
