import EarshotDSP
import EarshotPipeline
import EarshotRealtime
import Foundation
import Logging
import Testing

@testable import EarshotSinks

private typealias K = SinkTestKit2

private func frames(_ ranges: [(Range<Int64>, Float)]) -> [FrameHeader] {
    ranges.flatMap { r, level in r.map { K.header(seq: $0, level: level) } }
}

/// Runs an AlertSink on a real bus over `headers` and returns the captured logs and published lines.
private func run(_ configuration: AlertSink.Configuration, _ headers: [FrameHeader], offset: Float = 0)
    throws -> (K.LogStore, K.Publisher, AlertSink)
{
    let bus = FrameBus(capacity: 8192, nMels: K.nMels, nMFCC: 2)
    let logs = K.LogStore()
    let pub = K.Publisher()
    let sink = AlertSink(configuration: configuration, logger: logs.logger(), publisher: pub)
    try sink.start(bus: bus, stream: K.stream(levelOffsetDb: offset))
    K.publish(headers, on: bus)
    sink.stop()
    #expect(sink.dropped == 0)
    return (logs, pub, sink)
}

private func t(_ seq: Int64) -> String {
    let ns = K.t0 + seq * K.hopNs
    return String(format: "%.3f", Double(ns) / 1e9).replacingOccurrences(of: #"\.?0+$"#, with: "", options: .regularExpression)
}

@Suite("AlertSink")
struct AlertSinkTests {
    static let level = AlertSink.Configuration(
        level: .init(enabled: true, weighting: .laf, thresholdDB: -20, minDurationMs: 200, hysteresisDB: 3, rearmMs: 1000),
        onset: .init(enabled: false))

    @Test func levelStartEndHysteresisAndRearm() throws {
        let input = frames([
            (0..<10, -30), (10..<25, -10),  // 150 ms blip: shorter than the hold, no alert
            (25..<50, -30),
            (50..<150, -10),   // above: start decided 200 ms after frame 50, i.e. at frame 70
            (150..<250, -22),  // below threshold but above the release level (−23): alert continues
            (250..<300, -30),  // below release: end decided at frame 270, t = frame 250
            (300..<500, -10),  // above again, but re-arm holds until t(250) + 1 s = t(350)
        ])
        let (logs, pub, sink) = try run(Self.level, input)
        let alerts = logs.all.filter { $0.message.hasPrefix("alert=level") }
        #expect(alerts.count == 3, "\(alerts.map(\.message))")
        guard alerts.count == 3 else { return }
        let start = K.fields(alerts[0].message)
        #expect(alerts[0].level == .warning)
        #expect(start["state"] == "start" && start["seq"] == "50" && start["t"] == t(50))
        #expect(start["decided_seq"] == "70")  // exactly the hold (200 ms = 20 hops) after the first frame
        #expect(start["level_db"] == "-10" && start["threshold_db"] == "-20")
        let end = K.fields(alerts[1].message)
        #expect(alerts[1].level == .notice)
        #expect(end["state"] == "end" && end["seq"] == "250" && end["t"] == t(250) && end["decided_seq"] == "270")
        #expect(end["duration_s"] == "2" && end["max_db"] == "-10")
        let rearmed = K.fields(alerts[2].message)
        #expect(rearmed["state"] == "start" && rearmed["seq"] == "350" && rearmed["decided_seq"] == "370")
        #expect(sink.levelAlerts == 2)

        let lines = pub.lines(.alert)
        #expect(lines.count == 3)
        let o = try #require(JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(o["type"] as? String == "alert" && o["alert"] as? String == "level" && o["state"] as? String == "start")
        #expect(o["level_db"] as? Double == -10 && o["threshold_db"] as? Double == -20 && o["seq"] as? Int == 50)
        #expect(abs((o["t"] as? Double ?? 0) - Double(K.t0 + 50 * K.hopNs) / 1e9) < 1e-3)
    }

    /// A reload that restarts the sinks mid-alert (attack run: a `levels.calibration_db` or weighting change,
    /// a pipeline rebuild): the replacement sink takes over the ongoing alert and reads on from the frame where
    /// the old one stopped, so the sequence gives exactly the alerts of an uninterrupted sink — one start, one
    /// end at the same frames — although frames were published while no alert sink was attached. Before, the
    /// new sink started idle at the next frame: the end was lost and the same event started again.
    /// An alert sink on a real bus that started a level alert (frames 0…119, start decided at frame 70) and
    /// was stopped, as a reload that restarts the sinks stops it.
    fileprivate static func stoppedMidAlert() throws -> (FrameBus, K.LogStore, K.Publisher, AlertSink) {
        let bus = FrameBus(capacity: 8192, nMels: K.nMels, nMFCC: 2)
        let logs = K.LogStore(), pub = K.Publisher()
        let first = AlertSink(configuration: Self.level, logger: logs.logger(), publisher: pub)
        try first.start(bus: bus, stream: K.stream())
        K.publish(frames([(0..<50, -30), (50..<120, -10)]), on: bus)
        first.stop()
        return (bus, logs, pub, first)
    }

    @Test func sinkRestartMidAlertKeepsTheAlertAndTheFrames() throws {
        let (bus, logs, pub, first) = try Self.stoppedMidAlert()
        K.publish(frames([(120..<150, -10), (150..<250, -22), (250..<260, -30)]), on: bus)  // nobody attached
        let second = AlertSink(configuration: Self.level, logger: logs.logger(), publisher: pub)
        second.inherit(from: first, sameBus: true)
        try second.start(bus: bus, stream: K.stream())
        K.publish(frames([(260..<300, -30)]), on: bus)  // end decided at frame 270, t = frame 250
        second.stop()
        let alerts = logs.all.filter { $0.message.hasPrefix("alert=level") }.map { K.fields($0.message) }
        #expect(alerts.count == 2, "\(alerts)")
        #expect(alerts.first?["state"] == "start" && alerts.first?["seq"] == "50" && alerts.first?["decided_seq"] == "70")
        #expect(alerts.last?["state"] == "end" && alerts.last?["seq"] == "250" && alerts.last?["decided_seq"] == "270"
                && alerts.last?["duration_s"] == "2")
        #expect(second.levelAlerts == 1 && second.dropped == 0)
    }

    /// A sink restart whose new settings measure the level differently (calibration, weighting, the channels
    /// the level is the energy mean of: `capture.channels` 1 → 4 rebuilds the pipeline) or disable
    /// level alerts ends the carried alert once, at once, with `reason=reconfigured`, in the old terms (the
    /// old threshold, weighting and calibrated level of the last frame judged), instead of carrying it into
    /// numbers that mix two measures; the new sink then judges afresh. The same restart with the same measure
    /// carries it (the test above).
    @Test(arguments: ["calibration", "unit", "weighting", "channels", "disabled"])
    func sinkRestartThatChangesTheMeasureEndsTheAlertAsReconfigured(change: String) throws {
        let (bus, logs, pub, first) = try Self.stoppedMidAlert()
        var c = Self.level
        var offset: Float = 0
        var unit = "dBFS"
        var channels = 1
        switch change {
        case "calibration": offset = 6
        case "channels": channels = 4
        case "unit": unit = "dB SPL"  // levels.calibration_db: 0 set (from none): same numbers, another unit
        case "weighting": c.level.weighting = .las
        default: c.level.enabled = false
        }
        let second = AlertSink(configuration: c, logger: logs.logger(), publisher: pub)
        second.inherit(from: first, sameBus: true)
        try second.start(bus: bus, stream: K.stream(levelOffsetDb: offset, unit: unit, levelChannels: channels))
        K.publish(frames([(120..<300, -10)]), on: bus)
        second.stop()
        let alerts = logs.all.filter { $0.message.hasPrefix("alert=level") }.map { K.fields($0.message) }
        // start (first sink), end reconfigured, and — unless disabled — a new start by the new measure.
        #expect(alerts.count == (change == "disabled" ? 2 : 3), "\(alerts)")
        guard alerts.count >= 2 else { return }
        let end = alerts[1]
        #expect(end["state"] == "end" && end["reason"] == "reconfigured", "\(end)")
        #expect(end["seq"] == "119" && end["level_db"] == "-10" && end["threshold_db"] == "-20" && end["max_db"] == "-10")
        #expect(end["duration_s"] == "0.69")  // frames 50…119
        #expect(end["sel"] == "LAE")  // the old weighting's exposure (`las` has the same A weighting)
        let json = try #require(pub.lines(.alert).dropFirst().first)
        #expect(json.contains(#""reason":"reconfigured""#) && json.contains(#""weighting":"laf""#), "\(json)")
        if change != "disabled" {
            let restart = alerts[2]
            #expect(restart["state"] == "start" && restart["seq"] == "120" && restart["decided_seq"] == "140")
            #expect(restart["level_db"] == (change == "calibration" ? "-4" : "-10"))
        }
        #expect(first.levelAlerts == 1 && second.levelAlerts == (change == "disabled" ? 1 : 2))
    }

    /// A successor that cannot start (here: every consumer entry of the bus taken) stays stopped: the alert
    /// it took over ends at once with `reason=reconfigured` at the last frame judged, instead of never
    /// ending (before: a start without an end).
    @Test func successorThatFailsToStartEndsTheCarriedAlert() throws {
        let (bus, logs, pub, first) = try Self.stoppedMidAlert()
        var held: [FrameBus.Consumer] = []
        while let c = bus.attach() { held.append(c) }
        let second = AlertSink(configuration: Self.level, logger: logs.logger(), publisher: pub)
        second.inherit(from: first, sameBus: true)
        #expect(throws: (any Error).self) { try second.start(bus: bus, stream: K.stream()) }
        let alerts = logs.all.filter { $0.message.hasPrefix("alert=level") }.map { K.fields($0.message) }
        #expect(alerts.count == 2, "\(alerts)")
        #expect(alerts.last?["state"] == "end" && alerts.last?["reason"] == "reconfigured" && alerts.last?["seq"] == "119",
                "\(alerts)")
        #expect(pub.lines(.alert).count == 2)
        withExtendedLifetime(held) {}
    }

    /// A live update (no restart) that disables level alerts or changes their weighting mid-alert ends the
    /// alert with `reason=reconfigured` before the new settings judge a frame; before, disabling dropped it
    /// without an end.
    @Test(arguments: ["weighting", "disabled"])
    func liveUpdateThatChangesTheMeasureEndsTheAlertAsReconfigured(change: String) throws {
        let logs = K.LogStore()
        let sink = AlertSink(configuration: Self.level, logger: logs.logger(), publisher: nil)
        for h in frames([(0..<50, -30), (50..<100, -10)]) { sink.evaluate(h) }
        var c = Self.level
        if change == "weighting" { c.level.weighting = .lcf } else { c.level.enabled = false }
        sink.update(configuration: c)
        sink.refreshConfiguration()
        let alerts = logs.all.filter { $0.message.hasPrefix("alert=level") }.map { K.fields($0.message) }
        #expect(alerts.count == 2, "\(alerts)")
        #expect(alerts.last?["state"] == "end" && alerts.last?["reason"] == "reconfigured" && alerts.last?["seq"] == "99")
        #expect(sink.levelState == .idle)
        // A threshold change alone keeps the alert (it ends against the new release level).
        let keep = AlertSink(configuration: Self.level, logger: logs.logger(), publisher: nil)
        for h in frames([(0..<50, -30), (50..<100, -10)]) { keep.evaluate(h) }
        var t = Self.level
        t.level.thresholdDB = -15
        keep.update(configuration: t)
        keep.refreshConfiguration()
        #expect(keep.levelState == .active)
    }

    /// The end's sound exposure level sums the exact energies (``LevelSums``) of the frames from the start frame
    /// up to the end frame: a release candidate that did not last counts, the release hold does not; the
    /// weighting picks the energy (A for `laf`, C for `lcf`) and its IEC name; `rms_dbfs` has none.
    @Test func levelEndCarriesTheSoundExposureOfTheAlertWindow() throws {
        func framesWithEnergy(_ ranges: [(Range<Int64>, Float)]) -> [FrameHeader] {
            frames(ranges).map { h in
                var h = h
                let e = Double(K.hop) * pow(10, Double(h.features.laf) / 10)
                h.levels.head = LevelSums(samples: K.hop, energyA: e, energyC: 2 * e, energyZ: 4 * e, maxAF: 0, minAF: 0,
                                          maxAS: 0, minAS: 0, maxCF: 0, minCF: 0, maxZF: 0, minZF: 0, peakC: 0)
                return h
            }
        }
        // Threshold −20 dBFS, release level −23 dBFS, hold 50 ms (5 frames).
        let input = framesWithEnergy([
            (0..<10, -30), (10..<20, -19),
            (20..<23, -24),    // a release candidate shorter than the hold: part of the alert
            (23..<30, -19),
            (30..<60, -23.5),  // the end (t = frame 30); its hold and what follows are after the alert window
        ])
        // Frames 10..<30: 17 at −19 dB and 3 at −24 dB, each one hop long.
        let exposure = (17 * pow(10, -1.9) + 3 * pow(10, -2.4)) * Double(K.hop) / Double(K.sampleRate)
        for (weighting, name, factor) in [(LevelWeighting.laf, "LAE", 1.0), (.lcf, "LCE", 2.0), (.rmsDbfs, "", 0)] {
            var c = Self.level
            c.level.weighting = weighting
            c.level.minDurationMs = 50
            c.level.thresholdDB = -15  // with the +5 dB calibration: −20 dBFS; release below −23 dBFS
            let (logs, pub, _) = try run(c, input, offset: 5)
            let ends = logs.all.filter { $0.message.hasPrefix("alert=level state=end") }.map { K.fields($0.message) }
            try #require(ends.count == 1, "\(logs.all.map(\.message))")
            #expect(ends[0]["t"] == t(30) && ends[0]["duration_s"] == "0.2", "\(ends[0])")
            let line = try #require(pub.lines(.alert).last)
            let o = try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            if name.isEmpty {
                #expect(ends[0]["sel_db"] == nil && o["sel_db"] == nil && o["sel"] == nil, "\(line)")
                continue
            }
            let expected = 10 * log10(factor * exposure) + 5
            #expect(ends[0]["sel"] == name && abs((ends[0]["sel_db"].flatMap(Double.init) ?? 0) - expected) < 0.006, "\(ends[0])")
            #expect(o["sel"] as? String == name && abs((o["sel_db"] as? Double ?? 0) - expected) < 0.006, "\(line)")
        }
    }

    /// An alert that starts on the first frame after a reset: that frame's level data cover `n_fft` samples, of
    /// which one hop (at their mean square) counts, like every other frame, so LAE = level + 10·log10(duration).
    @Test func exposureCountsOneHopOfTheFirstFrameAfterAReset() throws {
        var input = frames([(0..<20, -19), (20..<60, -30)])
        for i in input.indices {
            let n = i == 0 ? 4 * K.hop : K.hop  // the first frame's n_fft new samples
            let e = Double(n) * pow(10, Double(input[i].features.laf) / 10)
            input[i].levels.head = LevelSums(samples: n, energyA: e, energyC: e, energyZ: e, maxAF: 0, minAF: 0,
                                             maxAS: 0, minAS: 0, maxCF: 0, minCF: 0, maxZF: 0, minZF: 0, peakC: 0)
        }
        var c = Self.level
        c.level.minDurationMs = 50
        c.level.thresholdDB = -15
        let (logs, _, _) = try run(c, input, offset: 5)
        let ends = logs.all.filter { $0.message.hasPrefix("alert=level state=end") }.map { K.fields($0.message) }
        try #require(ends.count == 1, "\(logs.all.map(\.message))")
        let expected = 10 * log10(20 * pow(10, -1.9) * Double(K.hop) / Double(K.sampleRate)) + 5
        #expect(abs((ends[0]["sel_db"].flatMap(Double.init) ?? 0) - expected) < 0.006, "\(ends[0])")
    }

    @Test func calibratedThresholdAndGapRestartsQualification() throws {
        var c = Self.level
        c.level.thresholdDB = 74  // dB SPL with a 94 dB offset: −20 dBFS
        var input = frames([(0..<15, -10)])
        // A gap after 150 ms above: the 100 ms after it must not be added to the 150 ms before it.
        var gap = K.header(seq: 40, level: -10)
        gap.flags = FrameFlags.discontinuity
        input.append(gap)
        input += frames([(41..<50, -10), (50..<60, -40)])
        let (logs, _, _) = try run(c, input, offset: 94)
        #expect(logs.messages(containing: "alert=level").isEmpty)
        let (logs2, _, _) = try run(c, frames([(0..<30, -10)]), offset: 94)
        #expect(logs2.messages(containing: "state=start").count == 1)
        #expect(logs2.messages(containing: "level_db=84 threshold_db=74").count == 1)
    }

    @Test func onsetRateLimitAndSuppressedCounts() throws {
        let c = AlertSink.Configuration(
            level: .init(enabled: false),
            onset: .init(enabled: true, minStrength: 5, minIntervalMs: 100, maxPerMinute: 3),
            summaryIntervalSeconds: 60)
        var input = frames([(0..<200, -60), (5990..<6110, -60)])
        func onset(_ seq: Int64, _ s: Float) { input[input.firstIndex { $0.seq == seq }!] = K.withOnset(input.first { $0.seq == seq }!, strength: s) }
        for seq in stride(from: Int64(0), to: 200, by: 20) { onset(seq, 9) }  // 10 strong onsets, 200 ms apart
        onset(10, 2)   // too weak
        onset(25, 9)   // 50 ms after the previous alert: debounced, not counted
        onset(6100, 8)
        let (logs, pub, sink) = try run(c, input)
        let onsets = logs.all.filter { $0.message.hasPrefix("alert=onset ") }
        #expect(onsets.map { K.fields($0.message)["seq"] } == ["0", "20", "40", "6100"])
        #expect(onsets.map { K.fields($0.message)["suppressed"] } == ["0", "0", "0", "7"])
        #expect(onsets.allSatisfy { $0.level == .warning })
        #expect(K.fields(onsets[3].message)["strength"] == "8")
        let summary = logs.all.filter { $0.message.hasPrefix("alert=onset_summary") }
        #expect(summary.count == 1)
        #expect(summary.first?.level == .notice)
        #expect(K.fields(summary.first?.message ?? "")["suppressed"] == "7")
        #expect(K.fields(summary.first?.message ?? "")["emitted"] == "3")
        #expect(sink.onsetAlerts == 4 && sink.suppressedOnsetAlerts == 7)
        #expect(pub.lines(.alert).count == 5)
        #expect(pub.lines(.alert).last?.contains("\"suppressed\":7") == true)
    }

    @Test func liveUpdateChangesTheThreshold() throws {
        let logs = K.LogStore()
        var c = Self.level
        c.level.thresholdDB = -5
        let sink = AlertSink(configuration: c, logger: logs.logger(), publisher: nil)
        for h in frames([(0..<50, -10)]) { sink.evaluate(h) }
        #expect(logs.all.isEmpty)
        var lower = c
        lower.level.thresholdDB = -15
        let updated = lower
        let updater = Thread { sink.update(configuration: updated) }
        updater.start()
        while sink.configuration.level.thresholdDB != -15 { usleep(1000) }
        // Frames captured after the update (settings apply to audio captured after a reload).
        let later = EarshotRealtime.Clock.wallNanoseconds() + 1_000_000_000
        for seq in Int64(50)..<100 { sink.evaluate(K.header(seq: seq, level: -10, wallNs: later + seq * K.hopNs)) }
        let start = try #require(logs.messages(containing: "state=start").first)
        #expect(K.fields(start)["seq"] == "50" && K.fields(start)["threshold_db"] == "-15")
    }
}

