#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// IEC 61672-1 frequency weighting.
public enum FrequencyWeighting: Sendable, Hashable {
    case a, c, z
}

/// Sound level meter: A/C/Z frequency weighting (IIR biquads, `Double` state) followed by
/// exponential time weighting Fast (τ = 0.125 s) and Slow (τ = 1 s) of the squared signal,
/// per sample. Levels are `10*log10(max(meanSquare, 1e-20))` dBFS, the RMS convention
/// (a settled 1 kHz full-scale sine reads −3.01 dBFS on LAF).
///
/// Filter design: the analog IEC 61672-1 poles (20.598997, 107.65265, 737.86223, 12194.217 Hz)
/// as first-order sections. High-pass sections use the bilinear transform (their corners are far
/// below Nyquist); the 12194 Hz low-pass pair uses matched poles `exp(−ωT)` with the zero placed
/// so the magnitude matches the analog one at DC and at Nyquist, which avoids the bilinear
/// frequency warping. Sections are paired into biquads and the cascade is normalized to 0 dB at
/// 1 kHz. At 48 kHz the error vs the analytic weighting is < 0.01 dB below 1 kHz, −0.8 dB at
/// 10 kHz and −1.5 dB at 16 kHz (class 1 allows −3.6 and −17).
///
/// **Z and DC**: the Z path runs through a DC block, a 2nd-order Butterworth high-pass at
/// ``dcBlockHz`` (5 Hz): −0.26 dB at 10 Hz, −0.02 dB at 20 Hz, inside the IEC 61672-1 class-1 limits of
/// Z-weighting (+3.5/−∞ dB at 10 Hz, ±2.5 dB at 20 Hz), so a DC offset from the ADC or a bias does not
/// read as level (`lzf`, LZeq, LZFmax). A and C need none: their two 20.6 Hz poles block DC already.
///
/// Processing shares work between the weightings (the filters are linear and time-invariant, so
/// the cascade order is free): C = `gc·H₁₁·L₄₄` runs per sample, and A = `ga·H₁₁·H₂₃·L₄₄` is C
/// followed by the one remaining biquad `H₂₃·ga/gc` — 3 biquads per sample instead of 5, plus the DC block.
/// The time weightings run per sample (`s += α(q − s)`), so their maxima and minima are exact.
/// The loop runs two filters or two time weightings per `SIMD2<Double>` operation (see ``run(_:count:_:into:)``),
/// each lane doing the operations of the scalar form in the same order: the results are bit-identical to it.
///
/// Every ``process(_:)`` also accumulates ``LevelSums`` (energies, per-sample Fast/Slow extremes, C peak)
/// into ``head`` and ``tail``: samples before ``split`` go to `head`, the others to `tail`.
///
/// Real-time safe: ``process(_:)`` does no allocation, takes no lock. One thread at a time.
public final class LevelMeter: @unchecked Sendable {
    public let sampleRate: Int

    /// Biquad coefficients (a0 = 1).
    public struct Biquad: Sendable, Hashable {
        public var b0, b1, b2, a1, a2: Double
    }

    struct State {
        var cState = (0.0, 0.0, 0.0, 0.0)  // the 2 C biquads × 2 (DF2T)
        var aState = (0.0, 0.0)            // the A-only biquad
        var zState = (0.0, 0.0)            // the DC block
        var aFast = 0.0, aSlow = 0.0, cFast = 0.0, zFast = 0.0
        /// Samples since the last reset (for the settled minima).
        var sinceReset = 0
    }

    /// Corner of the Z path's DC block, Hz.
    public static let dcBlockHz = 5.0

