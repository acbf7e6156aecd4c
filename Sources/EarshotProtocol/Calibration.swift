#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The microphone calibration in effect (`levels.calibration_db`, `levels.calibration_date`,
/// `levels.calibration_reference_db`): `hello.calibration` and `earshot_calibration_*` metrics.
///
/// Wire form: `{"date":"2026-12-02T12:40:20Z","reference_db":94,"offset_db":-28.37}` (`reference_db`
/// null when not recorded). `hello` carries it only when `levels.calibration_date` is set.
public struct CalibrationInfo: Sendable, Equatable {
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ` or `YYYY-MM-DD`.
    public var date: String
    /// The calibrator level, dB SPL.
    public var referenceDb: Double?
    /// `levels.calibration_db`.
    public var offsetDb: Double

    public init(date: String, referenceDb: Double?, offsetDb: Double) {
        self.date = date; self.referenceDb = referenceDb; self.offsetDb = offsetDb
    }

    /// `date` as UNIX seconds (nil when not a valid UTC date).
    public var unixSeconds: Int64? { Self.unixSeconds(date) }

    /// Parses `YYYY-MM-DDTHH:MM:SSZ` or `YYYY-MM-DD` (UTC, years 1970–9999) to UNIX seconds; nil otherwise.
    public static func unixSeconds(_ s: String) -> Int64? {
        let b = Array(s.utf8)
        guard b.count == 10 || b.count == 20 else { return nil }
        func num(_ from: Int, _ n: Int) -> Int? {
            var v = 0
            for i in from..<(from + n) {
                guard b[i] >= 0x30, b[i] <= 0x39 else { return nil }
                v = v * 10 + Int(b[i] - 0x30)
            }
            return v
        }
        guard let y = num(0, 4), b[4] == 0x2D, let m = num(5, 2), b[7] == 0x2D, let d = num(8, 2) else { return nil }
        var hh = 0, mm = 0, ss = 0
        if b.count == 20 {
            guard b[10] == 0x54, let h = num(11, 2), b[13] == 0x3A, let mi = num(14, 2), b[16] == 0x3A,
                  let se = num(17, 2), b[19] == 0x5A else { return nil }
            hh = h; mm = mi; ss = se
        }
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
        let lengths = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard y >= 1970, (1...12).contains(m), d >= 1, d <= lengths[m - 1], hh < 24, mm < 60, ss < 60 else { return nil }
        // Days from the civil date (Howard Hinnant's algorithm).
        let yy = m <= 2 ? y - 1 : y
        let era = yy / 400
        let yoe = yy - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return Int64(days) * 86_400 + Int64(hh * 3600 + mm * 60 + ss)
    }

    /// `t` (UNIX seconds) as `YYYY-MM-DDTHH:MM:SSZ`.
    public static func format(unixSeconds t: Int64) -> String {
        var time = time_t(t)
        var parts = tm()
        gmtime_r(&time, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }

    func encode(into w: inout JSONWriter) {
        w.object { w in
            w.member("date", date)
            w.key("reference_db")
            if let referenceDb { w.fixed(referenceDb, decimals: 2) } else { w.null() }
            w.member("offset_db", offsetDb, decimals: 2)
        }
    }

    init(reading r: inout MessageReader) throws(DecodeError) {
        let date = try r.string("date")
        guard Self.unixSeconds(date) != nil else { throw DecodeError("'date' is not a UTC date") }
        let reference = try r.double("reference_db")
        self.init(date: date, referenceDb: reference.isNaN ? nil : reference, offsetDb: try r.double("offset_db"))
        try r.finish()
    }
}
