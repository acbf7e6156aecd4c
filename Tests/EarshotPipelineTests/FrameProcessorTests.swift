import EarshotDSP
import EarshotPipeline
import Foundation
import Testing

/// Collects frames in memory (test output).
final class CollectingOutput: FrameOutput {
    let logmel: UnsafeMutableBufferPointer<Float>
    let mfcc: UnsafeMutableBufferPointer<Float>
    var headers: [FrameHeader] = []
    var logmels: [[Float]] = []

    init(nMels: Int, nMFCC: Int) {
        logmel = .allocate(capacity: nMels); logmel.initialize(repeating: 0)
        mfcc = .allocate(capacity: nMFCC); mfcc.initialize(repeating: 0)
    }
    deinit { logmel.deallocate(); mfcc.deallocate() }

    func nextFrameBuffers() -> (logmel: UnsafeMutableBufferPointer<Float>, mfcc: UnsafeMutableBufferPointer<Float>) { (logmel, mfcc) }
    func emit(_ header: FrameHeader) { headers.append(header); logmels.append(Array(logmel)) }
}

func testSignal(seconds: Double, sampleRate: Int = 48_000, seed: UInt64 = 1) -> [Float] {
    var state = seed
    let n = Int(seconds * Double(sampleRate))
    var out = [Float](repeating: 0, count: n)
    for i in 0..<n {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        let noise = Float(Int64(bitPattern: state >> 11) % 1000) / 1000 * 0.05
        let t = Float(i) / Float(sampleRate)
        out[i] = 0.3 * sinf(2 * .pi * 440 * t) + noise + (i % 12_000 < 48 ? 0.8 : 0)
    }
    return out
}

func process(_ samples: [Float], chunks: [Int], config: AnalyzerConfig = AnalyzerConfig()) throws -> CollectingOutput {
    let out = CollectingOutput(nMels: config.nMels, nMFCC: config.nMFCC)
    let p = FrameProcessor(analyzer: try FrameAnalyzer(config: config), output: out, measureTiming: false)
    var pos = 0, k = 0
    samples.withUnsafeBufferPointer { all in
        while pos < all.count {
            let n = min(chunks[k % chunks.count], all.count - pos)
            p.push(UnsafeBufferPointer(rebasing: all[pos..<pos + n]), firstSample: Int64(pos),
                   monotonicNs: Int64(pos) * 1_000_000_000 / 48_000, wallNs: Int64(pos) * 1_000_000_000 / 48_000)
            pos += n; k += 1
        }
    }
    return out
}

@Suite("FrameProcessor framing")
struct FrameProcessorTests {
    /// Frame count and content do not depend on how the samples are chunked (period size).
    /// A push without a side signal (a lapped side ring, a mono period) ends the side run: the frame that
    /// completes in the next push with a side must not read the older side samples still in the side window.
    @Test func aFrameNeverReadsAStaleSideSignal() throws {
        let config = AnalyzerConfig()
        let out = CollectingOutput(nMels: config.nMels, nMFCC: config.nMFCC)
        let p = FrameProcessor(analyzer: try FrameAnalyzer(config: config), output: out, measureTiming: false)
        let silence = [Float](repeating: 0, count: 2000)
        var loud = [Float](repeating: 0, count: 2000)
        for i in loud.indices { loud[i] = 0.5 * Float(sin(2 * Double.pi * 1000 * Double(i) / 48_000)) }
        var quiet = silence
        var pos: Int64 = 0
        func push(_ count: Int, side: UnsafeMutablePointer<Float>?) {
            silence.withUnsafeBufferPointer { p.push(UnsafeBufferPointer(rebasing: $0[..<count]), side: side, firstSample: pos,
                                                     monotonicNs: pos * 20_833, wallNs: pos * 20_833) }
            pos += Int64(count)
        }
        loud.withUnsafeMutableBufferPointer { push(2000, side: $0.baseAddress) }  // anti-phase: loud levels, silent mid
        #expect(out.headers.contains { $0.levels.head.energyA + $0.levels.tail.energyA > 1 })
        let before = out.headers.count
        push(100, side: nil)  // no side for these samples
        quiet.withUnsafeMutableBufferPointer { push(2000, side: $0.baseAddress) }
        let after = out.headers[before...]
        #expect(after.count >= 3)
        for h in after {
            #expect(h.levels.head.energyA + h.levels.tail.energyA == 0, "frame \(h.seq) read a stale side signal")
        }
    }

