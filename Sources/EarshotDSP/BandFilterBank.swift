#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Which fractional-octave band levels the analyzer computes (`levels.bands`).
public enum BandResolution: String, Sendable, Hashable, CaseIterable {
    /// None (the default): no filter runs, no cost.
    case off
    /// Octave bands (b = 1).
    case octave
    /// One-third-octave bands (b = 3).
    case third
}

/// The most bands any configuration has (1/3 octave, 25 Hz – 80 kHz at 192 kHz).
public let maxBands = 36

/// Fixed-size band energies carried in a frame (``BandFrame``).
public typealias BandEnergies = InlineArray<36, Float>

/// One frame's band energies (`Σ y²` of each band's output in input-rate samples), split like
/// ``LevelInterval``: `head` before the level split, `tail` from it on. `count` bands are valid (0: bands off).
public struct BandFrame: BitwiseCopyable, Sendable {
    public var count: Int32
    public var head: BandEnergies
    public var tail: BandEnergies

    public static let empty = BandFrame(count: 0, head: BandEnergies(repeating: 0), tail: BandEnergies(repeating: 0))

    public init(count: Int32, head: BandEnergies, tail: BandEnergies) {
        self.count = count; self.head = head; self.tail = tail
    }
}

/// IEC 61260-1 fractional-octave band filters (class 1), designed for the actual sample rate.
///
/// **Bands**: base-10 exact mid-band frequencies `fm = 1000·10^(3x/(10b))` Hz (`G = 10^(3/10)`), from the
/// 25 Hz (1/3 octave) or 31.5 Hz (octave) band up to the highest band whose upper edge `fm·G^(1/(2b))` is
/// below the Nyquist frequency; nominal labels are the IEC 61260-1 Annex E values (25, 31.5, 40, …).
///
/// **Filters**: each band is a 4th-order Butterworth band-pass (8 poles, four biquads with zeros at DC and
/// Nyquist), bilinear transform with pre-warped edges. The design bandwidth is the nominal one divided by
/// `(π/8)/sin(π/8) = 1.0262`, the 4th-order Butterworth's noise-bandwidth excess, so each band's effective
/// (noise) bandwidth equals its nominal bandwidth and the bands' energies add up to the broadband energy;
/// the band-edge attenuation is then 3.5 dB (class 1: 2…5 dB at `G^(±1/2b)`). The 4th order (rather than the
/// 3rd that meets the mask in the analog domain) keeps the top bands inside the mask despite the bilinear
/// warping near Nyquist, which widens a band's lower skirt (3rd order: 15.4 dB at `G^(−1)` of the 20 kHz band
/// at 48 kHz, where class 1 asks ≥ 16.6).
///
/// **Multirate**: a band runs at the lowest rate `fs/2^k` with `fm ≤ 0.2·fs/2^k` (the top bands at the
/// input rate). Between stages an 8th-order Butterworth low-pass at `0.18·fs_k` (bilinear; > 110 dB down
/// where aliases would land on a pass band of the next stage) precedes the decimation by 2, so the 25 Hz
/// band runs at 187.5 Hz from a 48 kHz input and the whole bank costs about 38 biquads per input sample at
/// 48 kHz (third octave; about 50 with the 4 sections per band). Band energies are `Σ y²·2^k`, so `energy / N input samples` is the band's mean square.
///
/// Real-time safe: ``process(_:count:into:)`` does no allocation (fixed scratch per stage). One thread at a time.
public final class BandFilterBank: @unchecked Sendable {
    public let resolution: BandResolution
    public let sampleRate: Int
    /// Exact and nominal mid-band frequencies, ascending.
    public let exactHz: [Double]
    public let nominalHz: [Double]
    public var count: Int { exactHz.count }

    /// Biquad coefficients (a0 = 1), direct form II transposed.
    typealias Section = LevelMeter.Biquad

