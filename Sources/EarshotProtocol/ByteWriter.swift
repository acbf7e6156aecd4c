#if canImport(Glibc)
import Glibc
#endif

/// A reusable output byte buffer with fast fixed-precision number formatting (no `String`, no `Float`
/// description, no allocation once it has grown to its working size).
///
/// The buffer state lives behind a `let` pointer rather than in stored `var`s: stored class properties
/// cost a dynamic exclusivity check (`swift_beginAccess`) on every access, several per number written.
public final class ByteWriter: @unchecked Sendable {
    struct State {
        var base: UnsafeMutablePointer<UInt8>
        var capacity: Int
        var count: Int
        /// ``digitTables`` (process-wide, read-only).
        var digits: UnsafePointer<UInt64>
    }

    let state: UnsafeMutablePointer<State>

    public private(set) var base: UnsafeMutablePointer<UInt8> {
        @inline(__always) get { state.pointee.base }
        @inline(__always) set { state.pointee.base = newValue }
    }
    public private(set) var capacity: Int {
        @inline(__always) get { state.pointee.capacity }
        @inline(__always) set { state.pointee.capacity = newValue }
    }
    public private(set) var count: Int {
        @inline(__always) get { state.pointee.count }
        @inline(__always) set { state.pointee.count = newValue }
    }

    public init(capacity: Int = 64 * 1024) {
        let c = max(capacity, 64)
        state = .allocate(capacity: 1)
        state.initialize(to: State(base: .allocate(capacity: c), capacity: c, count: 0, digits: digitTables))
    }

    deinit {
        state.pointee.base.deallocate()
        state.deallocate()
    }

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

    /// `s` as a JSON string literal (quotes included), for code off the hot path that builds `String`s.
    public static func jsonLiteral(_ s: String) -> String {
        let w = ByteWriter(capacity: s.utf8.count + 8)
        w.jsonString(s)
        return String(decoding: w.bytes, as: UTF8.self)
    }

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

    /// Writes `u` with at least `minDigits` digits (zero padded). Caller reserved room (≤ 20 digits
    /// plus the padding). Digits go straight into the buffer, last digit first (no scratch, no memmove).
    @inline(__always)
    public func unsigned(_ value: UInt64, minDigits: Int) {
        var n = 1
        var t = value
        while t >= 10 { t /= 10; n &+= 1 }
        if n < minDigits { n = minDigits }
        let p = base + count
        var u = value
        var i = n
        repeat {
            i &-= 1
            p[i] = UInt8(truncatingIfNeeded: u % 10) &+ 0x30
            u /= 10
        } while i > 0
        count += n
    }

    static let powers: [Double] = (0...18).map { var p = 1.0; for _ in 0..<$0 { p *= 10 }; return p }

    /// `10^decimals` as a switch, so an inlined call with a literal `decimals` folds to a constant
    /// (and the divisions by it become multiplications).
    @inline(__always)
    static func power10(_ decimals: Int) -> UInt64 {
        switch decimals {
        case 0: return 1
        case 1: return 10
        case 2: return 100
        case 3: return 1_000
        case 4: return 10_000
        case 5: return 100_000
        case 6: return 1_000_000
        default:
            var p: UInt64 = 1_000_000
            for _ in 6..<decimals { p &*= 10 }
            return p
        }
    }

    /// `x.rounded()` (half away from zero) for |x| < 2^63, without a libm call and without a branch:
    /// truncate, then look at the exact fraction (`x − trunc(x)` is exact below 2^53; above, x is an
    /// integer). The comparisons `frac ≥ 0.5` / `frac ≤ −0.5` are read from the sign bits of `frac − 0.5` and
    /// `−0.5 − frac` (exact by Sterbenz near the threshold, so the sign is right; equality gives +0): written
    /// as `?:`, LLVM compiled them to branches, mispredicted on every other digit of real data.
    @inline(__always)
    static func roundHalfAway(_ x: Double) -> Int64 {
        let t = Int64(x)
        let frac = x - Double(t)
        let up = Int64(bitPattern: ((frac - 0.5).bitPattern >> 63) ^ 1)
        let down = Int64(bitPattern: ((-0.5 - frac).bitPattern >> 63) ^ 1)
        return t &+ up &- down
    }

