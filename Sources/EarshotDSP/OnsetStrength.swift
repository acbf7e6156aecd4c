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
            let cur = UnsafeRawPointer(s), prev = UnsafeRawPointer(previous)
            let zero = SIMD8<Float>()
            var a0 = SIMD4<Double>(), a1 = SIMD4<Double>()
            let blocks = nMels / 8
            for b in 0..<blocks {
                var d = cur.loadUnaligned(fromByteOffset: b &* 32, as: SIMD8<Float>.self)
                    - prev.loadUnaligned(fromByteOffset: b &* 32, as: SIMD8<Float>.self)
                d.replace(with: zero, where: .!(d .> zero))
                a0 += SIMD4<Double>(Double(d[0]), Double(d[1]), Double(d[2]), Double(d[3]))
                a1 += SIMD4<Double>(Double(d[4]), Double(d[5]), Double(d[6]), Double(d[7]))
            }
            var acc = (a0 + a1).sum()
            for m in (blocks &* 8)..<nMels {
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