/// A threshold lowered by SIGHUP applies to audio captured after the reload, not to the quiet frames captured
/// before it that the reader had not read yet (they wait up to its 1 s backstop; attack run D2: an alert was
/// started from frames up to ~0.8 s older than the reload, its time depending on the backstop's phase).
@Suite("AlertSink reload timing", .serialized)
struct AlertSinkReloadTimingTests {
    @Test func aLoweredThresholdAppliesToFramesCapturedAfterTheReload() throws {
        let rig = try OnDemandRig(AlertSinkTests.level)  // threshold −20
        let now = EarshotRealtime.Clock.wallNanoseconds()
        // 100 frames at −25 dBFS captured before the reload: below −20, so they do not wake the reader.
        let before = (Int64(0)..<100).map { K.header(seq: $0, level: -25, wallNs: now - 2_000_000_000 + $0 * K.hopNs) }
        #expect(try rig.drain(before) == 0)
        var c = AlertSinkTests.level
        c.level.thresholdDB = -30
        let w = rig.waits
        rig.sink.update(configuration: c)  // wakes the reader: it reads the 100 older frames now
        try rig.waitIdle(after: w)
        // The same level captured after the reload: an alert from its first frame (seq 100), decided 200 ms later.
        let after = (Int64(100)..<140).map { K.header(seq: $0, level: -25, wallNs: now + 1_000_000_000 + ($0 - 100) * K.hopNs) }
        _ = try rig.drain(after)
        let starts = rig.logs.all.filter { $0.message.hasPrefix("alert=level") }.map { K.fields($0.message) }
        #expect(starts.count == 1 && starts.first?["seq"] == "100" && starts.first?["decided_seq"] == "120", "\(starts)")
    }
}