    /// A-weighting biquads (3) and C-weighting biquads (2), gain included in the first.
    public let aSections: [Biquad]
    public let cSections: [Biquad]
    /// The Z path's DC-blocking high-pass.
    public let zSection: Biquad
    /// A biquad in the state-space form that ``step(_:_:_:_:)`` runs: `b0`, `a1`, `a2` and
    /// `k1 = b1 − a1·b0`, `k2 = b2 − a2·b0`.
    struct Section {
        var b0, k1, k2, a1, a2: Double
        init(_ c: Biquad) { b0 = c.b0; k1 = c.b1 - c.a1 * c.b0; k2 = c.b2 - c.a2 * c.b0; a1 = c.a1; a2 = c.a2 }
    }
    let coef: UnsafeMutablePointer<Section>  // 0, 1: C sections; 2: H₂₃·ga/gc (C → A); 3: DC block
    /// The sections paired for the `SIMD2` steps of ``Cascade``: (C₁, DC block), (C₂, A-only).
    let pairs: UnsafeMutablePointer<SectionPair>
    let state: UnsafeMutablePointer<State>
    let sums: UnsafeMutablePointer<LevelSums>  // head, tail
    let fastAlpha: Double
    let slowAlpha: Double
    /// Samples after a reset before the Fast / Slow minima count (5 τ).
    let settleFast: Int
    let settleSlow: Int

    /// Index, within the next ``process(_:)`` call, of the first sample that goes to ``tail``
    /// (`Int.max`: none). Set by the caller before each call; it is kept until changed.
    /// Stored behind a pointer: set and read on the DSP thread only (one thread at a time, see the type); a
    /// stored class property costs the caller a `swift_beginAccess` call per frame (bench/check_disasm.sh;
    /// `@exclusivity(unchecked)` does not reach callers in other modules).
    public var split: Int {
        get { splitStorage.pointee }
        set { splitStorage.pointee = newValue }
    }
    let splitStorage: UnsafeMutablePointer<Int>

    /// The side signal `S = (L − R) / 2` aligned with the samples of the next ``process(_:)`` (which are then
    /// the mid signal `M = (L + R) / 2`), or nil (mono). Set by the caller before each call, which consumes it
    /// (back to nil: a caller that does not set it again gets mono levels, never a read through a stale
    /// pointer). With it the levels are the energy mean over the two channels (see `LevelMeter+Side.swift`).
    /// (Kept behind a pointer: a stored class property set from another module costs a dynamic exclusivity
    /// check per frame.)
    public var side: UnsafePointer<Float>? {
        @inline(__always) get { sideBox.pointee }
        @inline(__always) set { sideBox.pointee = newValue }
    }
    let sideBox: UnsafeMutablePointer<UnsafePointer<Float>?>
    /// Filter states of the side signal (its time weightings are the shared ones in `state`).
    let sideState: UnsafeMutablePointer<State>
    /// The band filters of the side signal (nil when bands are off).
    let sideBank: BandFilterBank?
    /// Channels whose levels are averaged per sample when ``side`` is given (0: ``side`` is the stereo side
    /// signal; N ≥ 3: ``side`` holds the N channels interleaved, see `LevelMeter+Channels.swift`).
    public let channels: Int
    /// Per-channel state of an N ≥ 3 channel meter (nil otherwise).
    let multi: Multichannel?

    /// Analog IEC 61672-1 pole frequencies in Hz.
    public static let poleHz = (f1: 20.598997, f2: 107.65265, f3: 737.86223, f4: 12194.217)

    /// The fractional-octave band filters (nil when bands are off: no cost).
    public let bank: BandFilterBank?
    /// Band energies of the last ``process(_:)``: `maxBands` before ``split``, then `maxBands` from it.
    let bandEnergies: UnsafeMutablePointer<Float>

