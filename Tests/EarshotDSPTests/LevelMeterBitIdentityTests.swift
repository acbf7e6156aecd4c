import Foundation
import Testing

@testable import EarshotDSP

/// The `SIMD2` loop of ``LevelMeter/process(_:)`` (two filters or two time weightings per operation, the serial
/// C and A sections software-pipelined) against the scalar per-sample algorithm it replaced, copied here as the
/// oracle: every ``LevelSums`` field, every filter and time-weighting state and the levels of
/// ``LevelMeter/read(into:)`` must be **bit-identical** after every call, over calls of odd lengths (0, 1, 2, …),
/// splits at the edges and inside, before and after the Fast and Slow minima settle (also within one call),
/// resets, mono and 2-channel (side) calls and their switches, and non-finite and huge samples.
@Suite("LevelMeter SIMD loop is bit-identical to the scalar algorithm")
struct LevelMeterBitIdentityTests {
    /// The per-sample algorithm of `LevelMeter.process` before the `SIMD2` loop (scalar `Double`, one biquad at a
    /// time, `max`/`min` of the Swift standard library), with its own states.
    struct ScalarMeter {
        struct Filters: Equatable {
            var c0 = 0.0, c1 = 0.0, c2 = 0.0, c3 = 0.0, a0 = 0.0, a1 = 0.0, z0 = 0.0, z1 = 0.0
        }
        var mid = Filters(), side = Filters(), sideInUse = false
        var aFast = 0.0, aSlow = 0.0, cFast = 0.0, zFast = 0.0, sinceReset = 0
        let c: [LevelMeter.Section]
        let fa, sa: Double
        let settleFast, settleSlow: Int

        init(_ m: LevelMeter) {
            c = (0..<4).map { m.coef[$0] }
            fa = m.fastAlpha; sa = m.slowAlpha; settleFast = m.settleFast; settleSlow = m.settleSlow
        }

        mutating func reset() {
            mid = Filters(); side = Filters(); sideInUse = false
            aFast = 0; aSlow = 0; cFast = 0; zFast = 0; sinceReset = 0
        }

        static func step(_ c: LevelMeter.Section, _ x: Double, _ s0: inout Double, _ s1: inout Double) -> Double {
            let y = c.b0 * x + s0
            let t = c.k1 * x + s1
            s1 = c.k2 * x - c.a2 * s0
            s0 = t - c.a1 * s0
            return y
        }

        func weigh(_ s: Float, _ f: inout Filters) -> (Double, Double, Double) {
            let v = s.isFinite ? Double(s) : 0
            var yc = Self.step(c[0], v, &f.c0, &f.c1)
            yc = Self.step(c[1], yc, &f.c2, &f.c3)
            let ya = Self.step(c[2], yc, &f.a0, &f.a1)
            let yz = Self.step(c[3], v, &f.z0, &f.z1)
            return (ya, yc, yz)
        }

        mutating func run(_ x: ArraySlice<Float>, _ sx: ArraySlice<Float>?) -> LevelSums {
            let n = x.count
            var eA = 0.0, eC = 0.0, eZ = 0.0, pk = 0.0
            var mxAF = 0.0, mxAS = 0.0, mxCF = 0.0, mxZF = 0.0
            var mnAF = Double.infinity, mnAS = Double.infinity, mnCF = Double.infinity, mnZF = Double.infinity
            let fastFrom = max(0, settleFast - sinceReset), slowFrom = max(0, settleSlow - sinceReset)
            for i in 0..<n {
                let (ya, yc, yz) = weigh(x[x.startIndex + i], &mid)
                var qa = ya * ya, qc = yc * yc, qz = yz * yz
                var peak = abs(yc)
                if let sx {
                    let (za, zc, zz) = weigh(sx[sx.startIndex + i], &side)
                    qa += za * za; qc += zc * zc; qz += zz * zz
                    peak += abs(zc)
                }
                eA += qa; eC += qc; eZ += qz
                pk = max(pk, peak)
                aFast += fa * (qa - aFast)
                aSlow += sa * (qa - aSlow)
                cFast += fa * (qc - cFast)
                zFast += fa * (qz - zFast)
                mxAF = max(mxAF, aFast); mxAS = max(mxAS, aSlow)
                mxCF = max(mxCF, cFast); mxZF = max(mxZF, zFast)
                if i >= fastFrom {
                    mnAF = min(mnAF, aFast); mnCF = min(mnCF, cFast); mnZF = min(mnZF, zFast)
                    if i >= slowFrom { mnAS = min(mnAS, aSlow) }
                }
            }
            if n > 0 { sinceReset = min(sinceReset &+ n, settleSlow) }
            var o = LevelSums.empty
            if n > 0 {
                o.merge(LevelSums(samples: n, energyA: eA, energyC: eC, energyZ: eZ, maxAF: mxAF, minAF: mnAF,
                                  maxAS: mxAS, minAS: mnAS, maxCF: mxCF, minCF: mnCF, maxZF: mxZF, minZF: mnZF,
                                  peakC: pk))
            }
            return o
        }