/// A started AlertSink whose reader's own timer is 60 s: within a test only the DSP stage's wake-ups
/// (`FrameBus.wakeUps`, eventfd writes at the end of a drain) and ``AlertSink/update(configuration:)`` drive it.
private final class OnDemandRig {
    let bus = FrameBus(capacity: 8192, nMels: K.nMels, nMFCC: 2)
    let logs = K.LogStore()
    let sink: AlertSink

    init(_ configuration: AlertSink.Configuration) throws {
        sink = AlertSink(configuration: configuration, logger: logs.logger(), publisher: nil, backstopMilliseconds: 60_000)
        try sink.start(bus: bus, stream: K.stream())
        try waitIdle(after: 0)
    }

    deinit { sink.stop() }

    var waits: Int { sink.reader.waits.load(ordering: .acquiring) }

    /// Waits (≤ 10 s) until the reader has gone to wait more than `n` times and is parked: it has read every
    /// frame published so far and set its wake filter.
    func waitIdle(after n: Int) throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !(waits > n && sink.reader.consumer?.isParked == true) {
            try #require(ContinuousClock.now < deadline, "the alert reader did not settle (waits \(waits))")
            usleep(500)
        }
    }

    /// Publishes `headers` as one drain of the DSP stage and returns the wake-ups it made (0 or 1); after a
    /// wake-up, waits until the reader has handled it.
    func drain(_ headers: [FrameHeader]) throws -> Int {
        let w = waits
        let before = bus.wakeUps
        bus.beginDeferringWakes()
        K.publish(headers, on: bus)
        bus.endDeferringWakes()
        let woke = bus.wakeUps - before
        if woke > 0 { try waitIdle(after: w) }
        return woke
    }
}