    /// - Parameters:
    ///   - sampleRate: Hz (8 k – 192 k).
    ///   - bands: the band levels to compute along (``BandResolution/off``: none).
    ///   - channels: 0 (mono, or stereo through ``side``) or 3…64: ``side`` then carries that many channels
    ///     interleaved and the levels are their energy mean (filters and band banks per channel, preallocated).
    public init(sampleRate: Int, bands: BandResolution = .off, channels: Int = 0) {
        precondition(channels == 0 || (3...64).contains(channels), "level channels must be 0 or 3…64")
        self.sampleRate = sampleRate
        self.channels = channels
        multi = channels >= 3 ? Multichannel(channels: channels, bands: bands, sampleRate: sampleRate) : nil
        bank = bands == .off ? nil : BandFilterBank(resolution: bands, sampleRate: sampleRate)
        sideBank = bands == .off ? nil : BandFilterBank(resolution: bands, sampleRate: sampleRate)
        sideState = .allocate(capacity: 1)
        sideBox = .allocate(capacity: 1)
        sideBox.initialize(to: nil)
        sideState.initialize(to: State())
        splitStorage = .allocate(capacity: 1)
        splitStorage.initialize(to: Int.max)
        bandEnergies = .allocate(capacity: 2 * maxBands)
        bandEnergies.initialize(repeating: 0, count: 2 * maxBands)
        let fs = Double(sampleRate)
        let t = 1 / fs
        func w(_ f: Double) -> Double { 2 * Double.pi * f }
        typealias First = (b0: Double, b1: Double, a1: Double)
        func hp(_ f: Double) -> First {
            let c = 2 * fs, wc = w(f)
            return (c / (c + wc), -c / (c + wc), (wc - c) / (c + wc))
        }
        func lp(_ f: Double) -> First {
            let wc = w(f), p = exp(-wc * t), on = Double.pi * fs
            let tp = (wc * wc / (wc * wc + on * on)).squareRoot()
            let sum = 1 - p, diff = tp * (1 + p)
            return ((sum + diff) / 2, (sum - diff) / 2, -p)
        }
        func pair(_ x: First, _ y: First) -> Biquad {
            Biquad(
                b0: x.b0 * y.b0, b1: x.b0 * y.b1 + x.b1 * y.b0, b2: x.b1 * y.b1,
                a1: x.a1 + y.a1, a2: x.a1 * y.a1)
        }
        let p = Self.poleHz
        var a = [pair(hp(p.f1), hp(p.f1)), pair(hp(p.f2), hp(p.f3)), pair(lp(p.f4), lp(p.f4))]
        var c = [pair(hp(p.f1), hp(p.f1)), pair(lp(p.f4), lp(p.f4))]
        let ga = 1 / Self.magnitude(a, frequency: 1000, sampleRate: fs)
        let gc = 1 / Self.magnitude(c, frequency: 1000, sampleRate: fs)
        a[0].b0 *= ga; a[0].b1 *= ga; a[0].b2 *= ga
        c[0].b0 *= gc; c[0].b1 *= gc; c[0].b2 *= gc
        aSections = a
        cSections = c
        var aOnly = pair(hp(p.f2), hp(p.f3))
        let g = ga / gc
        aOnly.b0 *= g; aOnly.b1 *= g; aOnly.b2 *= g
        // 2nd-order Butterworth high-pass (bilinear, pre-warped corner).
        let k = tan(Double.pi * Self.dcBlockHz / fs), q = 2.0.squareRoot()
        let norm = 1 / (1 + q * k + k * k)
        zSection = Biquad(b0: norm, b1: -2 * norm, b2: norm, a1: 2 * (k * k - 1) * norm, a2: (1 - q * k + k * k) * norm)
        coef = .allocate(capacity: 4)
        let sections = [Section(c[0]), Section(c[1]), Section(aOnly), Section(zSection)]
        coef.initialize(from: sections, count: 4)
        pairs = .allocate(capacity: 2)
        pairs.initialize(from: [SectionPair(sections[0], sections[3]), SectionPair(sections[1], sections[2])], count: 2)
        state = .allocate(capacity: 1)
        state.initialize(to: State())
        sums = .allocate(capacity: 2)
        sums.initialize(repeating: .empty, count: 2)
        fastAlpha = 1 - exp(-1 / (0.125 * fs))
        slowAlpha = 1 - exp(-1 / (1.0 * fs))
        settleFast = Int((5 * 0.125 * fs).rounded(.up))
        settleSlow = Int((5 * 1.0 * fs).rounded(.up))
    }

