#if canImport(Glibc)
import Glibc
#endif
public import EarshotPipeline
import EarshotDSP
import EarshotRealtime
import Synchronization

/// The per-frame level a rolling window or a level alert is computed from.
public enum LevelWeighting: String, Sendable, Equatable, CaseIterable {
    /// A-weighted, Fast (125 ms): ``FrameFeatures/laf``.
    case laf
    /// A-weighted, Slow (1 s).
    case las
    /// C-weighted, Fast.
    case lcf
    /// Unweighted (Z), Fast.
    case lzf
    /// Frame RMS over `n_fft` samples (``FrameFeatures/rmsDbfs``).
    case rmsDbfs = "rms_dbfs"

    /// The frame's level in dBFS for this weighting (calibration not applied).
    @inline(__always)
    public func dbfs(_ header: FrameHeader) -> Float {
        switch self {
        case .laf: header.features.laf
        case .las: header.features.las
        case .lcf: header.features.lcf
        case .lzf: header.features.lzf
        case .rmsDbfs: header.features.rmsDbfs
        }
    }
}

/// Results of one closed tumbling window.
public struct RollingResult: Sendable, Equatable {
    /// Window length, seconds.
    public var windowSeconds: Double
    /// Nominal window start `k * W` and end `(k + 1) * W`, UNIX nanoseconds.
    public var startNs: Int64
    public var endNs: Int64
    /// `seq` of the first and last frame in the window.
    public var seqFirst: Int64
    public var seqLast: Int64
    /// Frames in the window (fewer than `W / hop` for a partial window: after start, a gap, or at stop).
    public var frames: Int
    /// Onsets decided by frames of this window.
    public var onsets: Int
    /// Frames flagged ``FrameFlags/discontinuity`` in this window.
    public var discontinuities: Int
    /// Leq,T of the weighting's frequency weighting (`laf`/`las`: LAeq,T; `lcf`: LCeq,T; `lzf`: LZeq,T),
    /// integrated from every sample; for `rms_dbfs` (or without level data) the energy mean
    /// `10*log10(mean(10^(L/10)))` of the per-frame level. Level unit.
    public var leq: Double
    /// Largest / smallest value of the weighting's time-weighted level over every sample of the window
    /// (`laf`: LAFmax/LAFmin, `las`: LASmax/LASmin, …); for `rms_dbfs` (or without level data) over the frames.
    public var lmax: Double
    public var lmin: Double
    /// Exceedance levels of the weighting's level **sampled once per frame** (every hop; for `laf` these are
    /// LAF10, LAF50, LAF90 with a hop sampling interval): `l10` is exceeded 10 % of the time (the 90th percentile),
    /// `l50` the median, `l90` the 10th percentile (linear interpolation between order statistics, numpy's default).
    public var l10: Double
    public var l50: Double
    public var l90: Double
    /// Arithmetic mean of the spectral centroid, Hz.
    public var centroidHzMean: Double
    /// Arithmetic mean of each log-mel band's dB values (a mean of dB, not an energy mean).
    public var logmelMean: [Float]
    /// Whether the window holds all of its audio: `false` for the first window after a start more than a hop
    /// into it, a window holding a frame flagged as a discontinuity, one whose frames end more than 1.5 hops
    /// before its end, and the partial window flushed by ``RollingAggregator/stop()``.
    public var complete: Bool
    /// Integrated levels from every sample (nil when the frames carried no level data).
    public var levels: RollingLevels?
    /// Band Leq (with `levels.bands` on).
    public var bands: RollingBands?

    public var t: Double { Double(startNs) / 1e9 }
    public var tEnd: Double { Double(endNs) / 1e9 }
}

