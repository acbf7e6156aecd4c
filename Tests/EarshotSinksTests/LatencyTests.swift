import EarshotPipeline
import Foundation
import Logging
import Testing

@testable import EarshotSinks

private typealias K = SinkTestKit2

@Suite("LatencyTracker")
struct LatencyTests {
    @Test func percentilesOfKnownValues() throws {
        let tracker = LatencyTracker(configuration: .init(captureMs: nil, dspMs: nil, sinksMs: nil, endToEndMs: nil),
                                     logger: K.LogStore().logger())
        for us in 1...1000 { tracker.dspStage.record(nanoseconds: Int64(us) * 1000) }
        let dsp = try #require(tracker.snapshot().stage("dsp"))
        #expect(dsp.total.count == 1000)
        // HdrHistogram with 2 significant digits: values within 1 %.
        #expect(abs(dsp.total.p50Ms - 0.5) < 0.005)
        #expect(abs(dsp.total.p99Ms - 0.99) < 0.0099)
        #expect(abs(dsp.total.maxMs - 1.0) < 0.01)
        #expect(abs(dsp.sumSeconds - 0.5005) < 1e-9)
        // Buckets (exact): ≤100 µs: 100 values, ≤250 µs: 250, ≤500 µs: 500, ≤1 ms: 1000.
        #expect(Array(dsp.cumulativeBucketCounts.prefix(5)) == [100, 250, 500, 1000, 1000])
    }

    @Test func impossibleBudgetCountsAndRateLimitsWarnings() throws {
        let logs = K.LogStore()
        let tracker = LatencyTracker(
            configuration: .init(captureMs: nil, dspMs: 0.000001, sinksMs: nil, endToEndMs: nil, warnIntervalSeconds: 3600),
            logger: logs.logger())
        let bus = FrameBus(capacity: 1024, nMels: K.nMels, nMFCC: 2)
        try tracker.start(bus: bus, stream: K.stream())
        K.publish((Int64(0)..<100).map { seq in
            var h = K.header(seq: seq, level: -30)
            h.lastSampleMonotonicNs = 1_000_000_000 + seq * K.hopNs
            h.dspStartNs = h.lastSampleMonotonicNs + 300_000
            h.dspEndNs = h.dspStartNs + 1_500_000
            return h
        }, on: bus)
        tracker.stop()
        let warnings = logs.messages(containing: "budget exceeded")
        #expect(warnings.count == 1, "one line for the first overrun, the other 99 wait for the interval's summary")
        let w = K.fields(warnings.first ?? "")
        #expect(w["stage"] == "dsp" && w["frames"] == "1" && w["worst_ms"] == "1.5" && w["budget_ms"] == "0.000001")
        #expect(w["over_budget_total"] == "1" && w["interval_s"] == "3600")
        #expect(logs.all.first?.level == .warning)
        let snap = tracker.snapshot()
        #expect(snap.stage("dsp")?.overBudget == 100)
        #expect(snap.stage("capture")?.overBudget == 0)  // no capture budget
        #expect(abs((snap.stage("capture")?.total.p50Ms ?? 0) - 0.3) < 0.001)
        // When the interval has passed, the next value closes it: one summary line with the count and the worst.
        var c = tracker.configuration
        c.warnIntervalSeconds = 0
        tracker.update(configuration: c)
        tracker.dspStage.record(nanoseconds: 2_000_000)
        let second = K.fields(logs.messages(containing: "budget exceeded").last ?? "")
        #expect(logs.messages(containing: "budget exceeded").count == 2)
        #expect(second["frames"] == "100" && second["worst_ms"] == "2" && second["over_budget_total"] == "101", "\(second)")
    }

    /// A stage that overruns on every frame for 10 intervals logs about one line per interval, each with the
    /// interval's count and worst, never one line per frame; a quiet interval closes the summary.
    @Test func repeatedOverrunsAreSummarisedPerInterval() throws {
        let logs = K.LogStore()
        let tracker = LatencyTracker(
            configuration: .init(captureMs: nil, dspMs: 1, sinksMs: nil, endToEndMs: nil, warnIntervalSeconds: 0.05),
            logger: logs.logger())
        let start = Date()
        var n = 0
        while Date().timeIntervalSince(start) < 0.5 {
            tracker.dspStage.record(nanoseconds: n % 7 == 0 ? 9_000_000 : 1_500_000)  // all over 1 ms
            n += 1
            usleep(1_000)
        }
        let lines = logs.messages(containing: "budget exceeded stage=dsp")
        #expect(lines.count >= 5 && lines.count <= 12, "\(lines.count) lines for \(n) overruns over 10 intervals")
        let frames = lines.compactMap { Int(K.fields($0)["frames"] ?? "") }
        #expect(frames.reduce(0, +) <= n && frames.reduce(0, +) >= n - 100, "summaries count \(frames.reduce(0, +)) of \(n)")
        let worst = lines.dropFirst().compactMap { K.fields($0)["worst_ms"] }
        #expect(worst.contains("9") && worst.allSatisfy { $0 == "9" || $0 == "1.5" }, "\(lines)")
        // Quiet: values within budget for more than an interval close the summary; the next overrun is at once.
        for _ in 0..<20 { tracker.dspStage.record(nanoseconds: 100_000); usleep(5_000) }
        let before = logs.messages(containing: "budget exceeded").count
        tracker.dspStage.record(nanoseconds: 3_000_000)
        let after = logs.messages(containing: "budget exceeded")
        #expect(after.count == before + 1 && K.fields(after.last ?? "")["frames"] == "1")
    }

