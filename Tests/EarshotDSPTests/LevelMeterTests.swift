import EarshotDSP
import Foundation
import Testing

@Suite("LevelMeter")
struct LevelMeterTests {
    /// IEC 61672-1:2013 class 1 tolerance limits (upper, lower) at the 1/3-octave frequencies.
    static let class1: [(f: Double, up: Double, lo: Double)] = [
        (20, 2.5, -2.5), (25, 2.5, -2.0), (31.5, 2.0, -2.0), (40, 1.5, -1.5), (50, 1.5, -1.5),
        (63, 1.5, -1.5), (80, 1.5, -1.5), (100, 1.5, -1.5), (125, 1.5, -1.5), (160, 1.5, -1.5),
        (200, 1.4, -1.4), (250, 1.4, -1.4), (315, 1.4, -1.4), (400, 1.4, -1.4), (500, 1.4, -1.4),
        (630, 1.4, -1.4), (800, 1.4, -1.4), (1000, 1.1, -1.1), (1250, 1.4, -1.4), (1600, 1.6, -1.6),
        (2000, 1.6, -1.6), (2500, 1.6, -1.6), (3150, 1.6, -1.6), (4000, 1.6, -1.6), (5000, 2.1, -2.1),
        (6300, 2.1, -2.6), (8000, 2.1, -3.1), (10000, 2.6, -3.6), (12500, 3.0, -6.0), (16000, 3.5, -17.0),
    ]

    /// Settled Fast level of a steady sine (mean square over the last 0.25 s of 1.5 s), dBFS.
    static func settledLevels(frequency: Double, sampleRate: Int = 48_000) -> (a: Double, c: Double, z: Double) {
        let meter = LevelMeter(sampleRate: sampleRate)
        let n = Int(1.5 * Double(sampleRate))
        let x = (0..<n).map { Float(sin(2 * Double.pi * frequency * Double($0) / Double(sampleRate))) }
        let block = sampleRate / 100
        var acc = (a: 0.0, c: 0.0, z: 0.0, count: 0.0)
        var f = FrameFeatures()
        x.withUnsafeBufferPointer { p in
            var i = 0
            while i < n {
                let e = min(n, i + block)
                meter.process(UnsafeBufferPointer(rebasing: p[i..<e]))
                meter.read(into: &f)
                if i >= n - sampleRate / 4 {
                    acc.a += pow(10, Double(f.laf) / 10); acc.c += pow(10, Double(f.lcf) / 10)
                    acc.z += pow(10, Double(f.lzf) / 10); acc.count += 1
                }
                i = e
            }
        }
        return (10 * log10(acc.a / acc.count), 10 * log10(acc.c / acc.count), 10 * log10(acc.z / acc.count))
    }

    @Test("A and C weighting within IEC 61672-1 class 1 at 48 kHz (steady sines)")
    func weightingTolerance() {
        var worst = (a: 0.0, c: 0.0)
        for row in Self.class1 {
            let lv = Self.settledLevels(frequency: row.f)
            let devA = (lv.a - lv.z) - LevelMeter.analyticDb(.a, frequency: row.f)
            let devC = (lv.c - lv.z) - LevelMeter.analyticDb(.c, frequency: row.f)
            if abs(devA) > abs(worst.a) { worst.a = devA }
            if abs(devC) > abs(worst.c) { worst.c = devC }
            #expect(devA <= row.up && devA >= row.lo, "A at \(row.f) Hz: deviation \(devA) dB")
            #expect(devC <= row.up && devC >= row.lo, "C at \(row.f) Hz: deviation \(devC) dB")
            if row.f <= 10_000 {
                #expect(abs(devA) < 1.0 && abs(devC) < 1.0, "\(row.f) Hz: A \(devA) C \(devC)")
            }
        }
        print("[LevelMeter] worst deviation 20 Hz–16 kHz: A \(worst.a) dB, C \(worst.c) dB")
    }

    @Test("digital response matches analytic weighting below 5 kHz at 48 kHz")
    func analyticResponse() {
        let m = LevelMeter(sampleRate: 48_000)
        for row in Self.class1 where row.f <= 5_000 {
            #expect(abs(m.responseDb(.a, frequency: row.f) - LevelMeter.analyticDb(.a, frequency: row.f)) < 0.25)
            #expect(abs(m.responseDb(.c, frequency: row.f) - LevelMeter.analyticDb(.c, frequency: row.f)) < 0.25)
        }
        #expect(abs(m.responseDb(.a, frequency: 1000)) < 1e-9)
    }

    @Test("1 kHz full-scale sine: LAF −3.01 dBFS")
    func fullScale1k() {
        let lv = Self.settledLevels(frequency: 1000)
        #expect(abs(lv.a - (-3.0103)) < 0.05, "LAF \(lv.a)")
        #expect(abs(lv.c - (-3.0103)) < 0.05, "LCF \(lv.c)")
        #expect(abs(lv.z - (-3.0103)) < 0.05, "LZF \(lv.z)")
    }

    @Test("Fast decays ≈ 34.7 dB/s and Slow ≈ 4.3 dB/s after a tone stops")
    func decay() {
        let sr = 48_000
        let meter = LevelMeter(sampleRate: sr)
        let tone = (0..<(3 * sr)).map { Float(sin(2 * Double.pi * 1000 * Double($0) / Double(sr))) }
        tone.withUnsafeBufferPointer { meter.process($0) }
        let silence = [Float](repeating: 0, count: sr / 100)
        var f = FrameFeatures()
        var fast: [Float] = []
        var slow: [Float] = []
        for _ in 0..<100 {  // 1 s of silence in 10 ms blocks
            silence.withUnsafeBufferPointer { meter.process($0) }
            meter.read(into: &f)
            fast.append(f.laf)
            slow.append(f.las)
        }
        // rates between 0.1 s and 0.5 s after the stop (filters' own tails are long gone)
        let fastRate = Double(fast[9] - fast[49]) / 0.4
        let slowRate = Double(slow[9] - slow[49]) / 0.4
        print("[LevelMeter] decay Fast \(fastRate) dB/s, Slow \(slowRate) dB/s")
        #expect(abs(fastRate - 34.74) < 0.5)
        #expect(abs(slowRate - 4.343) < 0.1)
    }

    @Test("silence gives finite floors")
    func silenceFloor() {
        let meter = LevelMeter(sampleRate: 48_000)
        let z = [Float](repeating: 0, count: 4800)
        z.withUnsafeBufferPointer { meter.process($0) }
        var f = FrameFeatures()
        meter.read(into: &f)
        #expect(f.laf == -200 && f.las == -200 && f.lcf == -200 && f.lzf == -200)
    }
}