        /// One `process` call: (head, tail).
        mutating func process(_ x: [Float], side sx: [Float]?, split: Int) -> (LevelSums, LevelSums) {
            let cut = min(max(split, 0), x.count)
            if sx == nil, sideInUse { side = Filters(); sideInUse = false }
            let h = run(x[..<cut], sx?[..<cut])
            let t = run(x[cut...], sx?[cut...])
            if sx != nil { sideInUse = true }
            return (h, t)
        }
    }

    /// Deterministic test signals (a seeded generator: the same samples on every run).
    struct Signal {
        var seed: UInt64
        var phase = 0.0
        mutating func uniform() -> Double {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Double(seed >> 11) / Double(1 << 53) * 2 - 1
        }

        /// `n` samples of kind `kind` (noise, tones, bursts, silence, DC, tiny, huge, non-finite mixed in).
        mutating func block(_ n: Int, kind: Int, rate: Double) -> [Float] {
            (0..<n).map { i in
                phase += 2 * Double.pi * [50.0, 1_000, 3_500, 11_000][kind % 4] / rate
                switch kind % 9 {
                case 0: return Float(0.5 * uniform())
                case 1: return Float(0.8 * sin(phase))
                case 2: return i % 97 < 11 ? Float(0.9 * uniform()) : 0
                case 3: return 0
                case 4: return Float(0.25 + 0.01 * sin(phase))
                case 5: return Float(1e-30 * uniform())
                case 6: return Float(3e4 * sin(phase))  // far beyond full scale (the meter itself does not clamp)
                case 7:
                    let u = uniform()
                    return u > 0.9 ? .nan : u < -0.95 ? (u < -0.98 ? -.infinity : .infinity) : Float(0.3 * u)
                default: return Float(0.4 * sin(phase) + 0.2 * uniform())
                }
            }
        }
    }

    static func bits(_ s: LevelSums) -> [UInt64] {
        [UInt64(bitPattern: Int64(s.samples))]
            + [s.energyA, s.energyC, s.energyZ, s.maxAF, s.minAF, s.maxAS, s.minAS, s.maxCF, s.minCF, s.maxZF,
               s.minZF, s.peakC].map(\.bitPattern)
    }

    static func bits(_ f: LevelMeter.State) -> [UInt64] {
        [f.cState.0, f.cState.1, f.cState.2, f.cState.3, f.aState.0, f.aState.1, f.zState.0, f.zState.1]
            .map(\.bitPattern)
    }

    static func bits(_ f: ScalarMeter.Filters) -> [UInt64] {
        [f.c0, f.c1, f.c2, f.c3, f.a0, f.a1, f.z0, f.z1].map(\.bitPattern)
    }

    /// Drives a meter and the oracle with the same calls and compares everything after each; returns the number
    /// of calls that differed (each difference is also reported).
    @discardableResult
    static func compare(rate: Int, calls: [(n: Int, kind: Int, split: Int, side: Int?, reset: Bool)],
                        report: Bool = true, tamper: (LevelMeter) -> Void = { _ in }) -> Int {
        let meter = LevelMeter(sampleRate: rate)
        var ref = ScalarMeter(meter)
        tamper(meter)
        var sig = Signal(seed: 0x5EED_0001), sideSig = Signal(seed: 0x5EED_0002)
        var failures = 0
        for (k, call) in calls.enumerated() {
            if call.reset { meter.reset(); ref.reset() }
            let x = sig.block(call.n, kind: call.kind, rate: Double(rate))
            let sx = call.side.map { sideSig.block(call.n, kind: $0, rate: Double(rate)) }
            meter.split = call.split
            let (h, t) = ref.process(x, side: sx, split: call.split)
            x.withUnsafeBufferPointer { xb in
                if let sx {
                    sx.withUnsafeBufferPointer { sb in
                        meter.side = sb.baseAddress
                        meter.process(xb)
                    }
                } else {
                    meter.process(xb)
                }
            }
            var got = FrameFeatures(), want = FrameFeatures()
            meter.read(into: &got)
            want.laf = LevelMeter.db(ref.aFast); want.las = LevelMeter.db(ref.aSlow)
            want.lcf = LevelMeter.db(ref.cFast); want.lzf = LevelMeter.db(ref.zFast)
            let st = meter.state.pointee
            let same = bits(meter.head) == bits(h) && bits(meter.tail) == bits(t)
                && bits(st) == bits(ref.mid)
                && (sx == nil || bits(meter.sideState.pointee) == bits(ref.side))
                && [st.aFast, st.aSlow, st.cFast, st.zFast].map(\.bitPattern)
                    == [ref.aFast, ref.aSlow, ref.cFast, ref.zFast].map(\.bitPattern)
                && st.sinceReset == ref.sinceReset
                && [got.laf, got.las, got.lcf, got.lzf].map(\.bitPattern)
                    == [want.laf, want.las, want.lcf, want.lzf].map(\.bitPattern)
            if !same {
                failures += 1
                if report && failures <= 5 {
                    let what = "call \(k) \(call): head \(meter.head) vs \(h); tail \(meter.tail) vs \(t); "
                        + "state \(st) vs \(ref.mid) \(ref.aFast) \(ref.aSlow) \(ref.cFast) \(ref.zFast)"
                    Issue.record(Comment(rawValue: what))
                }
            }
        }
        return failures
    }

