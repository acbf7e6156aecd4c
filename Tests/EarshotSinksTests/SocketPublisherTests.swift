#if canImport(Glibc)
import Glibc
#endif
import EarshotPipeline
@testable import EarshotSinks
@testable import EarshotClient
import Foundation
import Logging
import Testing

/// Real FrameBus + FrameProcessor on generated audio, a real socket in a temp dir, real client sockets.
/// Serialized: the fd-count test must not see other tests' sockets.
@Suite(.serialized) struct SocketPublisherTests {
    struct Env {
        let dir: String
        let path: String
        let feeder: AudioFeeder
        let publisher: SocketPublisher
        func stop() {
            publisher.stop()
            feeder.stop()
            rmdir(dir)
        }
    }

    func makeEnv(feed: Bool = true, logger: Logger = testLogger(),
                 _ tweak: (inout SocketPublisher.Configuration) -> Void = { _ in }) throws -> Env {
        let dir = makeTempDir()
        let path = dir + "/s.sock"
        var config = SocketPublisher.Configuration(path: path, mode: 0o600)
        tweak(&config)
        let feeder = try AudioFeeder()
        let publisher = SocketPublisher(configuration: config, logger: logger, daemonVersion: "9.9.9-test")
        try publisher.start(bus: feeder.bus, stream: feeder.info)
        if feed { feeder.start() }
        return Env(dir: dir, path: path, feeder: feeder, publisher: publisher)
    }

    @Test func helloDescribesTheStream() throws {
        let env = try makeEnv(feed: false)
        defer { env.stop() }
        var st = stat()
        #expect(stat(env.path, &st) == 0 && st.st_mode & 0o777 == 0o600)
        let c = try TestClient(path: env.path)
        let hello = try #require(c.readObject())
        #expect(hello["type"] as? String == "hello")
        #expect(hello["protocol"] as? Int == 1)
        #expect(hello["daemon_version"] as? String == "9.9.9-test")
        #expect(hello["sample_rate"] as? Int == 48_000)
        #expect(hello["n_fft"] as? Int == 1024)
        #expect(hello["hop"] as? Int == 480)
        #expect(hello["n_mels"] as? Int == 64)
        #expect(hello["n_mfcc"] as? Int == 13)
        #expect((hello["mel_band_edges_hz"] as? [Double])?.count == 66)
        #expect(hello["level_unit"] as? String == "dBFS")
        #expect(hello["device"] as? String == "test")
        #expect(hello["onset_lookahead_ms"] as? Double == 31.33)
        let features = try #require(hello["features"] as? [[String: Any]])
        #expect(features.compactMap { $0["name"] as? String } == Feature.allCases.map(\.rawValue))
        #expect(features.allSatisfy { ($0["unit"] as? String) != nil && ($0["summary"] as? String) != nil })
        #expect(hello["streams"] as? [String] == ["frame", "rolling", "onset", "alert", "status", "stats", "spectrum"])

        // updateStream (config reload) sends a fresh hello to connected clients.
        var info = env.feeder.info
        info.levelUnit = "dB SPL"
        env.publisher.updateStream(info)
        let again = try #require(c.read(type: "hello"))
        #expect(again["level_unit"] as? String == "dB SPL")
    }

    /// Messages published before a stream change (a rebuild's `reconfigured` alert end, the rolling windows it
    /// closed) are in the old terms and reach the clients before the new `hello`; those published after it
    /// come after it. All three are queued in one critical section here, as when the loop drains the end,
    /// the stream change and a new alert at once (before, the `hello` went out first).
    @Test func messagesBeforeAStreamChangeGoOutBeforeTheNewHello() throws {
        let env = try makeEnv(feed: false)
        defer { env.stop() }
        let c = try TestClient(path: env.path)
        _ = try #require(c.read(type: "hello"))
        c.send("{\"op\":\"subscribe\",\"streams\":[\"alert\"]}\n")
        _ = try #require(c.read(type: "subscribed"))
        var info = env.feeder.info
        info.levelUnit = "dB SPL"
        let end = #"{"type":"alert","alert":"level","state":"end","reason":"reconfigured","n":1}"# + "\n"
        let start = #"{"type":"alert","alert":"level","state":"start","n":2}"# + "\n"
        env.publisher.shared.inbox.withLock { box in
            _ = box.queue(.alert, Array(end.utf8), wallNs: 1, limit: 100)
            box.change(stream: info)
            _ = box.queue(.alert, Array(start.utf8), wallNs: 2, limit: 100)
        }
        env.publisher.shared.wake.notify()
        var order: [String] = []
        while order.count < 3, let m = c.readObject() {
            switch m["type"] as? String {
            case "alert": order.append("alert \(m["n"] as? Int ?? 0)")
            case "hello": order.append("hello \(m["level_unit"] as? String ?? "")")
            default: break
            }
        }
        #expect(order == ["alert 1", "hello dB SPL", "alert 2"])
    }