/// es-alerts is woken by the DSP stage only for frames that can make it emit an alert, at the end of the
/// drain that publishes them, so alerts come from the same drain as when every frame was delivered.
@Suite("AlertSink wake-ups", .serialized)
struct AlertSinkWakeTests {
    /// Quiet input (levels below the threshold, onsets below `min_strength`) wakes the reader never, not once
    /// per frame or drain; the first frame at the threshold does, in its own drain.
    @Test func quietInputDoesNotWakeTheReader() throws {
        var c = AlertSinkTests.level
        c.onset = .init(enabled: true, minStrength: 15, minIntervalMs: 100, maxPerMinute: 60)
        let rig = try OnDemandRig(c)
        let drains0 = rig.sink.reader.drains.load(ordering: .relaxed)
        var woke = 0
        for i in stride(from: Int64(0), to: 300, by: 2) {
            var second = K.header(seq: i + 1, level: -20.5)
            if i % 50 == 0 { second = K.withOnset(second, strength: 14) }
            woke += try rig.drain([K.header(seq: i, level: -35), second])
        }
        #expect(woke == 0, "woken \(woke) times by 300 quiet frames")
        #expect(rig.sink.reader.drains.load(ordering: .relaxed) == drains0)
        #expect(rig.logs.all.isEmpty)
        // The first frame at the threshold wakes it at the end of its drain (minimum duration 200 ms: no
        // alert yet, a candidate).
        #expect(try rig.drain([K.header(seq: 300, level: -40), K.header(seq: 301, level: -20)]) == 1)
        #expect(rig.sink.reader.drains.load(ordering: .relaxed) == drains0 + 1)
    }

