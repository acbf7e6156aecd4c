@testable import EarshotSinks
import Testing

@Suite struct LogRateLimiterTests {
    @Test func firstOccurrenceThenOneLinePerIntervalWithTheUnloggedCount() {
        var l = LogRateLimiter(intervalNs: 10)
        #expect(l.admit(nowNs: 100) == 0)
        #expect((101..<110).map { l.admit(nowNs: Int64($0)) }.allSatisfy { $0 == nil })
        #expect(l.admit(nowNs: 110) == 9)
        #expect(l.admit(nowNs: 115) == nil)
        #expect(l.admit(nowNs: 500) == 1)
        #expect(l.admit(nowNs: 1000) == 0)
    }
}
