// Micro-benchmark of the `superflux` onset function's per-frame loop (bench-only; copies, not linked to
// Sources/): "before" = peak memory + background median, strength = mean of the top 4 rises (main fe1e213),
// "after" = the same with the fast start of the background level (one powf per frame for the first
// 200 frames after a start) and strength = RMS of the top 4 rises (branch s21-onset). Both over the
// default layout (48 kHz, n_fft 1024: 73 bands), top 4 bands, lag 2, ±1 band.
// Build & run:  swiftc -O bench/micro/onset.swift -o /tmp/es-onset && taskset -c 0 /tmp/es-onset
#if canImport(Glibc)
import Glibc
#endif

@inline(never) func now() -> UInt64 { var ts = timespec(); clock_gettime(CLOCK_MONOTONIC, &ts); return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec) }
nonisolated(unsafe) var blackhole: Float = 0

let nFFT = 1024, bins = nFFT / 2 + 1, sr = 48_000, hop = 480, frames = 20_000
// band layout (OnsetStrength.bandEdges): 30 Hz · 2^(i/12) up to 0.95 × Nyquist, rounded to bins, deduplicated
var edges: [Int] = []
do {
    let fMax = 0.95 * Double(sr) / 2
    let n = Int((log2(fMax / 30) * 12).rounded(.down))
    for i in 0...(n + 2) {
        let f = 30 * pow(2, Double(i) / 12)
        if f > Double(sr) / 2 { break }
        let k = min(Int((f * Double(nFFT) / Double(sr)).rounded()), bins - 1)
        if edges.isEmpty || k > edges[edges.count - 1] { edges.append(k) }
    }
}
let bands = edges.count - 2
let bandStart = UnsafeMutablePointer<Int>.allocate(capacity: bands)
let bandLength = UnsafeMutablePointer<Int>.allocate(capacity: bands)
let weightOffset = UnsafeMutablePointer<Int>.allocate(capacity: bands)
var flat: [Float] = []
for b in 0..<bands {
    let lo = edges[b], c = edges[b + 1], hi = edges[b + 2]
    bandStart[b] = lo; bandLength[b] = hi - lo + 1; weightOffset[b] = flat.count
    for k in lo...hi { flat.append(Float(k <= c ? (c > lo ? Double(k - lo) / Double(c - lo) : 1) : Double(hi - k) / Double(hi - c))) }
}
let weights = UnsafeMutablePointer<Float>.allocate(capacity: flat.count)
for (i, w) in flat.enumerated() { weights[i] = w }
// 64 power spectra: noise with a broadband "hit" every 16 frames (so the top-K insertion and logs run)
var rng = SystemRandomNumberGenerator()
let spectra = UnsafeMutablePointer<Float>.allocate(capacity: 64 * bins)
for f in 0..<64 { for k in 0..<bins { spectra[f * bins + k] = Float.random(in: 0..<1, using: &rng) * (f % 16 == 0 ? 1e3 : 1) * 1e-3 } }

let lag = 2, rows = lag + 1, m = 1, topK = 4
let history = UnsafeMutablePointer<Float>.allocate(capacity: rows * bands); history.initialize(repeating: 1e-10, count: rows * bands)
let floorB = UnsafeMutablePointer<Float>.allocate(capacity: bands); floorB.initialize(repeating: 1e-10, count: bands)
let smoothed = UnsafeMutablePointer<Float>.allocate(capacity: bands); smoothed.initialize(repeating: 1e-10, count: bands)
let scratch = UnsafeMutablePointer<Float>.allocate(capacity: bands); scratch.initialize(repeating: 1e-10, count: bands)
let top = UnsafeMutablePointer<Float>.allocate(capacity: topK); top.initialize(repeating: 0, count: topK)
let powerScale = Float((2.0 / 512) * (2.0 / 512)), smoothing = Float(exp(-Double(hop) / (0.05 * Double(sr))))
let margin = Float(pow(10, 0.6))
let slewUp = Float(pow(10, 10.0 * 0.01 / 10)), slewDown = 1 / slewUp, decay = Float(pow(10, -120.0 * 0.01 / 10))

