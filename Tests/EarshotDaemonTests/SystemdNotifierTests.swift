import Foundation
import Testing

@testable import EarshotDaemon

#if canImport(Glibc)
import Glibc
#endif

/// A bound `SOCK_DGRAM` socket standing in for systemd's notify socket.
final class NotifyListener: Sendable {
    let fd: Int32
    let name: String  // what goes into NOTIFY_SOCKET

    /// `abstract`: bind in the abstract namespace (`@name`) instead of a path in `dir`.
    init(dir: TempDir?, abstractName: String? = nil) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno)!) }
        if let abstractName {
            name = "@" + abstractName
        } else {
            name = dir!.path + "/notify.sock"
        }
        let addr = try #require(SystemdNotifier.socketAddress(for: name))
        let rc = addr.withUnsafeBytes {
            bind(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count))
        }
        guard rc == 0 else { throw POSIXError(.init(rawValue: errno)!) }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// The next datagram, or nil after the 5 s receive timeout.
    func receive() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        guard n >= 0 else { return nil }
        return String(decoding: buffer[..<n], as: UTF8.self)
    }
}

@Suite("SystemdNotifier")
struct SystemdNotifierTests {
    @Test func sendsEveryMessageToAPathSocket() throws {
        let dir = try TempDir()
        defer { dir.cleanUp() }
        let listener = try NotifyListener(dir: dir)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": listener.name])
        #expect(notifier.isEnabled)

        #expect(notifier.ready())
        #expect(listener.receive() == "READY=1")
        notifier.status("device=default level=-42.0dBFS\nxruns=0")
        #expect(listener.receive() == "STATUS=device=default level=-42.0dBFS xruns=0")
        notifier.watchdog()
        #expect(listener.receive() == "WATCHDOG=1")
        notifier.reloading()
        let reloading = try #require(listener.receive())
        let lines = reloading.split(separator: "\n")
        #expect(lines.first == "RELOADING=1")
        #expect(lines.count == 2 && lines[1].hasPrefix("MONOTONIC_USEC="))
        #expect(UInt64(lines[1].dropFirst("MONOTONIC_USEC=".count)).map { $0 > 0 } == true)
        notifier.ready(status: "reloaded")
        #expect(listener.receive() == "READY=1\nSTATUS=reloaded")
        notifier.stopping()
        #expect(listener.receive() == "STOPPING=1")
    }

    @Test func sendsToAnAbstractSocket() throws {
        let listener = try NotifyListener(dir: nil, abstractName: "earshot-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": listener.name])
        #expect(notifier.ready())
        #expect(listener.receive() == "READY=1")
    }

    @Test func noOpWithoutNotifySocket() {
        let notifier = SystemdNotifier(environment: [:])
        #expect(!notifier.isEnabled)
        #expect(!notifier.ready())
        #expect(!notifier.watchdog())
        #expect(notifier.watchdogInterval == nil)
        #expect(!SystemdNotifier(environment: ["NOTIFY_SOCKET": "relative/path"]).isEnabled)
    }

    @Test func sendToVanishedSocketIsIgnored() throws {
        let dir = try TempDir()
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": dir.path + "/gone.sock"])
        dir.cleanUp()
        #expect(!notifier.watchdog())  // fails quietly, never blocks or throws
    }

    @Test func watchdogInterval() {
        let pid = getpid()
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "10000000"]).watchdogInterval == .seconds(5))
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "10000000"]).watchdogTimeout == .seconds(10))
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "\(pid)"]).watchdogInterval == .milliseconds(1500))
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "\(pid + 1)"]).watchdogInterval == nil)
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "0"]).watchdogInterval == nil)
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "abc"]).watchdogInterval == nil)
        #expect(!SystemdNotifier(environment: [:]).isWatchdogEnabled)
    }

    @Test func concurrentSendsArriveIntact() throws {
        let dir = try TempDir()
        defer { dir.cleanUp() }
        let listener = try NotifyListener(dir: dir)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": listener.name])
        let senders = 8, each = 20
        // The receiver drains concurrently; the kernel's datagram queue is short (net.unix.max_dgram_qlen),
        // so a full queue makes a non-blocking send fail (returns false, never blocks): senders retry here
        // only to prove every message arrives whole. Receiver and senders are plain threads (a blocking
        // receive on Swift's cooperative pool, 2 threads on 2 cores, could starve the senders), and the
        // retries stop at a deadline, so a lost receiver fails the test instead of hanging it.
        let received = LockedBox(Set<String>())
        let receiver = Thread {
            for _ in 0..<(senders * each) {
                guard let m = listener.receive() else { break }
                received.withLock { _ = $0.insert(m) }
            }
        }
        receiver.start()
        let deadline = Date().addingTimeInterval(20)
        let gaveUp = LockedBox(0)
        DispatchQueue.concurrentPerform(iterations: senders) { s in
            for i in 0..<each {
                while !notifier.status("sender=\(s) i=\(i)") {
                    if Date() > deadline { gaveUp.withLock { $0 += 1 }; return }
                    usleep(1000)
                }
            }
        }
        while received.withLock({ $0.count }) < senders * each && Date() < deadline { usleep(10_000) }
        let messages = received.withLock { $0 }
        #expect(gaveUp.withLock { $0 } == 0)
        #expect(messages.count == senders * each)
        #expect(messages.allSatisfy { $0.hasPrefix("STATUS=sender=") })
    }
}

/// A value behind a lock, shared with plain threads.
final class LockedBox<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func withLock<R>(_ body: (inout Value) -> R) -> R { lock.lock(); defer { lock.unlock() }; return body(&value) }
}
