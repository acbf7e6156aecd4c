/// Onset strength of one log-mel frame: `librosa.onset.onset_strength(S=logmel_db, lag=1,
/// max_size=1, center=False)` computed causally, i.e. `mean_m max(0, S[m,t] − S[m,t−1])` in dB,
/// and 0 for the first frame (and the first frame after ``reset()``), as librosa pads one zero.
///
/// Real-time safe: ``process(logmel:)`` does no allocation, takes no lock.
/// One thread at a time per instance (it keeps the previous frame).
public final class OnsetStrength: @unchecked Sendable {
    public let nMels: Int
    let previous: UnsafeMutablePointer<Float>
    let hasPrevious: UnsafeMutablePointer<Bool>

    /// - Parameter nMels: number of log-mel bands (≥ 1).
    public init(nMels: Int) {
        precondition(nMels >= 1)
        self.nMels = nMels
        previous = .allocate(capacity: nMels)
        previous.initialize(repeating: 0, count: nMels)
        hasPrevious = .allocate(capacity: 1)
        hasPrevious.initialize(to: false)
    }

    deinit {
        previous.deallocate()
        hasPrevious.deallocate()
    }

    /// Forgets the previous frame: the next strength is 0.
    public func reset() { hasPrevious.pointee = false }

    /// Returns this frame's onset strength (dB, ≥ 0) and remembers the frame. Real-time safe.
    /// - Parameter logmel: `nMels` log-mel values in dB.
    public func process(logmel: UnsafeBufferPointer<Float>) -> Float {
        precondition(logmel.count == nMels)
        let s = logmel.baseAddress!
        var result: Float = 0
        if hasPrevious.pointee {
            var acc = 0.0
            for m in 0..<nMels {
                let d = s[m] - previous[m]
                if d > 0 { acc += Double(d) }
            }
            result = Float(acc / Double(nMels))
            if !result.isFinite { result = 0 }
        }
        previous.update(from: s, count: nMels)
        hasPrevious.pointee = true
        return result
    }
}
