#if canImport(Glibc)
import Glibc
#endif
import EarshotPipeline
import Foundation
import Testing

@testable import EarshotSinks

private typealias K = SinkTestKit2

/// An aggregator driven synchronously (no thread): `prepare` + `ingest`, as its thread does.
private func makeAggregator(windows: [Double], weighting: LevelWeighting = .laf, offset: Float = 0,
                            unit: String = "dBFS") -> (RollingAggregator, K.Publisher) {
    let pub = K.Publisher()
    let agg = RollingAggregator(configuration: .init(windowsSeconds: windows, weighting: weighting), publisher: pub)
    agg.prepare(stream: K.stream(levelOffsetDb: offset, unit: unit), nMels: K.nMels)
    return (agg, pub)
}

private func feed(_ agg: RollingAggregator, _ headers: [FrameHeader], logmel: [Float] = [-10, -20, -30, -40]) {
    logmel.withUnsafeBufferPointer { lm in
        for h in headers { agg.ingest(h, logmel: lm) }
    }
}

private func json(_ line: String) throws -> [String: Any] {
    #expect(line.hasSuffix("\n"))
    let obj = try JSONSerialization.jsonObject(with: Data(line.utf8))
    return try #require(obj as? [String: Any])
}

@Suite("RollingAggregator")
struct RollingAggregatorTests {
    /// The sink thread sleeps until the earliest open window can close (its end + the close margin), then
    /// polls every 20 ms until the closing frame is in; nothing open: the shortest window; never over 1 s.
    @Test func wakesWhenTheNextWindowCanClose() {
        let (agg, _) = makeAggregator(windows: [10, 1])
        #expect(agg.nextDrainMilliseconds(nowWallNs: K.t0) == 1000)
        let (short, _) = makeAggregator(windows: [0.25])
        #expect(short.nextDrainMilliseconds(nowWallNs: K.t0) == 250)
        // Frames from the start of a 1 s window (K.t0 is on a whole second): 30 frames = 0.3 s in.
        feed(agg, (0..<30).map { K.header(seq: $0, level: -20) })
        let windowStart = (K.t0 / 1_000_000_000) * 1_000_000_000
        let end = windowStart + 1_000_000_000
        let now = K.t0 + 30 * K.hopNs
        #expect(agg.nextDrainMilliseconds(nowWallNs: now)
                == Int32((end + RollingAggregator.closeMarginNs - now + 999_999) / 1_000_000))
        // Past the end and the margin, the closing frame not read yet: the audio still missing before the end
        // (0.7 s of the window are not in: frames lag the clock) plus 20 ms, not every 20 ms (attack run: a
        // source stalled with its device open left frames 3.4 s behind and es-rolling woke 50 times a second).
        let latest = K.t0 + 29 * K.hopNs
        #expect(agg.nextDrainMilliseconds(nowWallNs: end + RollingAggregator.closeMarginNs + 1)
                == Int32((end - latest) / 1_000_000 + 20))
        // Only the last frame missing (the usual late drain): 20 ms after the window's last hop.
        feed(agg, (30..<100).map { K.header(seq: $0, level: -20) })
        #expect(agg.nextDrainMilliseconds(nowWallNs: end + RollingAggregator.closeMarginNs + 1) == 30)
        // No frame for more than a second (a stalled source): once a second.
        #expect(agg.nextDrainMilliseconds(nowWallNs: end + RollingAggregator.closeMarginNs + 1, sinceProgressNs: 1_500_000_000) == 1000)
        // Far before the end of a long window: capped at 1 s.
        let (long, _) = makeAggregator(windows: [60])
        feed(long, [K.header(seq: 0, level: -20)])
        #expect(long.nextDrainMilliseconds(nowWallNs: K.t0) == 1000)
    }

    @Test func leqIsTheEnergyMean() throws {
        let (agg, pub) = makeAggregator(windows: [1])
        // 1 s = 100 frames: 50 at −20 dB, 50 at −40 dB, interleaved; then one frame of the next window.
        feed(agg, (0..<100).map { K.header(seq: $0, level: $0 % 2 == 0 ? -20 : -40) })
        #expect(agg.latest(windowSeconds: 1) == nil)
        feed(agg, [K.header(seq: 100, level: 0)])
        let r = try #require(agg.latest(windowSeconds: 1))
        // Hand calculation: 10*log10((10^-2 + 10^-4) / 2) = 10*log10(0.00505) = −22.967 dB.
        #expect(abs(r.leq - (-22.967)) < 0.001)
        #expect(r.lmax == -20 && r.lmin == -40)
        #expect(r.frames == 100 && r.seqFirst == 0 && r.seqLast == 99)
        #expect(r.complete)
        let line = try #require(pub.lines(.rolling).first)
        let o = try json(line)
        #expect(o["type"] as? String == "rolling")
        #expect(o["leq"] as? Double == -22.967)
        #expect(o["level_unit"] as? String == "dBFS")
        #expect(o["window_s"] as? Double == 1)
        #expect(o["frames"] as? Int == 100)
        #expect(o["logmel_mean"] as? [Double] == [-10, -20, -30, -40])
        #expect(o["centroid_hz_mean"] as? Double == 1000)
    }

    @Test func percentilesAreExceedanceLevels() throws {
        let (agg, _) = makeAggregator(windows: [1])
        // Levels −100 … −1 dB in a scrambled order (37 is coprime with 100).
        feed(agg, (0..<100).map { K.header(seq: Int64($0), level: Float(-100 + ($0 * 37) % 100)) })
        feed(agg, [K.header(seq: 100, level: 0)])
        let r = try #require(agg.latest(windowSeconds: 1))
        // numpy.percentile(range(-100, 0), [90, 50, 10]) = −10.9, −50.5, −90.1
        #expect(abs(r.l10 - (-10.9)) < 1e-9)
        #expect(abs(r.l50 - (-50.5)) < 1e-9)
        #expect(abs(r.l90 - (-90.1)) < 1e-9)
        #expect(r.lmax == -1 && r.lmin == -100)
    }

    @Test func calibrationAndWeightingSelectTheLevel() throws {
        let (agg, pub) = makeAggregator(windows: [1], weighting: .lcf, offset: 94, unit: "dB SPL")
        var frames = (0..<101).map { K.header(seq: $0, level: -30) }
        for i in frames.indices { frames[i].features.lcf = -40; frames[i].features.laf = 0 }
        feed(agg, frames)
        let r = try #require(agg.latest(windowSeconds: 1))
        #expect(abs(r.leq - 54) < 1e-9)
        let o = try json(try #require(pub.lines(.rolling).first))
        #expect(o["level_unit"] as? String == "dB SPL")
        #expect(o["weighting"] as? String == "lcf")
    }

    @Test func windowsAreAlignedToWallTime() throws {
        let (agg, pub) = makeAggregator(windows: [1, 10])
        // Start half a second into a second: the first 1 s window is partial (50 frames).
        let start = K.t0 + 500_000_000
        feed(agg, (0..<300).map { K.header(seq: $0, level: -30, wallNs: start + $0 * K.hopNs) })
        let ones = pub.lines(.rolling).map { try! json($0) }.filter { $0["window_s"] as? Double == 1 }
        // Frames span t0+0.5 … t0+3.49: [t0, t0+1), [t0+1, t0+2), [t0+2, t0+3) are closed, [t0+3, t0+4) is open.
        #expect(ones.count == 3)
        let first = ones[0]
        #expect(first["t"] as? Double == Double(K.t0 / 1_000_000_000))
        #expect(first["t_end"] as? Double == Double(K.t0 / 1_000_000_000) + 1)
        #expect(first["frames"] as? Int == 50)
        #expect(first["seq_first"] as? Int == 0 && first["seq_last"] as? Int == 49)
        #expect(ones[1]["frames"] as? Int == 100)
        #expect(ones[1]["seq_first"] as? Int == 50 && ones[1]["seq_last"] as? Int == 149)
        #expect(ones[2]["t"] as? Double == Double(K.t0 / 1_000_000_000) + 2)
        #expect(agg.latest(windowSeconds: 10) == nil)
        agg.flush()
        let ten = try #require(agg.latest(windowSeconds: 10))
        #expect(!ten.complete && ten.frames == 300 && ten.startNs == K.t0)
    }

    /// `complete` only for a window holding all of its audio (attack run: the first window after a start in
    /// mid-window said `complete: true` with 68 frames): not the first window of a start half-way in, not a
    /// window with a gap inside or right after it; yes for a start within one hop of the boundary and for
    /// the windows that follow without a gap.
    @Test func completeMeansTheWholeWindowWasCaptured() throws {
        func completes(_ headers: [FrameHeader]) -> [Bool] {
            let (agg, pub) = makeAggregator(windows: [1])
            feed(agg, headers)
            return pub.lines(.rolling).map { (try? json($0))?["complete"] as? Bool ?? false }
        }
        func run(from start: Int64, count: Int) -> [FrameHeader] {
            (0..<count).map { K.header(seq: Int64($0), level: -30, wallNs: start + Int64($0) * K.hopNs) }
        }
        // Started 0.32 s into a second: the first window is partial; the next two are whole.
        #expect(completes(run(from: K.t0 + 320_000_000, count: 290)) == [false, true, true])
        // Started less than a hop after the boundary: whole from the first window.
        #expect(completes(run(from: K.t0 + 9_000_000, count: 201)) == [true, true])
        // A gap inside the second window (frames 130-149 lost, the next one flagged).
        var gapped = run(from: K.t0, count: 400).filter { !(130..<150).contains($0.seq) }
        if let i = gapped.firstIndex(where: { $0.seq == 150 }) { gapped[i].flags = FrameFlags.discontinuity; gapped[i].gapSamples = 20 * 480 }
        #expect(completes(gapped) == [true, false, true])
        // A gap at the end of the first window: the frame after it opens the second window, flagged.
        var atEnd = run(from: K.t0, count: 300).filter { !(90..<100).contains($0.seq) }
        if let i = atEnd.firstIndex(where: { $0.seq == 100 }) { atEnd[i].flags = FrameFlags.discontinuity; atEnd[i].gapSamples = 10 * 480 }
        #expect(completes(atEnd) == [false, false])
        // Whole windows skipped (a long outage right after a whole window): the window after the outage starts cut.
        let skipped = run(from: K.t0, count: 100) + run(from: K.t0 + 3_500_000_000, count: 150).map { h in
            var h = h; h.seq += 350; if h.seq == 350 { h.flags = FrameFlags.discontinuity }; return h
        }
        #expect(completes(skipped) == [true, false])
    }

    @Test func discontinuitiesAndOnsetsAreCounted() throws {
        let (agg, _) = makeAggregator(windows: [1])
        var frames = (0..<30).map { K.header(seq: $0, level: -30) }
        frames[5] = K.withOnset(frames[5], strength: 9)
        frames[6] = K.withOnset(frames[6], strength: 9)
        // 50 frames lost: the next frame is 0.8 s in, flagged; the window keeps going to its end.
        for i in 0..<20 {
            var h = K.header(seq: Int64(80 + i), level: -30)
            if i == 0 { h.flags = FrameFlags.discontinuity | FrameFlags.xrun; h.gapSamples = 50 * 480 }
            frames.append(h)
        }
        // A second gap that jumps straight into the next window closes this one.
        var late = K.header(seq: 250, level: -30)
        late.flags = FrameFlags.discontinuity
        frames.append(late)
        feed(agg, frames)
        let r = try #require(agg.latest(windowSeconds: 1))
        #expect(r.frames == 50 && r.discontinuities == 1 && r.onsets == 2)
        #expect(r.seqFirst == 0 && r.seqLast == 99)
        agg.flush()
        let next = try #require(agg.latest(windowSeconds: 1))
        #expect(next.frames == 1 && next.discontinuities == 1 && next.startNs == K.t0 + 2_000_000_000)
    }

    @Test func runsAsASinkOnTheBus() throws {
        let bus = FrameBus(capacity: 1024, nMels: K.nMels, nMFCC: 2)
        let pub = K.Publisher()
        let agg = RollingAggregator(configuration: .init(windowsSeconds: [1]), publisher: pub)
        try agg.start(bus: bus, stream: K.stream())
        K.publish((0..<250).map { K.header(seq: $0, level: $0 < 100 ? -20 : -40) }, on: bus)
        agg.stop()
        let lines = pub.lines(.rolling).map { try! json($0) }
        #expect(lines.count == 3)  // two complete windows + the partial one flushed at stop
        #expect(lines.map { $0["leq"] as? Double } == [-20, -40, -40])
        #expect(lines.map { $0["complete"] as? Bool } == [true, true, false])
        #expect(lines[0]["logmel_mean"] as? [Double] == [-50, -51, -52, -53])
        #expect(agg.dropped == 0)
    }

    /// A reload that restarts the sinks (another sink's settings, a window added) on the running bus: the
    /// successor takes over the open windows it keeps and reads on from the frame where the old sink stopped,
    /// so each window closes once and complete, with every frame — as an uninterrupted sink gives — although
    /// frames were published while no rolling sink was attached. A window the successor drops (or whose
    /// measure changed) is published partial by the handover's end. Before, the old sink flushed its windows
    /// as partial and the new one started mid-window: two incomplete windows of every length per reload.
    @Test func sinkRestartKeepsTheOpenWindows() throws {
        let bus = FrameBus(capacity: 1024, nMels: K.nMels, nMFCC: 2)
        let pub = K.Publisher()
        let frames = (0..<450).map { K.header(seq: $0, level: $0 < 100 ? -20 : -40) }
        let first = RollingAggregator(configuration: .init(windowsSeconds: [1, 4]), publisher: pub)
        try first.start(bus: bus, stream: K.stream())
        K.publish(Array(frames[0..<150]), on: bus)
        first.stop(handingOver: true)
        K.publish(Array(frames[150..<170]), on: bus)  // nobody attached
        let second = RollingAggregator(configuration: .init(windowsSeconds: [1, 2]), publisher: pub)  // 4 s dropped, 2 s added
        second.inherit(from: first, sameBus: true)
        try second.start(bus: bus, stream: K.stream())
        first.finishHandover()
        K.publish(Array(frames[170..<450]), on: bus)
        second.stop()
        let lines = pub.lines(.rolling).map { try! json($0) }
        let ones = lines.filter { $0["window_s"] as? Double == 1 }
        #expect(ones.map { $0["frames"] as? Int } == [100, 100, 100, 100, 50], "\(ones)")
        #expect(ones.map { $0["complete"] as? Bool } == [true, true, true, true, false])
        #expect(ones.map { $0["seq_first"] as? Int } == [0, 100, 200, 300, 400])
        // The 4 s window the successor dropped: published partial once, by the handover (frames 0…149).
        let fours = lines.filter { $0["window_s"] as? Double == 4 }
        #expect(fours.count == 1 && fours.first?["frames"] as? Int == 150 && fours.first?["complete"] as? Bool == false)
        // The new 2 s window starts mid-window (partial), then whole.
        let twos = lines.filter { $0["window_s"] as? Double == 2 }
        #expect(twos.map { $0["complete"] as? Bool } == [false, true, false], "\(twos)")
        #expect(second.dropped == 0 && first.dropped == 0)
        #expect(second.latest(windowSeconds: 1)?.seqFirst == 400)
    }

    /// Frames the bus overwrote while no rolling sink was attached (a long restart on a small ring) are lost to
    /// the successor: the window that misses them is not `complete`, although its remaining frames follow the
    /// previous window without a flagged discontinuity.
    @Test func framesLostOnTheBusMakeTheWindowIncomplete() throws {
        let bus = FrameBus(capacity: 64, nMels: K.nMels, nMFCC: 2)
        let pub = K.Publisher()
        let frames = (0..<450).map { K.header(seq: $0, level: -30) }
        // Attached sinks keep up: 4 frames at a time, then time for the reader (woken at half the ring).
        func paced(_ r: Range<Int>) {
            for start in stride(from: r.lowerBound, to: r.upperBound, by: 4) {
                K.publish(Array(frames[start..<min(start + 4, r.upperBound)]), on: bus)
                usleep(20_000)
            }
        }
        let first = RollingAggregator(configuration: .init(windowsSeconds: [1]), publisher: pub)
        try first.start(bus: bus, stream: K.stream())
        paced(0..<150)
        first.stop(handingOver: true)
        K.publish(Array(frames[150..<300]), on: bus)  // nobody attached: the 64-frame ring keeps 236…299
        let second = RollingAggregator(configuration: .init(windowsSeconds: [1]), publisher: pub)
        second.inherit(from: first, sameBus: true)
        try second.start(bus: bus, stream: K.stream())
        first.finishHandover()
        paced(300..<450)
        second.stop()
        #expect(first.dropped == 0 && second.dropped > 0, "dropped \(first.dropped) / \(second.dropped)")
        let ones = pub.lines(.rolling).map { try! json($0) }
        #expect(ones.first?["complete"] as? Bool == true && ones.first?["seq_first"] as? Int == 0, "\(ones)")
        // The window the successor resumed in (frames 200…299, the first ones overwritten): not complete.
        let resumed = try #require(ones.first { (200..<300).contains($0["seq_first"] as? Int ?? -1) }, "\(ones)")
        #expect(resumed["complete"] as? Bool == false && (resumed["discontinuities"] as? Int ?? 0) >= 1, "\(resumed)")
    }
}
