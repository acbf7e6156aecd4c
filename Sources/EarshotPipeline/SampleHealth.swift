/// Input-health statistics of one frame's **new** samples (the `hop` samples it added to the stream, or
/// all `nFFT` after a (re)start), computed on the DSP thread where the samples are framed and carried to the
/// sinks in ``FrameHeader/health``. Judged off the DSP thread (`HealthMonitor` in EarshotSinks).
///
/// The run lengths carry over from frame to frame (a run of zeros that began three frames ago is still one
/// run) and restart at a discontinuity. Fixed size, no allocation.
public struct SampleHealth: BitwiseCopyable, Sendable, Equatable {
    /// Magnitude counted as "at or near full scale": −0.09 dBFS. Integer formats decode full scale to
    /// 1 − 2⁻ⁿ⁺¹ (32767/32768 for S16), which is above it; a float source may exceed 1.
    public static let nearFullScale: Float = 0.99

    /// New samples in the frame.
    public var samples: Int32
    /// Of them, exactly 0.
    public var zeros: Int32
    /// Of them, flat-topped at full scale: at or above ``nearFullScale`` in magnitude **and** equal to the
    /// sample before (clipping flattens the peaks; a clean waveform that merely reaches full scale does not
    /// repeat its peak value for long, see docs/architecture.md).
    public var clipped: Int32
    /// Longest run of identical near-full-scale samples in this frame (a run that started in earlier frames
    /// counts from its start).
    public var longestClipRun: Int32
    /// Length of the run of identical sample values that ends with the frame's last sample (a constant —
    /// zero or a stuck DC value — counts from where it began, across frames).
    public var constantRun: Int64
    /// Sum of the new samples (their mean is `sum / samples`: DC).
    public var sum: Double
    /// The frame's last sample (the value of the constant run).
    public var last: Float

    public init() {
        samples = 0; zeros = 0; clipped = 0; longestClipRun = 0; constantRun = 0; sum = 0; last = 0
    }

    /// Every new sample of the frame had the same value as the one before it (digital silence or a stuck
    /// converter).
    public var isConstant: Bool { samples > 0 && constantRun >= Int64(samples) }
}

/// The per-stream state behind ``SampleHealth`` (owned by the frame processor; DSP thread only).
public struct SampleHealthAccumulator: Sendable {
    var previous: Float = 0
    var constantRun: Int64 = 0
    var fullRun: Int32 = 0
    var started = false

    public init() {}

    /// Forget the runs (discontinuity).
    public mutating func reset() { started = false; constantRun = 0; fullRun = 0 }

    /// Statistics of `x` (the frame's new samples), continuing the runs of the previous call.
    /// Real-time safe: one pass, no allocation. Blocks of 8 samples in which no sample is near full scale
    /// (almost every block of live audio) take a vector path that does the same bookkeeping at once (the
    /// full-scale run is 0 after it; the constant run continues if all 8 samples repeat their predecessors,
    /// else it counts from the last sample that did not); any other block goes sample by sample. The counts and runs are the same either way; the sum (for DC) may differ in its last
    /// bits (another summation order) (`SampleHealthTests`).
    public mutating func measure(_ x: UnsafeBufferPointer<Float>) -> SampleHealth {
        var h = SampleHealth()
        guard let p = x.baseAddress, x.count > 0 else { return h }
        var t = Tally(prev: started ? previous : p[0], run: started ? constantRun : 0, full: started ? fullRun : 0)
        t.add(p[0])
        var i = 1
        let raw = UnsafeRawPointer(p)
        let limit = SIMD8<Float>(repeating: SampleHealth.nearFullScale)
        let absMask = SIMD8<UInt32>(repeating: 0x7FFF_FFFF)
        let zero = SIMD8<Float>()
        while i &+ 8 <= x.count {
            let v = raw.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self)
            let before = raw.loadUnaligned(fromByteOffset: (i &- 1) &* 4, as: SIMD8<Float>.self)
            let a = unsafeBitCast(unsafeBitCast(v, to: SIMD8<UInt32>.self) & absMask, to: SIMD8<Float>.self)
            if !any(a .>= limit) {
                let z = SIMD8<Int32>().replacing(with: 1, where: v .== zero)
                t.zeros &+= z.wrappedSum()
                let lo = SIMD4<Double>(Double(v[0]), Double(v[1]), Double(v[2]), Double(v[3]))
                let hi = SIMD4<Double>(Double(v[4]), Double(v[5]), Double(v[6]), Double(v[7]))
                t.sum += (lo + hi).sum()
                // the constant run: bit j set when sample j repeats its predecessor; the run at the block's end
                // is the run before it + 8 if all repeat, else 1 + the repeats after the last sample that did not
                let same = SIMD8<UInt32>(1, 2, 4, 8, 16, 32, 64, 128).replacing(with: 0, where: .!(v .== before))
                let differ = ~same.wrappedSum() & 0xFF
                t.run = differ == 0 ? t.run &+ 8 : Int64(8 &- (31 &- differ.leadingZeroBitCount))
                t.full = 0; t.prev = v[7]
            } else {
                for j in 0..<8 { t.add(p[i &+ j]) }
            }
            i &+= 8
        }
        while i < x.count { t.add(p[i]); i &+= 1 }
        previous = t.prev; constantRun = t.run; fullRun = t.full; started = true
        h.samples = Int32(clamping: x.count); h.zeros = t.zeros; h.clipped = t.near; h.longestClipRun = t.longest
        h.constantRun = t.run; h.sum = t.sum; h.last = t.prev
        return h
    }

    /// The running counts of one ``measure(_:)`` call.
    struct Tally {
        var prev: Float
        var run: Int64
        var full: Int32
        var zeros: Int32 = 0, near: Int32 = 0, longest: Int32 = 0
        var sum: Double = 0

        /// One sample.
        @inline(__always)
        mutating func add(_ v: Float) {
            sum += Double(v)
            if v == 0 { zeros &+= 1 }
            let same = v == prev
            run = same ? run &+ 1 : 1
            prev = v
            if abs(v) >= SampleHealth.nearFullScale {
                if same && full > 0 { near &+= 1; full &+= 1 } else { full = 1 }
                if full > longest { longest = full }
            } else {
                full = 0
            }
        }
    }
}
