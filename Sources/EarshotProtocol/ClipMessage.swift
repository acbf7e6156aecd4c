// MARK: clip

/// An event clip was written (stream `alert`, after the alert that started it): the WAV file at `path` holds
/// the captured samples from `start` to `end` (UNIX seconds; `samples` of them at `sample_rate`), the
/// configured pre-roll before the first alert and post-roll after the last one it covers. `kind`: the kind of
/// the alert that opened it (`level`, `onset`, `health`); `alerts`: how many alert starts it covers.
public struct ClipMessage: ServerMessage, DecodableServerMessage, Equatable {
    public static let type = "clip"

    public var path: String
    public var kind: String
    public var start: Double
    public var end: Double
    public var samples: Int
    public var sampleRate: Int
    public var alerts: Int

    public init(path: String, kind: String, start: Double, end: Double, samples: Int, sampleRate: Int, alerts: Int) {
        self.path = path; self.kind = kind; self.start = start; self.end = end; self.samples = samples
        self.sampleRate = sampleRate; self.alerts = alerts
    }

    public func encodeMembers(into w: inout JSONWriter) {
        w.member("path", path)
        w.member("kind", kind)
        w.member("start", start, decimals: 3)
        w.member("end", end, decimals: 3)
        w.member("samples", samples)
        w.member("sample_rate", sampleRate)
        w.member("alerts", alerts)
    }

    public init(reading r: inout MessageReader) throws(DecodeError) {
        self.init(path: try r.string("path"), kind: try r.string("kind"), start: try r.double("start"),
                  end: try r.double("end"), samples: try r.int("samples"), sampleRate: try r.int("sample_rate"),
                  alerts: try r.int("alerts"))
    }
}
