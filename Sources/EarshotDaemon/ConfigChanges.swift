/// The keys that differ between the running and the new config, grouped by section. The daemon decides what
/// a reload does from them with ``ReloadPlan`` (live / retune / replan / reopen / rebuild), not from ``parts``.
public struct ConfigChanges: Sendable, Equatable {
    /// Parts of the daemon affected by a change.
    public struct Parts: OptionSet, Sendable, Hashable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }

        /// `capture.*` changed: close and reopen the capture device.
        public static let capture = Parts(rawValue: 1 << 0)
        /// `analysis.*` or `capture.sample_rate` changed: re-plan the DSP chain (FFT, mel bank, onset).
        public static let analysis = Parts(rawValue: 1 << 1)
        /// `socket.*` changed. Limits apply live; a new `path`, `mode` or `group` needs a rebind
        /// (existing subscribers keep their connection to the old listener until they disconnect).
        public static let socket = Parts(rawValue: 1 << 2)
        /// Anything else (levels, rolling, alerts, metrics, budgets, logging): applied live.
        public static let other = Parts(rawValue: 1 << 3)
    }

    public var parts: Parts
    /// Dotted key paths whose values differ, in document order.
    public var keys: [String]

    public init(parts: Parts, keys: [String]) {
        self.parts = parts
        self.keys = keys
    }

    public var isEmpty: Bool { keys.isEmpty }
    /// The capture device must be reopened.
    public var reopensCapture: Bool { parts.contains(.capture) }
    /// The DSP must be re-planned.
    public var replansDSP: Bool { parts.contains(.analysis) }
    /// The listening socket must be recreated (path, mode or group changed).
    public var rebindsSocket: Bool {
        keys.contains { $0 == "socket.path" || $0 == "socket.mode" || $0 == "socket.group" }
    }
}

extension EarshotConfig {
    /// What changed from `old` to `self`.
    public func changes(from old: EarshotConfig) -> ConfigChanges {
        var parts: ConfigChanges.Parts = []
        var keys: [String] = []
        for key in ConfigSchema.keys where key.render(old) != key.render(self) {
            keys.append(key.path)
            switch key.path.split(separator: ".").first {
            case "capture":
                parts.insert(.capture)
                if key.path == "capture.sample_rate" { parts.insert(.analysis) }
            case "analysis": parts.insert(.analysis)
            case "socket": parts.insert(.socket)
            default: parts.insert(.other)
            }
        }
        return ConfigChanges(parts: parts, keys: keys)
    }
}