/// Tumbling-window level statistics (the `rolling` stream): Leq, Lmax, Lmin, L10/L50/L90, onset count,
/// mean centroid and mean log-mel per window, for each configured window length.
///
/// Alignment: windows are aligned to the frames' capture time `wallNs` (the protocol's `t`): window `k` of
/// length `W` holds the frames whose first sample was captured in `[k*W, (k+1)*W)` UNIX time, so live
/// windows start on whole seconds/minutes of the wall clock. Offline (`wallNs = firstSample / sampleRate`)
/// this is the same as aligning on the stream timeline, so `earshot analyze` gives identical windows.
/// A window is closed, published and made the ``latest(windowSeconds:)`` result when the first frame of a
/// later window arrives (a step of the clock backwards also closes it). A gap (discontinuity) does not
/// close a window by itself; the frames after it are counted in whichever window their time falls in, and
/// the window reports how many discontinuities it contains and is not `complete`.
///
/// Threading: frames are read on the sink's own thread (`es-rolling`). All per-window storage is
/// preallocated from the configuration (at most `ceil(W * sampleRate / hop) + 2` frames per window); the
/// per-frame path does no allocation. Allocation happens once per closed window (the published line and the
/// result's `logmelMean`).
public final class RollingAggregator: ConfigurableSink, @unchecked Sendable {
    /// Mirrors the daemon's `rolling.*` section (`windows_s`) plus the level choice.
    public struct Configuration: Sendable, Equatable {
        /// Window lengths in seconds (each > 0).
        public var windowsSeconds: [Double]
        /// Per-frame level used for Leq/Lmax/Lmin/Lxx.
        public var weighting: LevelWeighting

        public init(windowsSeconds: [Double] = [1, 10, 60], weighting: LevelWeighting = .laf) {
            self.windowsSeconds = windowsSeconds
            self.weighting = weighting
        }
    }

    public let name = "rolling"
    /// Windows and weighting are fixed while it runs: a change restarts it.
    public var configSection: String { "rolling" }
    public let configuration: Configuration
    let publisher: (any MessagePublisher)?
    /// Set before ``start(bus:stream:)`` to record this sink's hand-off latency.
    public var latencyRecorder: StageRecorder?

    /// Wakes when the next window may close (``nextDrainMilliseconds(nowWallNs:)``), at least once a second.
    let reader = BusReader(threadName: "es-rolling", delivery: .batch(intervalMilliseconds: 1000))
    var windows: [Window] = []
    var levelOffset: Double = 0
    var levelUnit = "dBFS"
    /// One hop in nanoseconds (a window whose first frame starts within it counts as covered from its start).
    var hopNs: Int64 = 10_000_000
    let latestResults = Mutex<[RollingResult?]>([])

    /// - Parameters:
    ///   - configuration: window lengths and weighting.
    ///   - publisher: where `{"type":"rolling",...}` lines go (the socket publisher); nil to only keep
    ///     ``latest(windowSeconds:)``.
    public init(configuration: Configuration = Configuration(), publisher: (any MessagePublisher)?) {
        precondition(configuration.windowsSeconds.allSatisfy { $0 > 0 }, "rolling windows must be > 0 s")
        self.configuration = configuration
        self.publisher = publisher
    }

    public var dropped: Int { reader.dropped }

    /// The most recent closed window of each configured length, in configuration order.
    public func latest() -> [RollingResult] {
        latestResults.withLock { $0.compactMap { $0 } }
    }

    /// The most recent closed window of length `windowSeconds`, if any.
    public func latest(windowSeconds: Double) -> RollingResult? {
        latestResults.withLock { $0.first { $0?.windowSeconds == windowSeconds } ?? nil }
    }

    public func start(bus: FrameBus, stream: StreamInfo) throws {
        prepare(stream: stream, nMels: bus.nMels)
        do {
            try startReader(bus: bus)
        } catch {
            flush()  // windows taken over from a predecessor are published (partial), not lost
            throw error
        }
    }

