@testable import EarshotDaemon
import EarshotSinks
import Testing

/// `stats` counters and the metrics snapshot come from one ``DaemonStats``: same numbers, stable order.
@Suite("Daemon stats")
struct DaemonStatsTests {
    static func sample() -> DaemonStats {
        var d = DaemonStats()
        d.frames = 100; d.xruns = 2; d.reconnects = 1; d.discontinuities = 3; d.ringOverrunSamples = 480
        d.captureGapSamples = 960; d.nonFiniteSamples = 4; d.clampedSamples = 5; d.deviceUp = true
        var s = DaemonStats.Socket()
        s.clients = 2; s.connectionsTotal = 9; s.droppedMessages = 11; s.stalledDisconnects = 1
        s.protocolErrors = 6; s.refused = 7; s.idleClosed = 8; s.droppedFrames = 12
        d.socket = s
        d.sinkDroppedFrames = [("latency", 0), ("rolling", 13)]
        d.sinkUp = ["socket": true, "rolling": true, "metrics": false]
        d.sinkFailures = ["metrics": 2]
        d.sinkCounters = [("alerts", [("level_alerts", 14), ("onset_alerts", 15), ("onset_alerts_suppressed", 16)])]
        return d
    }

    @Test func statsCountersInOrder() {
        let c = Self.sample().counters
        #expect(c.map(\.0) == [
            "frames", "xruns", "reconnects", "discontinuities", "ring_overrun_samples", "capture_gap_samples",
            "nonfinite_samples", "clamped_samples", "subscribers", "connections_total", "socket_dropped_messages",
            "socket_stalled_disconnects", "protocol_errors", "socket_refused", "socket_idle_closed",
            "dropped_frames_latency", "dropped_frames_rolling", "sink_failures", "dropped_frames_socket",
            "level_alerts", "onset_alerts", "onset_alerts_suppressed",
        ])
        #expect(c.map(\.1) == [100, 2, 1, 3, 480, 960, 4, 5, 2, 9, 11, 1, 6, 7, 8, 0, 13, 2, 12, 14, 15, 16])
    }

    @Test func metricsExportWhatStatsCounts() {
        let d = Self.sample()
        let m = d.metricsSnapshot
        let stats = Dictionary(uniqueKeysWithValues: d.counters)
        #expect(m.xruns == stats["xruns"] && m.reconnects == stats["reconnects"])
        #expect(m.connectionsTotal == stats["connections_total"])
        #expect(m.socketDroppedMessages == stats["socket_dropped_messages"])
        #expect(m.socketStalledDisconnects == stats["socket_stalled_disconnects"])
        #expect(m.protocolErrors == stats["protocol_errors"])
        #expect(m.socketRefused == stats["socket_refused"] && m.socketIdleClosed == stats["socket_idle_closed"])
        #expect(m.levelAlerts == stats["level_alerts"] && m.onsetAlerts == stats["onset_alerts"])
        #expect(m.onsetAlertsSuppressed == stats["onset_alerts_suppressed"])
        #expect(m.sinkDroppedFrames == ["latency": 0, "rolling": 13, "socket": 12])
        #expect(m.socketClients == 2 && m.deviceUp && m.sinkUp["metrics"] == false && m.sinkFailures["metrics"] == 2)
    }

    @Test func withoutSocketOrAlerts() {
        var d = Self.sample()
        d.socket = nil
        d.sinkCounters = []
        let names = d.counters.map(\.0)
        #expect(!names.contains("subscribers") && !names.contains("dropped_frames_socket") && !names.contains("level_alerts"))
        #expect(d.metricsSnapshot.connectionsTotal == 0 && d.metricsSnapshot.sinkDroppedFrames["socket"] == nil)
    }

    @Test func metricsLabelsNameTheInstanceAndDevice() {
        var c = EarshotConfig()
        c.capture.device = "hw:CARD=Mic"
        #expect(EarshotConfig.metricsLabels(device: c.capture.device, environment: ["EARSHOT_INSTANCE": "kitchen"]) == ["instance": "kitchen", "device": "hw:CARD=Mic"])
        #expect(EarshotConfig.metricsLabels(device: c.capture.device, environment: [:])["instance"] == "earshot")
        let long = EarshotConfig.metricsLabels(device: String(repeating: "é", count: 300), environment: ["EARSHOT_INSTANCE": String(repeating: "i", count: 300)])
        #expect(long["device"]!.utf8.count == 256 && long["device"]!.allSatisfy { $0 == "é" })
        #expect(long["instance"]!.utf8.count == 256)
    }
}