    /// The sequence of `levelStartEndHysteresisAndRearm` published in drains of two frames (as the DSP stage
    /// does with 20 ms periods): the same three alerts with the same `seq`/`decided_seq`, each logged by the
    /// wake-up of the drain holding its deciding frame; 6 wake-ups in 250 drains, each where the design says.
    @Test func levelAlertsComeFromTheDrainOfTheirDecidingFrame() throws {
        let rig = try OnDemandRig(AlertSinkTests.level)
        let input = frames([
            (0..<10, -30), (10..<25, -10), (25..<50, -30), (50..<150, -10), (150..<250, -22), (250..<300, -30),
            (300..<500, -10),
        ])
        var wokeAt: [Int64] = []
        var alertsAfter: [Int64: Int] = [:]
        for k in stride(from: 0, to: input.count, by: 2) {
            if try rig.drain(Array(input[k..<k + 2])) == 1 {
                wokeAt.append(input[k].seq)
                alertsAfter[input[k].seq] = rig.logs.messages(containing: "alert=level").count
            }
        }
        // 10: the crossing (a candidate); 50: above again after the blip, outside the first candidate's
        // hold; 70: the start is decided; 250: below the release level; 270: the end is decided; 370: the
        // re-armed start is decided (the frames above the threshold before re-arm + hold wake nobody).
        #expect(wokeAt == [10, 50, 70, 250, 270, 370])
        #expect(alertsAfter == [10: 0, 50: 0, 70: 1, 250: 1, 270: 2, 370: 3])
        let alerts = rig.logs.messages(containing: "alert=level").map(K.fields)
        try #require(alerts.count == 3)
        #expect(alerts.map { $0["state"] } == ["start", "end", "start"])
        #expect(alerts.map { $0["seq"] } == ["50", "250", "350"])
        #expect(alerts.map { $0["decided_seq"] } == ["70", "270", "370"])
        #expect(alerts[1]["duration_s"] == "2" && alerts[1]["max_db"] == "-10")
    }

