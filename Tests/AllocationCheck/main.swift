// Counts heap allocations made while the real-time path runs: the DSP thread (ring → framing → analysis →
// FrameBus publish with eventfd wake-ups) and the ALSA capture thread reading the `file` plugin.
// Must run with LD_PRELOAD=<build dir>/libMallocInterposerSwift.so; prints one JSON line per phase.
#if canImport(Glibc)
import Glibc
#endif
import EarshotCapture
import EarshotDSP
@_spi(Testing) import EarshotPipeline
import EarshotRealtime
import EarshotTestKit
import Foundation
import MallocInterposerSwift

MallocInterposerSwift.initialize()

@MainActor func report(_ phase: String, _ extra: String) {
    let s = MallocInterposerSwift.getStatistics()
    print("{\"phase\":\"\(phase)\",\"mallocs\":\(s.mallocCount),\"bytes\":\(s.mallocBytesCount),\"frees\":\(s.freeCount),\(extra)}")
}

@MainActor func waitUntil(_ seconds: Double, _ condition: () -> Bool) -> Bool {
    let end = Clock.monotonicNanoseconds() + Int64(seconds * 1e9)
    while Clock.monotonicNanoseconds() < end {
        if condition() { return true }
        usleep(1_000)
    }
    return condition()
}

// MARK: phase 0 — control: the counter sees an allocation (proves the interposer is loaded and hooked)
// (the allocation happens on another thread, as the real-time threads' would)
let go = WakeSignal(), done = WakeSignal()
let (other, _) = RealtimeThread.start(name: "es-control", fifoPriority: 0) {
    _ = go.wait(timeoutNanoseconds: 5_000_000_000)
    let p = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 16)
    done.signal()
    p.deallocate()
}
MallocInterposerSwift.hook()
go.signal()
_ = done.wait(timeoutNanoseconds: 5_000_000_000)
MallocInterposerSwift.unhook()
RealtimeThread.join(other)
report("control", "\"expected_mallocs\":1")
MallocInterposerSwift.initialize()  // resets the counters

// MARK: phase 1a — the analyzer alone with each output mask `earshot analyze --features` can select, and the
// level meter with IEC 61260-1 band filters on (levels.bands: octave / third; a split every third frame)
@MainActor func checkAnalyzer(_ name: String, _ config: AnalyzerConfig, _ outputs: AnalyzerOutputs) throws {
    let a = try FrameAnalyzer(config: config, outputs: outputs)
    let frame = (0..<1024).map { Float(0.2 * sin(Double($0) * 0.05)) + ($0 % 97 == 0 ? 0.5 : 0) }
    let logmel = UnsafeMutableBufferPointer<Float>.allocate(capacity: 64)
    let mfcc = UnsafeMutableBufferPointer<Float>.allocate(capacity: 13)
    var features = FrameFeatures()
    frame.withUnsafeBufferPointer { f in
        for _ in 0..<5 { _ = a.process(frame: f, newSampleCount: 480, features: &features, logmel: logmel, mfcc: mfcc) }
        MallocInterposerSwift.initialize()
        MallocInterposerSwift.hook()
        for i in 0..<200 {
            a.levelMeter.split = i % 3 == 0 ? 100 : Int.max
            _ = a.process(frame: f, newSampleCount: 480, features: &features, logmel: logmel, mfcc: mfcc)
            _ = a.levelMeter.bandFrame
        }
        MallocInterposerSwift.unhook()
    }
    report("analyzer_" + name, "\"frames\":200")
    logmel.deallocate(); mfcc.deallocate()
}
for (name, outputs) in [("all", AnalyzerOutputs.all), ("spectral", .spectral), ("statistics", .statistics),
                        ("levels", .levels), ("mfcc", .mfcc), ("logmel", .logmel), ("none", .none)] {
    try checkAnalyzer(name, AnalyzerConfig(), outputs)
}
for bands in [BandResolution.octave, .third] {
    var c = AnalyzerConfig()
    c.bands = bands
    try checkAnalyzer("levels_bands_" + bands.rawValue, c, .levels)
}
MallocInterposerSwift.initialize()

