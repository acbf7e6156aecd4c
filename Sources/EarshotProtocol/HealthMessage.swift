// MARK: health

/// An input-health fault starting or ending (stream `alert`, next to the level and onset alerts; the
/// `alert=health` log line says the same). `t`: UNIX seconds when the condition began (start) or cleared
/// (end); the decision came the kind's hold time later. `value`/`threshold`: the measurement that decided it
/// and its limit, in the kind's unit (``Kind``). `active`: every fault active after this transition (empty: healthy).
public struct HealthMessage: ServerMessage, DecodableServerMessage, Equatable {
    public static let type = "health"

    public enum State: String, Sendable, CaseIterable { case start, end }

    /// The fault kinds and the unit of their `value`.
    public enum Kind: String, Sendable, CaseIterable {
        /// Digital silence (every sample equal: zeros or a stuck value); value: seconds constant.
        case silence
        /// |mean| above the limit; value: mean (full scale = 1).
        case dcOffset = "dc_offset"
        /// Noise floor collapse; value: the quietest LAF of the block, dBFS.
        case lowFloor = "low_floor"
        /// Clipping; value: share of flat-topped full-scale samples (0–1).
        case clipping
        /// Sample clock vs wall clock; value: ppm (positive: the device delivers too many samples).
        case clockDrift = "clock_drift"
        /// No frames at all (a stopped source, a lost device); value: seconds without a frame.
        case noData = "no_data"
    }

    public var kind: Kind
    public var state: State
    public var t: Double
    public var value: Double
    public var threshold: Double
    public var active: [Kind]

    public init(kind: Kind, state: State, t: Double, value: Double, threshold: Double, active: [Kind]) {
        self.kind = kind; self.state = state; self.t = t; self.value = value; self.threshold = threshold
        self.active = active
    }

    public func encodeMembers(into w: inout JSONWriter) {
        w.member("kind", kind.rawValue)
        w.member("state", state.rawValue)
        w.member("t", t, decimals: 3)
        w.key("value"); w.significant(value, digits: 6)
        w.key("threshold"); w.significant(threshold, digits: 6)
        w.member("active", strings: active.map(\.rawValue))
    }

    public init(reading r: inout MessageReader) throws(DecodeError) {
        guard let kind = Kind(rawValue: try r.string("kind")) else { throw DecodeError("unknown health kind") }
        guard let state = State(rawValue: try r.string("state")) else { throw DecodeError("unknown health state") }
        var active: [Kind] = []
        for name in try r.strings("active") {
            guard let k = Kind(rawValue: name) else { throw DecodeError("unknown health kind '\(name)' in 'active'") }
            active.append(k)
        }
        self.init(kind: kind, state: state, t: try r.double("t"), value: try r.double("value"),
                  threshold: try r.double("threshold"), active: active)
    }
}
