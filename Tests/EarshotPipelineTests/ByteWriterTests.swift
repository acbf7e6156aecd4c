import EarshotPipeline
import Foundation
import Testing

@Suite("ByteWriter number formatting")
struct ByteWriterTests {
    func text(_ body: (ByteWriter) -> Void) -> String {
        let w = ByteWriter(capacity: 8)
        body(w)
        return String(decoding: w.bytes, as: UTF8.self)
    }

    @Test func fixedDecimals() {
        #expect(text { $0.fixed(-3.0103 as Double, decimals: 3) } == "-3.01")
        #expect(text { $0.fixed(0.0004 as Double, decimals: 3) } == "0")
        #expect(text { $0.fixed(-0.0004 as Double, decimals: 3) } == "0")
        #expect(text { $0.fixed(12.5 as Double, decimals: 2) } == "12.5")
        #expect(text { $0.fixed(-200 as Double, decimals: 3) } == "-200")
        #expect(text { $0.fixed(0.0625 as Double, decimals: 6) } == "0.0625")
        let r = text { $0.fixed(1.0005 as Double, decimals: 3) }
        #expect(r == "1.001" || r == "1")
        #expect(text { $0.fixed(Double.nan as Double, decimals: 3) } == "null")
        #expect(text { $0.fixed(Double.infinity, decimals: 3) } == "null")
    }

    /// Rounding is half away from zero, exactly `Double.rounded()`, at the ties and next to them (the
    /// branch-free rounding reads the comparisons from sign bits).
    @Test func roundingIsHalfAwayFromZero() {
        for (v, expected) in [(2.5, "3"), (-2.5, "-3"), (0.5, "1"), (-0.5, "-1"), (1.5, "2"), (-1.5, "-2"),
                              (0.49999999999999994, "0"), (-0.49999999999999994, "0"), (2.5000000000000004, "3"),
                              (2.4999999999999996, "2"), (-2.4999999999999996, "-2"), (1e15 + 0.5, "1000000000000001")] {
            #expect(text { $0.fixed(v, decimals: 0) } == expected, "\(v)")
        }
        #expect(text { $0.fixed(1.0625, decimals: 3) } == "1.063")
        #expect(text { $0.fixed(-1.0625, decimals: 3) } == "-1.063")
        #expect(text { $0.fixed3List(UnsafeBufferPointer(start: [Float(2.4375), -2.4375, 0.0625], count: 3)) } == "2.438,-2.438,0.063")
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let halves = Double(Int.random(in: -2_000_000...2_000_000, using: &rng)) / 2
            let x = Bool.random(using: &rng) ? halves : Double.random(in: -1e6...1e6, using: &rng)
            let printed = text { $0.fixed(x, decimals: 0) }
            #expect(Int64(printed) == Int64(x.rounded()), "\(x) printed \(printed)")
        }
    }

    /// The table-driven list writer prints exactly what a `fixed(_:decimals: 3)` loop prints,
    /// including halves, the ±1000 boundary, −0, non-finite values and buffer growth.
    @Test func fixed3ListMatchesFixed() {
        var rng = SystemRandomNumberGenerator()
        var values: [Float] = [0, -0.0, 0.0004, -0.0004, 0.0005, -0.0005, 1.0005, -3.0103, 999.9994, 999.9996,
                               -999.9996, 1000, -1000, 123456.789, -200, .nan, .infinity, -.infinity,
                               .leastNonzeroMagnitude, .greatestFiniteMagnitude]
        for _ in 0..<5_000 { values.append(Float.random(in: -1200...1200, using: &rng)) }
        for _ in 0..<1_000 { values.append(Float(Int.random(in: -2_000_000...2_000_000, using: &rng)) / 2000) }
        let expected = text { w in
            for (i, v) in values.enumerated() {
                if i > 0 { w.byte(0x2C) }
                w.fixed(v, decimals: 3)
            }
        }
        let got = text { w in values.withUnsafeBufferPointer { w.fixed3List($0) } }
        #expect(got == expected)
        #expect(text { w in [Float]().withUnsafeBufferPointer { w.fixed3List($0) } } == "")
    }

    @Test func significantDigits() {
        #expect(text { $0.significant(0.0738145123, digits: 6) } == "0.0738145")
        #expect(text { $0.significant(3.58819e-11, digits: 6) } == "3.58819e-11")
        #expect(text { $0.significant(1, digits: 6) } == "1")
        #expect(text { $0.significant(0, digits: 6) } == "0")
        #expect(text { $0.significant(123456789, digits: 6) } == "123456789")  // integers print whole
        let s = text { $0.significant(9.9999996e-5, digits: 6) }
        #expect(s == "1e-4" || s == "0.0001")
    }

    /// Every printed value parses back within half a unit of the last printed place, across magnitudes.
    @Test func roundTripRandom() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let v = Double.random(in: -1...1, using: &rng) * pow(10, Double(Int.random(in: -12...12, using: &rng)))
            let f = text { $0.fixed(v as Double, decimals: 3) }
            #expect(abs(Double(f)! - v) <= 0.0005 + 1e-12 * abs(v), "\(v) → \(f)")
            let s = text { $0.significant(v, digits: 6) }
            #expect(abs(Double(s)! - v) <= abs(v) * 5e-6 + 1e-300, "\(v) → \(s)")
        }
    }

    @Test func integersAndStrings() {
        #expect(text { $0.int(Int64.min) } == "-9223372036854775808")
        #expect(text { $0.int(0) } == "0")
        #expect(text { $0.jsonString("a\"b\\c\n\u{1}é") } == "\"a\\\"b\\\\c\\n\\u0001é\"")
        let big = text { w in for i in 0..<10_000 { w.int(Int64(i)) } }
        var expected = 0
        for i in 0..<10_000 { expected += String(i).count }
        #expect(big.count == expected)
    }
}