    /// Onset alerts (the input of `onsetRateLimitAndSuppressedCounts`): a drain wakes the reader when it holds
    /// an onset that will raise an alert — at or above `min_strength`, past the debounce interval and, once
    /// `max_per_minute` alerts lie within 60 s, 60 s after the oldest of them — and, with the rate limit
    /// reached, the drain reaching the next summary period, which logs the summary then. Weak, debounced and
    /// suppressed onsets (counted all the same) and everything else wake nobody.
    @Test func onsetAlertsAndTheSummaryWakeTheReader() throws {
        let c = AlertSink.Configuration(
            level: .init(enabled: false),
            onset: .init(enabled: true, minStrength: 5, minIntervalMs: 100, maxPerMinute: 3), summaryIntervalSeconds: 60)
        let rig = try OnDemandRig(c)
        var input = frames([(0..<200, -60), (5990..<6110, -60)])
        func onset(_ seq: Int64, _ s: Float) { input[input.firstIndex { $0.seq == seq }!] = K.withOnset(input.first { $0.seq == seq }!, strength: s) }
        for seq in stride(from: Int64(0), to: 200, by: 20) { onset(seq, 9) }
        onset(10, 2)   // too weak
        onset(25, 9)   // debounced
        onset(6100, 8)
        var wokeAt: [Int64] = []
        var summaryAfter: Int64? = nil
        for k in stride(from: 0, to: input.count, by: 2) {
            if try rig.drain(Array(input[k..<k + 2])) == 1 {
                wokeAt.append(input[k].seq)
                if summaryAfter == nil && !rig.logs.messages(containing: "alert=onset_summary").isEmpty { summaryAfter = input[k].seq }
            }
        }
        // 0, 20, 40: alerts (the limit of 3 reached); 60…180 suppressed and 25 debounced: no wake-up; 6000: the
        // summary period ends (t0 + 60 s); 6100: an alert again (the alerts of 0, 20, 40 are 60 s old).
        #expect(wokeAt == [0, 20, 40, 6000, 6100])
        #expect(summaryAfter == 6000, "the summary must be logged by the drain of the first frame of the next period")
        let onsets = rig.logs.all.filter { $0.message.hasPrefix("alert=onset ") }.map { K.fields($0.message) }
        #expect(onsets.map { $0["seq"] } == ["0", "20", "40", "6100"])
        #expect(onsets.map { $0["suppressed"] } == ["0", "0", "0", "7"])
        #expect(K.fields(rig.logs.messages(containing: "alert=onset_summary").first ?? "")["suppressed"] == "7")
        #expect(rig.sink.onsetAlerts == 4 && rig.sink.suppressedOnsetAlerts == 7)
    }

