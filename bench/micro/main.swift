// Micro-benchmark of Earshot's per-frame hot loops (bench-only; copies, not linked to Sources/).
// Build & run:  swiftc -O bench/micro/main.swift -o /tmp/es-micro && taskset -c 0 /tmp/es-micro
// "current" = the loop as written in Sources/EarshotDSP (commit b56c805); "proposed" = a drop-in variant.
#if canImport(Glibc)
import Glibc
#endif

@inline(never) func now() -> UInt64 { var ts = timespec(); clock_gettime(CLOCK_MONOTONIC, &ts); return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec) }
@inline(never) func sink<T>(_ x: T) { withExtendedLifetime(x) {} }
nonisolated(unsafe) var blackhole: Double = 0

let n = 513, nFFT = 1024, frames = 20_000
var rng = SystemRandomNumberGenerator()
let mag = UnsafeMutablePointer<Float>.allocate(capacity: n + 8)
for k in 0..<(n + 8) { mag[k] = Float.random(in: 0..<5, using: &rng) * (k % 50 == 0 ? 0 : 1) }
let freqs = UnsafeMutablePointer<Double>.allocate(capacity: n)
for k in 0..<n { freqs[k] = Double(k) * 48000 / 1024 }
let x = UnsafeMutablePointer<Float>.allocate(capacity: nFFT + 8)
for i in 0..<(nFFT + 8) { x[i] = Float.random(in: -0.5...0.5, using: &rng) }

func bench(_ name: String, _ body: (Int) -> Double) {
    var best = UInt64.max
    var r = 0.0
    for _ in 0..<5 {
        let t0 = now()
        for i in 0..<frames { r += body(i & 7) }
        best = min(best, now() - t0)
    }
    blackhole += r
    let us: Double = Double(best) / Double(frames) / 1000
    let padded = name + String(repeating: " ", count: max(0, 52 - name.count))
    print(padded, (us * 1000).rounded() / 1000, "µs/frame")
}

// --- SpectralFeatures.process first loop (current): one Double log() per bin.
@inline(never) func spectralCurrent(_ s: UnsafePointer<Float>) -> Double {
    var total = 0.0, weighted = 0.0, logSum = 0.0, powerSum = 0.0
    for k in 0..<n {
        let v = Double(s[k]); total += v; weighted += v * freqs[k]
        let p = max(v * v, 1e-10); logSum += log(p); powerSum += p
    }
    return total + weighted + exp(logSum / Double(n)) / (powerSum / Double(n))
}
// Proposed: product in Double renormalized by its binary exponent every 16 bins: one log() per frame.
@inline(never) func spectralProduct(_ s: UnsafePointer<Float>) -> Double {
    var total = 0.0, weighted = 0.0, powerSum = 0.0
    var prod = 1.0, exp2sum = 0
    var k = 0
    while k < n {
        let end = min(k + 16, n)
        while k < end {
            let v = Double(s[k]); total += v; weighted += v * freqs[k]
            let p = max(v * v, 1e-10); prod *= p; powerSum += p
            k += 1
        }
        exp2sum += Int(prod.exponent); prod = prod.significand   // exact: scaling by 2^-e
    }
    let logSum = log(prod) + Double(exp2sum) * M_LN2
    return total + weighted + exp(logSum / Double(n)) / (powerSum / Double(n))
}
// Check both agree.
do {
    let a = spectralCurrent(mag), b = spectralProduct(mag)
    print("flatness variants agree: rel diff \(abs(a - b) / abs(a))")
}

