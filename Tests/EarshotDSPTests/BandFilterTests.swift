import EarshotDSP
import Foundation
import Testing

/// IEC 61260-1 band filters: class-1 masks at every band and rate, pure tones at band centres, white noise.
@Suite("Band filters (IEC 61260-1)")
struct BandFilterTests {
    static let g = pow(10, 0.3)

    /// Normalized breakpoint frequency for octave position `x` of a 1/b-octave band (IEC 61260-1 scales the
    /// octave breakpoints `G^x` to fractional bands: `1 + (G^x − 1)/(G^(1/2) − 1)·(G^(1/(2b)) − 1)`).
    static func omega(_ x: Double, b: Double) -> Double {
        if x < 0 { return 1 / omega(-x, b: b) }
        if x <= 0.5 { return pow(g, x / b) }  // inside the band: G^(x/b) (the edge is G^(1/(2b)))
        return 1 + (pow(g, x) - 1) / (pow(g, 0.5) - 1) * (pow(g, 1 / (2 * b)) - 1)
    }

    /// Class-1 acceptance limits of the relative attenuation at octave position |x| (dB, min…max): the
    /// IEC 61260-1:2014 values, tightened to the 1995 class-1 values where those are stricter.
    static let limits: [(x: Double, min: Double, max: Double)] = [
        (0, -0.3, 0.3), (0.125, -0.3, 0.4), (0.25, -0.3, 0.6), (0.375, -0.3, 1.3), (0.5, 2.0, 5.0),
        (1, 17.5, .infinity), (2, 42, .infinity), (3, 61, .infinity), (4, 70, .infinity),
    ]

    @Test("relative attenuation inside class-1 limits at every breakpoint of every band", arguments: [16_000, 44_100, 48_000, 96_000])
    func masks(_ rate: Int) {
        for resolution in [BandResolution.third, .octave] {
            let bank = BandFilterBank(resolution: resolution, sampleRate: rate)
            let b: Double = resolution == .third ? 3 : 1
            #expect(bank.nominalHz.first == (resolution == .third ? 25 : 31.5))
            #expect(bank.exactHz.last.map { $0 * pow(Self.g, 1 / (2 * b)) < Double(rate) / 2 } == true)
            var worst = 0.0
            for band in 0..<bank.count {
                let fm = bank.exactHz[band]
                let ref = bank.responseDb(band: band, frequency: fm)
                for row in Self.limits {
                    for sign in row.x == 0 ? [1.0] : [-1.0, 1.0] {
                        let f = fm * Self.omega(sign * row.x, b: b)
                        guard f < Double(rate) / 2 else { continue }
                        let att = ref - bank.responseDb(band: band, frequency: f)
                        #expect(att >= row.min && att <= row.max,
                                "\(rate) Hz \(resolution) band \(bank.nominalHz[band]) Hz at G^\(sign * row.x) (\(f) Hz): \(att) dB")
                        if row.x <= 0.5 { worst = max(worst, abs(att - (row.x == 0.5 ? 3.5 : 0))) }
                    }
                }
            }
            print("[bands] \(rate) Hz \(resolution): \(bank.count) bands \(bank.nominalHz.first!)–\(bank.nominalHz.last!) Hz")
        }
    }

    /// Feeds `x` in hop-sized chunks and returns the band energies of the samples from `measureFrom` on.
    static func energies(_ bank: BandFilterBank, _ x: [Float], measureFrom: Int) -> [Double] {
        var e = [Float](repeating: 0, count: maxBands)
        var total = [Double](repeating: 0, count: maxBands)
        x.withUnsafeBufferPointer { p in
            var i = 0
            while i < p.count {
                let n = min(480, p.count - i)
                for j in 0..<maxBands { e[j] = 0 }
                e.withUnsafeMutableBufferPointer { bank.process(p.baseAddress! + i, count: n, into: $0.baseAddress!) }
                if i >= measureFrom { for j in 0..<maxBands { total[j] += Double(e[j]) } }
                i += n
            }
        }
        return total
    }

    @Test("band Leq of a pure tone at each band centre within 0.1 dB", arguments: [(48_000, BandResolution.third), (44_100, .octave)])
    func tonesAtCentres(_ rate: Int, _ resolution: BandResolution) {
        let bank = BandFilterBank(resolution: resolution, sampleRate: rate)
        let a = 0.1
        for band in 0..<bank.count {
            bank.reset()
            let fm = bank.exactHz[band]
            let n = Int(0.9 * Double(rate)), from = Int(0.4 * Double(rate)) / 480 * 480
            let x = (0..<n).map { Float(a * sin(2 * Double.pi * fm * Double($0) / Double(rate))) }
            let e = Self.energies(bank, x, measureFrom: from)
            let leq = 10 * log10(e[band] / Double(n - from))
            #expect(abs(leq - 10 * log10(a * a / 2)) < 0.1, "\(rate) Hz band \(bank.nominalHz[band]) Hz: \(leq) dB")
        }
    }

    @Test("white noise: the band energies add up to the broadband energy of the bands' span within 0.2 dB",
          arguments: [(48_000, BandResolution.third), (44_100, .octave), (16_000, .third)])
    func whiteNoise(_ rate: Int, _ resolution: BandResolution) {
        let bank = BandFilterBank(resolution: resolution, sampleRate: rate)
        var seed: UInt64 = 12345
        let n = 3 * rate, from = rate / 2 / 480 * 480
        let x = (0..<n).map { _ -> Float in
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Float(Double(seed >> 11) / Double(1 << 53) - 0.5)
        }
        let e = Self.energies(bank, x, measureFrom: from)
        let total = x[from...].reduce(0.0) { $0 + Double($1) * Double($1) }
        let b: Double = resolution == .third ? 3 : 1
        let lo = bank.exactHz.first! * pow(Self.g, -1 / (2 * b)), hi = bank.exactHz.last! * pow(Self.g, 1 / (2 * b))
        let expected = total * (hi - lo) / (Double(rate) / 2)
        let sum = e.prefix(bank.count).reduce(0, +)
        let diff = 10 * log10(sum / expected)
        #expect(abs(diff) < 0.2, "\(rate) Hz \(resolution): Σ bands − broadband = \(diff) dB")
        print("[bands] white noise \(rate) Hz \(resolution): Σ bands − broadband(span) = \(diff) dB")
    }

    @Test func offCostsNothing() {
        let m = LevelMeter(sampleRate: 48_000)
        #expect(m.bank == nil)
        #expect(m.bandFrame.count == 0)
        #expect(BandFilterBank.bands(.off, sampleRate: 48_000).isEmpty)
        #expect(BandFilterBank.bands(.third, sampleRate: 48_000).count == 30)
        #expect(BandFilterBank.bands(.third, sampleRate: 44_100).last?.nominal == 16_000)
        #expect(BandFilterBank.bands(.octave, sampleRate: 48_000).map(\.nominal) == [31.5, 63, 125, 250, 500, 1000, 2000, 4000, 8000, 16000])
    }
}