    deinit {
        splitStorage.deallocate()
        bandEnergies.deallocate()
        coef.deallocate()
        pairs.deallocate()
        state.deallocate()
        sums.deallocate()
        sideState.deallocate()
        sideBox.deallocate()
        multi?.deallocate()
    }

    /// Clears filter and time-weighting states (levels restart from silence).
    public func reset() {
        state.pointee = State(); bank?.reset(); sideState.pointee = State(); sideBank?.reset(); multi?.reset()
    }

    /// The band energies of the last ``process(_:)`` (``BandFrame/empty`` when bands are off).
    public var bandFrame: BandFrame {
        guard let bank else { return .empty }
        let e = bandEnergies
        return BandFrame(count: Int32(bank.count), head: BandEnergies { e[$0] }, tail: BandEnergies { e[maxBands + $0] })
    }

    /// The level data of the samples of the last ``process(_:)`` before ``split``.
    public var head: LevelSums { sums[0] }
    /// The level data of the samples of the last ``process(_:)`` from ``split`` on (empty without a split).
    public var tail: LevelSums { sums[1] }

    static func magnitude(_ secs: [Biquad], frequency: Double, sampleRate: Double) -> Double {
        let om = 2 * Double.pi * frequency / sampleRate
        var mag = 1.0
        for s in secs {
            // |b0 + b1 e^-jw + b2 e^-2jw| / |1 + a1 e^-jw + a2 e^-2jw|
            let nr = s.b0 + s.b1 * cos(om) + s.b2 * cos(2 * om)
            let ni = -s.b1 * sin(om) - s.b2 * sin(2 * om)
            let dr = 1 + s.a1 * cos(om) + s.a2 * cos(2 * om)
            let di = -s.a1 * sin(om) - s.a2 * sin(2 * om)
            mag *= ((nr * nr + ni * ni) / (dr * dr + di * di)).squareRoot()
        }
        return mag
    }

    /// The digital filter's magnitude response in dB (for tests and documentation; not real-time).
    public func responseDb(_ weighting: FrequencyWeighting, frequency: Double) -> Double {
        switch weighting {
        case .a: 20 * log10(Self.magnitude(aSections, frequency: frequency, sampleRate: Double(sampleRate)))
        case .c: 20 * log10(Self.magnitude(cSections, frequency: frequency, sampleRate: Double(sampleRate)))
        case .z: 20 * log10(Self.magnitude([zSection], frequency: frequency, sampleRate: Double(sampleRate)))
        }
    }

    /// The IEC 61672-1 analytic weighting in dB, normalized to 0 dB at 1 kHz.
    public static func analyticDb(_ weighting: FrequencyWeighting, frequency f: Double) -> Double {
        let p = poleHz
        func r(_ f: Double) -> Double {
            let f2 = f * f
            switch weighting {
            case .a:
                return p.f4 * p.f4 * f2 * f2
                    / ((f2 + p.f1 * p.f1) * ((f2 + p.f2 * p.f2) * (f2 + p.f3 * p.f3)).squareRoot()
                        * (f2 + p.f4 * p.f4))
            case .c:
                return p.f4 * p.f4 * f2 / ((f2 + p.f1 * p.f1) * (f2 + p.f4 * p.f4))
            case .z:
                return 1
            }
        }
        return 20 * log10(r(f) / r(1000))
    }

    /// One biquad step. The states are those of direct form II transposed (`y = b0·x + s0`,
    /// `s0' = b1·x + s1 − a1·y`, `s1' = b2·x − a2·y`), with `y` substituted into the updates:
    /// `s0' = (k1·x + s1) − a1·s0`, `s1' = k2·x − a2·s0`. Same operation count, but the per-sample
    /// recurrence is one multiply and one subtract on `s0` (about 8 cycles) instead of an add, a multiply
    /// and a subtract through `y` (about 12): the recurrence, not the arithmetic, bounds this loop.
    @inline(__always)
    static func step(_ c: Section, _ x: Double, _ s0: inout Double, _ s1: inout Double) -> Double {
        let y = c.b0 * x + s0
        let t = c.k1 * x + s1
        s1 = c.k2 * x - c.a2 * s0
        s0 = t - c.a1 * s0
        return y
    }