// MARK: phase 1b — DSP thread fed by hand-written periods (tone + clicks, one xrun gap, one ring overrun),
// with third-octave bands on (the level split and band copy into the frame header are on the path)
var config = AnalyzerConfig()
config.bands = .third
let analyzer = try FrameAnalyzer(config: config)
let samples = SPSCRing<Float>(minimumCapacity: 1 << 16)
let stamps = SPSCRing<CaptureStamp>(minimumCapacity: 4096)
let wake = WakeSignal()
let bus = FrameBus(capacity: 256, nMels: config.nMels, nMFCC: config.nMFCC, spectrumBins: config.binCount)
bus.spectrumTap!.every = 2  // a `spectrum` subscriber: the DSP thread copies every other frame's spectrum too
// Clips enabled: the DSP thread copies each frame's new samples into the clip tap (never drained here, so it
// also laps itself: the overwrite path).
let clipTap = ClipTap(sampleRate: 48_000, hop: config.hop, seconds: 1)
let processor = FrameProcessor(analyzer: analyzer, output: bus, measureTiming: true, clipTap: clipTap)
// 2-channel capture: most periods carry a side signal (the stereo level path), the others none (the switch).
let side = SPSCRing<Float>(minimumCapacity: 1 << 16)
let dsp = DSPThread(processor: processor, samples: samples, side: side, stamps: stamps, wake: wake, maxPeriodFrames: 480)
let idleConsumer = bus.attach()!  // attached, never read: its wake-ups and drops are on the path too
// An on-demand consumer (the alert sink's kind), read by this thread between batches so that it parks again:
// the DSP thread judges every frame published while it is parked against its wake filter — one that never
// matches (a level test and an onset test evaluated for every frame) and one that matches every frame
// (a wake-up per drain), alternately.
let onDemand = bus.attach(wakes: false)!
let onDemandCopy = FrameCopy(nMels: config.nMels, nMFCC: config.nMFCC)
var onDemandWakes = 0
@MainActor func parkOnDemand(_ batch: Int) {
    onDemandWakes += Int(onDemand.notifier.consume())
    while case .frame = onDemand.next(into: onDemandCopy) {}
    let filter = batch % 2 == 0
        ? FrameWakeFilter(level: .laf, above: true, levelOffset: 0, threshold: 100, quietFromNs: 0, quietUntilNs: 1, onsetMinStrength: 1e9)
        : FrameWakeFilter(deadlineNs: 0)
    while onDemand.setWakeFilter(filter) { while case .frame = onDemand.next(into: onDemandCopy) {} }
}
let period = (0..<480).map { Float(0.2 * sin(2 * Double.pi * 440 * Double($0) / 48_000)) }
let click = (0..<480).map { $0 < 16 ? Float(0.9) : Float(0) }
// Hostile float samples take FrameProcessor's sanitizing path (SampleGuard): it must not allocate either.
let hostile = period.enumerated().map { $0.offset == 7 ? Float.nan : $0.offset == 300 ? 1e20 : $0.offset == 301 ? -Float.infinity : $0.element }
final class Feeder {
    var written: Int64 = 0
    var mono: Int64 = 1_000_000_000
}
let feeder = Feeder()

@MainActor func feed(_ count: Int, xrunAt: Int? = nil) {
    var written = feeder.written, mono = feeder.mono
    defer { feeder.written = written; feeder.mono = mono }
    for i in 0..<count {
        let src = i % 25 == 0 ? click : i % 25 == 12 ? hostile : period
        let sideFirst: Int64 = i % 3 == 1 ? -1 : Int64(side.written)
        if sideFirst >= 0 { period.withUnsafeBufferPointer { side.write($0) } }
        src.withUnsafeBufferPointer { samples.write($0) }
        var flags: UInt32 = written == 0 ? CaptureStamp.Discontinuity.start : 0
        var gap: Int64 = 0
        if i == xrunAt { flags |= CaptureStamp.Discontinuity.xrun; gap = 960; mono += 20_000_000 }
        stamps.write(CaptureStamp(firstSample: written, frames: 480, monotonicNs: mono, wallNs: mono, discontinuity: flags, gapSamples: gap, sideFirst: sideFirst))
        written += 480
        mono += 10_000_000
        wake.signal()
    }
}

dsp.start()
feed(200)  // warm-up: first-touch of every buffer, lazy runtime metadata
_ = waitUntil(10) { dsp.frames >= 190 }
let before = dsp.frames
MallocInterposerSwift.hook()
for batch in 0..<50 {  // 1000 periods in batches the DSP thread keeps up with, one xrun in the middle
    feed(20, xrunAt: batch == 25 ? 10 : nil)
    if batch % 10 == 5 { var o = OnsetPickerConfig(); o.delta = Float(batch); dsp.retune(onset: o) }  // retune mailbox (SIGHUP path)
    let target = before + (batch + 1) * 20 - 5
    _ = waitUntil(20) { dsp.frames >= target }
    if batch % 2 == 0 && batch > 0 {
        // Parked with the match-every-frame filter through this batch: the wake-up comes at the end of the DSP
        // thread's drain (wake-ups are deferred to it and judged by the filter set then), which may run into
        // the next batch when the thread lags; wait for it here, before the filter changes back.
        var p = pollfd(fd: onDemand.notifier.fileDescriptor, events: Int16(POLLIN), revents: 0)
        _ = poll(&p, 1, 2_000)
    }
    parkOnDemand(batch)
}
// Ring overrun: 200 periods (96000 samples) at once into a 65536-sample ring while the DSP thread is busy.
// The stall is taken at the top of the DSP loop: wake the thread so it gets there now (not at its 100 ms timer),
// then feed well inside the stall (before, a 50 ms stall expired during a 60 ms sleep and the overrun depended
// on the feeder outrunning a running DSP thread).
dsp.injectStall(milliseconds: 500)
wake.signal()
usleep(20_000)
feed(200)
_ = waitUntil(20) { dsp.ringOverrunSamples > 0 && samples.available == 0 }
usleep(50_000)
MallocInterposerSwift.unhook()
report("dsp", "\"frames\":\(dsp.frames - before),\"on_demand_frames\":\(onDemand.position),\"on_demand_wakes\":\(onDemandWakes),\"discontinuities\":\(dsp.discontinuities),\"ring_overrun_samples\":\(dsp.ringOverrunSamples),\"nonfinite_samples\":\(dsp.nonFiniteSamples),\"retunes\":\(dsp.retunesApplied),\"clip_tap_samples\":\(clipTap.samples.written)")
dsp.stop()
_ = idleConsumer
_ = onDemand

