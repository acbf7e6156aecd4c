import EarshotDSP
import Testing

/// Settings that would produce a feature that can never change are refused by ``AnalyzerConfig/validate()``
/// (so check-config, `--set`, environment and reload all refuse them).
@Suite("dead features are configuration errors")
struct DeadFeatureTests {
    @Test func melBandWithoutAnFFTBinIsRefused() throws {
        var c = AnalyzerConfig()
        c.nFFT = 512; c.hop = 240  // 48 kHz: bins every 93.75 Hz; mel band 0 spans 0–92.8 Hz
        #expect(c.firstEmptyMelBand() == 0)
        #expect(throws: AnalyzerConfigError.self) { try c.validate() }
        do { try c.validate() } catch {
            #expect(error.field == "n_mels" && error.related == "n_fft")
            #expect(error.message.contains("mel band 0") && error.message.contains("no FFT bin"), "\(error)")
        }
        c.nMels = 32
        #expect(c.firstEmptyMelBand() == nil)
        try c.validate()
        // The defaults and the 16 kHz fixtures' settings have every band.
        #expect(AnalyzerConfig().firstEmptyMelBand() == nil)
        var f = AnalyzerConfig()
        f.sampleRate = 16_000; f.nFFT = 512; f.hop = 160; f.nMels = 40
        #expect(f.firstEmptyMelBand() == nil)
        // A band squeezed between two bins by a high fmin is found too.
        var g = AnalyzerConfig()
        g.nMels = 128; g.fMin = 0; g.fMax = 2_000
        #expect(g.firstEmptyMelBand() != nil)
    }

    @Test func fmaxAboveNyquistIsRefused() {
        var c = AnalyzerConfig()
        c.fMax = 24_001
        #expect(throws: AnalyzerConfigError.self) { try c.validate() }
    }
}
