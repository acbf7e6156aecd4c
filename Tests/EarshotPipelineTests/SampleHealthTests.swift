import Testing

@testable import EarshotPipeline

/// `SampleHealthAccumulator.measure`: its vector path (blocks of 8 with no repeated and no near-full-scale
/// sample) gives what the sample-by-sample definition gives, on material that mixes both kinds of block,
/// split into frames of every length (so runs cross block and frame boundaries).
@Suite struct SampleHealthTests {
    /// The definition, one sample at a time (the accumulator before its vector path).
    struct Reference {
        var previous: Float = 0, constantRun: Int64 = 0, fullRun: Int32 = 0, started = false
        mutating func measure(_ x: [Float]) -> SampleHealth {
            var h = SampleHealth()
            guard !x.isEmpty else { return h }
            var zeros: Int32 = 0, near: Int32 = 0, longest: Int32 = 0, sum = 0.0
            var prev = started ? previous : x[0], run = started ? constantRun : 0, full = started ? fullRun : 0
            for v in x {
                sum += Double(v)
                if v == 0 { zeros += 1 }
                let same = v == prev
                run = same ? run + 1 : 1
                prev = v
                if abs(v) >= SampleHealth.nearFullScale {
                    if same && full > 0 { near += 1; full += 1 } else { full = 1 }
                    longest = max(longest, full)
                } else {
                    full = 0
                }
            }
            previous = prev; constantRun = run; fullRun = full; started = true
            h.samples = Int32(x.count); h.zeros = zeros; h.clipped = near; h.longestClipRun = longest
            h.constantRun = run; h.sum = sum; h.last = prev
            return h
        }
    }

    /// Noise with stretches of zeros, a stuck value, clipped runs at ±1, single full-scale peaks, NaN-free
    /// repeats and quiet 16-bit audio (a few quantization steps: many repeats), from a fixed seed.
    static func material(count: Int) -> [Float] {
        var g = SplitMix64(seed: 7)
        var x: [Float] = []
        while x.count < count {
            let kind = g.next() % 7
            let n = Int(g.next() % 40) + 1
            switch kind {
            case 0: x += (0..<n).map { _ in 0 }
            case 1: x += (0..<n).map { _ in 0.25 }
            case 2: x += (0..<n).map { _ in g.next() % 2 == 0 ? 1 : -1 }
            case 3: x += (0..<n).map { _ in g.next() % 3 == 0 ? 0.995 : Float(Int(g.next() % 2001) - 1000) / 1000 }
            case 4: x += (0..<(n * 8)).map { _ in Float(Int(g.next() % 3) - 1) / 32768 }
            default: x += (0..<(n * 8)).map { _ in Float(Int(g.next() % 20001) - 10000) / 20000 }
            }
        }
        return Array(x.prefix(count))
    }

    @Test func vectorPathMatchesTheDefinition() {
        let x = Self.material(count: 20_000)
        // Every kind of 8-sample block occurs: nothing near full scale with no repeat (vector path), some
        // repeats (the run restarts inside the block) and only repeats; and blocks near full scale.
        let quiet = (1..<(x.count - 8)).filter { i in (i..<(i + 8)).allSatisfy { abs(x[$0]) < SampleHealth.nearFullScale } }
        let repeats = quiet.map { i in (i..<(i + 8)).filter { x[$0] == x[$0 - 1] }.count }
        #expect(repeats.filter { $0 == 0 }.count > 1000, "blocks without a repeat")
        #expect(repeats.filter { $0 > 0 && $0 < 8 }.count > 1000, "blocks with some repeats")
        #expect(repeats.filter { $0 == 8 }.count > 100, "blocks of repeats only")
        #expect(quiet.count < x.count - 1000, "\(quiet.count) quiet blocks")
        for frame in [1, 7, 8, 9, 17, 480, 1024] {
            var a = SampleHealthAccumulator(), r = Reference()
            var at = 0
            while at < x.count {
                let chunk = Array(x[at..<min(x.count, at + frame)])
                let got = chunk.withUnsafeBufferPointer { a.measure($0) }
                let want = r.measure(chunk)
                #expect(got.samples == want.samples && got.zeros == want.zeros && got.clipped == want.clipped
                        && got.longestClipRun == want.longestClipRun && got.constantRun == want.constantRun
                        && got.last == want.last, "frame \(frame) at \(at): \(got) vs \(want)")
                #expect(abs(got.sum - want.sum) <= 1e-9 * max(1, abs(want.sum)), "frame \(frame) at \(at)")
                at += frame
                if at > 3000 && frame == 1 { break }  // one sample per call: scalar only, keep it short
            }
        }
    }
}

/// A small deterministic generator for test material.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
