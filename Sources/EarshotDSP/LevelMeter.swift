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

    /// Analog IEC 61672-1 pole frequencies in Hz.
    public static let poleHz = (f1: 20.598997, f2: 107.65265, f3: 737.86223, f4: 12194.217)

    /// The fractional-octave band filters (nil when bands are off: no cost).
    public let bank: BandFilterBank?
    /// Band energies of the last ``process(_:)``: `maxBands` before ``split``, then `maxBands` from it.
    let bandEnergies: UnsafeMutablePointer<Float>

    /// - Parameters:
    ///   - sampleRate: Hz (8 k – 192 k).
    ///   - bands: the band levels to compute along (``BandResolution/off``: none).
    public init(sampleRate: Int, bands: BandResolution = .off) {
        self.sampleRate = sampleRate
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
        coef.initialize(from: [Section(c[0]), Section(c[1]), Section(aOnly), Section(zSection)], count: 4)
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
        state.deallocate()
        sums.deallocate()
        sideState.deallocate()
        sideBox.deallocate()
    }

    /// Clears filter and time-weighting states (levels restart from silence).
    public func reset() { state.pointee = State(); bank?.reset(); sideState.pointee = State(); sideBank?.reset() }

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
            processWithSide(x, side, count: samples.count, cut: cut)
            return
        }
        if sideState.pointee.sinceReset != 0 { sideState.pointee = State(); sideBank?.reset() }  // side ended
        var st = state.pointee
        var unused = State()
        run(x, side: nil, count: cut, &st, &unused, into: sums)
        run(x + cut, side: nil, count: samples.count - cut, &st, &unused, into: sums + 1)
        state.pointee = st
        if let bank {
            bandEnergies.update(repeating: 0, count: 2 * maxBands)
            bank.process(x, count: cut, into: bandEnergies)
            bank.process(x + cut, count: samples.count - cut, into: bandEnergies + maxBands)
        }
    }

    /// One block of samples through the weightings and time weightings into `out`. With `sx` (the side signal
    /// of a 2-channel input, filter states in `ss`) every squared weighted sample is the energy mean over the two
    /// channels (see LevelMeter+Side.swift); inlined at each call site, so the mono loop carries no side code.
    @inline(__always)
    func run(_ x: UnsafePointer<Float>, side sx: UnsafePointer<Float>?, count n: Int, _ st: inout State,
             _ ss: inout State, into out: UnsafeMutablePointer<LevelSums>) {
        guard n > 0 else { return }
        let c0 = coef[0], c1 = coef[1], c2 = coef[2], c3 = coef[3]
        let fa = fastAlpha, sa = slowAlpha
        var o = out.pointee
        var eA = 0.0, eC = 0.0, eZ = 0.0, pk = 0.0
        var mxAF = 0.0, mxAS = 0.0, mxCF = 0.0, mxZF = 0.0
        var mnAF = Double.infinity, mnAS = Double.infinity, mnCF = Double.infinity, mnZF = Double.infinity
        // Samples from which the Fast / Slow minima count (settled since the last reset).
        let fastFrom = max(0, settleFast - st.sinceReset), slowFrom = max(0, settleSlow - st.sinceReset)
        for i in 0..<n {
            let (ya, yc, yz) = Self.weigh(x[i], c0, c1, c2, c3, &st)
            var qa = ya * ya, qc = yc * yc, qz = yz * yz
            var peak = abs(yc)
            if let sx {
                let (za, zc, zz) = Self.weigh(sx[i], c0, c1, c2, c3, &ss)
                qa += za * za; qc += zc * zc; qz += zz * zz
                peak += abs(zc)
            }
            eA += qa; eC += qc; eZ += qz
            pk = max(pk, peak)
            st.aFast += fa * (qa - st.aFast)
            st.aSlow += sa * (qa - st.aSlow)
            st.cFast += fa * (qc - st.cFast)
            st.zFast += fa * (qz - st.zFast)
            mxAF = max(mxAF, st.aFast); mxAS = max(mxAS, st.aSlow)
            mxCF = max(mxCF, st.cFast); mxZF = max(mxZF, st.zFast)
            if i >= fastFrom {
                mnAF = min(mnAF, st.aFast); mnCF = min(mnCF, st.cFast); mnZF = min(mnZF, st.zFast)
                if i >= slowFrom { mnAS = min(mnAS, st.aSlow) }
            }
        }
        st.sinceReset = min(st.sinceReset &+ n, settleSlow)
        o.merge(LevelSums(samples: n, energyA: eA, energyC: eC, energyZ: eZ, maxAF: mxAF, minAF: mnAF, maxAS: mxAS,
                          minAS: mnAS, maxCF: mxCF, minCF: mnCF, maxZF: mxZF, minZF: mnZF, peakC: pk))
        out.pointee = o
    }

    /// One sample through the A, C and Z weightings (a non-finite sample counts as 0): (A, C, Z) outputs.
    @inline(__always)
    static func weigh(_ s: Float, _ c0: Section, _ c1: Section, _ c2: Section, _ c3: Section,
                      _ st: inout State) -> (Double, Double, Double) {
        let v = s.isFinite ? Double(s) : 0
        var yc = step(c0, v, &st.cState.0, &st.cState.1)
        yc = step(c1, yc, &st.cState.2, &st.cState.3)
        let ya = step(c2, yc, &st.aState.0, &st.aState.1)
        let yz = step(c3, v, &st.zState.0, &st.zState.1)
        return (ya, yc, yz)
    }

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
