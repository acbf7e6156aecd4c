#if canImport(Glibc)
import Glibc
#endif
import EarshotDSP
import Testing

/// The mel bank runs only when something needs it (log-mel asked for, MFCC, or the `logmel` onset function):
/// what it produces is then identical to a full analysis, and when it does not run the log-mel buffer reads 0.
@Suite struct AnalyzerOutputsTests {
    /// Runs `frames` frames of a deterministic noise-plus-tone signal; returns per frame (logmel, mfcc, strength).
    static func run(_ config: AnalyzerConfig, _ outputs: AnalyzerOutputs, frames: Int = 40) throws -> [([Float], [Float], Float)] {
        let a = try FrameAnalyzer(config: config, outputs: outputs)
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        let total = config.nFFT + frames * config.hop
        let signal: [Float] = (0..<total).map { i in
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            let noise = Float(Int64(bitPattern: seed >> 11) % 1000) / 20_000
            let burst: Float = (i / 4800) % 2 == 1 ? 0.3 : 0.01  // steps for the onset function
            return noise + burst * sinf(Float(i) * 0.21)
        }
        var logmel = [Float](repeating: .nan, count: config.nMels)
        var mfcc = [Float](repeating: .nan, count: config.nMFCC)
        var out: [([Float], [Float], Float)] = []
        for f in 0..<frames {
            var features = FrameFeatures()
            let start = f * config.hop
            signal.withUnsafeBufferPointer { s in
                let frame = UnsafeBufferPointer(rebasing: s[start..<(start + config.nFFT)])
                logmel.withUnsafeMutableBufferPointer { l in
                    mfcc.withUnsafeMutableBufferPointer { m in
                        _ = a.process(frame: frame, newSampleCount: f == 0 ? config.nFFT : config.hop, features: &features, logmel: l, mfcc: m)
                    }
                }
            }
            out.append((logmel, mfcc, features.onsetStrength))
        }
        return out
    }

    @Test func melBankRunsOnlyWhenNeededAndThenMatchesAFullAnalysis() throws {
        let config = AnalyzerConfig()
        let full = try Self.run(config, .all)
        #expect(full.contains { $0.0.contains { $0 != 0 } })
        // Nothing needs the mel bank: log-mel reads 0 (not NaN, not stale), onset strength is unchanged.
        let none = try Self.run(config, [.rms, .levels])
        for (n, f) in zip(none, full) {
            #expect(n.0.allSatisfy { $0 == 0 })
            #expect(n.1.allSatisfy { $0 == 0 })
            #expect(n.2 == f.2)
        }
        // Log-mel alone, or MFCC alone (which needs it): identical to the full analysis.
        let logmel = try Self.run(config, .logmel)
        #expect(zip(logmel, full).allSatisfy { $0.0 == $1.0 && $0.2 == $1.2 })
        let mfcc = try Self.run(config, .mfcc)
        #expect(zip(mfcc, full).allSatisfy { $0.1 == $1.1 })
        // The `logmel` onset function needs the mel bank even when no log-mel is asked for.
        var logmelOnset = config
        logmelOnset.onsetFunction.function = .logmel
        let fullLogmelOnset = try Self.run(logmelOnset, .all)
        let strengthOnly = try Self.run(logmelOnset, .none)
        #expect(fullLogmelOnset.contains { $0.2 > 0 })
        #expect(zip(strengthOnly, fullLogmelOnset).allSatisfy { $0.2 == $1.2 })
    }
}
