#if canImport(Glibc)
import Glibc
#endif
import EarshotPipeline
import EarshotRealtime
@testable import EarshotSinks
import Foundation
import Synchronization
import Testing

/// Hostile clients (issue 9, items 3, 4 and 10) against a real SocketPublisher on a real socket, fed real
/// frames in real time. In the `SocketPublisherTests` suite so they run serialized with the other socket
/// tests (they measure delivery delays).
extension SocketPublisherTests {
    /// `{"op":"subscribe","streams":["rolling"],"backfill_s":600}` repeated to fill one 64 KiB write.
    static func backfillFlood() -> (bytes: [UInt8], commands: Int) {
        let command = Array("{\"op\":\"subscribe\",\"streams\":[\"rolling\"],\"backfill_s\":600}\n".utf8)
        let n = 65_536 / command.count
        return (Array([[UInt8]](repeating: command, count: n).joined()), n)
    }

    /// Publishes `count` rolling lines one second apart, ending now, and waits until the loop kept them.
    func publishRollingHistory(_ env: Env, count: Int) {
        let now = Clock.wallNanoseconds()
        for i in 0..<count {
            let line = Array("{\"type\":\"rolling\",\"window_s\":1,\"i\":\(i),\"pad\":\"\(String(repeating: "x", count: 40))\"}\n".utf8)
            env.publisher.publish(.rolling, line: line, wallNs: now - Int64(count - i) * 1_000_000_000)
        }
    }

