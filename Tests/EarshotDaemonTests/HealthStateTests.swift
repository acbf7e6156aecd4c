import EarshotSinks
import Testing

@testable import EarshotDaemon

/// The input-health state in `STATUS=`, `stats` and the metrics snapshot (issue 11).
@Suite struct HealthStateTests {
    @Test func statusLineEndsWithTheHealthState() {
        let f = HealthPolicy.StatusFields(device: "hw:0", state: .running, level: -40, unit: "dBFS", frames: 10, xruns: 0,
                                          reconnects: 0, subscribers: 1)
        #expect(HealthPolicy.statusLine(f.with(health: "ok")).hasSuffix(" subscribers=1 health=ok"))
        #expect(HealthPolicy.statusLine(f.with(health: HealthMonitor.summary([.silence, .clipping]))).hasSuffix(" health=silence,clipping"))
        #expect(!HealthPolicy.statusLine(f).contains("health="), "no health sink, no field")
    }

    @Test func healthCountersReachTheMetricsSnapshot() {
        var d = DaemonStats()
        d.sinkCounters = [("health", [("health_silence", 1), ("health_clipping", 0), ("health_events_silence", 2),
                                      ("health_events_clipping", 1)])]
        let m = d.metricsSnapshot
        #expect(m.health == ["silence": true, "clipping": false])
        #expect(m.healthEvents == ["silence": 2, "clipping": 1])
        #expect(d.counters.contains { $0.0 == "health_events_silence" && $0.1 == 2 })
    }

    @Test func healthKeysAreValidated() throws {
        var c = EarshotConfig()
        c.health.silenceSeconds = 61
        #expect(c.libraryProblem()?.key == "health.silence_s", "the silence alarm comes after at most 60 s")
        c = EarshotConfig()
        c.health.clipShare = 0
        #expect(c.libraryProblem()?.key == "health.clip_share")
        #expect(EarshotConfig().libraryProblem() == nil)
    }
}