    @Test func chunkingInvariance() throws {
        let x = testSignal(seconds: 1.5)
        let whole = try process(x, chunks: [x.count])
        let expected = (x.count - 1024) / 480 + 1
        #expect(whole.headers.count == expected)
        for chunks in [[1], [480], [1024], [7, 333, 2000], [44_100]] {
            let other = try process(x, chunks: chunks)
            #expect(other.headers.count == expected)
            for i in 0..<expected {
                #expect(other.headers[i].seq == Int64(i))
                #expect(other.headers[i].firstSample == Int64(i * 480))
                #expect(other.headers[i].features.rmsDbfs == whole.headers[i].features.rmsDbfs)
                #expect(other.headers[i].features.laf == whole.headers[i].features.laf)
                #expect(other.logmels[i] == whole.logmels[i])
            }
        }
    }

    /// Hostile float samples (issue 9, item 1) enter through ``SampleGuard``: whatever the chunking (in place,
    /// sample by sample, across chunk and `nFFT` piece boundaries), the frames are exactly those of the signal
    /// with the replacements written in (NaN, ±inf → 0; beyond ±1000 → ±1000), and each sample is counted once.
    @Test func hostileSamplesFrameAsTheirSanitizedValues() throws {
        var dirty = testSignal(seconds: 1)
        let bad: [(Int, Float)] = [(0, Float.nan), (1023, Float.infinity), (1024, 1e20), (5_000, -Float.infinity), (5_001, -3e38),
                                   (20_000, 1001), (47_999, -Float.nan)]
        for (i, v) in bad { dirty[i] = v }
        let clean = dirty.map { $0.isFinite ? min(1000, max(-1000, $0)) : 0 }
        let expected = try process(clean, chunks: [clean.count])
        #expect(expected.headers.count == (clean.count - 1024) / 480 + 1)
        let config = AnalyzerConfig()
        for chunks in [[dirty.count], [1], [480], [7, 333, 2000], [3000]] {
            let out = CollectingOutput(nMels: config.nMels, nMFCC: config.nMFCC)
            let p = FrameProcessor(analyzer: try FrameAnalyzer(config: config), output: out, measureTiming: false)
            var pos = 0, k = 0
            dirty.withUnsafeBufferPointer { all in
                while pos < all.count {
                    let n = min(chunks[k % chunks.count], all.count - pos)
                    p.push(UnsafeBufferPointer(rebasing: all[pos..<pos + n]), firstSample: Int64(pos),
                           monotonicNs: Int64(pos) * 1_000_000_000 / 48_000, wallNs: Int64(pos) * 1_000_000_000 / 48_000)
                    pos += n; k += 1
                }
            }
            #expect(p.sanitizedSamples == SampleGuard.Counts(nonFinite: 4, clamped: 3), "chunks \(chunks)")
            #expect(out.headers.count == expected.headers.count, "chunks \(chunks)")
            var differing = 0
            for (a, b) in zip(out.headers, expected.headers) where
                a.seq != b.seq || a.firstSample != b.firstSample || abs(a.wallNs - b.wallNs) > 1 || a.flags != 0
                || withUnsafeBytes(of: a.features, { Array($0) }) != withUnsafeBytes(of: b.features, { Array($0) }) {
                differing += 1
            }
            #expect(differing == 0 && out.logmels == expected.logmels, "chunks \(chunks): \(differing) headers differ")
        }
    }

    /// Frame i covers samples [i*hop, i*hop+nFFT): its RMS equals the RMS of exactly that slice.
    @Test func framingMatchesCenterFalse() throws {
        let x = testSignal(seconds: 0.5)
        let out = try process(x, chunks: [333])
        for i in [0, 1, 17, out.headers.count - 1] {
            let slice = x[(i * 480)..<(i * 480 + 1024)]
            let rms = sqrt(slice.map { Double($0) * Double($0) }.reduce(0, +) / 1024)
            #expect(abs(Double(out.headers[i].features.rmsDbfs) - 20 * log10(rms)) < 1e-3)
        }
    }

