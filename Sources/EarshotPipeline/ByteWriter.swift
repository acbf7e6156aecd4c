#if canImport(Glibc)
import Glibc
#endif

/// A reusable output byte buffer with fast fixed-precision number formatting (no `String`, no `Float`
/// description, no allocation once it has grown to its working size).
public final class ByteWriter: @unchecked Sendable {
    public private(set) var base: UnsafeMutablePointer<UInt8>
    public private(set) var capacity: Int
    public private(set) var count: Int = 0

    public init(capacity: Int = 64 * 1024) {
        self.capacity = max(capacity, 64)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    public var bytes: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: base, count: count) }

    @inline(__always) public func reset() { count = 0 }

    /// Makes room for `n` more bytes (grows by doubling; only allocates while warming up).
    @inline(__always)
    public func reserve(_ n: Int) {
        if count + n > capacity { grow(count + n) }
    }

    func grow(_ needed: Int) {
        var c = capacity * 2
        while c < needed { c *= 2 }
        let nb = UnsafeMutablePointer<UInt8>.allocate(capacity: c)
        nb.update(from: base, count: count)
        base.deallocate()
        base = nb
        capacity = c
    }

    @inline(__always)
    public func byte(_ b: UInt8) {
        reserve(1)
        base[count] = b
        count += 1
    }

    /// Appends ASCII/UTF-8 bytes of a static string.
    @inline(__always)
    public func ascii(_ s: StaticString) {
        let n = s.utf8CodeUnitCount
        reserve(n)
        (base + count).update(from: s.utf8Start, count: n)
        count += n
    }

    public func append(_ s: String) {
        var s = s
        s.withUTF8 { u in
            reserve(u.count)
            (base + count).update(from: u.baseAddress!, count: u.count)
            count += u.count
        }
    }

    public func append(_ b: UnsafeBufferPointer<UInt8>) {
        guard let p = b.baseAddress else { return }
        reserve(b.count)
        (base + count).update(from: p, count: b.count)
        count += b.count
    }

    /// Appends a JSON string literal (quotes and escapes included).
    public func jsonString(_ s: String) {
        byte(0x22)
        for u in s.utf8 {
            switch u {
            case 0x22: ascii("\\\"")
            case 0x5C: ascii("\\\\")
            case 0x0A: ascii("\\n")
            case 0x0D: ascii("\\r")
            case 0x09: ascii("\\t")
            case 0..<0x20:
                ascii("\\u00")
                byte(Self.hex[Int(u >> 4)]); byte(Self.hex[Int(u & 15)])
            default: byte(u)
            }
        }
        byte(0x22)
    }
    static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// Appends a decimal integer.
    @inline(__always)
    public func int(_ v: Int64) {
        reserve(21)
        var u: UInt64
        if v < 0 {
            base[count] = 0x2D; count += 1
            u = UInt64(bitPattern: 0 &- v)
        } else {
            u = UInt64(v)
        }
        unsigned(u, minDigits: 1)
    }

    /// Writes `u` with at least `minDigits` digits (zero padded). Caller reserved room.
    @inline(__always)
    func unsigned(_ value: UInt64, minDigits: Int) {
        var tmp: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of scratch on the stack
        withUnsafeMutableBytes(of: &tmp) { raw in
            let t = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
            var u = value
            var i = 24
            repeat {
                i -= 1
                t[i] = UInt8(truncatingIfNeeded: u % 10) &+ 0x30
                u /= 10
            } while u != 0
            while 24 - i < minDigits { i -= 1; t[i] = 0x30 }
            let n = 24 - i
            (base + count).update(from: t + i, count: n)
            count += n
        }
    }

    static let powers: [Double] = (0...18).map { var p = 1.0; for _ in 0..<$0 { p *= 10 }; return p }

    /// Appends `v` rounded to `decimals` decimal places, trailing zeros removed (`-0` prints as `0`);
    /// non-finite values print as `null`.
    @inline(__always)
    public func fixed(_ v: Double, decimals: Int) {
        guard v.isFinite else { ascii("null"); return }
        let scale = Self.powers[decimals]
        let scaledD = (v * scale).rounded()
        guard abs(scaledD) < 9.2e18 else { significant(v, digits: 15); return }
        var scaled = Int64(scaledD)
        reserve(48)
        if scaled < 0 { base[count] = 0x2D; count += 1; scaled = -scaled }
        let p = UInt64(scale)
        let u = UInt64(scaled)
        let ip = u / p
        var fp = u % p
        unsigned(ip, minDigits: 1)
        if fp != 0 {
            var d = decimals
            while fp % 10 == 0 { fp /= 10; d -= 1 }
            base[count] = 0x2E; count += 1
            unsigned(fp, minDigits: d)
        }
    }

    @inline(__always)
    public func fixed(_ v: Float, decimals: Int) { fixed(Double(v), decimals: decimals) }

    /// Appends `v` with `digits` significant digits (integer parts print whole): fixed notation for
    /// 1e-4 ≤ |v| < 1e15, else
    /// `d.ddddde±X`.
    public func significant(_ v: Double, digits: Int) {
        guard v.isFinite else { ascii("null"); return }
        if v == 0 { byte(0x30); return }
        let a = abs(v)
        var e = Int(log10(a).rounded(.down))
        if a >= 1e-4 && a < 1e15 {
            // Rounding may carry into the next decade (9.999996 → 10.0000): fixed handles it.
            fixed(v, decimals: max(0, min(18, digits - 1 - e)))
            return
        }
        var m = v / pow(10, Double(e))
        if abs((m * Self.powers[digits - 1]).rounded()) >= Self.powers[digits] { m /= 10; e += 1 }
        fixed(m, decimals: digits - 1)
        byte(0x65)
        int(Int64(e))
    }
}