    @Test func oneBackfillFloodWriteDoesNotFreezeDelivery() throws {
        let env = try makeEnv(feed: false) { $0.stallLimitSeconds = 60; $0.idleTimeoutSeconds = 60 }
        defer { env.stop() }
        publishRollingHistory(env, count: 600)  // 10 minutes of 1 s windows: each backfill replays 600 lines
        env.feeder.start(realTime: true)
        let good = try TestClient(path: env.path)
        good.send("{\"op\":\"subscribe\",\"streams\":[\"frame\"],\"fields\":[\"laf\"]}\n")
        _ = try #require(good.read(type: "subscribed"))

        // The flooder reads everything it is sent (the most work it can make the server do).
        let flooder = try TestClient(path: env.path)
        _ = try #require(flooder.read(type: "hello"))
        let (flood, commands) = Self.backfillFlood()
        #expect(commands >= 1_100)
        let replies = SharedCount(), replayed = SharedCount()
        let flooderFD = flooder.fd
        let reader = Thread {
            // Counts lines by their first bytes (the flood is ~50 MB: no JSON parsing here).
            let subscribed = Array("{\"type\":\"subscribed\"".utf8), rolling = Array("{\"type\":\"rolling\"".utf8)
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            var carry: [UInt8] = []
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(flooderFD, $0.baseAddress, $0.count, 0) }
                if n <= 0 { return }
                var data = carry
                data.append(contentsOf: buffer[..<n])
                data.withUnsafeBufferPointer { p in
                    var i = 0
                    while i < p.count {
                        guard let nl = memchr(p.baseAddress! + i, 0x0A, p.count - i) else { break }
                        let end = p.baseAddress!.distance(to: nl.assumingMemoryBound(to: UInt8.self))
                        if end - i >= subscribed.count, memcmp(p.baseAddress! + i, subscribed, subscribed.count) == 0 {
                            replies.add(1)
                        } else if end - i >= rolling.count, memcmp(p.baseAddress! + i, rolling, rolling.count) == 0 {
                            replayed.add(1)
                        }
                        i = end + 1
                    }
                    carry = Array(p[i...])
                }
            }
        }
        reader.start()
        flooder.sendBytes(flood)
        // Frames completed before this were waiting for this thread (not for the server): delays are
        // measured from the frames after it on; seq gaps on all of them.
        let measureFrom = Date().timeIntervalSince1970

        // Every frame, in order, each within 50 ms of its last sample, while the flood is served.
        var maxDelay = 0.0, frames = 0, gaps = 0
        var last: Int? = nil
        var late: [String] = []
        var nominalLate = 0  // late against the nominal schedule (includes a feeder the scheduler ran late)
        let completion = env.feeder.completionDelay
        let end = Date().addingTimeInterval(4)
        let goodLines = FrameLineReader(fd: good.fd, pending: good.buffer)
        while Date() < end || replies.load() < commands, Date() < end.addingTimeInterval(30) {
            guard let line = goodLines.next() else { break }
            guard case .frame(let seq, let t) = line else { continue }
            let now = Date().timeIntervalSince1970
            let done = try #require(env.feeder.completedAt(seq: seq))
            if now - (t + completion) > 0.05 { nominalLate += 1 }
            let delay = done < measureFrom ? 0 : now - done
            if delay > 0.05 { late.append("#\(frames):\(Int(delay * 1000))ms") }
            maxDelay = max(maxDelay, delay)
            if let last, seq != last + 1 { gaps += 1 }
            last = seq
            frames += 1
        }
        print("backfill flood: late frames \(late.prefix(20)) (\(late.count)); \(nominalLate) late against the nominal schedule")
        print("backfill flood: \(commands) commands in one write, \(replies.load()) replies, "
              + "\(replayed.load()) lines replayed; good subscriber: \(frames) frames, "
              + "\(gaps) gaps, max delay \(Int(maxDelay * 1000)) ms")
        #expect(frames >= 350)
        #expect(gaps == 0)
        #expect(maxDelay < 0.050, "max per-frame delay \(maxDelay) s")
        // Nothing was skipped: every command got its reply and its whole replay (600 lines each).
        #expect(replies.load() == commands)
        // (If the flooder's own reader fell behind, its queue dropped lines: counted, and only its own.)
        #expect(waitUntil(seconds: 20) { replayed.load() + env.publisher.droppedTotal == commands * 600 },
                "replayed \(replayed.load()) + dropped \(env.publisher.droppedTotal) of \(commands * 600)")
        shutdown(flooder.fd, Int32(SHUT_RDWR))
        while !reader.isFinished { usleep(1_000) }
    }

    /// The socket-fairness test: one client floods 64 KiB writes of subscribe+backfill commands (reading
    /// everything back), 64 connections sit idle, 63 subscribers with distinct `fields` read 512 bytes every
    /// 200 ms. A well-behaved subscriber gets every frame within 50 ms of the push that completed it, the
    /// process RSS (publisher, its queues and these test clients) grows by less than ``fairnessRSSBoundBytes``
    /// (the default `queue_bytes_total`; measured: 35 → 58 MiB) and comes back within 8 MiB once the
    /// others have gone.
    static let fairnessRSSBoundBytes = 64 << 20

    @Test func wellBehavedSubscriberIsServedDuringAFloodAndSlowReaders() throws {
        let env = try makeEnv(feed: false) {
            $0.maxClients = 130
            $0.maxClientsPerUID = 130  // every test client has the same uid; let all 129 others in
            $0.idleTimeoutSeconds = 600
            $0.stallLimitSeconds = 600
        }
        defer { env.stop() }
        publishRollingHistory(env, count: 600)
        env.feeder.start(realTime: true)
        usleep(300_000)
        let rssBefore = residentBytes()
        try #require(rssBefore > 0, "cannot read /proc/self/statm")

        let good = try TestClient(path: env.path)
        good.send("{\"op\":\"subscribe\",\"streams\":[\"frame\",\"onset\"]}\n")
        _ = try #require(good.read(type: "subscribed"))

        var idle: [TestClient] = []
        for _ in 0..<64 { idle.append(try TestClient(path: env.path)) }
        // 63 distinct field sets (subsets of the scalar features, each with laf).
        let scalars = Feature.allCases.filter { $0 != .logmel && $0 != .mfcc && $0 != .laf }
        var slow: [TestClient] = []
        for k in 1...63 {
            var fields = ["laf"]
            for (bit, f) in scalars.enumerated() where k & (1 << bit) != 0 { fields.append(f.rawValue) }
            if k % 2 == 0 { fields.append("logmel") }
            let c = try TestClient(path: env.path)
            c.send("{\"op\":\"subscribe\",\"streams\":[\"frame\",\"rolling\"],\"fields\":[\(fields.map { "\"\($0)\"" }.joined(separator: ","))]}\n")
            slow.append(c)
        }
        let flooder = try TestClient(path: env.path)
        let running = SharedCount(1)
        let floodWrites = SharedCount(), floodBytesRead = SharedCount()
        let flooderFD = flooder.fd
        let slowFDs = slow.map(\.fd)
        let writer = Thread {
            let (flood, _) = Self.backfillFlood()
            while running.load() != 0 {
                var off = 0
                while off < flood.count, running.load() != 0 {
                    let n = flood.withUnsafeBytes { send(flooderFD, $0.baseAddress! + off, $0.count - off, Int32(MSG_NOSIGNAL)) }
                    if n <= 0 { if errno == EINTR || errno == EAGAIN { continue }; return }
                    off += n
                }
                floodWrites.add(1)
            }
        }
        let drainer = Thread {
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while running.load() != 0 {
                let n = buffer.withUnsafeMutableBytes { recv(flooderFD, $0.baseAddress, $0.count, 0) }
                if n > 0 { floodBytesRead.add(n) } else if n == 0 || errno != EAGAIN { return }
            }
        }
        let slowReader = Thread {
            var buffer = [UInt8](repeating: 0, count: 512)
            while running.load() != 0 {
                for fd in slowFDs { _ = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) } }
                usleep(200_000)
            }
        }
        for t in [writer, drainer, slowReader] { t.start() }
        let measureFrom = Date().timeIntervalSince1970  // as above: setting up kept this thread from reading
        let sched0 = threadSchedStats()

        var maxDelay = 0.0, frames = 0, gaps = 0, maxRSS = 0
        var delays: [Double] = []
        var nominalLate = 0  // late against the nominal schedule (includes a feeder the scheduler ran late)
        var last: Int? = nil
        let window = env.feeder.completionDelay
        let end = Date().addingTimeInterval(10)
        let goodLines = FrameLineReader(fd: good.fd, pending: good.buffer)
        while Date() < end, let line = goodLines.next() {
            guard case .frame(let seq, let t) = line else { continue }
            let now = Date().timeIntervalSince1970
            let done = try #require(env.feeder.completedAt(seq: seq))
            if now - (t + window) > 0.05 { nominalLate += 1 }
            let delay = done < measureFrom ? 0 : now - done
            delays.append(delay)
            maxDelay = max(maxDelay, delay)
            if let last, seq != last + 1 { gaps += 1 }
            last = seq
            frames += 1
            if frames % 50 == 0 { maxRSS = max(maxRSS, residentBytes()) }
        }
        maxRSS = max(maxRSS, residentBytes())
        let sched1 = threadSchedStats()
        let schedText = sched1.keys.sorted().compactMap { k -> String? in
            let a = sched1[k]!, b = sched0[k] ?? (0, 0)
            let cpu = (a.cpu - b.cpu) / 1_000_000, wait = (a.wait - b.wait) / 1_000_000
            return cpu + wait < 20 ? nil : "\(k) cpu \(cpu) ms wait \(wait) ms"
        }
        print("fairness: threads over the 10 s: \(schedText.joined(separator: "; "))")
        let clientsDuring = env.publisher.clients
        running.store(0)
        shutdown(flooder.fd, Int32(SHUT_RDWR))
        for t in [writer, drainer, slowReader] { while !t.isFinished { usleep(1_000) } }
        idle = []
        slow = []
        _ = flooder
        #expect(waitUntil { env.publisher.clients == 1 })
        usleep(1_500_000)
        let rssAfter = residentBytes()
        let late = delays.enumerated().filter { $0.element > 0.05 }.map { "#\($0.offset):\(Int($0.element * 1000))ms" }
        delays.sort()
        print("fairness: late frames \(late.prefix(20)) (\(late.count)); \(nominalLate) late against the nominal schedule")
        print("fairness: \(frames) frames, \(gaps) gaps, delay p50 \(Int(delays[delays.count / 2] * 1000)) ms "
              + "max \(Int(maxDelay * 1000)) ms; flood writes \(floodWrites.load()) "
              + "(\(floodBytesRead.load() >> 20) MiB read back); clients \(clientsDuring); "
              + "dropped \(env.publisher.droppedTotal); RSS \(rssBefore >> 20) MiB before, \(maxRSS >> 20) MiB max, "
              + "\(rssAfter >> 20) MiB after the others left")
        #expect(clientsDuring == 129)
        #expect(floodWrites.load() >= 2)
        #expect(frames >= 900)
        #expect(gaps == 0)
        #expect(maxDelay < 0.050, "max per-frame delay \(maxDelay) s")
        #expect(maxRSS - rssBefore < Self.fairnessRSSBoundBytes, "RSS grew \((maxRSS - rssBefore) >> 20) MiB")
        #expect(rssAfter - rssBefore < 8 << 20, "RSS after the clients left: \(rssAfter >> 20) MiB")
    }

    @Test func neverSubscribingConnectionsAreClosedAndDoNotLockOut() throws {
        let env = try makeEnv(feed: false) { $0.idleTimeoutSeconds = 1 }
        defer { env.stop() }
        env.feeder.start(realTime: true)
        // 127 connections that never subscribe. Every test runs as one uid: 64 (the per-uid default) get in,
        // the rest are refused at once.
        var idle: [TestClient] = []
        for _ in 0..<127 { idle.append(try TestClient(path: env.path, receiveTimeoutSeconds: 5)) }
        #expect(waitUntil { env.publisher.connectionsTotal == 127 })
        #expect(env.publisher.refused == 63)
        // Before the timeout a newcomer from the same uid is refused too...
        let early = try TestClient(path: env.path)
        _ = try #require(early.read(type: "hello"))
        let refusal = try #require(early.readObject())
        #expect(refusal["code"] as? String == "too_many_clients")
        #expect((refusal["message"] as? String)?.contains("per uid") == true)
        // ...after it every idle one got `idle_timeout` and EOF, and a new subscriber gets in and gets frames.
        var timedOut = 0
        for c in idle {
            var sawIdle = false
            while let o = c.readObject() { if o["code"] as? String == "idle_timeout" { sawIdle = true } }
            if sawIdle { timedOut += 1 }
            #expect(c.eof)
        }
        #expect(timedOut == 64)
        #expect(env.publisher.idleClosed == 64)
        #expect(waitUntil { env.publisher.clients == 0 })
        let late = try TestClient(path: env.path)
        late.send("{\"op\":\"subscribe\",\"streams\":[\"frame\"],\"fields\":[\"laf\"]}\n")
        _ = try #require(late.read(type: "subscribed"))
        #expect(late.read(type: "frame") != nil)
        // A subscribed client is not idle: still served after the timeout.
        usleep(1_500_000)
        #expect(late.read(type: "frame") != nil)
        #expect(env.publisher.idleClosed == 64)
    }

    @Test func perUIDLimitRefusesWithAReason() throws {
        let env = try makeEnv(feed: false) { $0.maxClientsPerUID = 3 }
        defer { env.stop() }
        let kept = try (0..<3).map { _ in try TestClient(path: env.path) }
        for c in kept { _ = try #require(c.read(type: "hello")) }
        let extra = try TestClient(path: env.path)
        _ = try #require(extra.read(type: "hello"))
        let e = try #require(extra.readObject())
        #expect(e["code"] as? String == "too_many_clients")
        #expect(e["message"] as? String == "uid \(getuid()) has 3 connections (limit 3 per uid)")
        #expect(extra.readLine() == nil, "closed after the error")
        let hello = try #require(TestClient(path: env.path).read(type: "hello"))  // refused, but greeted
        #expect((hello["limits"] as? [String: Any])?["max_clients_per_uid"] as? Int == 3)
        // Slots free up when clients go.
        shutdown(kept[0].fd, Int32(SHUT_RDWR))
        #expect(waitUntil { env.publisher.clients == 2 })
        let again = try TestClient(path: env.path)
        again.send("{\"op\":\"ping\",\"id\":1}\n")
        #expect(again.read(type: "pong")?["id"] as? Int == 1)
    }

    /// The queue behind a long run of unread replies: evicting data must not shift the replies (that made a
    /// flood quadratic). 20,000 replies then 200,000 frames through a 16-message queue.
    @Test func evictionBehindRepliesIsConstantTime() {
        let c = SocketClient(fd: -1, id: 1, maxLineBytes: 1024, nowNs: 0)
        let reply = OutMessage(Array("{\"type\":\"pong\"}\n".utf8), stream: nil)
        let data = OutMessage(Array("{\"type\":\"frame\"}\n".utf8), stream: .frame)
        for _ in 0..<20_000 { c.enqueue(reply, maxMessages: 16, maxBytes: 1 << 30, nowNs: 0) }
        let start = Clock.monotonicNanoseconds()
        var dropped = 0
        for _ in 0..<200_000 { dropped += c.enqueue(data, maxMessages: 16, maxBytes: 1 << 30, nowNs: 0) }
        let seconds = Double(Clock.monotonicNanoseconds() - start) / 1e9
        #expect(dropped == 200_000 - 16)
        #expect(c.dataCount == 16)
        #expect(c.queuedCount == 20_016)
        #expect(c.pendingDropped[.frame] == 200_000 - 16)
        // Shifting 20,000 replies per eviction would be 4·10⁹ moves (minutes); constant time is milliseconds.
        #expect(seconds < 2, "\(seconds) s")
        // Bytes: the global share trims data, never replies.
        #expect(c.trim(toBytes: 0) == 16)
        #expect(c.dataCount == 0 && c.queuedCount == 20_000)
    }

    @Test func commandLineBufferSplitsBoundsAndKeepsOrder() {
        var b = CommandLineBuffer(maxLineBytes: 8)
        func feed(_ s: String) { Array(s.utf8).withUnsafeBytes { b.append($0) } }
        feed("ab\r\ncd\n\nefg")
        #expect(b.hasWholeLine)
        #expect(b.next() == .line(Array("ab".utf8)))
        #expect(b.next() == .line(Array("cd".utf8)))
        #expect(b.next() == .line([]))
        #expect(b.next() == .needMore)
        #expect(!b.hasWholeLine)
        #expect(b.count == 3)
        feed("h\n123456789")
        #expect(b.next() == .line(Array("efgh".utf8)))
        #expect(b.next() == .tooLong(9))
        var c = CommandLineBuffer(maxLineBytes: 4)
        Array("12345\nok\n".utf8).withUnsafeBytes { c.append($0) }
        #expect(c.next() == .tooLong(5))
    }
}

