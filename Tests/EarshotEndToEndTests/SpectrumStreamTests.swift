import Foundation
import Testing

extension EndToEnd {
    /// The `spectrum` stream from a live daemon (440 Hz tone with clicks on a paced FIFO).
    @Suite("socket spectrum stream") struct SpectrumStream {
        /// The spectra received within `seconds` (after the `subscribed` reply), and whether an unsubscribe ended them.
        static func collect(_ client: SocketLineClient, seconds: Double) -> [[String: Any]] {
            var out: [[String: Any]] = []
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                guard let line = client.readLine(timeout: deadline.timeIntervalSinceNow), let o = jsonObject(Array(line.utf8)) else { continue }
                if o["type"] as? String == "spectrum" { out.append(o) }
            }
            return out
        }

        @Test func decimatedSpectraOfTheToneForEachSubscriber() throws {
            let rig = try PublishingRig("spectrum")
            defer { rig.cleanup() }
            _ = try rig.start()
            let a = try SocketLineClient(path: rig.socketPath)
            let b = try SocketLineClient(path: rig.socketPath)
            a.send(#"{"op":"subscribe","streams":["spectrum"],"every":10}"#)
            b.send(#"{"op":"subscribe","streams":["spectrum","frame"],"every":4,"fields":["laf"]}"#)
            #expect(a.readUntil(timeout: 5) { $0.contains(#""type":"subscribed""#) } != nil)
            let spectraA = Self.collect(a, seconds: 1.5)
            let spectraB = Self.collect(b, seconds: 0.2)
            #expect(spectraA.count >= 10 && spectraA.count <= 20, "\(spectraA.count) spectra in 1.5 s at every 10")
            #expect(spectraB.count >= 3)
            var peaks = 0
            for s in spectraA {
                let seq = try #require(int(s["seq"])), power = try #require(s["power_db"] as? [NSNumber]).map(\.doubleValue)
                #expect(seq % 10 == 0 && power.count == 513 && dbl(s["bin_hz"]) == 46.875 && dbl(s["t"]) ?? 0 > 1e9)
                if let k = power.indices.max(by: { power[$0] < power[$1] }), k == 9 || k == 10 { peaks += 1 }
            }
            #expect(peaks >= spectraA.count * 8 / 10, "440 Hz is bin 9.4: \(peaks) of \(spectraA.count) peak there")
            for s in spectraB { #expect((int(s["seq"]) ?? 1) % 4 == 0) }
            // Unsubscribed: no spectrum after the reply (while b still gets its own).
            a.send(#"{"op":"unsubscribe","streams":["spectrum"]}"#)
            #expect(a.readUntil(timeout: 5) { $0.contains(#""type":"unsubscribed""#) } != nil)
            #expect(Self.collect(a, seconds: 0.5).isEmpty)
            #expect(!Self.collect(b, seconds: 0.3).isEmpty)
        }
    }
}
