/// Causal peak picking with an adaptive threshold over an onset-strength sequence (see
/// ``OnsetPickerConfig`` for the exact rule).
///
/// With `postMaxFrames == 1` the candidate is the previous frame, so an onset in frame `t` is
/// reported by the call for frame `t+1` (``OnsetEvent/detectedAtFrame``): one hop of latency.
/// History lives in a ring preallocated in `init`.
/// Real-time safe: ``process(strength:frameIndex:)`` does no allocation, takes no lock.
/// One thread at a time per instance.
public final class OnsetPicker: @unchecked Sendable {
    public let config: OnsetPickerConfig

    struct State {
        var count: Int64 = 0          // strengths seen since init/reset
        var lastOnset: Int64 = .min   // frame index (in this picker's numbering) of the last onset
        var lastFrameIndex: Int64 = 0 // caller frame index of the newest strength
    }

    let ring: UnsafeMutablePointer<Float>
    let capacity: Int
    let state: UnsafeMutablePointer<State>

    /// - Parameter config: validated picker parameters (`postMaxFrames` 0 or 1).
    public init(config: OnsetPickerConfig) {
        precondition(config.postMaxFrames == 0 || config.postMaxFrames == 1)
        precondition(config.preMaxFrames >= 0 && config.preAvgFrames >= 0 && config.waitFrames >= 0)
        self.config = config
        capacity = max(config.preMaxFrames, config.preAvgFrames) + 2
        ring = .allocate(capacity: capacity)
        ring.initialize(repeating: 0, count: capacity)
        state = .allocate(capacity: 1)
        state.initialize(to: State())
    }

    deinit {
        ring.deallocate()
        state.deallocate()
    }

    /// Forgets the history and the last onset.
    public func reset() { state.pointee = State() }

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
        let post = Int64(config.postMaxFrames)
        let c = t - post  // candidate, in picker numbering
        guard c >= 0 else { return nil }
        let sc = value(c)
        if post == 1 && sc < s { return nil }
        // pre-max over the previous frames that exist
        let preMax = min(Int64(config.preMaxFrames), c)
        var i: Int64 = 1
        while i <= preMax {
            if value(c - i) > sc { return nil }
            i += 1
        }
        // adaptive threshold: mean of the previous frames that exist, + delta
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
        guard sc >= mean + config.delta else { return nil }
        let last = state.pointee.lastOnset
        if last != .min && c - last < Int64(config.waitFrames) { return nil }
        state.pointee.lastOnset = c
        return OnsetEvent(frameIndex: frameIndex - post, detectedAtFrame: frameIndex, strength: sc)
    }
}