    /// Runs `samples` (the new samples, in order) through the filters and time weightings, and sets
    /// ``head``/``tail`` to their level data (split at ``split``).
    /// A non-finite sample counts as 0: one NaN would otherwise stay in the IIR states for good and pin
    /// every level at the −200 floor until a reset. Real-time safe.
    public func process(_ samples: UnsafeBufferPointer<Float>) {
        sums[0] = .empty
        sums[1] = .empty
        guard let x = samples.baseAddress else { return }
        let cut = min(max(split, 0), samples.count)
        if let side {
            sideBox.pointee = nil  // consumed: a later call without a fresh side is mono, never a stale pointer
            if let multi {
                processChannels(multi, side, count: samples.count, cut: cut)
            } else {
                processWithSide(x, side, count: samples.count, cut: cut)
            }
            return
        }
        if let multi, multi.active.pointee { monoAfterChannels(multi) }
        if sideState.pointee.sinceReset != 0 { sideState.pointee = State(); sideBank?.reset() }  // side ended
        var st = state.pointee
        run(x, count: cut, &st, into: sums)
        run(x + cut, count: samples.count - cut, &st, into: sums + 1)
        state.pointee = st
        if let bank {
            bandEnergies.update(repeating: 0, count: 2 * maxBands)
            bank.process(x, count: cut, into: bandEnergies)
            bank.process(x + cut, count: samples.count - cut, into: bandEnergies + maxBands)
        }
    }

    /// One block of mono samples through the weightings and time weightings into `out` (see ``Cascade``).
    @inline(__always)
    func run(_ x: UnsafePointer<Float>, count n: Int, _ st: inout State, into out: UnsafeMutablePointer<LevelSums>) {
        guard n > 0 else { return }
        let f = pairs[0], g = pairs[1], c1 = coef[1], c2 = coef[2]
        var m = Cascade(st)
        var w = TimeWeighting(st, fast: fastAlpha, slow: slowAlpha)
        m.first(Self.sample(x[0]), f, c1)
        let (fastFrom, slowFrom) = settledFrom(st)
        Self.phased(n - 1, fastFrom: fastFrom, slowFrom: slowFrom) { j, fast, slow in
            let (a, cz) = m.next(Self.sample(x[j + 1]), f, g)
            w.add(a * a, cz * cz, peak: lanesAbs(cz), fast: fast, slow: slow)
        }
        let (a, cz) = m.last(c2)
        w.add(a * a, cz * cz, peak: lanesAbs(cz), fast: n - 1 >= fastFrom, slow: n - 1 >= slowFrom)
        m.store(&st)
        w.finish(count: n, &st, settleSlow: settleSlow, into: out)
    }

    /// Samples of the next block (after `st.sinceReset` samples since the reset) from which the Fast / Slow
    /// minima count.
    @inline(__always)
    func settledFrom(_ st: State) -> (Int, Int) {
        (max(0, settleFast - st.sinceReset), max(0, settleSlow - st.sinceReset))
    }

    /// `body(j, fast, slow)` for `j` in `0..<count` in order, `fast` = `j >= fastFrom`, `slow` = `j >= slowFrom`
    /// (`slowFrom >= fastFrom`), as constants of three loops: no per-sample test.
    @inline(__always)
    static func phased(_ count: Int, fastFrom: Int, slowFrom: Int, _ body: (Int, Bool, Bool) -> Void) {
        let f = min(max(fastFrom, 0), count), s = min(max(slowFrom, f), count)
        for j in 0..<f { body(j, false, false) }
        for j in f..<s { body(j, true, false) }
        for j in s..<count { body(j, true, true) }
    }

    /// An input sample as `Double` (a non-finite one counts as 0).
    @inline(__always)
    static func sample(_ s: Float) -> Double { s.isFinite ? Double(s) : 0 }