    func startReader(bus: FrameBus) throws {
        try reader.start(bus: bus, recorder: latencyRecorder, onFrame: { [self] frame in
            ingest(frame.header, logmel: UnsafeBufferPointer(frame.logmel))
        }, afterDrain: { [self] stopping in
            if stopping && !handingOver.load(ordering: .acquiring) { flush() }
            let mono = Clock.monotonicNanoseconds()
            if latestFrameWallNs != progressFrameWallNs { progressFrameWallNs = latestFrameWallNs; progressMonoNs = mono }
            return nextDrainMilliseconds(nowWallNs: mono &+ Clock.wallMinusMonotonicNanoseconds(),
                                         sinceProgressNs: mono &- progressMonoNs)
        })
    }

    /// How long the sink thread may sleep: a window closes with the first frame past its end, which is read
    /// about a frame and a period after that end, so it wakes `closeMarginNs` after the earliest end of an
    /// open window, then every 20 ms until that frame is in. Nothing open: the shortest window (a window
    /// opened meanwhile cannot close sooner). Not every 100 ms: the rolling sink has nothing to do between
    /// window ends (one wake-up per second with the default 1 s windows instead of ten).
    ///
    /// Late (the margin has passed without the closing frame): if frames still arrive, it waits for the audio
    /// still missing before the window's end (≥ 20 ms) — frames that lag the clock for good (a source that
    /// stalled while its device stayed open) would otherwise make that every 20 ms for as long as the lag
    /// lasts; if no frame has arrived for a second (the source is stalled), once a second.
    /// - Parameter sinceProgressNs: time since a drain last brought a new frame (sink thread's bookkeeping).
    func nextDrainMilliseconds(nowWallNs: Int64, sinceProgressNs: Int64 = 0) -> Int32 {
        var earliest = Int64.max
        var shortest = Int64.max
        for w in windows {
            shortest = min(shortest, w.lengthNs)
            if w.count > 0 { earliest = min(earliest, (w.index &+ 1) &* w.lengthNs) }
        }
        if earliest == .max { return shortest == .max ? 1000 : Int32(clamping: min(1000, shortest / 1_000_000)) }
        let wait = earliest &+ Self.closeMarginNs &- nowWallNs
        if wait <= 0 {
            if sinceProgressNs > 1_000_000_000 { return 1000 }
            guard let latest = latestFrameWallNs else { return 20 }
            return Int32(clamping: min(1000, max(20, (earliest &- latest) / 1_000_000 &+ 20)))
        }
        return Int32(clamping: min(1000, (wait + 999_999) / 1_000_000))
    }

    /// Wall time of the newest frame ingested (sink thread), and the bookkeeping of when it last changed.
    var latestFrameWallNs: Int64?
    var progressFrameWallNs: Int64?
    var progressMonoNs: Int64 = 0

    /// After a window's end: how long until the frame that closes it is usually read (see above).
    static let closeMarginNs: Int64 = 100_000_000

    /// Drains what is queued, publishes the partial windows (`"complete":false`), stops. Idempotent.
    public func stop() { reader.stop() }

    /// On a reload that restarts the sinks: drains and stops, but keeps the open windows for the successor
    /// (``inherit(from:sameBus:)``), so a reload does not cut the windows in progress into two partial ones —
    /// an hour's LAeq survives a threshold or weighting change elsewhere.
    public func stop(handingOver: Bool) {
        self.handingOver.store(handingOver, ordering: .releasing)
        reader.stop()
    }

    /// Publishes (partial) the windows no successor took over.
    public func finishHandover() { flush() }

    /// On the same bus, a successor takes over every open window whose length, weighting, calibration,
    /// hop and sample rate it keeps (taken in ``prepare(stream:nMels:)``, where its own are known) and reads on
    /// from the frame where this one stopped: the windows close once, complete, as if nothing had restarted.
    /// A rebuilt pipeline (`sameBus` false) flags a discontinuity anyway: nothing is taken over.
    public func inherit(from previous: any Sink, sameBus: Bool) {
        guard sameBus, let old = previous as? RollingAggregator, old !== self else { return }
        predecessor = old
        latestFrameWallNs = old.latestFrameWallNs
        reader.resumeAt = old.reader.stoppedAt
    }

