#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// The socket's limits through the real `earshot run` binary (configured from YAML) on a paced FIFO device:
/// idle timeout, per-uid limit, and a 64 KiB backfill flood that must not freeze other subscribers.
extension EndToEnd {
    @Suite("earshot socket limits: idle timeout, per-uid limit, command floods", .serialized) struct SocketLimits {
        /// Resident set of a process, bytes (`VmRSS` in `/proc/PID/status`).
        static func rss(_ pid: pid_t) -> Int {
            guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                  let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
                  let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
            else { return -1 }
            return kb * 1024
        }

        @Test func idleTimeoutAndPerUIDLimitFromTheConfiguration() throws {
            let rig = try PublishingRig("limits", socketYAML: "idle_timeout_s: 1\nmax_clients_per_uid: 2")
            defer { rig.cleanup() }
            _ = try rig.start()
            let fds = (0..<3).map { _ in connectUnix(rig.socketPath) }
            defer { for fd in fds { close(fd) } }
            try #require(fds.allSatisfy { $0 >= 0 })
            let logs = (0..<3).map { StreamLog(name: "c\($0)") }
            let readers = PollingReaders(fds: fds, logs: logs, threads: 1)
            defer { readers.stop() }
            // Every client is this test's uid: the third is refused at once, the other two time out.
            #expect(waitFor(5) { logs.allSatisfy(\.eof) }, "\(logs.map(\.summary))")
            let codes = logs.map { $0.messages(type: "error").compactMap { $0["code"] as? String } }
            #expect(codes.filter { $0 == ["idle_timeout"] }.count == 2, "\(codes)")
            #expect(codes.filter { $0 == ["too_many_clients"] }.count == 1, "\(codes)")
            let hello = try #require(logs[0].messages(type: "hello").first)
            let limits = try #require(hello["limits"] as? [String: Any])
            #expect(int(limits["max_clients_per_uid"]) == 2)
            #expect(dbl(limits["idle_timeout_s"]) == 1)
            // Their slots are free again: a subscriber gets in and stays past the timeout.
            let fd = connectUnix(rig.socketPath)
            defer { close(fd) }
            #expect(sendAll(fd, Array(#"{"op":"subscribe","streams":["frame"],"fields":["laf"]}"#.utf8) + [0x0A]))
            let log = StreamLog(name: "subscriber", fullJSON: false)
            let r = PollingReaders(fds: [fd], logs: [log], threads: 1)
            defer { r.stop() }
            #expect(waitFor(5) { log.frames > 200 }, "\(log.summary)")
            #expect(!log.eof && log.gaps.isEmpty, "\(log.summary)")
        }

        /// Issue 9 item 3 through the daemon: one 64 KiB write of ~1,130 `subscribe`+`backfill_s` commands.
        /// The old loop ran them all in one go (10–29 s without delivery); now every half second of the
        /// good subscriber's stream has its frames, nothing is lost, every command is answered.
        @Test func backfillFloodDoesNotFreezeOtherSubscribers() throws {
            let rig = try PublishingRig("flood")
            defer { rig.cleanup() }
            let daemon = try rig.start()
            let good = connectUnix(rig.socketPath), flooder = connectUnix(rig.socketPath)
            defer { close(good); close(flooder) }
            try #require(good >= 0 && flooder >= 0)
            let goodLog = StreamLog(name: "good", fullJSON: false), floodLog = StreamLog(name: "flooder", fullJSON: false)
            let readers = PollingReaders(fds: [good, flooder], logs: [goodLog, floodLog], threads: 2)
            defer { readers.stop() }
            #expect(sendAll(good, Array(#"{"op":"subscribe","streams":["frame"]}"#.utf8) + [0x0A]))
            #expect(waitFor(5) { goodLog.frames > 50 }, "\(goodLog.summary)")
            let rssBefore = Self.rss(daemon.pid)
            let command = Array(#"{"op":"subscribe","streams":["rolling","frame"],"backfill_s":600}"#.utf8) + [0x0A]
            let commands = 65_536 / command.count
            #expect(sendAll(flooder, Array([[UInt8]](repeating: command, count: commands).joined())))
            var perHalfSecond: [Int] = []
            var last = goodLog.frames
            for _ in 0..<8 {
                usleep(500_000)
                let now = goodLog.frames
                perHalfSecond.append(now - last)
                last = now
            }
            #expect(waitFor(10) { floodLog.types["subscribed"] == commands }, "\(floodLog.summary)")
            let rssAfter = Self.rss(daemon.pid)
            print("daemon flood: \(commands) commands; good subscriber frames per 0.5 s \(perHalfSecond); "
                  + "daemon RSS \(rssBefore >> 20) → \(rssAfter >> 20) MiB")
            #expect(perHalfSecond.allSatisfy { $0 >= 25 }, "frames per 0.5 s: \(perHalfSecond)")
            #expect(goodLog.gaps.isEmpty && goodLog.types["dropped"] == nil, "\(goodLog.summary)")
            #expect(rssAfter - rssBefore < 32 << 20)
        }
    }
}