    @inline(__always)
    static func db(_ ms: Double) -> Float {
        let v = Float(10 * log10(max(ms, 1e-20)))
        return v.isFinite ? v : -200
    }

    /// Current levels (dBFS) at the last processed sample into `features` (laf, las, lcf, lzf).
    public func read(into features: inout FrameFeatures) {
        let st = state.pointee
        features.laf = Self.db(st.aFast)
        features.las = Self.db(st.aSlow)
        features.lcf = Self.db(st.cFast)
        features.lzf = Self.db(st.zFast)
    }
}

typealias D2 = SIMD2<Double>

/// `|v|` per lane (clears the sign bits, as `Swift.abs` does per scalar).
@inline(__always)
func lanesAbs(_ v: D2) -> D2 {
    unsafeBitCast(unsafeBitCast(v, to: SIMD2<UInt64>.self) & SIMD2(repeating: ~(1 << 63)), to: D2.self)
}

extension LevelMeter {
    /// Two biquads side by side, one per lane: ``step(_:_:_:)`` does per lane exactly the operations of
    /// ``LevelMeter/step(_:_:_:_:)`` (no fused multiply-add: the x86-64 baseline has none, and Swift does not
    /// contract), so each lane's output and states are bit-identical to the scalar step's.
    struct SectionPair {
        var b0, k1, k2, a1, a2: D2
        init(_ l: Section, _ h: Section) {
            b0 = D2(l.b0, h.b0); k1 = D2(l.k1, h.k1); k2 = D2(l.k2, h.k2); a1 = D2(l.a1, h.a1); a2 = D2(l.a2, h.a2)
        }

        @inline(__always)
        func step(_ x: D2, _ s0: inout D2, _ s1: inout D2) -> D2 {
            let y = b0 * x + s0
            let t = k1 * x + s1
            s1 = k2 * x - a2 * s0
            s0 = t - a1 * s0
            return y
        }
    }

    /// The A, C and Z weighting filters of one signal as two `SIMD2` steps per sample (``SectionPair``):
    /// `f` = (C₁, DC block), which take the same input sample, and `g` = (C₂, A-only), which are serial and so
    /// software-pipelined: the `g` step of sample `j + 1` runs C₂ on it (lane 0) and the A-only section on C of
    /// sample `j` (lane 1). Sample 0's C₂ and the last sample's A-only section are scalar steps on one lane
    /// (``first(_:_:_:)``, ``last(_:)``), so at the end of a block the states are those of the scalar cascade.
    struct Cascade {
        var f0, f1, g0, g1: D2  // states of f and g
        /// (C, Z) outputs of the last sample in.
        var cz = D2()

        @inline(__always)
        init(_ st: State) {
            f0 = D2(st.cState.0, st.zState.0); f1 = D2(st.cState.1, st.zState.1)
            g0 = D2(st.cState.2, st.aState.0); g1 = D2(st.cState.3, st.aState.1)
        }

        @inline(__always)
        func store(_ st: inout State) {
            st.cState = (f0[0], f1[0], g0[0], g1[0]); st.aState = (g0[1], g1[1]); st.zState = (f0[1], f1[1])
        }

        /// Sample `v`, the first of a block, through C and the DC block (`c1`: C₂, lane 0 of `g`).
        @inline(__always)
        mutating func first(_ v: Double, _ f: SectionPair, _ c1: Section) {
            let p = f.step(D2(repeating: v), &f0, &f1)
            var s0 = g0[0], s1 = g1[0]
            cz = D2(LevelMeter.step(c1, p[0], &s0, &s1), p[1])
            g0[0] = s0; g1[0] = s1
        }

        /// Sample `v` in; returns the previous sample's A output (in both lanes) and (C, Z) outputs.
        @inline(__always)
        mutating func next(_ v: Double, _ f: SectionPair, _ g: SectionPair) -> (D2, D2) {
            let p = f.step(D2(repeating: v), &f0, &f1)     // (C₁, Z) of this sample
            let q = g.step(D2(p[0], cz[0]), &g0, &g1)      // (C of this sample, A of the previous one)
            let out = (D2(repeating: q[1]), cz)
            cz = D2(q[0], p[1])
            return out
        }