/// `/metrics` against idle connections (issue 9, item 4): a real MetricsHTTPServer on loopback TCP.
@Suite(.serialized) struct MetricsHTTPHardeningTests {
    func connectTCP(_ port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = in_port_t(UInt16(port).bigEndian)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return rc == 0 ? fd : -1
    }

    /// Sends a GET and returns the whole response (until EOF), or nil on timeout/reset.
    func get(_ port: Int) -> String? {
        let fd = connectTCP(port)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let req = Array("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        guard req.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == req.count else { return nil }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 { return nil }
            if n == 0 { break }
            out += buf[..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    func readsEOF(_ fd: Int32) -> Bool {
        var b: UInt8 = 0
        return recv(fd, &b, 1, 0) == 0
    }

    @Test func idleConnectionsDoNotLockOutMetrics() throws {
        let server = try MetricsHTTPServer(listen: "127.0.0.1:0") { Array("earshot_up 1\n".utf8) }
        server.start()
        defer { server.stop() }
        // 16 (the connection limit) idle connections, then 16 more: none of them locks a scrape out.
        var idle = (0..<32).map { _ in connectTCP(server.port) }
        #expect(idle.allSatisfy { $0 >= 0 })
        usleep(200_000)
        let started = Date()
        let response = try #require(get(server.port))
        #expect(response.hasPrefix("HTTP/1.1 200 OK"))
        #expect(response.contains("earshot_up 1"))
        #expect(Date().timeIntervalSince(started) < 1)
        #expect(server.evicted >= 17)
        // And every idle connection is closed by the request timeout (2 s) at the latest.
        let t0 = Date()
        #expect(idle.allSatisfy(readsEOF))
        #expect(Date().timeIntervalSince(t0) < 3.5)
        for fd in idle { close(fd) }
        idle = []
    }

    @Test func peerUIDOfALoopbackClientIsFound() throws {
        let server = try MetricsHTTPServer(listen: "127.0.0.1:0") { [] }
        defer { _ = server }
        let fd = connectTCP(server.port)
        defer { close(fd) }
        let accepted = accept(server.listenFD, nil, nil)
        #expect(accepted >= 0)
        defer { close(accepted) }
        #expect(MetricsHTTPServer.loopbackPeerUID(accepted) == getuid())
    }

    @Test func perUIDLimitEvictsThatUIDsOldestIdleConnection() throws {
        let server = try MetricsHTTPServer(listen: "127.0.0.1:0", maxClientsPerUID: 2) { Array("x 1\n".utf8) }
        server.start()
        defer { server.stop() }
        let first = connectTCP(server.port), second = connectTCP(server.port)
        defer { close(first); close(second) }
        usleep(200_000)
        #expect(get(server.port)?.hasPrefix("HTTP/1.1 200 OK") == true)
        #expect(readsEOF(first), "the oldest idle connection of the uid made room")
        #expect(server.evicted == 1)
    }
}

/// An atomic counter threads can share.
final class SharedCount: Sendable {
    let value: Atomic<Int>
    init(_ initial: Int = 0) { value = Atomic(initial) }
    func add(_ n: Int) { value.add(n, ordering: .relaxed) }
    func load() -> Int { value.load(ordering: .relaxed) }
    func store(_ v: Int) { value.store(v, ordering: .relaxed) }
}

/// Reads a subscriber's lines with little CPU (no JSON parsing): the `seq` and `t` of each frame line, so a
/// starved test thread does not show up as server delay.
final class FrameLineReader {
    let fd: Int32
    private var buffer = [UInt8](repeating: 0, count: 1 << 18)
    private var start = 0, end = 0
    private static let prefix = Array("{\"type\":\"frame\",\"seq\":".utf8)

    /// - Parameter pending: bytes already read from `fd` by another reader.
    init(fd: Int32, pending: [UInt8] = []) {
        self.fd = fd
        if pending.count > buffer.count { buffer += [UInt8](repeating: 0, count: pending.count) }
        buffer.replaceSubrange(0..<pending.count, with: pending)
        end = pending.count
    }

    enum Line { case frame(seq: Int, t: Double), other }

    /// The next line, nil on EOF, error or the socket's receive timeout.
    func next() -> Line? {
        while true {
            let found: Line?? = buffer.withUnsafeMutableBufferPointer { b in
                let base = b.baseAddress!
                guard end > start, let nl = memchr(base + start, 0x0A, end - start) else { return .none }
                let lineEnd = base.distance(to: nl.assumingMemoryBound(to: UInt8.self))
                defer { start = lineEnd + 1 }
                let p = Self.prefix
                guard lineEnd - start > p.count + 8, memcmp(base + start, p, p.count) == 0 else { return .some(.other) }
                base[lineEnd] = 0  // terminate for strtol/strtod
                var after: UnsafeMutablePointer<CChar>? = nil
                let numbers = UnsafeMutableRawPointer(base + start + p.count).assumingMemoryBound(to: CChar.self)
                let seq = strtol(numbers, &after, 10)
                guard let after, strncmp(after, ",\"t\":", 5) == 0 else { return .some(.other) }
                let t = strtod(after + 5, nil)
                return .some(.frame(seq: seq, t: t))
            }
            if let found { return found }
            if start > 0 {
                buffer.withUnsafeMutableBufferPointer { b in
                    _ = memmove(b.baseAddress!, b.baseAddress! + start, end - start)
                }
                end -= start; start = 0
            }
            if end == buffer.count { buffer += [UInt8](repeating: 0, count: buffer.count) }
            let n = buffer.withUnsafeMutableBufferPointer { recv(fd, $0.baseAddress! + end, $0.count - end, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return nil }
            end += n
        }
    }
}

/// Per-thread CPU and run-queue wait (ns) of this process, by thread name (`/proc/self/task/*/schedstat`):
/// shows whether a delay was the scheduler's (a starved thread) or the code's.
func threadSchedStats() -> [String: (cpu: Int, wait: Int)] {
    var out: [String: (cpu: Int, wait: Int)] = [:]
    guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else { return out }
    for t in tasks {
        guard let name = try? String(contentsOfFile: "/proc/self/task/\(t)/comm", encoding: .utf8),
              let stat = try? String(contentsOfFile: "/proc/self/task/\(t)/schedstat", encoding: .utf8) else { continue }
        let f = stat.split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        guard f.count >= 2 else { continue }
        let key = name.trimmingCharacters(in: .whitespacesAndNewlines)
        let old = out[key] ?? (0, 0)
        out[key] = (old.cpu + f[0], old.wait + f[1])
    }
    return out
}
