import EarshotDSP
import Testing

@Suite("AnalyzerConfig")
struct ConfigTests {
    @Test("defaults are valid")
    func defaults() throws {
        try AnalyzerConfig().validate()
        #expect(AnalyzerConfig().frameDuration == 0.01)
    }

    static let bad: [(String, @Sendable (inout AnalyzerConfig) -> Void)] = [
        ("sample_rate", { $0.sampleRate = 7_999 }),
        ("sample_rate", { $0.sampleRate = 192_001 }),
        ("n_fft", { $0.nFFT = 8 }),
        ("n_fft", { $0.nFFT = 1023 }),
        ("n_fft", { $0.nFFT = 2 * 11 * 64 }),
        ("hop", { $0.hop = 0 }),
        ("hop", { $0.hop = 2048 }),
        ("fmin", { $0.fMin = -1 }),
        ("fmax", { $0.fMax = 0 }),
        ("fmax", { $0.fMax = 30_000 }),
        ("n_mels", { $0.nMels = 0 }),
        ("n_mels", { $0.nMels = 514 }),
        ("n_mfcc", { $0.nMFCC = -1 }),
        ("n_mfcc", { $0.nMFCC = 65 }),
        ("logmel_floor_db", { $0.logMelFloorDb = .nan }),
        ("rolloff", { $0.rolloffPercent = 1 }),
        ("rolloff", { $0.rolloffPercent = 0 }),
        ("onset.pre_max_frames", { $0.onset.preMaxFrames = -1 }),
        ("onset.post_max_frames", { $0.onset.postMaxFrames = 2 }),
        ("onset.pre_avg_frames", { $0.onset.preAvgFrames = -3 }),
        ("onset.delta", { $0.onset.delta = -1 }),
        ("onset.delta", { $0.onset.delta = .infinity }),
        ("onset.wait_frames", { $0.onset.waitFrames = -1 }),
        ("onset.wait_frames", { $0.onset.waitFrames = 100_001 }),
        ("onset.post_max_frames", { $0.onset.postMaxFrames = -1 }),
        ("n_fft", { $0.nFFT = 45 }),  // FFTW-friendly but odd
        ("rolloff", { $0.rolloffPercent = 0.99995 }),
        ("logmel_floor_db", { $0.logMelFloorDb = -201 }),
    ]

    @Test("a bound is accepted, one past it refused, by the same stable key")
    func limitsAreInclusive() throws {
        var c = AnalyzerConfig()
        c.onset.postMaxFrames = AnalyzerConfig.Limits.postMaxFrames.upperBound
        try c.validate()
        c.hop = 7; c.sampleRate = 192_000  // 27 428 frames per second: the daemon's limit, not the library's
        c.nFFT = 4096  // bins every 46.9 Hz: every default mel band has one (1024 would leave band 0 empty)
        try c.validate()
        c.rolloffPercent = AnalyzerConfig.Limits.rolloffMax
        try c.validate()
        c.onset.postMaxFrames = 2
        #expect { try c.validate() } throws: { ($0 as? AnalyzerConfigError)?.field == "onset.post_max_frames" }
    }

    @Test("validate names the bad field", arguments: 0..<bad.count)
    func names(_ i: Int) {
        var c = AnalyzerConfig()
        Self.bad[i].1(&c)
        do {
            try c.validate()
            Issue.record("expected \(Self.bad[i].0) to be rejected")
        } catch {
            #expect(error.field == Self.bad[i].0, "\(error)")
        }
        #expect(throws: AnalyzerConfigError.self) { _ = try FrameAnalyzer(config: c) }
    }

    @Test("non-default valid configs")
    func valid() throws {
        var c = AnalyzerConfig()
        c.sampleRate = 16_000; c.nFFT = 512; c.hop = 160; c.nMels = 40; c.fMax = 8_000
        try c.validate()
        c.nFFT = 2 * 3 * 5 * 7 * 4; c.hop = c.nFFT
        try c.validate()
    }
}

@Suite("NaN-free")
struct NaNFreeTests {
    @Test("silence (and a floor) never produces NaN or infinity", arguments: [nil, Float(-100)])
    func silence(_ floor: Float?) throws {
        var config = AnalyzerConfig()
        config.logMelFloorDb = floor
        let run = try AnalyzerRun(config: config, samples: [Float](repeating: 0, count: 48_000))
        #expect(run.features.count == 98)
        for (t, f) in run.features.enumerated() {
            let all = [f.rmsDbfs, f.peakDbfs, f.zcr, f.centroidHz, f.bandwidthHz, f.rolloffHz, f.flatness,
                       f.flux, f.onsetStrength, f.laf, f.las, f.lcf, f.lzf]
            #expect(all.allSatisfy { $0.isFinite }, "frame \(t)")
            #expect(run.logmel[t].allSatisfy { $0.isFinite } && run.mfcc[t].allSatisfy { $0.isFinite })
            #expect(f.rmsDbfs == -200 && f.peakDbfs == -200 && f.zcr == 0)
            #expect(f.centroidHz == 0 && f.bandwidthHz == 0 && f.rolloffHz == 0 && f.flatness == 1)
            #expect(f.flux == 0 && f.onsetStrength == 0)
            #expect(run.logmel[t].allSatisfy { $0 == (floor ?? -100) })
        }
        #expect(run.onsets.isEmpty)
    }
}
