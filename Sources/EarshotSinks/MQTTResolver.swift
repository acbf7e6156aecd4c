#if canImport(Glibc)
import Glibc
#endif
import EarshotRealtime
import Synchronization

/// One address the broker's name resolved to (a copy of an `addrinfo` entry).
struct MQTTAddress: Sendable, Equatable {
    var family: Int32
    var socketType: Int32
    var proto: Int32
    var address: [UInt8]

    /// The address as text (`getnameinfo` `NI_NUMERICHOST`), for `mosquitto_connect` (no second lookup).
    var numericHost: String? {
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        let rc = address.withUnsafeBytes { a in
            getnameinfo(a.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(a.count), &host, socklen_t(host.count),
                        nil, 0, NI_NUMERICHOST)
        }
        guard rc == 0 else { return nil }
        return String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Name resolution for the MQTT sink: blocking, so it never runs on the sink's thread (``MQTTResolution``).
/// `system` is `getaddrinfo`; tests substitute one that blocks, like a resolver whose DNS server is gone.
struct MQTTResolver: Sendable {
    var resolve: @Sendable (_ host: String, _ port: Int) -> Result<[MQTTAddress], MQTTResolveFailure>

    static let system = MQTTResolver { host, port in
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        let g = getaddrinfo(host, String(port), &hints, &res)
        guard g == 0, res != nil else { return .failure(MQTTResolveFailure(String(cString: gai_strerror(g)))) }
        defer { freeaddrinfo(res) }
        var out: [MQTTAddress] = []
        var ai = res
        while let a = ai {
            ai = a.pointee.ai_next
            guard let sa = a.pointee.ai_addr else { continue }
            out.append(MQTTAddress(family: a.pointee.ai_family, socketType: a.pointee.ai_socktype, proto: a.pointee.ai_protocol,
                                   address: Array(UnsafeRawBufferPointer(start: sa, count: Int(a.pointee.ai_addrlen)))))
        }
        return out.isEmpty ? .failure(MQTTResolveFailure("no address")) : .success(out)
    }
}

struct MQTTResolveFailure: Error, Equatable {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}

/// One resolution running on its own detached thread (`es-mqtt-dns`): the sink's thread polls ``result``
/// without blocking and gives up at its deadline, so a stop or reload never waits on DNS. A resolution that
/// outlives its deadline is left to finish by itself (it then only stores its result here); the sink starts
/// no other one while it runs, so a dead DNS server costs at most one parked thread.
final class MQTTResolution: @unchecked Sendable {
    private let outcome = Mutex<Result<[MQTTAddress], MQTTResolveFailure>?>(nil)

    init(resolver: MQTTResolver, host: String, port: Int) {
        let (handle, _) = RealtimeThread.start(name: "es-mqtt-dns") { [self] in
            let r = resolver.resolve(host, port)
            outcome.withLock { $0 = r }
        }
        RealtimeThread.detach(handle)
    }

    /// The outcome, once the lookup has returned.
    var result: Result<[MQTTAddress], MQTTResolveFailure>? { outcome.withLock { $0 } }
}