// MARK: phase 2 — the ALSA capture thread reading the file plugin (real libasound)
let dir = try ALSAFilePlugin.makeTemporaryDirectory(prefix: "earshot-alloc")
var raw = [UInt8]()
for _ in 0..<200 { period.withUnsafeBytes { raw.append(contentsOf: $0) } }
let plugin = try ALSAFilePlugin(directory: dir, bytes: raw)
plugin.install()
let capSamples = SPSCRing<Float>(minimumCapacity: 1 << 20)
let capStamps = SPSCRing<CaptureStamp>(minimumCapacity: 1 << 14)
/// Runs `capture` for 2000 periods (after 50 of warm-up) with the malloc counter on; returns the periods counted.
@MainActor func measure(_ capture: CaptureThread) -> Int {
    capture.start()
    _ = waitUntil(10) { capture.periods >= 50 }
    let before = capture.periods
    MallocInterposerSwift.hook()
    _ = waitUntil(10) { capture.periods >= before + 2000 }
    MallocInterposerSwift.unhook()
    let during = capture.periods - before
    capture.stop()
    return during
}
let capture = CaptureThread(
    config: CaptureConfig(device: plugin.pcmName, format: .float32), samples: capSamples, stamps: capStamps, wake: WakeSignal())
report("capture", "\"periods\":\(measure(capture))")

// MARK: phase 2b — the same with 2 channels: the capture thread splits mid and side into two rings
let capSide = SPSCRing<Float>(minimumCapacity: 1 << 20)
let stereoCapture = CaptureThread(
    config: CaptureConfig(device: plugin.pcmName, channels: 2, format: .float32), samples: capSamples, side: capSide,
    stamps: capStamps, wake: WakeSignal())
let stereoPeriods = measure(stereoCapture)
report("capture_stereo", "\"periods\":\(stereoPeriods),\"side_samples\":\(capSide.written)")

// MARK: phase 2c — the daemon's live path: a LivePipeline, whose DSP stage runs on the capture thread after
// each period (the file plugin again, 2 channels: side signal and level split on the path too)
let pipeline = LivePipeline(capture: CaptureConfig(device: plugin.pcmName, channels: 2, format: .float32),
                            analyzer: try FrameAnalyzer(config: config), ringSeconds: 2)
pipeline.start()
_ = waitUntil(10) { pipeline.dsp.frames >= 50 }
let pipelineBefore = (pipeline.capture.periods, pipeline.dsp.frames)
MallocInterposerSwift.hook()
_ = waitUntil(10) { pipeline.capture.periods >= pipelineBefore.0 + 2000 }
MallocInterposerSwift.unhook()
report("capture_dsp", "\"periods\":\(pipeline.capture.periods - pipelineBefore.0),\"frames\":\(pipeline.dsp.frames - pipelineBefore.1),\"inline\":\(pipeline.dsp.runsOnCaptureThread)")
pipeline.stop()

// MARK: phase 2d — the same with 4 channels: every channel's samples go through the side ring to the level
// meter's per-channel filters and (third-octave) band banks
var config4 = config
config4.levelChannels = 4
let pipeline4 = LivePipeline(capture: CaptureConfig(device: plugin.pcmName, channels: 4, format: .float32),
                             analyzer: try FrameAnalyzer(config: config4), ringSeconds: 2)
pipeline4.start()
_ = waitUntil(10) { pipeline4.dsp.frames >= 50 }
let pipeline4Before = (pipeline4.capture.periods, pipeline4.dsp.frames, pipeline4.side.written, pipeline4.dsp.sideReads)
MallocInterposerSwift.hook()
_ = waitUntil(10) { pipeline4.capture.periods >= pipeline4Before.0 + 2000 }
MallocInterposerSwift.unhook()
report("capture_dsp_4ch", "\"periods\":\(pipeline4.capture.periods - pipeline4Before.0),\"frames\":\(pipeline4.dsp.frames - pipeline4Before.1),\"side_floats\":\(pipeline4.side.written - pipeline4Before.2),\"side_reads\":\(pipeline4.dsp.sideReads - pipeline4Before.3),\"inline\":\(pipeline4.dsp.runsOnCaptureThread)")
pipeline4.stop()
try? FileManager.default.removeItem(at: dir)