        /// The last sample's A (in both lanes) and (C, Z) outputs (`c2`: the A-only section, lane 1 of `g`).
        @inline(__always)
        mutating func last(_ c2: Section) -> (D2, D2) {
            var s0 = g0[1], s1 = g1[1]
            let a = LevelMeter.step(c2, cz[0], &s0, &s1)
            g0[1] = s0; g1[1] = s1
            return (D2(repeating: a), cz)
        }
    }

    /// The time weightings of one block and their sums, two per lane: `af` = (A Fast, A Slow), both driven by
    /// the A-weighted square, and `cz` = (C Fast, Z Fast), driven by the (C, Z) squares. Per lane the scalar
    /// operations in the same order (`s += α·(q − s)`, sums, extremes), so the results are bit-identical to one
    /// weighting at a time. Maxima as `v > m ? v : m` (one `maxpd`; the scalar form `max(m, v)` is
    /// `v >= m ? v : m`: they differ only for NaN and for equal zeros of opposite sign, and the states are
    /// never NaN (finite input: non-finite samples count as 0) nor −0 (`+0 + α·(q − +0)` with `q >= +0` is +0,
    /// and a sum of two non-zero values rounds to +0 when it cancels).
    struct TimeWeighting {
        var af, cz: D2
        let alphaA, alphaCZ: D2
        var eA = D2(), pk = D2()  // lane 0 (lane 1: a copy, or unused)
        var eCZ = D2(), mxA = D2(), mxCZ = D2()
        var mnA = D2(repeating: .infinity), mnCZ = D2(repeating: .infinity)

        @inline(__always)
        init(_ st: State, fast: Double, slow: Double) {
            af = D2(st.aFast, st.aSlow); cz = D2(st.cFast, st.zFast)
            alphaA = D2(fast, slow); alphaCZ = D2(repeating: fast)
        }

        /// One sample: A-weighted square `qa` (in both lanes), (C, Z) squares `qcz`, C peak (lane 0; lane 1 is
        /// not used); `fast`/`slow`: the Fast / Slow minima count from it. All in vectors (broadcasts, not lane
        /// extracts): Swift's `SIMD2<Double>` arithmetic is per-lane scalar code that LLVM's SLP vectorizer
        /// pairs again, and scalar detours give it other pairings to choose.
        @inline(__always)
        mutating func add(_ qa: D2, _ qcz: D2, peak: D2, fast: Bool, slow: Bool) {
            eA += qa
            eCZ += qcz
            pk.replace(with: peak, where: peak .> pk)
            af += alphaA * (qa - af)
            cz += alphaCZ * (qcz - cz)
            mxA.replace(with: af, where: af .> mxA)
            mxCZ.replace(with: cz, where: cz .> mxCZ)
            if fast {
                mnCZ.replace(with: cz, where: cz .< mnCZ)
                if slow {
                    mnA.replace(with: af, where: af .< mnA)
                } else {
                    if af[0] < mnA[0] { mnA[0] = af[0] }  // A Slow not settled yet
                }
            }
        }

        /// Stores the states in `st` and adds the block's sums (`count` samples) to `out`.
        @inline(__always)
        func finish(count n: Int, _ st: inout State, settleSlow: Int, into out: UnsafeMutablePointer<LevelSums>) {
            st.aFast = af[0]; st.aSlow = af[1]; st.cFast = cz[0]; st.zFast = cz[1]
            st.sinceReset = min(st.sinceReset &+ n, settleSlow)
            out.pointee.merge(LevelSums(
                samples: n, energyA: eA[0], energyC: eCZ[0], energyZ: eCZ[1], maxAF: mxA[0], minAF: mnA[0],
                maxAS: mxA[1], minAS: mnA[1], maxCF: mxCZ[0], minCF: mnCZ[0], maxZF: mxCZ[1], minZF: mnCZ[1],
                peakC: pk[0]))
        }
    }
}
