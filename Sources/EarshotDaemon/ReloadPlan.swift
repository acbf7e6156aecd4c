import EarshotDSP

/// What a SIGHUP reload does, computed (purely) from the running and the new configuration.
///
/// The steps, least to most disruptive:
/// - `live`: sink settings (alert thresholds, budgets: updated in place; rolling windows, metrics, levels,
///   the level-alert weighting: those sinks restart on the running bus). DSP and capture are untouched.
/// - `retune`: onset-picker parameters (`analysis.onset.delta`, `wait_frames`, `pre_max_frames`, `mean_weight`,
///   `pre_avg_frames`) go to the DSP thread through its one-slot mailbox and are taken between two frames:
///   no discontinuity, no gap, level meters keep their state.
/// - `replan`: other `analysis.*` (same frame shape): a new analyzer; the next frame is flagged `reload`.
/// - `reopen`: `capture.*` (same sample rate and ring): the capture device is reopened.
/// - `rebuild`: the frame shape changed (``sameFrameShape(_:_:)`` is false): a new pipeline and bus.
///
/// `socket.*` and `rolling.backfill_s` are fixed when the socket is bound: they are kept (``restartOnlyKeys``)
/// and take effect after a restart.
public struct ReloadPlan: Sendable, Equatable {
    /// The most disruptive thing a reload does.
    public enum Action: Int, Sendable, Comparable, CustomStringConvertible {
        case none, live, retune, replan, reopen, rebuild

        public static func < (a: Action, b: Action) -> Bool { a.rawValue < b.rawValue }
        public var description: String {
            switch self {
            case .none: "none"
            case .live: "live"
            case .retune: "retune"
            case .replan: "replan"
            case .reopen: "reopen"
            case .rebuild: "rebuild"
            }
        }
    }

    /// The configuration to apply: the new one with ``restartOnlyKeys`` kept at their running values.
    public var config: EarshotConfig
    /// Keys whose values differ (after restart-only keys were reverted), in schema order.
    public var keys: [String]
    /// Changed keys that take effect only after a restart (their running values are kept).
    public var restartOnlyKeys: [String]
    /// A new pipeline and bus (frame shape changed). Implies everything below.
    public var rebuild = false
    /// A new analyzer on the running pipeline.
    public var replan = false
    /// New onset-picker parameters through the DSP thread's mailbox (not set when ``replan`` or ``rebuild``).
    public var retune = false
    /// Reopen the capture device (not set when ``rebuild``).
    public var reopen = false
    /// Restart the non-socket sinks on the running bus (rolling, metrics, levels, level-alert weighting).
    public var restartSinks = false
    /// Update sinks in place (alert thresholds, budgets).
    public var updateSinks = false

    /// The step that names this reload.
    public var action: Action {
        if rebuild { return .rebuild }
        if reopen { return .reopen }
        if replan { return .replan }
        if retune { return .retune }
        return keys.isEmpty ? .none : .live
    }

    public var isEmpty: Bool { keys.isEmpty }

    /// Onset-picker keys the DSP thread takes in place.
    public static let retunableKeys: Set<String> = [
        "analysis.onset.delta", "analysis.onset.wait_frames", "analysis.onset.pre_max_frames",
        "analysis.onset.pre_avg_frames", "analysis.onset.mean_weight",
    ]
    /// Keys fixed when the socket is bound (a restart applies them).
    static func isRestartOnly(_ key: String) -> Bool {
        key.hasPrefix("socket.") || key == "rolling.backfill_s"
    }
    /// Keys whose sinks restart on the running bus.
    static func restartsSinks(_ key: String) -> Bool {
        key.hasPrefix("rolling.") || key.hasPrefix("metrics.") || key.hasPrefix("levels.")
            || key == "alerts.level.weighting" || key.hasPrefix("health.") || key.hasPrefix("clips.")
            || key.hasPrefix("mqtt.")  // mqtt: also when it is switched on or off
    }

    /// Whether two configurations run on the same pipeline: the same ``AnalyzerConfig/FrameShape`` (the
    /// analyzer's one definition) and the same ring size. The one place the daemon decides "rebuild".
    public static func sameFrameShape(_ a: EarshotConfig, _ b: EarshotConfig) -> Bool {
        a.analyzerConfig.frameShape == b.analyzerConfig.frameShape && a.capture.ringSeconds == b.capture.ringSeconds
            && a.clipTapSeconds == b.clipTapSeconds  // clips turned on or off: the DSP thread's tap
    }

    /// The plan for going from `old` to `new`.
    public init(from old: EarshotConfig, to new: EarshotConfig) {
        var next = new
        var restartOnly: [String] = []
        for key in new.changes(from: old).keys where Self.isRestartOnly(key) { restartOnly.append(key) }
        if !restartOnly.isEmpty {
            next.socket = old.socket  // socket.* and rolling.backfill_s
        }
        config = next
        restartOnlyKeys = restartOnly
        keys = next.changes(from: old).keys
        if !Self.sameFrameShape(old, next) {
            rebuild = true
            return
        }
        for key in keys {
            if Self.retunableKeys.contains(key) {
                retune = true
            } else if key.hasPrefix("analysis.") || key == "capture.sample_rate" || key == "levels.bands" {
                replan = true
            } else if key.hasPrefix("capture.") {
                reopen = true
            } else if Self.restartsSinks(key) {
                restartSinks = true
            } else if key.hasPrefix("alerts.") || key.hasPrefix("budgets.") {
                updateSinks = true
            }
        }
        if replan { retune = false }  // the new analyzer is built with the new onset parameters
    }
}
