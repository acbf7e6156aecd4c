/// Causal peak picking with an adaptive threshold over an onset-strength sequence (see
/// ``OnsetPickerConfig`` for the exact rule).
///
/// With `postMaxFrames == 1` the candidate is the previous frame, so an onset in frame `t` is
/// reported by the call for frame `t+1` (``OnsetEvent/detectedAtFrame``): one hop of latency.
/// History lives in a ring preallocated in `init`.
/// Real-time safe: ``process(strength:frameIndex:)`` and ``retune(_:)`` do no allocation, take no lock.
/// One thread at a time per instance.
///
/// The history ring is sized for the largest `preMaxFrames`/`preAvgFrames` the configuration accepts
/// (``maxHistoryFrames``), so ``retune(_:)`` can change every parameter but the look-ahead in place, keeping
/// the history (aubio's `aubio_onset_set_threshold` model): no reset, no discontinuity.
public final class OnsetPicker: @unchecked Sendable {
    /// The parameters in use (changed only by ``retune(_:)``).
    public var config: OnsetPickerConfig { state.pointee.config }

    /// The largest `preMaxFrames`/`preAvgFrames` the ring is always sized for (the configuration's bound).
    public static let maxHistoryFrames = 1_000

    struct State {
        var count: Int64 = 0          // strengths seen since init/reset
        var lastOnset: Int64 = .min   // frame index (in this picker's numbering) of the last onset
        var lastFrameIndex: Int64 = 0 // caller frame index of the newest strength
        var config: OnsetPickerConfig
    }

    let ring: UnsafeMutablePointer<Float>
    let capacity: Int
    let state: UnsafeMutablePointer<State>

    /// - Parameter config: validated picker parameters (`postMaxFrames` 0 or 1).
    public init(config: OnsetPickerConfig) {
        precondition(config.postMaxFrames == 0 || config.postMaxFrames == 1)
        precondition(config.preMaxFrames >= 0 && config.preAvgFrames >= 0 && config.waitFrames >= 0)
        capacity = max(config.preMaxFrames, config.preAvgFrames, Self.maxHistoryFrames) + 2
        ring = .allocate(capacity: capacity)
        ring.initialize(repeating: 0, count: capacity)
        state = .allocate(capacity: 1)
        state.initialize(to: State(config: config))
    }

    deinit {
        ring.deallocate()
        state.deallocate()
    }

    /// Forgets the history and the last onset (the parameters stay).
    public func reset() { state.pointee = State(config: state.pointee.config) }

    /// Whether ``retune(_:)`` can take `new` in place: the same look-ahead (it is latency, announced in
    /// `hello`) and a history that fits the ring.
    public func canRetune(to new: OnsetPickerConfig) -> Bool {
        new.postMaxFrames == config.postMaxFrames && new.preMaxFrames >= 0 && new.preAvgFrames >= 0
            && new.waitFrames >= 0 && max(new.preMaxFrames, new.preAvgFrames) + 2 <= capacity
    }

    /// Takes new parameters between two frames, keeping the history and the last onset (the next decision
    /// already uses them). Real-time safe. Returns `false` (and changes nothing) if ``canRetune(to:)`` is false.
    @discardableResult
    public func retune(_ new: OnsetPickerConfig) -> Bool {
        guard canRetune(to: new) else { return false }
        state.pointee.config = new
        return true
    }

    @inline(__always)
    func value(_ i: Int64) -> Float { ring[Int(i % Int64(capacity))] }

    /// Appends one strength and returns an onset if one is decided by it. Real-time safe.
    /// - Parameters:
    ///   - strength: onset strength of frame `frameIndex`.
    ///   - frameIndex: the caller's index of this frame (consecutive since the last reset).
    public func process(strength: Float, frameIndex: Int64) -> OnsetEvent? {
        let s = strength.isFinite ? strength : 0
        let t = state.pointee.count
        ring[Int(t % Int64(capacity))] = s
        state.pointee.count = t + 1
        let config = state.pointee.config
        let post = Int64(config.postMaxFrames)
        let c = t - post  // candidate, in picker numbering
        guard c >= 0 else { return nil }
        // no decision until the history the rule looks at is filled (at start and after each reset)
        guard c >= Int64(max(config.preMaxFrames, config.preAvgFrames)) else { return nil }
        let sc = value(c)
        if post == 1 && sc < s { return nil }
        // pre-max over the previous frames that exist
        let preMax = min(Int64(config.preMaxFrames), c)
        var i: Int64 = 1
        while i <= preMax {
            if value(c - i) > sc { return nil }
            i += 1
        }
        // adaptive threshold: meanWeight × mean of the previous frames, + delta
        let preAvg = min(Int64(config.preAvgFrames), c)
        var mean: Float = 0
        if preAvg > 0 {
            var acc: Float = 0
            var j: Int64 = 1
            while j <= preAvg {
                acc += value(c - j)
                j += 1
            }
            mean = acc / Float(preAvg)
        }
        guard sc >= config.meanWeight * mean + config.delta else { return nil }
        let last = state.pointee.lastOnset
        if last != .min && c - last < Int64(config.waitFrames) { return nil }
        state.pointee.lastOnset = c
        return OnsetEvent(frameIndex: frameIndex - post, detectedAtFrame: frameIndex, strength: sc)
    }
}