    /// Calls of varied lengths and splits at 8 kHz (Fast settles after 5000 samples, Slow after 40000, so every
    /// phase of the loop and both settling edges inside a call are reached), with resets and side calls.
    static func schedule() -> [(n: Int, kind: Int, split: Int, side: Int?, reset: Bool)] {
        var calls: [(n: Int, kind: Int, split: Int, side: Int?, reset: Bool)] = []
        let lengths = [0, 1, 2, 3, 480, 479, 1, 0, 1_023, 5, 160, 2_048, 7, 4_999, 1, 2, 64, 3_001]
        var k = 0
        for round in 0..<3 {
            var total = 0
            while total < 52_000 {
                let n = lengths[k % lengths.count]
                let splits = [Int.max, 0, 1, n - 1, n, n / 2, -3, n + 5, n / 3]
                let split = splits[(k * 7 + round) % splits.count]
                // Side on some stretches (round 1: most of the time, round 2: every third call), mono elsewhere.
                let side: Int? = round == 1 ? (k % 11 == 10 ? nil : (k + 4) % 9)
                    : round == 2 && k % 3 == 0 ? (k + 1) % 9 : nil
                calls.append((n, k % 9, split, side, total == 0 && round > 0))
                total += n
                k += 1
            }
            // A long call that crosses the settling points inside one call.
            calls.append((41_000, 8, 17_000, round == 1 ? 0 : nil, true))
        }
        return calls
    }

    @Test func simdLoopMatchesScalarOracleBitForBit() {
        #expect(Self.compare(rate: 8_000, calls: Self.schedule()) == 0)
    }

    @Test func longBlocksAt48kHz() {
        // Hop-sized calls at 48 kHz through the settling of Slow (240000 samples) with splits.
        var calls: [(n: Int, kind: Int, split: Int, side: Int?, reset: Bool)] = []
        for k in 0..<560 { calls.append((480, k % 9 == 7 ? 8 : k % 9, k % 5 == 0 ? 123 : Int.max, k > 500 ? 1 : nil, false)) }
        #expect(Self.compare(rate: 48_000, calls: calls) == 0)
    }

    static func swapLanes(_ p: inout LevelMeter.SectionPair) {
        func sw(_ v: SIMD2<Double>) -> SIMD2<Double> { SIMD2(v.y, v.x) }
        p.b0 = sw(p.b0); p.k1 = sw(p.k1); p.k2 = sw(p.k2); p.a1 = sw(p.a1); p.a2 = sw(p.a2)
    }

    /// The comparison is sensitive: with the meter's paired coefficients wired to the wrong lane (C₁ and the DC
    /// block swapped, or C₂ and the A-only section), or one coefficient off by one ulp, calls differ.
    @Test func comparisonCatchesMiswiredLanes() {
        let calls = Array(Self.schedule().prefix(40))
        #expect(Self.compare(rate: 8_000, calls: calls, report: false) == 0)
        let tampers: [(String, (LevelMeter) -> Void)] = [
            ("(C₁, DC block) swapped", { m in
                Self.swapLanes(&m.pairs[0])
            }),
            ("(C₂, A-only) swapped", { m in
                Self.swapLanes(&m.pairs[1])
            }),
            ("A-only a1 one ulp up", { m in m.pairs[1].a1.y = m.pairs[1].a1.y.nextUp }),
            ("DC block k2 one ulp up", { m in m.pairs[0].k2.y = m.pairs[0].k2.y.nextUp }),
        ]
        for (name, tamper) in tampers {
            #expect(Self.compare(rate: 8_000, calls: calls, report: false, tamper: tamper) > 0, "\(name) not caught")
        }
    }
}
