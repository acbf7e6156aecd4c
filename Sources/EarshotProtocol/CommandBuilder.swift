/// The client side of the commands: `earshot tail` and the tests build their command lines here, so every
/// string is escaped by the same JSON writer the server uses and the line is exactly what
/// ``ProtocolCommand/parse(_:enabledFeatures:)`` reads back.
extension ProtocolCommand {
    /// `{"op":"subscribe",...}`; `every`, `fields`, `backfill_s` and `id` are left out when nil.
    public static func subscribe(_ streams: [StreamKind], every: Int? = nil, fields: [Feature]? = nil,
                                 backfillSeconds: Double? = nil, id: ProtocolJSON? = nil) -> ProtocolCommand {
        .subscribe(streams: streams, every: every, fields: fields.map { Set($0) }, backfillSeconds: backfillSeconds, id: id)
    }

    /// The `op` member.
    public var op: String {
        switch self {
        case .subscribe: "subscribe"
        case .unsubscribe: "unsubscribe"
        case .ping: "ping"
        }
    }

    /// The command as one NDJSON line (trailing `\n` included).
    public func line() -> [UInt8] {
        var w = JSONWriter(capacity: 128)
        w.object { w in
            w.member("op", op)
            switch self {
            case .subscribe(let streams, let every, let fields, let backfill, _):
                w.member("streams", strings: streams.map(\.rawValue))
                if let every { w.member("every", every) }
                if let fields { w.member("fields", strings: Feature.allCases.filter { fields.contains($0) }.map(\.rawValue)) }
                if let backfill { w.key("backfill_s"); w.exact(backfill) }
            case .unsubscribe(let streams, _):
                w.member("streams", strings: streams.map(\.rawValue))
            case .ping:
                break
            }
            if let id { w.member("id", id) }
        }
        w.raw([0x0A])
        return w.bytes
    }

    /// ``line()`` as text (without the newline).
    public var text: String { String(decoding: line().dropLast(), as: UTF8.self) }
}

extension StreamKind {
    /// Parses a comma-separated list of stream names (`earshot tail --streams`); unknown names are reported
    /// with the known ones.
    public static func parseList(_ text: String) -> Result<[StreamKind], ProtocolError> {
        var out: [StreamKind] = []
        for raw in text.split(separator: ",") {
            let name = raw.trimmingSpaces
            guard let kind = StreamKind(rawValue: name) else {
                return .failure(ProtocolError(
                    code: .unknownStream,
                    message: "unknown stream '\(name.prefix(64))'; known: \(StreamKind.allCases.map(\.rawValue).joined(separator: ", "))"))
            }
            if !out.contains(kind) { out.append(kind) }
        }
        return .success(out)
    }
}

extension Substring {
    var trimmingSpaces: String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