@inline(__always) func bandPower(_ p: UnsafePointer<Float>, _ b: Int) -> Float {
    let start = bandStart[b], n = bandLength[b], w = weights + weightOffset[b]
    var acc: Float = 0
    for i in 0..<n { acc += w[i] * p[start + i] }
    var e = acc * powerScale
    e = e.isNaN || e < 0 ? 0 : min(e, 1e30)
    return e + 1e-10
}
@inline(__always) func topInsert(_ q: Float, _ filled: inout Int) {
    guard q > 1 else { return }
    if filled < topK {
        var i = filled
        while i > 0 && top[i - 1] < q { top[i] = top[i - 1]; i -= 1 }
        top[i] = q; filled += 1
    } else if q > top[topK - 1] {
        var i = topK - 1
        while i > 0 && top[i - 1] < q { top[i] = top[i - 1]; i -= 1 }
        top[i] = q
    }
}
@inline(__always) func finishMean(_ filled: Int) -> Float {
    var sum: Float = 0
    for i in 0..<filled { sum += 10 * log10(top[i]) }
    return sum / Float(topK)
}
@inline(__always) func finishRMS(_ filled: Int) -> Float {
    var sum: Float = 0
    for i in 0..<filled { let r = 10 * log10(top[i]); sum += r * r }
    return (sum / Float(topK)).squareRoot()
}
let fastStartDb: Float = 20, fastStartFrames: Float = 20 / 0.1

@inline(never) func before(_ p: UnsafePointer<Float>, _ t: Int) -> Float {
    let row = history + (t % rows) * bands
    let previous = history + ((t + rows - 1) % rows) * bands
    for b in 0..<bands {
        let e = bandPower(p, b)
        scratch[b] = e
        row[b] = max(e, previous[b] * decay)
        let sm = smoothing * smoothed[b] + (1 - smoothing) * e
        smoothed[b] = sm
        let f = floorB[b]
        floorB[b] = sm > f ? min(f * slewUp, sm) : max(f * slewDown, sm)
    }
    let old = history + ((t - lag) % rows) * bands
    var filled = 0
    for b in 0..<bands {
        var r = old[b]; var j = max(b - m, 0); let end = min(b + m, bands - 1)
        while j <= end { r = max(r, old[j]); j += 1 }
        topInsert(scratch[b] / max(r, floorB[b] * margin), &filled)
    }
    return finishMean(filled)
}

@inline(never) func after(_ p: UnsafePointer<Float>, _ t: Int) -> Float {
    let row = history + (t % rows) * bands
    let previous = history + ((t + rows - 1) % rows) * bands
    var up = slewUp, down = slewDown
    if t > 0 && Float(t) < fastStartFrames {
        up = powf(10, fastStartDb / Float(t) / 10)
        down = 1 / up
    }
    for b in 0..<bands {
        let e = bandPower(p, b)
        scratch[b] = e
        row[b] = max(e, previous[b] * decay)
        let sm = smoothing * smoothed[b] + (1 - smoothing) * e
        smoothed[b] = sm
        let f = floorB[b]
        floorB[b] = sm > f ? min(f * up, sm) : max(f * down, sm)
    }
    let old = history + ((t - lag) % rows) * bands
    var filled = 0
    for b in 0..<bands {
        var r = old[b]; var j = max(b - m, 0); let end = min(b + m, bands - 1)
        while j <= end { r = max(r, old[j]); j += 1 }
        topInsert(scratch[b] / max(r, floorB[b] * margin), &filled)
    }
    return finishRMS(filled)
}

func bench(_ name: String, _ body: (UnsafePointer<Float>, Int) -> Float) {
    var best = UInt64.max
    for _ in 0..<7 {
        let t0 = now()
        var r: Float = 0
        for i in 0..<frames { r += body(spectra + (i & 63) * bins, i + lag) }
        best = min(best, now() - t0)
        blackhole += r
    }
    print(name, (Double(best) / Double(frames) / 1000 * 1000).rounded() / 1000, "µs/frame (\(bands) bands, best of 7 × \(frames) frames)")
}
bench("superflux before (mean of top 4)             ", before)
bench("superflux after (RMS of top 4, fast start)    ", after)
bench("superflux before (mean of top 4)             ", before)
bench("superflux after (RMS of top 4, fast start)    ", after)
print(blackhole > 0 ? "" : " ")