    let handingOver = Atomic<Bool>(false)
    /// The stopped sink whose windows ``prepare(stream:nMels:)`` may take over (then nil).
    var predecessor: RollingAggregator?

    /// Allocates the windows for `stream` (called by `start`; tests call it to drive ``ingest`` directly).
    func prepare(stream: StreamInfo, nMels: Int) {
        levelOffset = Double(stream.levelOffsetDb)
        levelUnit = stream.levelUnit
        hopNs = Int64(stream.hop) * 1_000_000_000 / Int64(max(stream.sampleRate, 1))
        let framesPerSecond = Double(stream.sampleRate) / Double(stream.hop)
        let old = predecessor
        predecessor = nil
        var carried: [RollingResult?] = []
        windows = configuration.windowsSeconds.map { w in
            let capacity = Int((w * framesPerSecond).rounded(.up)) + 2
            if let old, old.levelUnit == levelUnit, old.hopNs == hopNs,
               let i = old.windows.firstIndex(where: {
                   $0.seconds == w && $0.weighting == configuration.weighting && $0.offset == levelOffset
                       && $0.nMels == nMels && $0.capacity == capacity && $0.sampleRate == stream.sampleRate
               }) {
                let taken = old.windows.remove(at: i)
                carried.append(old.latest(windowSeconds: w))
                return taken
            }
            carried.append(nil)
            return Window(seconds: w, capacity: capacity, nMels: nMels,
                          weighting: configuration.weighting, offset: levelOffset, sampleRate: stream.sampleRate)
        }
        latestResults.withLock { $0 = carried }
    }

    /// Adds one frame to every window, closing the windows it has moved past. Sink thread only.
    func ingest(_ h: FrameHeader, logmel: UnsafeBufferPointer<Float>) {
        latestFrameWallNs = h.wallNs
        let busLevel = configuration.weighting.dbfs(h)
        let level = Double(busLevel) + levelOffset
        // Frames this sink lost on the bus (it fell behind, or the bus overwrote them between a predecessor's
        // stop and this sink's resume) lie before this frame: a gap like a flagged discontinuity (review of
        // this session: a taken-over window read `complete` although frames were missing).
        let dropped = reader.dropped
        let afterLoss = dropped != seenDropped
        seenDropped = dropped
        for w in windows {
            let k = floorDiv(h.wallNs, w.lengthNs)
            var follows = false
            if w.count > 0 && k != w.index {
                follows = k == w.index &+ 1 && !h.isDiscontinuity && !afterLoss
                // Whole: from its start, without a gap, and its last frame started about a hop before its end
                // (half a hop of slack for the jitter of capture times between periods).
                let toEnd = (w.index &+ 1) &* w.lengthNs &- w.lastWallNs
                close(w, complete: w.coveredFromStart && w.discontinuities == 0 && toEnd <= hopNs &+ hopNs / 2)
            }
            if w.count == 0 {
                w.begin(index: k, seq: h.seq)
                w.coveredFromStart = follows || h.wallNs &- k &* w.lengthNs < hopNs
            }
            w.add(h, level: level, busLevel: busLevel, logmel: logmel)
            if afterLoss && !h.isDiscontinuity { w.discontinuities += 1 }
            w.addLevels(h.levels, bands: h.bands)
        }
    }

    /// ``BusReader/dropped`` as of the last frame ingested (sink thread).
    var seenDropped = 0

    /// Publishes every non-empty window as partial.
    func flush() {
        for w in windows where w.count > 0 { close(w, complete: false) }
    }

    func close(_ w: Window, complete: Bool) {
        let result = w.finish(complete: complete)
        if let i = windows.firstIndex(where: { $0 === w }) {
            latestResults.withLock { $0[i] = result }
        }
        if let publisher {
            publisher.publish(.rolling, line: Self.encode(result, levelUnit: levelUnit, weighting: configuration.weighting),
                              wallNs: result.startNs)
        }
    }

