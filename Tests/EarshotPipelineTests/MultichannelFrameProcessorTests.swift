import EarshotDSP
import EarshotPipeline
import Foundation
import Testing

/// ``FrameProcessor`` with ``AnalyzerConfig/levelChannels`` = N: the side carries N floats per sample through the
/// in-place path, the sliding window and ``SampleGuard``.
@Suite("FrameProcessor with 3 or more level channels")
struct MultichannelFrameProcessorTests {
    /// Pushes the downmix of `channels` with the channels interleaved as side, in `chunks`; returns the frames.
    static func run(_ channels: [[Float]], chunks: [Int]) throws -> CollectingOutput {
        var config = AnalyzerConfig()
        config.levelChannels = channels.count
        let out = CollectingOutput(nMels: config.nMels, nMFCC: config.nMFCC)
        let p = FrameProcessor(analyzer: try FrameAnalyzer(config: config), output: out, measureTiming: false)
        let n = channels.count, count = channels[0].count
        var mid = [Float](repeating: 0, count: count), side = [Float](repeating: 0, count: count * n)
        for j in 0..<count {
            for c in 0..<n { side[j * n + c] = channels[c][j]; mid[j] += channels[c][j].isFinite ? channels[c][j] : 0 }
            mid[j] *= 1 / Float(n)
        }
        var pos = 0, k = 0
        while pos < count {
            let m = min(chunks[k % chunks.count], count - pos)
            mid[pos..<(pos + m)].withUnsafeBufferPointer { s in
                side[(pos * n)..<((pos + m) * n)].withUnsafeMutableBufferPointer { sd in
                    p.push(s, side: sd.baseAddress, firstSample: Int64(pos), monotonicNs: Int64(pos) * 20_833,
                           wallNs: Int64(pos) * 20_833)
                }
            }
            pos += m; k += 1
        }
        return out
    }

    /// Anti-phase pairs: whatever the chunking (in place, sliding window, one sample at a time), every frame
    /// has the same levels, which are one channel's (the downmix is silent: rms −200).
    @Test func chunkingInvarianceAndEnergyMean() throws {
        let x = testSignal(seconds: 1)
        let neg = x.map { -$0 }
        let whole = try Self.run([x, neg, x, neg], chunks: [x.count])
        let mono = try process(x, chunks: [x.count])
        #expect(whole.headers.count == mono.headers.count && whole.headers.count > 90)
        for (h, m) in zip(whole.headers, mono.headers).dropFirst(60) {
            #expect(abs(h.features.laf - m.features.laf) < 0.01, "\(h.features.laf) vs \(m.features.laf)")
            #expect(h.features.rmsDbfs < -100)
        }
        for chunks in [[1], [480], [7, 333, 2000]] {
            let other = try Self.run([x, neg, x, neg], chunks: chunks)
            #expect(other.headers.count == whole.headers.count)
            for (a, b) in zip(other.headers, whole.headers) {
                // Levels bit for bit; the frame's energy whatever the head/tail split (placed by wall-clock anchors,
                // which these chunkings round differently).
                let ea = a.levels.head.energyA + a.levels.tail.energyA, eb = b.levels.head.energyA + b.levels.tail.energyA
                #expect(a.features.laf == b.features.laf && a.features.las == b.features.las && a.features.lcf == b.features.lcf
                        && a.features.lzf == b.features.lzf && abs(ea - eb) <= 1e-9 * eb, "chunks \(chunks) frame \(a.seq)")
            }
        }
    }

    /// A NaN / infinity in one channel's side samples is replaced by 0 (``SampleGuard``): the frame's levels stay
    /// finite and measured from the other channels.
    @Test func nonFiniteChannelSamplesAreSanitized() throws {
        var x = testSignal(seconds: 0.5)
        let y = x
        x[5_000] = .nan; x[9_000] = .infinity
        x[12_000] = 1e30  // finite: only SampleGuard clamps it (to 1000), the level meter would take it as is
        let out = try Self.run([y, x, y], chunks: [480])
        #expect(out.headers.count > 40)
        #expect(out.headers.allSatisfy { $0.features.laf.isFinite && $0.features.laf > -60 })
        // The same as the sanitized values given directly (NaN, ∞ → 0; 1e30 → +1000), level for level.
        var clean = x
        clean[5_000] = 0; clean[9_000] = 0; clean[12_000] = SampleGuard.limit
        let expected = try Self.run([y, clean, y], chunks: [480])
        #expect(out.headers.map(\.features.laf) == expected.headers.map(\.features.laf))
        #expect(out.headers.map(\.features.lcf) == expected.headers.map(\.features.lcf))
    }
}
