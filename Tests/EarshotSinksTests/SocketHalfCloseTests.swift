#if canImport(Glibc)
import Glibc
#endif
import EarshotPipeline
@testable import EarshotSinks
import Foundation
import Testing

/// Clients that shut down their sending side (`echo '{…}' | socat - UNIX-CONNECT:…`, `nc -N`, Python's
/// `shutdown(SHUT_WR)`) keep receiving their streams until they close.
@Suite struct SocketHalfCloseTests {
    func makeEnv() throws -> SocketPublisherTests.Env {
        try SocketPublisherTests().makeEnv { $0.idleTimeoutSeconds = 2 }
    }

    @Test func servesAClientAfterItShutsDownWriting() throws {
        let env = try makeEnv()
        defer { env.stop() }
        let c = try TestClient(path: env.path)
        _ = try #require(c.read(type: "hello"))
        c.send(ProtocolCommand.subscribe([.frame], every: 2).text + "\n" + ProtocolCommand.ping(id: .string("p")).text + "\n")
        #expect(shutdown(c.fd, Int32(SHUT_WR)) == 0)
        let sub = try #require(c.read(type: "subscribed"))
        #expect(sub["every"] as? Int == 2)
        #expect(try #require(c.read(type: "pong"))["id"] as? String == "p")
        // Frames keep coming long after the end of the client's input (the idle timeout does not apply: it
        // is subscribed).
        var frames = 0
        let deadline = Date().addingTimeInterval(3)
        while Date() < deadline, let o = c.readObject() {
            if o["type"] as? String == "frame" { frames += 1; #expect((o["seq"] as? Int ?? 1) % 2 == 0) }
        }
        #expect(frames > 100, "got \(frames) frames after the half-close")
        #expect(env.publisher.clients == 1)
        // Closing for good is noticed.
        shutdown(c.fd, Int32(SHUT_RDWR))  // (the fd itself is closed by TestClient)
        #expect(waitUntil { env.publisher.clients == 0 })
    }

    @Test func lastCommandWithoutNewlineRunsAtEndOfInput() throws {
        let env = try makeEnv()
        defer { env.stop() }
        let c = try TestClient(path: env.path)
        c.send("{\"op\":\"ping\",\"id\":41}")  // `printf` without the newline
        #expect(shutdown(c.fd, Int32(SHUT_WR)) == 0)
        let pong = try #require(c.read(type: "pong"))
        #expect(pong["id"] as? Int == 41)
    }

    @Test func halfClosedClientWithoutSubscriptionIsClosedWhenIdle() throws {
        let env = try makeEnv()
        defer { env.stop() }
        let c = try TestClient(path: env.path)
        #expect(shutdown(c.fd, Int32(SHUT_WR)) == 0)
        _ = try #require(c.read(type: "hello"))
        let error = try #require(c.read(type: "error"))
        #expect(error["code"] as? String == "idle_timeout")
        #expect(c.readLine() == nil)
        #expect(waitUntil { env.publisher.clients == 0 })
    }

    /// A half-closed client on a quiet stream (nothing is written to it, so no write can fail) is still
    /// noticed when it closes: POLLHUP.
    @Test func quietHalfClosedClientIsReapedWhenItCloses() throws {
        let env = try makeEnv()
        defer { env.stop() }
        let c = try TestClient(path: env.path)
        c.send(ProtocolCommand.subscribe([.alert]).text + "\n")
        _ = try #require(c.read(type: "subscribed"))
        #expect(shutdown(c.fd, Int32(SHUT_WR)) == 0)
        usleep(300_000)
        #expect(env.publisher.clients == 1)
        let start = Date()
        shutdown(c.fd, Int32(SHUT_RDWR))  // (the fd itself is closed by TestClient)
        #expect(waitUntil { env.publisher.clients == 0 })
        #expect(Date().timeIntervalSince(start) < 1, "reaped by POLLHUP, not by a timeout")
    }
}