// --- FrameStatistics (current): three passes, rms in a serial Double sum, peak with Swift max().
@inline(never) func statsCurrent(_ p: UnsafePointer<Float>) -> Double {
    var acc = 0.0
    for i in 0..<nFFT { acc += Double(p[i]) * Double(p[i]) }
    var m: Float = 0
    for i in 0..<nFFT { m = max(m, abs(p[i])) }
    let threshold: Float = 1e-10
    var count = 0
    var prev = p[0] < -threshold
    for i in 1..<nFFT { let cur = p[i] < -threshold; if cur != prev { count += 1 }; prev = cur }
    return acc + Double(m) + Double(count)
}
// Proposed: one pass, SIMD8 lanes (rms in 4 Double lanes ×2 to keep librosa-level accuracy).
@inline(never) func statsSIMD(_ p: UnsafePointer<Float>) -> Double {
    let v = UnsafeRawPointer(p)
    var acc0 = SIMD4<Double>(), acc1 = SIMD4<Double>()
    var m = SIMD8<Float>()
    var crossings = SIMD8<Int32>()
    let thr = SIMD8<Float>(repeating: -1e-10)
    let zero = SIMD8<Int32>(repeating: 0), one = SIMD8<Int32>(repeating: 1)
    var count = 0
    for i in 1..<8 where (p[i] < -1e-10) != (p[i - 1] < -1e-10) { count += 1 }
    for c in 0..<(nFFT / 8) {
        let x = v.loadUnaligned(fromByteOffset: c * 32, as: SIMD8<Float>.self)
        let lo = SIMD4<Double>(Double(x[0]), Double(x[1]), Double(x[2]), Double(x[3]))
        let hi = SIMD4<Double>(Double(x[4]), Double(x[5]), Double(x[6]), Double(x[7]))
        acc0 += lo * lo; acc1 += hi * hi
        m = pointwiseMax(m, x.replacing(with: -x, where: x .< SIMD8<Float>()))
        if c > 0 {
            let px = v.loadUnaligned(fromByteOffset: c * 32 - 4, as: SIMD8<Float>.self)
            crossings &+= zero.replacing(with: one, where: (x .< thr) .^ (px .< thr))
        }
    }
    let acc = (acc0 + acc1).sum()
    return acc + Double(m.max()) + Double(crossings.wrappedSum()) + Double(count)
}
do {
    let a = statsCurrent(x), b = statsSIMD(x)
    print("stats variants agree: \(a) vs \(b)")
}

// --- LevelMeter.process (current) over one hop of 480 samples: 5 Double biquads + 4 one-pole smoothers.
struct Biquad { var b0, b1, b2, a1, a2: Double }
let c = [Biquad(b0: 0.2, b1: -0.4, b2: 0.2, a1: -1.99, a2: 0.99), Biquad(b0: 1, b1: -1.9, b2: 0.9, a1: -1.95, a2: 0.95),
         Biquad(b0: 0.5, b1: 0.3, b2: 0.1, a1: -0.2, a2: 0.01), Biquad(b0: 0.2, b1: -0.4, b2: 0.2, a1: -1.99, a2: 0.99),
         Biquad(b0: 0.5, b1: 0.3, b2: 0.1, a1: -0.2, a2: 0.01)]
var st = [Double](repeating: 0, count: 14)
@inline(__always) func step(_ c: Biquad, _ x: Double, _ s0: inout Double, _ s1: inout Double) -> Double {
    let y = c.b0 * x + s0; s0 = c.b1 * x - c.a1 * y + s1; s1 = c.b2 * x - c.a2 * y; return y
}
@inline(never) func levelCurrent(_ x: UnsafePointer<Float>) -> Double {
    var s = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    var aF = st[10], aS = st[11], cF = st[12], zF = st[13]
    let c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3], c4 = c[4]
    for i in 0..<480 {
        let v = Double(x[i])
        var ya = step(c0, v, &s.0, &s.1); ya = step(c1, ya, &s.2, &s.3); ya = step(c2, ya, &s.4, &s.5)
        var yc = step(c3, v, &s.6, &s.7); yc = step(c4, yc, &s.8, &s.9)
        aF += (ya * ya - aF) * 1e-4; aS += (ya * ya - aS) * 2e-5; cF += (yc * yc - cF) * 1e-4; zF += (v * v - zF) * 1e-4
    }
    st[10] = aF; st[11] = aS; st[12] = cF; st[13] = zF
    return aF + aS + cF + zF + s.0
}

bench("SpectralFeatures loop 1, current (513 log)", { spectralCurrent(mag + $0) })
bench("SpectralFeatures loop 1, product+exponent (1 log)", { spectralProduct(mag + $0) })
bench("FrameStatistics rms+peak+zcr, current (3 passes)", { statsCurrent(x + $0) })
bench("FrameStatistics rms+peak+zcr, one SIMD8 pass", { statsSIMD(x + $0) })
bench("LevelMeter.process 480 samples (A,C,Z)", { levelCurrent(x + $0) })
print("(ignore) \(blackhole)")
