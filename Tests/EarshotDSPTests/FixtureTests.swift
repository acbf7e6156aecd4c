import EarshotDSP
import Foundation
import Testing

/// Swift vs librosa 0.11 (center=False) on the committed fixtures.
///
/// Tolerances: log-mel ≤ 0.01 dB where the reference mel power > 1e-8 (logmel > −80 dB);
/// MFCC ≤ 0.01 absolute on frames where every band is > 1e-8; RMS and peak ≤ 0.01 dB;
/// zcr exact to 1e-6; centroid/rolloff/flatness ≤ 1e-3 relative with an absolute
/// floor (1 Hz for frequencies, 1e-3 for flatness); bandwidth ≤ 1e-3 relative or 2.5 Hz absolute
/// (on pure tones it is dominated by float32 FFT noise in far bins weighted by (f − centroid)²);
/// flux ≤ 1e-3 relative with a 1e-3 floor; log-mel bands are also only compared within 90 dB of
/// the frame's loudest band (float32 FFT dynamic range);
/// onset strength ≤ 0.01 dB absolute (frames whose previous and current bands are all > −80 dB,
/// as float32 FFT noise below that moves the dB values).
@Suite("librosa fixtures")
struct FixtureTests {
    static let names: [String] = (try? Fixture.names()) ?? []

    @Test("fixtures are present")
    func present() throws {
        #expect(Self.names.count >= 11)
    }

    @Test("features match librosa", arguments: names)
    func matches(_ name: String) throws {
        let fx = try Fixture.load(name)
        let run = try AnalyzerRun(config: fx.config, samples: fx.samples)
        #expect(run.features.count == fx.frames)
        let nM = fx.config.nMels
        let nC = fx.config.nMFCC
        let refLog = fx.arrays["logmel"]!
        let refMfcc = fx.arrays["mfcc"]!
        var maxErr: [String: Double] = [:]
        func note(_ k: String, _ e: Double) { maxErr[k] = max(maxErr[k] ?? 0, e) }
        func rel(_ a: Double, _ b: Double, floor: Double) -> Double { abs(a - b) / max(abs(b), floor) }

        for t in 0..<min(fx.frames, run.features.count) {
            var allAbove = true
            var prevAbove = true
            var frameMax = -Double.infinity
            for m in 0..<nM { frameMax = max(frameMax, refLog[t * nM + m]) }
            for m in 0..<nM {
                let r = refLog[t * nM + m]
                if r > max(-80, frameMax - 90) {
                    note("logmel_db", abs(Double(run.logmel[t][m]) - r))
                } else {
                    allAbove = false
                }
                if t > 0 && refLog[(t - 1) * nM + m] <= -80 { prevAbove = false }
            }
            if allAbove {
                for k in 0..<nC { note("mfcc", abs(Double(run.mfcc[t][k]) - refMfcc[t * nC + k])) }
            }
            let f = run.features[t]
            note("rms_db", abs(Double(f.rmsDbfs) - fx.arrays["rms_db"]![t]))
            note("peak_db", abs(Double(f.peakDbfs) - fx.arrays["peak_db"]![t]))
            note("zcr", abs(Double(f.zcr) - fx.arrays["zcr"]![t]))
            note("centroid_rel", rel(Double(f.centroidHz), fx.arrays["centroid"]![t], floor: 1))
            note("bandwidth_rel", rel(Double(f.bandwidthHz), fx.arrays["bandwidth"]![t], floor: 2500))
            note("bandwidth_abs_hz", abs(Double(f.bandwidthHz) - fx.arrays["bandwidth"]![t]))
            note("rolloff_rel", rel(Double(f.rolloffHz), fx.arrays["rolloff"]![t], floor: 1))
            note("flatness_rel", rel(Double(f.flatness), fx.arrays["flatness"]![t], floor: 1e-3))
            note("flux_rel", rel(Double(f.flux), fx.arrays["flux"]![t], floor: 1e-3))
            if allAbove && prevAbove {
                note("onset_strength", abs(Double(f.onsetStrength) - fx.arrays["onset_strength"]![t]))
            }
            for v in [f.rmsDbfs, f.peakDbfs, f.zcr, f.centroidHz, f.bandwidthHz, f.rolloffHz, f.flatness, f.flux,
                      f.onsetStrength, f.laf, f.las, f.lcf, f.lzf] {
                #expect(v.isFinite)
            }
        }
        print("[\(name)] max errors:", maxErr.sorted { $0.key < $1.key }.map { "\($0.key)=\(String(format: "%.3g", $0.value))" }.joined(separator: " "))
        #expect((maxErr["logmel_db"] ?? 0) <= 0.01, "\(name) logmel")
        #expect((maxErr["mfcc"] ?? 0) <= 0.01, "\(name) mfcc")
        #expect((maxErr["rms_db"] ?? 0) <= 0.01, "\(name) rms")
        #expect((maxErr["peak_db"] ?? 0) <= 0.01, "\(name) peak")
        #expect((maxErr["zcr"] ?? 0) <= 1e-6, "\(name) zcr")
        #expect((maxErr["centroid_rel"] ?? 0) <= 1e-3, "\(name) centroid")
        #expect((maxErr["bandwidth_rel"] ?? 0) <= 1e-3, "\(name) bandwidth")
        #expect((maxErr["rolloff_rel"] ?? 0) <= 1e-3, "\(name) rolloff")
        #expect((maxErr["flatness_rel"] ?? 0) <= 1e-3, "\(name) flatness")
        #expect((maxErr["flux_rel"] ?? 0) <= 1e-3, "\(name) flux")
        #expect((maxErr["onset_strength"] ?? 0) <= 0.01, "\(name) onset strength")
    }

    @Test("mel band edges match librosa.mel_frequencies")
    func edges() throws {
        let fx = try Fixture.load("tone_48k")
        let a = try FrameAnalyzer(config: fx.config)
        let ref = fx.arrays["mel_edges_hz"]!
        #expect(a.melBandEdgesHz.count == fx.config.nMels + 2)
        for (x, r) in zip(a.melBandEdgesHz, ref) { #expect(abs(Double(x) - r) <= 1e-3 * max(1, r)) }
    }
}