    /// Times derive from the sample index; a discontinuity drops the partial frame, restarts framing at the
    /// new position, flags the next frame with the gap and keeps seq counting.
    @Test func discontinuity() throws {
        let config = AnalyzerConfig()
        let out = CollectingOutput(nMels: config.nMels, nMFCC: config.nMFCC)
        let p = FrameProcessor(analyzer: try FrameAnalyzer(config: config), output: out, measureTiming: false)
        let x = testSignal(seconds: 0.2)
        x.withUnsafeBufferPointer { b in
            p.push(UnsafeBufferPointer(rebasing: b[0..<5000]), firstSample: 0, monotonicNs: 1_000_000_000, wallNs: 5_000_000_000)
            p.discontinuity(flags: FrameFlags.xrun, gapSamples: 4800)
            p.push(UnsafeBufferPointer(rebasing: b[5000..<9000]), firstSample: 9800, monotonicNs: 1_204_166_667, wallNs: 5_204_166_667)
        }
        // 5000 samples → frames at 0..3840 (9 frames); then 4000 samples from 9800 → frames at 9800 + k*480, k = 0..6.
        #expect(out.headers.count == 9 + 7)
        let first = out.headers[9]
        #expect(first.seq == 9)
        #expect(first.firstSample == 9800)
        #expect(first.isDiscontinuity && first.flags & FrameFlags.xrun != 0)
        #expect(first.gapSamples == 4800)
        #expect(first.features.flux == 0 && first.features.onsetStrength == 0)
        #expect(abs(first.wallNs - 5_204_166_667) < 2)
        #expect(!out.headers[10].isDiscontinuity && out.headers[10].gapSamples == 0)
        #expect(abs(out.headers[3].wallNs - (5_000_000_000 + 3 * 10_000_000)) < 2)
        #expect(out.headers[3].lastSampleMonotonicNs - out.headers[3].monotonicNs == Int64((1023.0 / 48_000 * 1e9).rounded()))
    }

    /// The onset of a click is reported with its own seq and time and the picker's look-ahead delay.
    @Test func onsetsCarrySeqTimeAndDelay() throws {
        var x = [Float](repeating: 0, count: 48_000)
        for c in [12_000, 30_000] { for i in 0..<64 { x[c + i] = i % 2 == 0 ? 0.9 : -0.9 } }
        let out = try process(x, chunks: [480])
        let onsets = out.headers.filter(\.hasOnset)
        #expect(onsets.count == 2)
        for h in onsets {
            #expect(h.onset.detectedAtFrame == h.seq)
            #expect(h.onset.frameIndex < h.seq)
            let expectedDelay = (Double(h.seq - h.onset.frameIndex) * 480 + 1024) / 48.0
            #expect(abs(Double(h.onsetDelayMs) - expectedDelay) < 1e-3)
            #expect(h.onsetWallNs == out.headers[Int(h.onset.frameIndex)].wallNs)
        }
        // The click at sample 12000 is in frames whose window covers it; the first such frame starts at ≥ 12000−1023.
        let firstOnsetSample = onsets[0].onset.frameIndex * 480
        #expect(firstOnsetSample > 12_000 - 1024 && firstOnsetSample <= 12_000)
    }

    /// A re-plan (reload of DSP parameters) keeps the partial frame: the frames after it continue the
    /// timeline without a hole, and the first one is flagged `replan` with a gap of 0 that is true.
    @Test func replanKeepsThePartialFrame() throws {
        let x = testSignal(seconds: 1.0)
        let out = CollectingOutput(nMels: 64, nMFCC: 13)
        let p = FrameProcessor(analyzer: try FrameAnalyzer(config: AnalyzerConfig()), output: out, measureTiming: false)
        let cut = 10 * 480 + 700  // mid-frame: 700 samples of the next frame are in the window
        x.withUnsafeBufferPointer { all in
            p.push(UnsafeBufferPointer(rebasing: all[0..<cut]), firstSample: 0, monotonicNs: 0, wallNs: 0)
            var changed = AnalyzerConfig()
            changed.onset.delta = 3
            p.replace(analyzer: try! FrameAnalyzer(config: changed))
            p.push(UnsafeBufferPointer(rebasing: all[cut...]), firstSample: Int64(cut),
                   monotonicNs: Int64(cut) * 20_833, wallNs: Int64(cut) * 20_833)
        }
        // Every hop of the signal is framed exactly as without the re-plan.
        #expect(out.headers.count == (x.count - 1024) / 480 + 1)
        for (i, h) in out.headers.enumerated() { #expect(h.firstSample == Int64(i * 480)) }
        let first = try #require(out.headers.first { $0.flags & FrameFlags.replan != 0 })
        #expect(first.seq == 10 && first.gapSamples == 0 && first.isDiscontinuity)
        #expect(out.headers.filter { $0.flags & FrameFlags.replan != 0 }.count == 1)
    }
}
