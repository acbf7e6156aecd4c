import EarshotDSP
import Foundation
import Testing

/// `earshot calibrate`'s measurement: the offset of a known tone, and each refusal with its reason.
@Suite("Tone calibration")
struct ToneCalibrationTests {
    static let rate = 48_000

    /// A sine of RMS level `dbfs` (full-scale sine = −3.01 dBFS) at `hz`, plus optional white noise at `noiseDbfs`.
    static func tone(hz: Double, dbfs: Double, seconds: Double = 2, rate: Int = rate, noiseDbfs: Double? = nil,
                     gain: (Double) -> Double = { _ in 1 }) -> [Float] {
        let amplitude = pow(10, dbfs / 20) * 2.0.squareRoot()
        var seed: UInt64 = 12345
        let noiseAmp = noiseDbfs.map { pow(10, $0 / 20) * 3.0.squareRoot() } ?? 0  // uniform ±a has RMS a/√3
        return (0..<Int(seconds * Double(rate))).map { i in
            let t = Double(i) / Double(rate)
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            let u = Double(seed >> 11) / Double(1 << 53) * 2 - 1
            return Float(amplitude * gain(t) * sin(2 * Double.pi * hz * t + 0.3) + noiseAmp * u)
        }
    }

    @Test(arguments: [(1000.0, -26.0, 94.0), (1000.0, -6.5, 114.0), (250.0, -40.0, 94.0), (1000.0, -70.0, 94.0)])
    func offsetOfAKnownTone(_ hz: Double, _ dbfs: Double, _ reference: Double) throws {
        let r = try ToneCalibration.measure(Self.tone(hz: hz, dbfs: dbfs), sampleRate: Self.rate, expectedHz: hz, referenceDb: reference)
        #expect(abs(r.levelDbfs - dbfs) < 0.01, "\(r)")
        #expect(abs(r.offsetDb - (reference - dbfs)) < 0.01)
        #expect(abs(r.frequencyHz - hz) < 0.05)
        #expect(r.variationDb < 0.05 && r.toneFraction > 0.999)
    }

    @Test func noiseAndDCDoNotBiasTheLevel() throws {
        // A calibrator tone 40 dB above the room noise, on a microphone with a DC offset.
        let x = Self.tone(hz: 1000, dbfs: -30, noiseDbfs: -70).map { $0 + 0.01 }
        let r = try ToneCalibration.measure(x, sampleRate: Self.rate, expectedHz: 1000, referenceDb: 94)
        #expect(abs(r.levelDbfs + 30) < 0.02, "\(r)")
    }

    @Test func theLevelMeterReadsTheCalibratedTone() throws {
        // The offset is in the level meter's unit: after calibration its settled LZF/LAF read the reference.
        let x = Self.tone(hz: 1000, dbfs: -26, seconds: 3)
        let r = try ToneCalibration.measure(x, sampleRate: Self.rate, expectedHz: 1000, referenceDb: 94)
        let meter = LevelMeter(sampleRate: Self.rate)
        x.withUnsafeBufferPointer { meter.process($0) }
        var f = FrameFeatures()
        meter.read(into: &f)
        #expect(abs(Double(f.lzf) + r.offsetDb - 94) < 0.1, "lzf \(f.lzf) offset \(r.offsetDb)")
        #expect(abs(Double(f.laf) + r.offsetDb - 94) < 0.1, "laf \(f.laf)")
    }

    @Test func refusesTheWrongFrequencyNamingTheMeasuredOne() {
        #expect(throws: ToneCalibration.Refusal.self) {
            try ToneCalibration.measure(Self.tone(hz: 500, dbfs: -26), sampleRate: Self.rate, expectedHz: 1000, referenceDb: 94)
        }
        do {
            _ = try ToneCalibration.measure(Self.tone(hz: 500, dbfs: -26), sampleRate: Self.rate, expectedHz: 1000, referenceDb: 94)
        } catch {
            guard case .wrongFrequency(let m, 1000) = error else { Issue.record("\(error)"); return }
            #expect(abs(m - 500) < 0.1)
            #expect("\(error)".contains("measured 500.0 Hz"))
        }
    }

    @Test func refusesALevelThatChanges() {
        // 1 dB step halfway.
        let x = Self.tone(hz: 1000, dbfs: -26) { $0 < 1 ? 1 : pow(10, 1.0 / 20) }
        do {
            _ = try ToneCalibration.measure(x, sampleRate: Self.rate, expectedHz: 1000, referenceDb: 94)
            Issue.record("accepted a changing level")
        } catch {
            guard case .unstable(let v, _) = error else { Issue.record("\(error)"); return }
            #expect(abs(v - 1) < 0.1, "\(v)")
            #expect("\(error)".contains("varied by 1.0"))
        }
        // A slow 0.3 dB drift stays within the limit.
        let drift = Self.tone(hz: 1000, dbfs: -26) { pow(10, 0.15 * $0 / 20) }
        #expect((try? ToneCalibration.measure(drift, sampleRate: Self.rate, expectedHz: 1000, referenceDb: 94)) != nil)
    }

    @Test func refusesSilenceQuietNoiseAndClipping() {
        func refusal(_ x: [Float]) -> ToneCalibration.Refusal? {
            do { _ = try ToneCalibration.measure(x, sampleRate: Self.rate, expectedHz: 1000, referenceDb: 94); return nil } catch { return error }
        }
        #expect(refusal([Float](repeating: 0, count: Self.rate)) == .silence)
        #expect(refusal([Float](repeating: 0.25, count: Self.rate)) == .silence)
        if case .tooQuiet(let l)? = refusal(Self.tone(hz: 1000, dbfs: -95)) { #expect(abs(l + 95) < 0.1) } else { Issue.record("not tooQuiet") }
        if case .notATone? = refusal(Self.tone(hz: 1000, dbfs: -200, noiseDbfs: -30)) {} else { Issue.record("noise accepted") }
        if case .notATone? = refusal(zip(Self.tone(hz: 1000, dbfs: -26), Self.tone(hz: 1300, dbfs: -26)).map { $0 + $1 }) {} else {
            Issue.record("two tones accepted")
        }
        let clipped = Self.tone(hz: 1000, dbfs: 0).map { max(-1, min(1, $0)) }
        if case .clipping(let fraction, _)? = refusal(clipped) { #expect(fraction > 0.1) } else { Issue.record("clipping accepted") }
        #expect(refusal([0.1, 0.2]) == .tooShort(seconds: 2.0 / 48_000))
        // Non-finite samples count as 0 (here: all of them → silence), never a trap.
        #expect(refusal([Float](repeating: .nan, count: Self.rate)) == .silence)
        #expect(refusal([Float](repeating: .infinity, count: Self.rate)) == .silence)
    }
}
