// Micro-benchmark of `LevelMeter.process` (the real source, not a copy): 60 s of 48 kHz noise plus a tone in
// 480-sample hops (a split every 7th hop), best of 5 passes, ns per sample; `side` adds a side signal (the
// 2-channel path). Build and run (one pinned core):
//   D=Sources/EarshotDSP; swiftc -O -wmo -parse-as-library $D/LevelMeter.swift $D/LevelMeter+Side.swift \
//     $D/LevelSums.swift $D/BandFilterBank.swift $D/FrameFeatures.swift bench/micro/level.swift -o /tmp/es-level
//   taskset -c 0 /tmp/es-level [side]
#if canImport(Glibc)
import Glibc
#endif

@main
enum LevelBench {
    static func main() {
        let n = 48_000 * 60
        var seed: UInt64 = 12_345
        func rnd() -> Float {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Int64(bitPattern: seed >> 11) - (1 << 52)) / Float(1 << 52)
        }
        var x = [Float](repeating: 0, count: n), s = [Float](repeating: 0, count: n)
        for i in 0..<n { x[i] = 0.3 * rnd() + 0.2 * sin(Float(i) * 0.05); s[i] = 0.1 * rnd() }
        let side = CommandLine.arguments.dropFirst().first == "side"
        let m = LevelMeter(sampleRate: 48_000)
        var best = Double.infinity, check = 0.0
        for _ in 0..<5 {
            var t0 = timespec(), t1 = timespec()
            clock_gettime(CLOCK_MONOTONIC, &t0)
            x.withUnsafeBufferPointer { xb in
                s.withUnsafeBufferPointer { sb in
                    var i = 0
                    while i + 480 <= n {
                        m.split = (i / 480) % 7 == 0 ? 100 : Int.max
                        if side { m.side = sb.baseAddress! + i }
                        m.process(UnsafeBufferPointer(rebasing: xb[i..<i + 480]))
                        check += m.head.energyA + m.tail.maxCF
                        i += 480
                    }
                }
            }
            clock_gettime(CLOCK_MONOTONIC, &t1)
            best = min(best, Double(t1.tv_sec - t0.tv_sec) + Double(t1.tv_nsec - t0.tv_nsec) * 1e-9)
        }
        print("\(best / Double(n) * 1e9) ns/sample (\(side ? "side" : "mono"), check \(check))")
    }
}