    /// The `rolling` line of a result.
    static func encode(_ r: RollingResult, levelUnit: String, weighting: LevelWeighting) -> [UInt8] {
        RollingMessage(
            windowSeconds: r.windowSeconds, t: r.t, tEnd: r.tEnd, seqFirst: r.seqFirst, seqLast: r.seqLast,
            frames: r.frames, complete: r.complete, levelUnit: levelUnit, weighting: weighting.rawValue, leq: r.leq,
            lmax: r.lmax, lmin: r.lmin, l10: r.l10, l50: r.l50, l90: r.l90, onsets: r.onsets,
            discontinuities: r.discontinuities, centroidHzMean: r.centroidHzMean, logmelMean: r.logmelMean.map(Double.init),
            levels: r.levels, bands: r.bands
        ).line()
    }

    /// One window length's accumulator; storage preallocated for `capacity` frames.
    final class Window {
        let seconds: Double
        let lengthNs: Int64
        let capacity: Int
        let nMels: Int
        /// The frames' levels as they came on the bus (`Float`, before the calibration offset, which is added
        /// to the percentiles): the percentiles need them all, and half the bytes of `Double` lose nothing.
        let levels: UnsafeMutableBufferPointer<Float>
        let logmelSum: UnsafeMutableBufferPointer<Double>
        var index: Int64 = 0
        var count = 0
        var seqFirst: Int64 = 0
        var seqLast: Int64 = 0
        var energySum = 0.0
        var lmax = -Double.infinity
        var lmin = Double.infinity
        var centroidSum = 0.0
        var onsets = 0
        var discontinuities = 0
        /// Whether the window's frames reach back to its start: it follows the previous window without a gap,
        /// or its first frame started less than a hop after the window's start (not the first window after a
        /// start in mid-window).
        var coveredFromStart = false
        /// `wallNs` of the latest frame.
        var lastWallNs: Int64 = 0
        /// Frames beyond capacity (only if frame times are denser than the hop promises): they still count
        /// in Leq/Lmax/Lmin/means but not in the percentiles.
        var overflow = 0
        /// Level data of the samples captured in this window (by their own capture time, to the sample).
        var sums = LevelSums.empty
        /// Level data of samples already seen that belong to the window `carryIndex` (after this one): a
        /// frame's new samples end up to `nFFT` samples after its `t`, so its hop can reach into the next window.
        var carry = LevelSums.empty
        var carryIndex: Int64 = 0
        /// Band energies of this window and of the carry (`maxBands` each); `bandCount` bands seen.
        let bandSums: UnsafeMutableBufferPointer<Double>
        let bandCarry: UnsafeMutableBufferPointer<Double>
        var bandCount = 0
        /// Exact sample rate of the stream (to name the bands).
        var sampleRate = 48_000
        /// Level data dropped because its window had already passed (a clock step) or was skipped (a gap
        /// right after a boundary), in samples.
        var droppedLevelSamples = 0

        let weighting: LevelWeighting
        let offset: Double
        /// Smallest per-frame LAF (level unit), the fallback of `lafmin` before the meter has settled.
        var frameMinLaf = Double.infinity

        init(seconds: Double, capacity: Int, nMels: Int, weighting: LevelWeighting = .laf, offset: Double = 0,
             sampleRate: Int = 48_000) {
            self.weighting = weighting
            self.offset = offset
            self.seconds = seconds
            lengthNs = max(1, Int64((seconds * 1e9).rounded()))  // validate() keeps it ≥ 0.1 s; never 0
            self.capacity = capacity
            self.nMels = nMels
            levels = .allocate(capacity: capacity); levels.initialize(repeating: 0)
            logmelSum = .allocate(capacity: max(nMels, 1)); logmelSum.initialize(repeating: 0)
            bandSums = .allocate(capacity: maxBands); bandSums.initialize(repeating: 0)
            bandCarry = .allocate(capacity: maxBands); bandCarry.initialize(repeating: 0)
            self.sampleRate = sampleRate
        }