    /// The histogram has a bucket edge at every budget, so `le="<budget>"` counts exactly the frames within it.
    /// Milliseconds in the warnings: 3 decimals, to the nanosecond below 1 ms (a budget of 0.0002 ms read `0`).
    @Test func millisecondsBelowOneKeepTheirDigits() {
        #expect(formatMs(200) == "0.0002")
        #expect(formatMs(1) == "0.000001")
        #expect(formatMs(0) == "0")
        #expect(formatMs(999_999) == "0.999999")
        #expect(formatMs(12_345_678) == "12.346")
    }

    @Test func bucketEdgesIncludeTheBudgets() throws {
        let c = LatencyTracker.Configuration(captureMs: nil, dspMs: 3, sinksMs: 7.5, endToEndMs: 250)
        let bounds = LatencyTracker.bucketBounds(for: c)
        for b in [0.003, 0.0075, 0.25] { #expect(bounds.contains(b), "\(b) not in \(bounds)") }
        #expect(bounds == bounds.sorted() && Set(bounds).count == bounds.count)
        let tracker = LatencyTracker(configuration: c, logger: K.LogStore().logger())
        #expect(tracker.bucketBoundsSeconds == bounds)
        for us in [2_900, 3_000, 3_001, 7_000] { tracker.dspStage.record(nanoseconds: Int64(us) * 1000) }
        let dsp = try #require(tracker.snapshot().stage("dsp"))
        let at3 = try #require(bounds.firstIndex(of: 0.003))
        #expect(dsp.cumulativeBucketCounts[at3] == 2, "≤ 3 ms: 2.9 and 3.0 ms")
        #expect(dsp.overBudget == 2)
    }

    @Test func endToEndIsTheLastHandOff() throws {
        let tracker = LatencyTracker(configuration: .init(captureMs: nil, dspMs: nil, sinksMs: 1, endToEndMs: nil),
                                     logger: K.LogStore().logger())
        let a = tracker.makeRecorder(sink: "a")
        let b = tracker.makeRecorder(sink: "b")
        var h = K.header(seq: 7, level: 0)
        h.lastSampleMonotonicNs = 10_000_000
        h.dspStartNs = 11_000_000
        h.dspEndNs = 12_000_000
        a.record(h, dequeuedAtNs: 12_500_000)
        #expect(tracker.snapshot().stage("end_to_end")?.total.count == 0)  // waits for b
        b.record(h, dequeuedAtNs: 14_000_000)
        let snap = tracker.snapshot()
        #expect(abs((snap.stage("end_to_end")?.total.maxMs ?? 0) - 4.0) < 0.04)
        #expect(abs((snap.stage("sink:a")?.total.maxMs ?? 0) - 0.5) < 0.005)
        #expect(snap.stage("sink:b")?.overBudget == 1 && snap.stage("sink:a")?.overBudget == 0)
        // Frame 7 + 4096 reuses the slot of a frame only `a` handed off: that one is finalized with a's value.
        var h2 = h; h2.seq = 8
        a.record(h2, dequeuedAtNs: 13_000_000)
        var h3 = h; h3.seq = 8 + 4096
        a.record(h3, dequeuedAtNs: 12_100_000)
        #expect(tracker.snapshot().stage("end_to_end")?.total.count == 2)
        #expect(snap.stages.map(\.stage) == ["capture", "dsp", "sink:a", "sink:b", "end_to_end"])
    }

    @Test func statsLine() throws {
        let tracker = LatencyTracker(configuration: .init(dspMs: 1), logger: K.LogStore().logger())
        tracker.dspStage.record(nanoseconds: 500_000)
        tracker.dspStage.record(nanoseconds: 3_000_000)
        let line = tracker.statsJSON(counters: [("frames", 2), ("xruns", 0)])
        #expect(line.last == 0x0A)
        let o = try #require(JSONSerialization.jsonObject(with: Data(line)) as? [String: Any])
        #expect(o["type"] as? String == "stats" && o["frames"] as? Int == 2 && o["xruns"] as? Int == 0)
        let lat = try #require(o["latency_ms"] as? [String: [String: Double]])
        #expect(lat.keys.sorted() == ["dsp"])
        #expect(abs((lat["dsp"]?["p50"] ?? 0) - 0.5) < 0.005 && abs((lat["dsp"]?["max"] ?? 0) - 3) < 0.03)
        #expect((o["over_budget"] as? [String: Int])?["dsp"] == 1)
        // The interval restarts: the next line has no dsp latency.
        let next = try #require(JSONSerialization.jsonObject(with: Data(tracker.statsJSON(counters: []))) as? [String: Any])
        #expect((next["latency_ms"] as? [String: Any])?.isEmpty == true)
    }
}