    /// Stage of each band, and the bands of each stage (contiguous, descending stage order by band index).
    let bandStage: [Int]
    let stageCount: Int
    /// Per band: ``order`` sections; per stage: 4 anti-alias sections.
    let bandSections: UnsafeMutablePointer<Section>
    let lpfSections: UnsafeMutablePointer<Section>  // 4, the same normalized design at every stage
    /// DF2T states: 2 per section.
    let bandState: UnsafeMutablePointer<Double>
    let lpfState: UnsafeMutablePointer<Double>
    /// Per stage: the first band index and how many.
    let stageFirst: UnsafeMutablePointer<Int>
    let stageBands: UnsafeMutablePointer<Int>
    /// Decimation phase per stage (which output of the low-pass is kept).
    let phase: UnsafeMutablePointer<Int>
    /// Scratch: input of each stage ≥ 1 (block / 2^k + 1 samples each).
    let scratch: UnsafeMutablePointer<Double>
    let scratchOffset: UnsafeMutablePointer<Int>
    /// Samples of the input per inner block.
    static let block = 1024
    /// A band runs at the lowest stage rate `r` with `fm ≤ ratio · r`.
    static let stageRatio = 0.2
    /// Anti-alias low-pass corner, fraction of the stage rate.
    static let lpfCorner = 0.18
    /// Butterworth order of the band-pass prototype (biquads per band).
    static let order = 4
    /// Noise-bandwidth excess of the Butterworth prototype: `(π/2N)/sin(π/2N)`.
    static let noiseBandwidthExcess = (Double.pi / Double(2 * order)) / sin(Double.pi / Double(2 * order))

    /// Nominal 1/3-octave mid-band frequencies from 25 Hz (IEC 61260-1 Annex E), index 0 = x = −16.
    static let nominalThird: [Double] = [
        25, 31.5, 40, 50, 63, 80, 100, 125, 160, 200, 250, 315, 400, 500, 630, 800, 1000, 1250, 1600, 2000, 2500,
        3150, 4000, 5000, 6300, 8000, 10000, 12500, 16000, 20000, 25000, 31500, 40000, 50000, 63000, 80000,
    ]

    /// The exact and nominal centres of `resolution` at `sampleRate` (empty for `.off`).
    public static func bands(_ resolution: BandResolution, sampleRate: Int) -> [(exact: Double, nominal: Double)] {
        let b: Double
        switch resolution {
        case .off: return []
        case .octave: b = 1
        case .third: b = 3
        }
        let g = pow(10, 0.3)
        var out: [(Double, Double)] = []
        // Third-octave index x (fm = 1000·10^(x/10)); octave bands are every third one from 31.5 Hz.
        var x = resolution == .third ? -16 : -15
        while true {
            let fm = 1000 * pow(10, Double(x) / 10)
            if fm * pow(g, 1 / (2 * b)) >= Double(sampleRate) / 2 { break }
            out.append((fm, nominalThird[min(x + 16, nominalThird.count - 1)]))
            x += resolution == .third ? 1 : 3
        }
        return out
    }

    public init(resolution: BandResolution, sampleRate: Int) {
        self.resolution = resolution
        self.sampleRate = sampleRate
        let list = Self.bands(resolution, sampleRate: sampleRate)
        exactHz = list.map(\.exact)
        nominalHz = list.map(\.nominal)
        let fs = Double(sampleRate)
        var stages: [Int] = []
        for fm in exactHz {
            var k = 0
            while fm <= Self.stageRatio * fs / pow(2, Double(k + 1)) { k += 1 }
            stages.append(k)
        }
        bandStage = stages
        stageCount = (stages.max() ?? -1) + 1
        let n = exactHz.count
        let o = Self.order
        bandSections = .allocate(capacity: max(1, o * n))
        bandState = .allocate(capacity: max(1, 2 * o * n))
        bandState.initialize(repeating: 0, count: max(1, 2 * o * n))
        let b: Double = resolution == .octave ? 1 : 3
        let g = pow(10, 0.3)
        for i in 0..<n {
            let rate = fs / pow(2, Double(stages[i]))
            let secs = Self.bandPass(lower: exactHz[i] * pow(g, -1 / (2 * b)), upper: exactHz[i] * pow(g, 1 / (2 * b)),
                                     sampleRate: rate)
            for j in 0..<o { (bandSections + o * i + j).initialize(to: secs[j]) }
        }
        lpfSections = .allocate(capacity: 4)
        let lpf = Self.lowPass(corner: Self.lpfCorner)
        for j in 0..<4 { (lpfSections + j).initialize(to: lpf[j]) }
        let stagesAlloc = max(1, stageCount)
        lpfState = .allocate(capacity: 8 * stagesAlloc)
        lpfState.initialize(repeating: 0, count: 8 * stagesAlloc)
        stageFirst = .allocate(capacity: stagesAlloc)
        stageBands = .allocate(capacity: stagesAlloc)
        phase = .allocate(capacity: stagesAlloc)
        phase.initialize(repeating: 0, count: stagesAlloc)
        scratchOffset = .allocate(capacity: stagesAlloc)
        var offset = 0
        for k in 0..<stagesAlloc {
            let members = stages.indices.filter { stages[$0] == k }
            (stageFirst + k).initialize(to: members.first ?? 0)
            (stageBands + k).initialize(to: members.count)
            (scratchOffset + k).initialize(to: offset)
            offset += Self.block >> k + 2
        }
        scratch = .allocate(capacity: offset)
        scratch.initialize(repeating: 0, count: offset)
    }

