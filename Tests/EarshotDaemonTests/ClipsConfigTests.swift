@testable import EarshotDaemon
import EarshotSinks
import Logging
import Testing

/// `clips.*` (issue 11 item 2): what a reload does, the registry entry, the memory estimate.
@Suite struct ClipsConfigTests {
    func plan(from old: (inout EarshotConfig) -> Void, to new: (inout EarshotConfig) -> Void) -> ReloadPlan {
        var a = EarshotConfig(), b = EarshotConfig()
        old(&a); new(&b)
        return ReloadPlan(from: a, to: b)
    }

    @Test func turningClipsOnOrOffRebuildsOtherKeysRestartTheSink() {
        let on: (inout EarshotConfig) -> Void = { $0.clips.directory = "/tmp/clips" }
        #expect(plan(from: { _ in }, to: on).action == .rebuild, "the DSP thread's tap belongs to the pipeline")
        #expect(plan(from: on, to: { _ in }).action == .rebuild)
        #expect(plan(from: on, to: { $0.clips.directory = "/tmp/other" }).action == .live)
        #expect(plan(from: on, to: { $0.clips.directory = "/tmp/other" }).restartSinks)
        let p = plan(from: on, to: { $0.clips.directory = "/tmp/clips"; $0.clips.preRollSeconds = 2; $0.clips.kinds = ["onset"] })
        #expect(p.restartSinks && !p.rebuild && !p.replan, "\(p.keys)")
    }

    @Test func theSinkExistsOnlyWithADirectoryAndTakesTheInstance() throws {
        var c = EarshotConfig()
        #expect(c.clipTapSeconds == 0)
        #expect(!c.memoryEstimate.terms.contains { $0.name == "clips" })
        c.clips.directory = "/tmp/clips"
        #expect(c.clipTapSeconds > 0)
        let term = try #require(c.memoryEstimate.terms.first { $0.name == "clips" })
        #expect(term.bytes >= (60 + 2) * 48_000 * 4)
        #expect(c.clipsConfiguration(environment: ["EARSHOT_INSTANCE": "porch"]).instance == "porch")
        #expect(c.clipsConfiguration(environment: [:]).instance == "earshot")
    }

    @Test func crossFieldAndKindChecks() {
        var c = ClipSink.Configuration()
        c.preRollSeconds = 40; c.postRollSeconds = 40; c.maxClipSeconds = 60
        #expect(throws: SinkConfigError.self) { try c.validate() }
        c.maxClipSeconds = 80
        #expect(throws: Never.self) { try c.validate() }
        c.kinds = ["level", "bogus"]
        #expect(throws: SinkConfigError.self) { try c.validate() }
    }

    @Test func clipCountersReachStatsAndMetrics() {
        var d = DaemonStats()
        d.sinkCounters = [("clips", [("clips_written", 3), ("clips_failed", 2), ("clips_removed", 1), ("clip_samples_lost", 0),
                                     ("clip_triggers_dropped", 0)])]
        #expect(d.counters.contains { $0 == ("clips_failed", 2) })
        let m = d.metricsSnapshot
        #expect(m.clips == ["clips_written": 3, "clips_failed": 2, "clips_removed": 1, "clip_samples_lost": 0, "clip_triggers_dropped": 0])
        let sink = MetricsSink(configuration: .init(enabled: true, listen: "127.0.0.1:0"), logger: Logger(label: "test"))
        sink.update(m)
        let text = String(decoding: sink.render(), as: UTF8.self)
        for (name, v) in [("earshot_clips_written_total", 3), ("earshot_clips_failed_total", 2), ("earshot_clips_removed_total", 1),
                          ("earshot_clip_samples_lost_total", 0)] {
            #expect(text.split(separator: "\n").contains { $0.hasPrefix(name) && $0.hasSuffix(" \(v)") }, "\(name) in\n\(text)")
        }
    }
}