    /// Appends `v` rounded to `decimals` decimal places, trailing zeros removed (`-0` prints as `0`);
    /// non-finite values print as `null`.
    @inline(__always)
    public func fixed(_ v: Double, decimals: Int) {
        guard v.isFinite else { ascii("null"); return }
        let p = Self.power10(decimals)
        let x = v * Double(p)
        guard abs(x) < 9.2e18 else { significant(v, digits: 15); return }
        // x.rounded() (half away from zero) without a libm call: truncate, then look at the exact
        // fraction (x − trunc(x) is exact below 2^53; above, x is an integer).
        // Branch-free: the rounding direction and the sign are data-dependent (unpredictable for
        // MFCC and for the rounding).
        let scaled = Self.roundHalfAway(x)
        reserve(48)
        let negative = scaled < 0
        base[count] = 0x2D
        count &+= negative ? 1 : 0
        let u = UInt64(bitPattern: negative ? 0 &- scaled : scaled)
        if decimals == 3 && u < 1_000_000 {
            // Common case (dB values, log-mel, MFCC): two table entries, two 8-byte stores.
            let ip = u / 1_000
            let t = state.pointee.digits
            put(t[Int(ip)])
            put(t[1_000 &+ Int(u &- ip &* 1_000)])
            return
        }
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

    /// Appends `values` as comma-separated ``fixed(_:decimals:)`` numbers with 3 decimals (same text).
    ///
    /// The common case (|v| < 1000) works on a local output pointer: byte stores through `base` may
    /// alias the writer's state, so the per-number helpers reload and store `count` around every byte.
    public func fixed3List(_ values: UnsafeBufferPointer<Float>) {
        reserve(values.count &* 48 &+ 8)
        let t = state.pointee.digits
        var p = base + count
        var first = true
        for v in values {
            if !first { p.pointee = 0x2C; p += 1 }
            first = false
            let x = Double(v) * 1_000
            if abs(x) < 999_999.5 {  // false for NaN and ±inf
                let scaled = Self.roundHalfAway(x)
                let negative = scaled < 0
                p.pointee = 0x2D
                p += negative ? 1 : 0
                let u = UInt64(bitPattern: negative ? 0 &- scaled : scaled)
                let ip = u / 1_000
                let e1 = t[Int(ip)], e2 = t[1_000 &+ Int(u &- ip &* 1_000)]
                UnsafeMutableRawPointer(p).storeBytes(of: e1, as: UInt64.self)
                p += Int(truncatingIfNeeded: e1 &>> 56)
                UnsafeMutableRawPointer(p).storeBytes(of: e2, as: UInt64.self)
                p += Int(truncatingIfNeeded: e2 &>> 56)
            } else {
                count = p - base
                fixed(v, decimals: 3)
                reserve(values.count &* 48 &+ 8)  // may move the buffer; rare (|v| ≥ 1000 or non-finite)
                p = base + count
            }
        }
        count = p - base
    }

    /// Stores a ``digitTables`` entry: 8 bytes written, `entry >> 56` of them kept. Caller reserved 8.
    @inline(__always)
    func put(_ entry: UInt64) {
        UnsafeMutableRawPointer(base + count).storeBytes(of: entry, as: UInt64.self)
        count &+= Int(truncatingIfNeeded: entry &>> 56)
    }

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

/// Text of small numbers for ``ByteWriter/fixed(_:decimals:)`` with 3 decimals, one `UInt64` per entry:
/// the characters in the low bytes (little endian), their count in the top byte.
/// `0..<1000`: the integer `i` (`"0"`…`"999"`); `1000..<2000`: the fraction `f/1000` as written after
/// the integer part (`""` for 0, else `"."` and up to 3 digits, trailing zeros removed).
/// Built once (16 KB) when the first writer is made (not on a hot path), never freed.
nonisolated(unsafe) let digitTables: UnsafePointer<UInt64> = {
    let t = UnsafeMutablePointer<UInt64>.allocate(capacity: 2_000)
    func pack(_ bytes: [UInt8]) -> UInt64 {
        var e = UInt64(bytes.count) << 56
        for (i, b) in bytes.enumerated() { e |= UInt64(b) << (8 * UInt64(i)) }
        return e
    }
    for i in 0..<1_000 { t[i] = pack(Array(String(i).utf8)) }
    t[1_000] = 0
    for f in 1..<1_000 {
        var d = Array(String(f).utf8)
        while d.count < 3 { d.insert(0x30, at: 0) }
        while d.last == 0x30 { d.removeLast() }
        t[1_000 + f] = pack([0x2E] + d)
    }
    return UnsafePointer(t)
}()