    @Test func subscribeDeliversEveryFrameInOrderWithOnsets() throws {
        let env = try makeEnv()
        defer { env.stop() }
        let a = try TestClient(path: env.path)
        let b = try TestClient(path: env.path)
        for c in [a, b] { c.send("{\"op\":\"subscribe\",\"streams\":[\"frame\",\"onset\"],\"id\":7}\n") }
        for c in [a, b] {
            let ack = try #require(c.read(type: "subscribed"))
            #expect(ack["id"] as? Int == 7)
            #expect(ack["streams"] as? [String] == ["frame", "onset"])
        }
        var linesA: [Int: [UInt8]] = [:]
        var seqs: [Int] = []
        var onsets = 0
        while seqs.count < 400, let line = a.readLine() {
            let o = try #require((try JSONSerialization.jsonObject(with: Data(line))) as? [String: Any])
            if o["type"] as? String == "onset" { onsets += 1; #expect(o["strength"] as? Double != nil); continue }
            let seq = try #require(o["seq"] as? Int)
            seqs.append(seq)
            linesA[seq] = line
            #expect((o["logmel"] as? [Double])?.count == 64)
            #expect((o["mfcc"] as? [Double])?.count == 13)
            #expect(o["laf"] as? Double != nil)
        }
        #expect(seqs.count == 400)
        #expect(zip(seqs, seqs.dropFirst()).allSatisfy { $1 == $0 + 1 }, "frames must arrive in order without gaps")
        #expect(onsets >= 3, "4 s of audio with a click every 0.3 s")
        // The second client receives the very same bytes (each frame serialized once).
        var same = 0
        while same < 50, let line = b.readLine() {
            if let seq = ((try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any])?["seq"] as? Int,
               let other = linesA[seq], line.starts(with: Array("{\"type\":\"frame\"".utf8)) {
                #expect(other == line)
                same += 1
            }
        }
        #expect(same == 50)
        #expect(env.publisher.droppedTotal == 0)
    }

    @Test func everyAndFieldsFilterFrames() throws {
        let env = try makeEnv()
        defer { env.stop() }
        let c = try TestClient(path: env.path)
        c.send("{\"op\":\"subscribe\",\"streams\":[\"frame\"],\"every\":4,\"fields\":[\"laf\",\"logmel\"]}\n")
        let ack = try #require(c.read(type: "subscribed"))
        #expect(ack["every"] as? Int == 4)
        #expect(ack["fields"] as? [String] == ["laf", "logmel"])
        let d = try TestClient(path: env.path)
        d.send("{\"op\":\"subscribe\",\"streams\":[\"frame\"],\"fields\":[\"rms_dbfs\"]}\n")
        _ = try #require(d.read(type: "subscribed"))
        var seqs: [Int] = []
        while seqs.count < 60, let o = c.readObject() {
            guard o["type"] as? String == "frame" else { continue }
            seqs.append(try #require(o["seq"] as? Int))
            let keys = Set(o.keys).subtracting(["discontinuity", "gap_samples", "cause"])
            #expect(keys == ["type", "seq", "t", "laf", "logmel", "level_unit"])
        }
        #expect(seqs.count == 60)
        #expect(seqs.allSatisfy { $0 % 4 == 0 })
        #expect(zip(seqs, seqs.dropFirst()).allSatisfy { $1 == $0 + 4 })
        let o = try #require(d.read(type: "frame"))
        #expect(Set(o.keys).subtracting(["discontinuity", "gap_samples", "cause"]) == ["type", "seq", "t", "rms_dbfs"])
    }

    /// The I/O thread held up for longer than the whole bus (here: blocked on its inbox lock while 3 buses of
    /// frames are pushed): the frames it lost are owed to each subscriber as `dropped` notices, so received
    /// frames + notified drops = frames made, for a full-rate and an `every: 4` subscriber.
    @Test func framesLostOnTheBusAreReportedToSubscribers() throws {
        let env = try makeEnv(feed: false)
        defer { env.stop() }
        let full = try TestClient(path: env.path), sparse = try TestClient(path: env.path)
        full.send("{\"op\":\"subscribe\",\"streams\":[\"frame\"]}\n")
        sparse.send("{\"op\":\"subscribe\",\"streams\":[\"frame\"],\"every\":4,\"fields\":[\"laf\"]}\n")
        for c in [full, sparse] { _ = try #require(c.read(type: "subscribed")) }
        let p = env.feeder.processor
        let first = p.nextSeq
        let hop = p.config.hop
        env.publisher.shared.inbox.withLock { _ in
            env.publisher.shared.wake.notify()  // the loop wakes and waits for this lock in drainInbox
            usleep(200_000)
            env.feeder.signal.withUnsafeBufferPointer { all in
                for k in 0..<(3 * env.feeder.bus.capacity) {
                    let offset = (k * hop) % (all.count - hop)
                    p.push(UnsafeBufferPointer(rebasing: all[offset..<(offset + hop)]), firstSample: Int64(k * hop),
                           monotonicNs: 0, wallNs: Int64(k * hop) * 20_833)
                }
            }
        }
        let made = Int(p.nextSeq - first)
        for (c, every) in [(full, 1), (sparse, 4)] {
            var frames = 0, notified = 0
            while let o = c.readObject() {
                if o["type"] as? String == "frame" { frames += 1 }
                if o["type"] as? String == "dropped", o["stream"] as? String == "frame" { notified += o["count"] as? Int ?? 0 }
                if frames + notified >= (made + every - 1) / every { break }
            }
            let expected = (Int(p.nextSeq) + every - 1) / every - (Int(first) + every - 1) / every
            #expect(frames + notified == expected, "every \(every): \(frames) frames + \(notified) dropped, \(expected) made")
            #expect(notified > 0)
        }
        #expect(env.publisher.dropped > 0, "the loop did not fall behind the bus")
    }

    @Test func pingPongAndUnsubscribe() throws {
        let env = try makeEnv()
        defer { env.stop() }
        let c = try TestClient(path: env.path)
        _ = try #require(c.read(type: "hello"))
        c.send("{\"op\":\"ping\",\"id\":\"abc\"}\r\n\n  \n{\"op\":\"ping\",\"id\":42}\n")
        let p1 = try #require(c.readObject())
        #expect(p1["type"] as? String == "pong" && p1["id"] as? String == "abc")
        let t = try #require(p1["t"] as? Double)
        #expect(abs(t - Date().timeIntervalSince1970) < 5)
        let p2 = try #require(c.readObject())
        #expect(p2["type"] as? String == "pong" && p2["id"] as? Int == 42)
        c.send("{\"op\":\"subscribe\",\"streams\":[\"frame\"]}\n")
        _ = try #require(c.read(type: "frame"))
        c.send("{\"op\":\"unsubscribe\",\"streams\":[\"frame\"],\"id\":1}\n")
        let un = try #require(c.read(type: "unsubscribed"))
        #expect(un["streams"] as? [String] == [])
        c.send("{\"op\":\"ping\",\"id\":2}\n")
        let pong = try #require(c.read(type: "pong"))
        #expect(pong["id"] as? Int == 2)
        // After the pong nothing else arrives: no more frames.
        var tv = timeval(tv_sec: 0, tv_usec: 300_000)
        setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        #expect(c.readLine() == nil)
    }

    @Test func hostileInputGetsErrorsAndDisturbsNobody() throws {
        let env = try makeEnv()
        defer { env.stop() }
        let watcher = try TestClient(path: env.path)
        watcher.send("{\"op\":\"subscribe\",\"streams\":[\"frame\"]}\n")
        _ = try #require(watcher.read(type: "subscribed"))
        let first = try #require(watcher.read(type: "frame")?["seq"] as? Int)

        let c = try TestClient(path: env.path)
        _ = try #require(c.read(type: "hello"))
        var rng = SystemRandomNumberGenerator()
        let starts = Array("x{[\"1-tn]}".utf8)
        var errors = 0
        for _ in 0..<20 {
            var batch: [UInt8] = []
            for _ in 0..<500 {
                batch.append(starts.randomElement(using: &rng)!)
                for _ in 0..<Int.random(in: 0...80, using: &rng) {
                    var b = UInt8.random(in: 1...255, using: &rng)
                    if b == 0x0A { b = 0x41 }
                    batch.append(b)
                }
                batch.append(0x0A)
            }
            c.sendBytes(batch)
            for _ in 0..<500 {
                let o = try #require(c.readObject())
                #expect(o["type"] as? String == "error")
                if o["type"] as? String == "error" { errors += 1 }
            }
        }
        #expect(errors == 10_000)
        let cases: [([UInt8], String)] = [
            ([0x7B, 0x22, 0xC3, 0x28, 0x22, 0x7D], "invalid_utf8"),
            (Array("{\"op\":\"dance\",\"id\":5}".utf8), "unknown_op"),
            (Array("[1,2]".utf8), "not_object"),
            (Array("{\"id\":1}".utf8), "missing_op"),
            (Array("{\"op\":\"subscribe\",\"streams\":\"frame\"}".utf8), "invalid_type"),
            (Array("{\"op\":\"subscribe\",\"streams\":[\"nope\"]}".utf8), "unknown_stream"),
            (Array("{\"op\":\"subscribe\",\"streams\":[\"frame\"],\"every\":\"2\"}".utf8), "invalid_type"),
            (Array("{\"op\":\"subscribe\",\"streams\":[\"frame\"],\"every\":2.5}".utf8), "invalid_type"),
            (Array("{\"op\":\"subscribe\",\"streams\":[\"frame\"],\"every\":0}".utf8), "invalid_value"),
            (Array("{\"op\":\"subscribe\",\"streams\":[\"frame\"],\"fields\":[\"nope\"]}".utf8), "unknown_field"),
            (Array("{\"op\":\"subscribe\",\"streams\":[\"frame\"],\"backfill_s\":true}".utf8), "invalid_type"),
            (Array("{\"op\":1}".utf8), "invalid_type"),
            (Array("{\"op\":\"ping\"".utf8), "invalid_json"),
        ]
        for (line, code) in cases {
            c.sendBytes(line + [0x0A])
            let o = try #require(c.readObject())
            #expect(o["type"] as? String == "error")
            #expect(o["code"] as? String == code, "\(String(decoding: line, as: UTF8.self))")
            #expect((o["message"] as? String)?.isEmpty == false)
        }
        // Lines of JSON whitespace only (CR included: "\r\r\n" was an invalid_json error) are blank and ignored.
        c.sendBytes([0x0D, 0x0D, 0x0A, 0x20, 0x0D, 0x09, 0x0A, 0x0D, 0x0A])
        c.send("{\"op\":\"ping\",\"id\":\"still-here\"}\n")
        let reply = try #require(c.readObject())
        #expect(reply["type"] as? String == "pong" && reply["id"] as? String == "still-here", "\(reply)")
        #expect(env.publisher.protocolErrors == 10_000 + cases.count)
        // The watcher lost nothing meanwhile.
        var last = first
        var gaps = 0
        while last < first + 300, let o = watcher.readObject() {
            guard let seq = o["seq"] as? Int else { continue }
            if seq != last + 1 { gaps += 1 }
            last = seq
        }
        #expect(last >= first + 300)
        #expect(gaps == 0)
        #expect(env.publisher.droppedTotal == 0)
        #expect(env.publisher.clients == 2)
    }

    @Test func overlongLineGetsErrorThenDisconnect() throws {
        let env = try makeEnv(feed: false) { $0.maxLineBytes = 4096 }
        defer { env.stop() }
        let c = try TestClient(path: env.path)
        _ = try #require(c.read(type: "hello"))
        let flags = fcntl(c.fd, F_GETFL)
        _ = fcntl(c.fd, F_SETFL, flags | O_NONBLOCK)
        let big = [UInt8](repeating: 0x61, count: 1 << 20)
        var off = 0
        let deadline = Date().addingTimeInterval(5)
        while off < big.count, Date() < deadline {
            let n = big.withUnsafeBufferPointer { send(c.fd, $0.baseAddress! + off, $0.count - off, Int32(MSG_NOSIGNAL)) }
            if n > 0 { off += n; continue }
            if errno == EAGAIN { usleep(1000); continue }
            break  // EPIPE / ECONNRESET: the server closed, as it should
        }
        _ = fcntl(c.fd, F_SETFL, flags)
        let o = try #require(c.readObject())
        #expect(o["type"] as? String == "error")
        #expect(o["code"] as? String == "line_too_long")
        #expect(c.readLine() == nil, "connection closed after the error")
        #expect(waitUntil { env.publisher.clients == 0 })
    }

    @Test func stalledClientIsDroppedAndDisconnectedOthersUnaffected() throws {
        let env = try makeEnv {
            $0.queueMessages = 64
            $0.stallLimitSeconds = 0.5
        }
        defer { env.stop() }
        let stalled = try TestClient(path: env.path)
        stalled.send("{\"op\":\"subscribe\",\"streams\":[\"frame\"]}\n")
        let good = try TestClient(path: env.path)
        good.send("{\"op\":\"subscribe\",\"streams\":[\"frame\"]}\n")
        _ = try #require(good.read(type: "subscribed"))
        var last: Int? = nil
        var gaps = 0
        var count = 0
        let deadline = Date().addingTimeInterval(10)
        while env.publisher.disconnectedStalled == 0 || count < 200, Date() < deadline, let o = good.readObject() {
            guard let seq = o["seq"] as? Int else { continue }
            if let last, seq != last + 1 { gaps += 1 }
            last = seq
            count += 1
        }
        #expect(env.publisher.disconnectedStalled == 1)
        #expect(env.publisher.droppedTotal > 0)
        #expect(gaps == 0, "the reading client must lose nothing")
        // The stalled client, reading again within the grace period, gets what was buffered, then an `error`
        // line that says why, then EOF.
        var lines: [[UInt8]] = []
        while let line = stalled.readLine() { lines.append(line) }
        #expect(lines.count > 1)
        let final = try #require(lines.last.flatMap { try? JSONSerialization.jsonObject(with: Data($0)) } as? [String: Any])
        #expect(final["type"] as? String == "error")
        #expect(final["code"] as? String == "stalled")
        #expect((final["message"] as? String)?.contains("0.5 s") == true)
        #expect(waitUntil { env.publisher.clients == 1 })
    }

    @Test func slowReaderGetsDroppedNoticesMatchingItsGaps() throws {
        let env = try makeEnv {
            $0.queueMessages = 32
            $0.stallLimitSeconds = 5
        }
        defer { env.stop() }
        let c = try TestClient(path: env.path)
        c.send("{\"op\":\"subscribe\",\"streams\":[\"frame\"],\"fields\":[\"laf\"]}\n")
        usleep(1_500_000)
        var missing = 0
        var reported = 0
        var last: Int? = nil
        var afterLastNotice = 0
        var notices = 0
        let deadline = Date().addingTimeInterval(8)
        // The kernel socket buffer delivers its (gapless) backlog first; keep reading until the notice came
        // and the client has caught up.
        while notices == 0 || afterLastNotice < 200, Date() < deadline, let o = c.readObject() {
            switch o["type"] as? String {
            case "dropped":
                #expect(o["stream"] as? String == "frame")
                reported += try #require(o["count"] as? Int)
                notices += 1
                afterLastNotice = 0
            case "frame":
                let seq = try #require(o["seq"] as? Int)
                if let last { missing += seq - last - 1 }
                last = seq
                afterLastNotice += 1
            default: break
            }
        }
        #expect(notices >= 1)
        #expect(reported > 0)
        #expect(missing == reported, "every gap is reported by a dropped notice")
        #expect(env.publisher.droppedTotal == reported)
        #expect(env.publisher.disconnectedStalled == 0)
    }

    @Test func thousandConnectionsLeakNoDescriptors() throws {
        let env = try makeEnv(feed: false)
        defer { env.stop() }
        // Warm up (first-use allocations in the loop may open nothing, but be fair).
        do { let c = try TestClient(path: env.path); _ = c.readLine() }
        #expect(waitUntil { env.publisher.clients == 0 })
        let before = openFileDescriptorCount()
        for i in 0..<1000 {
            let c = try TestClient(path: env.path)
            if i % 2 == 0 { _ = c.readLine() }  // half read their hello, half leave it unread
        }
        // A client may close before the server accepts it: wait for every accept, then for every close.
        #expect(waitUntil { env.publisher.connectionsTotal == 1001 && env.publisher.clients == 0 },
                "accepted \(env.publisher.connectionsTotal), open \(env.publisher.clients)")
        #expect(openFileDescriptorCount() == before)
    }

    @Test func tooManyClientsAreRefused() throws {
        let env = try makeEnv(feed: false) { $0.maxClients = 2 }
        defer { env.stop() }
        let a = try TestClient(path: env.path), b = try TestClient(path: env.path)
        _ = try #require(a.read(type: "hello")); _ = try #require(b.read(type: "hello"))
        let c = try TestClient(path: env.path)
        #expect(c.read(type: "error")?["code"] as? String == "too_many_clients")
        #expect(c.readLine() == nil)
        a.send("{\"op\":\"ping\"}\n")
        #expect(a.read(type: "pong") != nil)
    }

    /// A client looping on connect past the limits (attack run: ~13,000 warning lines/s): every refusal is
    /// counted, the log gets the first one of each kind and then at most one line per 10 s.
    @Test func refusalsAreCountedButTheirLogIsRateLimited() throws {
        let log = SinkTestKit2.LogStore()
        let env = try makeEnv(feed: false, logger: log.logger()) { $0.maxClients = 3; $0.maxClientsPerUID = 2 }
        defer { env.stop() }
        let a = try TestClient(path: env.path), b = try TestClient(path: env.path)
        _ = try #require(a.read(type: "hello")); _ = try #require(b.read(type: "hello"))
        for _ in 0..<200 {
            let c = try TestClient(path: env.path)
            #expect(c.read(type: "error")?["code"] as? String == "too_many_clients")
        }
        #expect(env.publisher.refused == 200)
        let lines = log.messages(containing: "client refused")
        #expect(lines.count == 1, "\(lines.count) refusal lines for 200 refusals")
        a.send("{\"op\":\"ping\"}\n")
        #expect(a.read(type: "pong") != nil)
    }

    @Test func staleSocketIsReplacedLiveOneRefused() throws {
        let dir = makeTempDir()
        defer { rmdir(dir) }
        let path = dir + "/s.sock"
        // A stale socket file: bound, then closed without unlink.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        #expect(try SocketListener.withAddress(path) { bind(fd, $0, $1) } == 0)
        close(fd)
        #expect(access(path, F_OK) == 0)
        let feeder = try AudioFeeder()
        let config = SocketPublisher.Configuration(path: path, group: "no-such-group-earshot")
        let a = SocketPublisher(configuration: config, logger: testLogger(), daemonVersion: "t")
        try a.start(bus: feeder.bus, stream: feeder.info)
        let c = try TestClient(path: path)
        #expect(c.read(type: "hello") != nil)

        let b = SocketPublisher(configuration: config, logger: testLogger(), daemonVersion: "t")
        #expect {
            try b.start(bus: feeder.bus, stream: feeder.info)
        } throws: { error in
            (error as? SocketPublisherError)?.code == .addressInUse
                && "\(error)" == "another earshot is listening on \(path)"
        }
        c.send("{\"op\":\"ping\"}\n")
        #expect(c.read(type: "pong") != nil, "the live publisher is unaffected")
        a.stop()
        #expect(access(path, F_OK) != 0, "stop removes the socket path")
        #expect(c.readLine() == nil)

        // Something that is not a socket is never removed.
        let file = dir + "/plain"
        _ = FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        defer { unlink(file) }
        let d = SocketPublisher(configuration: .init(path: file), logger: testLogger(), daemonVersion: "t")
        #expect(throws: SocketPublisherError.self) { try d.start(bus: feeder.bus, stream: feeder.info) }
        #expect(access(file, F_OK) == 0)
    }

    @Test func publishedMessagesAndRollingBackfill() throws {
        let env = try makeEnv(feed: false) { $0.backfillSeconds = 10 }
        defer { env.stop() }
        let base: Int64 = 1_700_000_000_000_000_000
        func rolling(_ i: Int) -> [UInt8] {
            Array("{\"type\":\"rolling\",\"window_s\":1,\"t\":\(1_700_000_000 + i),\"i\":\(i)}\n".utf8)
        }
        let alertClient = try TestClient(path: env.path)
        alertClient.send("{\"op\":\"subscribe\",\"streams\":[\"alert\"]}\n")
        _ = try #require(alertClient.read(type: "subscribed"))
        for i in 0..<30 { env.publisher.publish(.rolling, line: rolling(i), wallNs: base + Int64(i) * 1_000_000_000) }
        env.publisher.publish(.alert, line: Array("{\"type\":\"alert\",\"alert\":\"level\",\"state\":\"start\"}\n".utf8), wallNs: base)
        #expect(alertClient.read(type: "alert")?["state"] as? String == "start")

        let c = try TestClient(path: env.path)
        c.send("{\"op\":\"subscribe\",\"streams\":[\"rolling\"],\"backfill_s\":5,\"id\":\"b\"}\n")
        let ack = try #require(c.read(type: "subscribed"))
        #expect(ack["backfill"] as? Int == 6)
        #expect(ack["id"] as? String == "b")
        var got: [Int] = []
        for _ in 0..<6 { got.append(try #require(c.readObject()?["i"] as? Int)) }
        #expect(got == Array(24..<30))
        env.publisher.publish(.rolling, line: rolling(30), wallNs: base + 30_000_000_000)
        env.publisher.publish(.status, line: Array("{\"type\":\"status\",\"event\":\"reload\"}\n".utf8), wallNs: base)
        #expect(c.readObject()?["i"] as? Int == 30)

        // backfill_s beyond the configured horizon is capped to it (10 s: lines 20...30).
        let d = try TestClient(path: env.path)
        d.send("{\"op\":\"subscribe\",\"streams\":[\"rolling\",\"status\"],\"backfill_s\":1000}\n")
        #expect(d.read(type: "subscribed")?["backfill"] as? Int == 11)
        #expect(d.readObject()?["i"] as? Int == 20)
        // The alert-only client saw no rolling or status line.
        alertClient.send("{\"op\":\"ping\"}\n")
        #expect(alertClient.readObject()?["type"] as? String == "pong")
        #expect(env.publisher.publishDropped == 0)
    }

    @Test func tailClientPrintsLiveViewAndRawLines() throws {
        let env = try makeEnv()
        defer { env.stop() }
        let lines = LineBox()
        let rc = try TailClient.run(socketPath: env.path, streams: ["frame", "onset"], every: 1, json: false, maxSeconds: 0.8) {
            lines.append($0)
        }
        #expect(rc == 0)
        let all = lines.lines
        #expect(all.first?.hasPrefix("connected: earshot 9.9.9-test") == true)
        let frames = all.filter { $0.contains("LAF") }
        #expect(frames.count > 50)
        #expect(frames.allSatisfy { $0.contains("dBFS  |") && $0.hasSuffix("|") && $0.contains("█") })
        #expect(all.contains { $0.contains("* onset strength=") })
        let raw = LineBox()
        #expect(try TailClient.run(socketPath: env.path, streams: ["frame"], every: 10, json: true, maxSeconds: 0.5) { raw.append($0) } == 0)
        let seqs = raw.lines.compactMap { ((try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any])?["seq"] as? Int }
        #expect(seqs.count > 5 && seqs.allSatisfy { $0 % 10 == 0 })
        #expect(try TailClient.run(socketPath: env.dir + "/missing.sock", streams: ["frame"], every: 1, json: true, maxSeconds: 1) { _ in } == 69)
        // An unknown stream name is a usage error, found before connecting (the name is not sent, escaped or not).
        let before = env.publisher.connectionsTotal
        #expect(try TailClient.run(socketPath: env.path, streams: ["frame", "on\"set"], every: 1, json: true, maxSeconds: 1) { _ in } == 64)
        #expect(env.publisher.connectionsTotal == before)
        #expect("\(TailClient.ConnectError(path: "/x.sock", errnoText: "No such file or directory"))"
            == "cannot connect to /x.sock: No such file or directory (is the daemon running?)")
    }

    @Test func pythonLogmelExampleReadsWindows() throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("examples/earshot_logmel_client.py").path
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import numpy"]
        try probe.run(); probe.waitUntilExit()
        try #require(probe.terminationStatus == 0, "python3 with numpy is needed for this test")
        let env = try makeEnv()
        defer { env.stop() }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", script, "--socket", env.path, "--frames", "50", "--windows", "2"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        p.waitUntilExit()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(p.terminationStatus == 0)
        #expect(text.contains("n_mels 64"))
        #expect(text.contains("window 2: shape=(50, 64) dtype=float32"))
    }

    /// Frame lines are recycled once no client queue holds them (`SocketLoop.frameMessage`): a client that
    /// does not read for a while holds hundreds of them while a reading client lets the pool recycle its own,
    /// and a `fields` client gets its own line. Every client must then get exactly its own bytes: the lagging
    /// client byte-identical lines to the reading one's for the same seq, in order, none rewritten while
    /// queued; the `fields` client only its keys, with the same values.
    @Test func recycledFrameLinesReachEveryClientUnchanged() throws {
        let env = try makeEnv()
        defer { env.stop() }
        let lagging = try TestClient(path: env.path), reading = try TestClient(path: env.path)
        let subset = try TestClient(path: env.path)
        for c in [lagging, reading] { c.send("{\"op\":\"subscribe\",\"streams\":[\"frame\"]}\n") }
        subset.send("{\"op\":\"subscribe\",\"streams\":[\"frame\"],\"fields\":[\"laf\",\"mfcc\"]}\n")
        for c in [lagging, reading, subset] { _ = try #require(c.read(type: "subscribed")) }
        func seqOf(_ line: [UInt8]) -> Int? {
            ((try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any])?["seq"] as? Int
        }
        // The reading client reads ~600 frames (1.2 s at one per 2 ms) while the lagging one reads nothing.
        var byReading: [Int: [UInt8]] = [:]
        while byReading.count < 600, let line = reading.readLine() {
            if line.starts(with: Array("{\"type\":\"frame\"".utf8)), let seq = seqOf(line) { byReading[seq] = line }
        }
        try #require(byReading.count == 600)
        var compared = 0, last: Int? = nil
        while compared < 400, let line = lagging.readLine() {
            guard line.starts(with: Array("{\"type\":\"frame\"".utf8)) else { continue }
            let seq = try #require(seqOf(line), "not a whole frame line: \(String(decoding: line, as: UTF8.self))")
            if let last { #expect(seq == last + 1, "lagging client: \(seq) after \(last)") }
            last = seq
            if let other = byReading[seq] {
                #expect(line == other, "seq \(seq) differs between the two full-rate clients")
                compared += 1
            }
        }
        #expect(compared == 400)
        var checked = 0
        while checked < 100, let o = subset.readObject() {
            guard o["type"] as? String == "frame", let seq = o["seq"] as? Int, let full = byReading[seq] else { continue }
            #expect(Set(o.keys).subtracting(["discontinuity", "gap_samples", "cause"]) == ["type", "seq", "t", "laf", "mfcc", "level_unit"])
            let f = try #require((try JSONSerialization.jsonObject(with: Data(full))) as? [String: Any])
            #expect(o["laf"] as? Double == f["laf"] as? Double)
            #expect(o["mfcc"] as? [Double] == f["mfcc"] as? [Double])
            checked += 1
        }
        #expect(checked == 100)
        #expect(env.publisher.droppedTotal == 0)
    }

    /// The bus consumer's eventfd is in the loop's epoll set (edge-triggered, never read) only while there
    /// are clients, and is replaced when a reload moves the publisher to another bus: a frame must still wake
    /// the loop (not wait for its 100 ms timeout) for a client that connects after the last one left, and
    /// after a switch to a new bus. Frames are pushed one at a time, each read before the next, so the loop is
    /// asleep in `epoll_wait` when most of them come: it counts the wake-ups by the bus.
    @Test func framesWakeTheLoopAfterReconnectsAndABusSwitch() throws {
        let env = try makeEnv(feed: false)
        defer { env.stop() }
        /// Pushes hops into `feeder` until `n` frames were made, reading each from `c` before the next push.
        func pushAndRead(_ feeder: AudioFeeder, _ c: TestClient, frames n: Int) throws -> (seqs: [Int], wakes: Int) {
            let p = feeder.processor, hop = p.config.hop
            let wakes0 = env.publisher.shared.busWakeups.load(ordering: .relaxed)
            var seqs: [Int] = []
            var position = Int(p.nextSeq) * hop + 1024
            while seqs.count < n {
                let before = p.nextSeq
                feeder.signal.withUnsafeBufferPointer { all in
                    let offset = position % (all.count - hop)
                    p.push(UnsafeBufferPointer(rebasing: all[offset..<(offset + hop)]), firstSample: Int64(position),
                           monotonicNs: 0, wallNs: Int64(position) * 20_833)
                }
                position += hop
                guard p.nextSeq != before else { continue }
                let o = try #require(c.read(type: "frame"), "frame \(before) not delivered")
                seqs.append(try #require(o["seq"] as? Int))
            }
            return (seqs, env.publisher.shared.busWakeups.load(ordering: .relaxed) - wakes0)
        }
        for round in 0..<3 {
            do {
                let c = try TestClient(path: env.path)
                c.send("{\"op\":\"subscribe\",\"streams\":[\"frame\"],\"fields\":[\"laf\"]}\n")
                _ = try #require(c.read(type: "subscribed"))
                let (seqs, wakes) = try pushAndRead(env.feeder, c, frames: 10)
                #expect(zip(seqs, seqs.dropFirst()).allSatisfy { $1 == $0 + 1 })
                #expect(wakes > 0, "round \(round): no frame woke the loop")
            }
            #expect(waitUntil { env.publisher.clients == 0 })
            usleep(50_000)  // the loop sleeps without watching the bus for a while
        }
        let c = try TestClient(path: env.path)
        c.send("{\"op\":\"subscribe\",\"streams\":[\"frame\"],\"fields\":[\"laf\"]}\n")
        _ = try #require(c.read(type: "subscribed"))
        let old = try pushAndRead(env.feeder, c, frames: 5).seqs
        // Switch to a second bus, counting from seq 0 again: a new hello, then that bus's frames.
        let second = try AudioFeeder()
        try env.publisher.switchBus(second.bus, stream: second.info)
        _ = try #require(c.read(type: "hello"))
        let (seqs, wakes) = try pushAndRead(second, c, frames: 10)
        #expect(seqs.first.map { $0 < old[0] } == true, "frames from the new bus: \(seqs.prefix(3)) after \(old)")
        #expect(zip(seqs, seqs.dropFirst()).allSatisfy { $1 == $0 + 1 })
        #expect(wakes > 0, "after the switch no frame woke the loop")
    }
}

final class LineBox: @unchecked Sendable {
    var lines: [String] = []
    func append(_ s: String) { lines.append(s) }
}
