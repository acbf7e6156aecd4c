import EarshotPipeline
import Foundation
import Logging
import Testing

@testable import EarshotSinks

/// `earshot_calibration_timestamp_seconds` and `earshot_calibration_info` (issue 11): present with a calibration
/// date, with the constant labels; absent without one. (`promtool` checks them in MetricsExpositionTests, whose
/// full exposition carries a calibration.)
@Suite("Calibration metrics")
struct CalibrationMetricsTests {
    static func render(_ calibration: CalibrationInfo?) -> String {
        var c = MetricsSink.Configuration(enabled: true, listen: nil)
        c.constantLabels = ["instance": "kitchen"]
        c.calibration = calibration
        let sink = MetricsSink(configuration: c, logger: Logger(label: "test"), rolling: nil, latency: nil)
        return String(decoding: sink.render(), as: UTF8.self)
    }

    @Test func series() throws {
        let body = Self.render(CalibrationInfo(date: "2026-12-02T12:40:20Z", referenceDb: 94, offsetDb: 120.37))
        #expect(body.contains("earshot_calibration_timestamp_seconds{instance=\"kitchen\"} 1796215220\n"), "\(body)")
        #expect(body.contains(#"earshot_calibration_info{instance="kitchen",date="2026-12-02T12:40:20Z",reference_db="94"} 1"#), "\(body)")
        #expect(body.contains("# TYPE earshot_calibration_timestamp_seconds gauge"))
        #expect(!Self.render(nil).contains("earshot_calibration"))
    }
}