    deinit {
        bandSections.deallocate(); bandState.deallocate(); lpfSections.deallocate(); lpfState.deallocate()
        stageFirst.deallocate(); stageBands.deallocate(); phase.deallocate(); scratch.deallocate()
        scratchOffset.deallocate()
    }

    /// Clears every filter state (after a discontinuity).
    public func reset() {
        bandState.update(repeating: 0, count: max(1, 2 * Self.order * count))
        lpfState.update(repeating: 0, count: 8 * max(1, stageCount))
        phase.update(repeating: 0, count: max(1, stageCount))
    }

    // MARK: design

    struct Complex {
        var re, im: Double
        static func + (a: Complex, b: Complex) -> Complex { Complex(re: a.re + b.re, im: a.im + b.im) }
        static func - (a: Complex, b: Complex) -> Complex { Complex(re: a.re - b.re, im: a.im - b.im) }
        static func * (a: Complex, b: Complex) -> Complex {
            Complex(re: a.re * b.re - a.im * b.im, im: a.re * b.im + a.im * b.re)
        }
        static func / (a: Complex, b: Complex) -> Complex {
            let d = b.re * b.re + b.im * b.im
            return Complex(re: (a.re * b.re + a.im * b.im) / d, im: (a.im * b.re - a.re * b.im) / d)
        }
        func scaled(_ s: Double) -> Complex { Complex(re: re * s, im: im * s) }
        var squareRoot: Complex {
            let m = (re * re + im * im).squareRoot()
            let r = ((m + re) / 2).squareRoot()
            let i = ((m - re) / 2).squareRoot()
            return Complex(re: r, im: im < 0 ? -i : i)
        }
        var magnitude: Double { (re * re + im * im).squareRoot() }
    }

    /// Bilinear map of an analog pole.
    static func bilinear(_ s: Complex, _ fs: Double) -> Complex {
        let c = Complex(re: 2 * fs, im: 0)
        return (c + s) / (c - s)
    }

    /// ``order``-th-order Butterworth band-pass between the (nominal) edges, design bandwidth narrowed to the
    /// nominal noise bandwidth, at `sampleRate`; unit gain at the warped centre.
    static func bandPass(lower: Double, upper: Double, sampleRate fs: Double) -> [Section] {
        let wl = 2 * fs * tan(Double.pi * lower / fs), wu = 2 * fs * tan(Double.pi * upper / fs)
        let w0 = (wl * wu).squareRoot()
        let bw = (wu - wl) / noiseBandwidthExcess
        var poles: [Complex] = []
        let n = order
        for k in 0..<n {
            let theta = Double.pi * Double(2 * k + n + 1) / Double(2 * n)
            let p = Complex(re: cos(theta), im: sin(theta))
            let pb = p.scaled(bw)
            let disc = (pb * pb - Complex(re: 4 * w0 * w0, im: 0)).squareRoot
            for s in [(pb + disc).scaled(0.5), (pb - disc).scaled(0.5)] where s.im > 0 { poles.append(s) }
        }
        var secs = poles.prefix(n).map { s -> Section in
            let z = bilinear(s, fs)
            return Section(b0: 1, b1: 0, b2: -1, a1: -2 * z.re, a2: z.re * z.re + z.im * z.im)
        }
        let f0 = fs / Double.pi * atan(w0 / (2 * fs))
        let gain = 1 / magnitude(secs, frequency: f0, sampleRate: fs)
        secs[0].b0 *= gain; secs[0].b1 *= gain; secs[0].b2 *= gain
        return secs
    }