        deinit { levels.deallocate(); logmelSum.deallocate(); bandSums.deallocate(); bandCarry.deallocate() }

        func begin(index k: Int64, seq: Int64) {
            index = k; count = 0; overflow = 0; seqFirst = seq; seqLast = seq
            energySum = 0; lmax = -.infinity; lmin = .infinity; centroidSum = 0; onsets = 0; discontinuities = 0
            sums = .empty; frameMinLaf = .infinity; bandCount = 0
            for i in 0..<maxBands { bandSums[i] = 0 }
            if carry.samples > 0 {
                if carryIndex == k {
                    sums = carry
                    for i in 0..<maxBands { bandSums[i] = bandCarry[i] }
                } else {
                    droppedLevelSamples &+= carry.samples
                }
                carry = .empty
                for i in 0..<maxBands { bandCarry[i] = 0 }
            }
            for i in 0..<logmelSum.count { logmelSum[i] = 0 }
        }

        @inline(__always)
        func add(_ h: FrameHeader, level: Double, busLevel: Float, logmel: UnsafeBufferPointer<Float>) {
            if count - overflow < capacity { levels[count - overflow] = busLevel } else { overflow += 1 }
            count += 1
            seqLast = h.seq
            lastWallNs = h.wallNs
            energySum += pow(10, level / 10)
            if level > lmax { lmax = level }
            if level < lmin { lmin = level }
            frameMinLaf = min(frameMinLaf, Double(h.features.laf) + offset)
            centroidSum += Double(h.features.centroidHz)
            if h.hasOnset { onsets += 1 }
            if h.isDiscontinuity { discontinuities += 1 }
            let n = min(nMels, logmel.count)
            for i in 0..<n { logmelSum[i] += Double(logmel[i]) }
        }

        /// Adds a frame's level data: each part to the window its samples were captured in.
        @inline(__always)
        func addLevels(_ l: LevelInterval, bands: BandFrame) {
            let nb = min(Int(bands.count), maxBands)
            if nb > 0 { bandCount = nb }
            if l.head.samples > 0 {
                withUnsafePointer(to: bands.head) { addPart(l.head, bands: UnsafeRawPointer($0).assumingMemoryBound(to: Float.self), nb, window: floorDiv(l.startWallNs, lengthNs)) }
            }
            if l.tail.samples > 0 {
                withUnsafePointer(to: bands.tail) { addPart(l.tail, bands: UnsafeRawPointer($0).assumingMemoryBound(to: Float.self), nb, window: floorDiv(l.splitWallNs, lengthNs)) }
            }
        }

        @inline(__always)
        func addPart(_ part: LevelSums, bands: UnsafePointer<Float>, _ nb: Int, window k: Int64) {
            if k == index {
                sums.merge(part)
                for i in 0..<nb { bandSums[i] += Double(bands[i]) }
            } else if k > index && (carry.samples == 0 || carryIndex == k) {
                carryIndex = k
                carry.merge(part)
                for i in 0..<nb { bandCarry[i] += Double(bands[i]) }
            } else {
                droppedLevelSamples &+= part.samples
            }
        }

        /// The level unit value of a mean square (−200 dB floor, as the per-frame levels).
        static func db(_ ms: Double, _ offset: Double) -> Double { 10 * log10(max(ms, 1e-20)) + offset }

        func finish(complete: Bool) -> RollingResult {
            let n = count - overflow
            let sorted = UnsafeMutableBufferPointer(rebasing: levels[0..<n])
            heapSort(sorted)
            let d = Double(count)
            let result = RollingResult(
                windowSeconds: seconds, startNs: index &* lengthNs, endNs: (index &+ 1) &* lengthNs,
                seqFirst: seqFirst, seqLast: seqLast, frames: count, onsets: onsets,
                discontinuities: discontinuities, leq: 10 * log10(energySum / d), lmax: lmax, lmin: lmin,
                l10: percentile(UnsafeBufferPointer(sorted), 90) + offset, l50: percentile(UnsafeBufferPointer(sorted), 50) + offset,
                l90: percentile(UnsafeBufferPointer(sorted), 10) + offset, centroidHzMean: centroidSum / d,
                logmelMean: (0..<nMels).map { Float(logmelSum[$0] / d) }, complete: complete)
            count = 0
            return integrate(into: result)
        }

