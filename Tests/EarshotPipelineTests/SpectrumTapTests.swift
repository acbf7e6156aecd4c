import EarshotPipeline
import Testing

/// The `spectrum` stream's hand-off from the DSP thread.
@Suite struct SpectrumTapTests {
    static func power(_ seq: Int, bins: Int) -> [Float] { (0..<bins).map { Float(seq * 1000 + $0) } }

    @Test func copiesOnlyWhatIsWanted() {
        let tap = SpectrumTap(bins: 5)
        let out = UnsafeMutableBufferPointer<Float>.allocate(capacity: 5)
        defer { out.deallocate() }
        // Nobody wants spectra: nothing is published.
        for s in 0..<10 { Self.power(s, bins: 5).withUnsafeBufferPointer { tap.offer($0, seq: Int64(s), wallNs: Int64(s)) } }
        #expect(tap.next(into: out) == nil)
        tap.every = 3
        tap.skipToNewest()
        for s in 10..<20 { Self.power(s, bins: 5).withUnsafeBufferPointer { tap.offer($0, seq: Int64(s), wallNs: Int64(s) * 7) } }
        var got: [Int64] = []
        while let (seq, wall) = tap.next(into: out) {
            got.append(seq)
            #expect(wall == seq * 7 && Array(out) == Self.power(Int(seq), bins: 5))
        }
        #expect(got == [12, 15, 18] && tap.lost == 0)
    }

    @Test func aSlowReaderLosesTheOldestAndCountsThem() {
        let tap = SpectrumTap(bins: 513)
        #expect(tap.capacity == 64 && tap.capacity * tap.bins * 4 <= SpectrumTap.maxBytes)
        #expect(SpectrumTap(bins: 32_769).capacity == 4)  // 1 MiB at most whatever n_fft
        let out = UnsafeMutableBufferPointer<Float>.allocate(capacity: 513)
        defer { out.deallocate() }
        tap.every = 1
        for s in 0..<100 { Self.power(s, bins: 513).withUnsafeBufferPointer { tap.offer($0, seq: Int64(s), wallNs: 0) } }
        var first: Int64?
        var n = 0
        while let (seq, _) = tap.next(into: out) { first = first ?? seq; n += 1; #expect(out[0] == Float(seq * 1000)) }
        #expect(first == 36 && n == 64 && tap.lost == 36)
    }
}