    /// 8th-order Butterworth low-pass at `corner·fs` (normalized: the same at every stage), unit DC gain.
    static func lowPass(corner: Double) -> [Section] {
        let fs = 1.0
        let wc = 2 * fs * tan(Double.pi * corner)
        return (0..<4).map { k in
            let theta = Double.pi * Double(2 * k + 9) / 16
            let z = bilinear(Complex(re: wc * cos(theta), im: wc * sin(theta)), fs)
            let a1 = -2 * z.re, a2 = z.re * z.re + z.im * z.im
            let g = (1 + a1 + a2) / 4
            return Section(b0: g, b1: 2 * g, b2: g, a1: a1, a2: a2)
        }
    }

    static func magnitude(_ secs: [Section], frequency: Double, sampleRate: Double) -> Double {
        LevelMeter.magnitude(secs, frequency: frequency, sampleRate: sampleRate)
    }

    /// Gain (dB) of band `band` for a steady sine at `frequency` (Hz, below the input Nyquist), through the
    /// decimation chain: each stage's low-pass at the tone's (aliased) frequency, then the band filter.
    /// For tests and documentation; not real-time.
    public func responseDb(band: Int, frequency: Double) -> Double {
        var f = frequency, rate = Double(sampleRate), mag = 1.0
        let lpf = (0..<4).map { lpfSections[$0] }
        for _ in 0..<bandStage[band] {
            mag *= Self.magnitude(lpf, frequency: f, sampleRate: rate)
            rate /= 2
            let m = f.truncatingRemainder(dividingBy: rate)
            f = m > rate / 2 ? rate - m : m
        }
        mag *= Self.magnitude((0..<Self.order).map { bandSections[Self.order * band + $0] }, frequency: f, sampleRate: rate)
        return 20 * log10(max(mag, 1e-30))
    }

    // MARK: processing

    @inline(__always)
    static func step(_ c: Section, _ x: Double, _ s: UnsafeMutablePointer<Double>) -> Double {
        let y = c.b0 * x + s[0]
        s[0] = c.b1 * x - c.a1 * y + s[1]
        s[1] = c.b2 * x - c.a2 * y
        return y
    }

    /// Runs `count` input samples through the bank and adds each band's energy (scaled to input-rate samples)
    /// to `energies[band]`. Non-finite samples count as 0. Real-time safe.
    public func process(_ x: UnsafePointer<Float>, count: Int, into energies: UnsafeMutablePointer<Float>) {
        guard stageCount > 0 else { return }
        var done = 0
        while done < count {
            let n = min(Self.block, count - done)
            // Stage 0 input: the raw block.
            let s0 = scratch + scratchOffset[0]
            for i in 0..<n { let v = x[done + i]; s0[i] = v.isFinite ? Double(v) : 0 }
            var m = n
            for k in 0..<stageCount {
                let input = scratch + scratchOffset[k]
                let first = stageFirst[k], bands = stageBands[k]
                let scale = Double(1 << k)
                for band in first..<(first + bands) {
                    let c = bandSections + Self.order * band
                    let c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3]
                    let st = bandState + 2 * Self.order * band
                    var e = 0.0
                    for i in 0..<m {
                        var y = Self.step(c0, input[i], st)
                        y = Self.step(c1, y, st + 2)
                        y = Self.step(c2, y, st + 4)
                        y = Self.step(c3, y, st + 6)
                        e += y * y
                    }
                    energies[band] += Float(e * scale)
                }
                guard k + 1 < stageCount else { break }
                // Anti-alias low-pass and keep every second output as the next stage's input.
                let out = scratch + scratchOffset[k + 1]
                let l0 = lpfSections[0], l1 = lpfSections[1], l2 = lpfSections[2], l3 = lpfSections[3]
                let ls = lpfState + 8 * k
                var p = phase[k], kept = 0
                for i in 0..<m {
                    var y = Self.step(l0, input[i], ls)
                    y = Self.step(l1, y, ls + 2)
                    y = Self.step(l2, y, ls + 4)
                    y = Self.step(l3, y, ls + 6)
                    if p == 1 { out[kept] = y; kept += 1 }
                    p ^= 1
                }
                phase[k] = p
                m = kept
            }
            done += n
        }
    }
}