        /// Sets the integrated levels (and, for the time-weighted weightings, `leq`/`lmax`/`lmin`) from ``sums``.
        func integrate(into result: RollingResult) -> RollingResult {
            var r = result
            let s = sums
            guard s.samples > 0 else { return r }
            let o = offset, n = Double(s.samples)
            // A minimum with no settled sample (the window began within 5 τ of a reset) falls back to the
            // frames' minimum.
            func minimum(_ m: Double, _ fallback: Double) -> Double { m.isFinite ? Self.db(m, o) : fallback }
            let levels = RollingLevels(
                laeq: Self.db(s.energyA / n, o), lceq: Self.db(s.energyC / n, o), lzeq: Self.db(s.energyZ / n, o),
                lafmax: Self.db(s.maxAF, o), lafmin: minimum(s.minAF, frameMinLaf),
                lasmax: Self.db(s.maxAS, o), lcpeak: 10 * log10(max(s.peakC * s.peakC, 1e-20)) + o, samples: s.samples)
            r.levels = levels
            switch weighting {
            case .laf: r.leq = levels.laeq; r.lmax = levels.lafmax; r.lmin = levels.lafmin
            case .las: r.leq = levels.laeq; r.lmax = levels.lasmax; r.lmin = minimum(s.minAS, r.lmin)
            case .lcf: r.leq = levels.lceq; r.lmax = Self.db(s.maxCF, o); r.lmin = minimum(s.minCF, r.lmin)
            case .lzf: r.leq = levels.lzeq; r.lmax = Self.db(s.maxZF, o); r.lmin = minimum(s.minZF, r.lmin)
            case .rmsDbfs: break
            }
            if bandCount > 0 {
                // The resolution is the one whose band count at this rate matches (third ≈ 3 × octave).
                let third = BandFilterBank.bands(.third, sampleRate: sampleRate)
                let layout = third.count == bandCount ? third : BandFilterBank.bands(.octave, sampleRate: sampleRate)
                if layout.count == bandCount {
                    r.bands = RollingBands(kind: third.count == bandCount ? "third" : "octave",
                                           centerHz: layout.map(\.nominal),
                                           leq: (0..<bandCount).map { Self.db(bandSums[$0] / n, o) })
                }
            }
            return r
        }
    }
}

/// The `p`-th percentile (0…100) of ascending `sorted` with linear interpolation (numpy `linear`).
func percentile(_ sorted: UnsafeBufferPointer<Float>, _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let pos = p / 100 * Double(sorted.count - 1)
    let lo = Int(pos.rounded(.down))
    let hi = min(lo + 1, sorted.count - 1)
    let frac = pos - Double(lo)
    return Double(sorted[lo]) + (Double(sorted[hi]) - Double(sorted[lo])) * frac
}

/// In-place ascending heap sort: O(n log n), no scratch allocation (the standard library's sort may
/// allocate a merge buffer).
func heapSort<T: Comparable>(_ a: UnsafeMutableBufferPointer<T>) {
    let n = a.count
    guard n > 1 else { return }
    func siftDown(_ start: Int, _ end: Int) {
        var root = start
        while true {
            var child = 2 * root + 1
            if child >= end { return }
            if child + 1 < end && a[child] < a[child + 1] { child += 1 }
            if a[root] < a[child] { a.swapAt(root, child); root = child } else { return }
        }
    }
    var i = n / 2 - 1
    while i >= 0 { siftDown(i, n); i -= 1 }
    var end = n - 1
    while end > 0 { a.swapAt(0, end); siftDown(0, end); end -= 1 }
}