    /// A reload that lowers the threshold reaches the DSP stage's test at once: with −5 dBFS a frame at −10
    /// wakes nobody; after `update` to −15 (the reader takes it and sets its new filter), it does, and the
    /// alert is logged from that drain.
    @Test func aLoweredThresholdWakesTheReader() throws {
        var c = AlertSinkTests.level
        c.level.thresholdDB = -5
        c.level.minDurationMs = 0
        let control = try OnDemandRig(c)
        #expect(try control.drain([K.header(seq: 0, level: -30), K.header(seq: 1, level: -10)]) == 0)

        let rig = try OnDemandRig(c)
        let w = rig.waits
        var lower = c
        lower.level.thresholdDB = -15
        rig.sink.update(configuration: lower)
        try rig.waitIdle(after: w)
        #expect(try rig.drain([K.header(seq: 0, level: -30), K.header(seq: 1, level: -10)]) == 1)
        let start = try #require(rig.logs.messages(containing: "state=start").first)
        #expect(K.fields(start)["seq"] == "1" && K.fields(start)["threshold_db"] == "-15")
        // Raised again to −5: the same level wakes nobody (the alert ends first: below the release level).
        var higher = lower
        higher.level.thresholdDB = -5
        #expect(try rig.drain([K.header(seq: 2, level: -40)]) == 1)  // release (minimum duration 0): the end
        let w2 = rig.waits
        rig.sink.update(configuration: higher)
        try rig.waitIdle(after: w2)
        #expect(try rig.drain([K.header(seq: 300, level: -10)]) == 0)
    }
}
