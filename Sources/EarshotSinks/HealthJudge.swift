public import EarshotPipeline
import EarshotDSP
public import EarshotProtocol

/// Decides when each input-health fault starts and ends, from the per-frame ``SampleHealth`` statistics the
/// DSP thread computed (``frame(_:)``) and from the absence of frames (``tick(nowMonotonicNs:)``). Pure: time
/// is the frames' capture time (`wallNs`, `firstSample`, `monotonicNs`) and the caller's monotonic clock.
///
/// Frames are summarised in **blocks** of ``blockNs`` (0.5 s) of audio; each block makes every condition
/// *bad*, *good* or *undecided* (between the start and the release threshold: hysteresis). A fault starts
/// once its condition has been bad in every block for the kind's hold time and ends once it has been good
/// for `clear_s` (see ``HealthMonitor/Configuration``). A discontinuity drops the partial block and restarts
/// the qualification (durations are never bridged across a gap); an active fault stays active.
public struct HealthJudge: Sendable {
    public typealias Kind = HealthMessage.Kind

    /// A fault starting or ending.
    public struct Transition: Sendable, Equatable {
        public var kind: Kind
        public var started: Bool
        /// When the condition began (start) or cleared (end): UNIX ns.
        public var wallNs: Int64
        public var value: Double
        public var threshold: Double
    }

    /// Audio per block.
    public static let blockNs: Int64 = 500_000_000

    struct Tracker: Sendable {
        var active = false
        var badSinceNs: Int64?
        var goodSinceNs: Int64?
        /// Feeds one block [startNs, endNs): returns true when the state flips.
        mutating func update(bad: Bool?, startNs: Int64, endNs: Int64, startHoldNs: Int64, endHoldNs: Int64) -> Bool {
            switch bad {
            case true?:
                goodSinceNs = nil
                if badSinceNs == nil { badSinceNs = startNs }
                if !active, let s = badSinceNs, endNs - s >= startHoldNs { active = true; return true }
            case false?:
                badSinceNs = nil
                if goodSinceNs == nil { goodSinceNs = startNs }
                if active, let s = goodSinceNs, endNs - s >= endHoldNs { active = false; return true }
            case nil:
                break
            }
            return false
        }
        mutating func restart() { badSinceNs = nil; goodSinceNs = nil }
    }

    public let config: HealthMonitor.Configuration
    public let sampleRate: Double
    var trackers = [Tracker](repeating: Tracker(), count: Kind.allCases.count)

    // The block being summarised.
    var blockStartNs: Int64?
    var blockSamples = 0
    var blockSum = 0.0
    var blockAllConstant = true
    var blockConstantRun: Int64 = 0
    var blockClipped = 0
    var blockLongestClipRun = 0
    var blockMinLAF = Double.infinity
    var blockFirstSample: Int64 = 0
    var blockFirstMonotonicNs: Int64 = 0

    // Noise-floor baseline: block floors while the floor is healthy (ring), its median refreshed every 20 blocks.
    var floors: [Double]
    var floorsHead = 0
    var floorsCount = 0
    var floorScratch: [Double]
    var baseline: Double?
    var blocksSinceBaseline = 0

    // Clock drift: (firstSample, monotonicNs) of each block since the last discontinuity (ring).
    var checkpoints: [(Int64, Int64)]
    var checkpointsHead = 0
    var checkpointsCount = 0
    var lastDriftPPM = 0.0

    /// The worst value of each measurement seen so far (the margin healthy material leaves to the limits).
    public struct Extremes: Sendable, Equatable {
        public var maxConstantSeconds = 0.0
        public var maxAbsMean = 0.0
        public var maxClipShare = 0.0
        public var maxClipRun = 0
        public var minFloorDb = Double.infinity
        /// Lowest block floor minus the baseline at the time (dB; +inf before a baseline).
        public var minFloorBelowBaselineDb = Double.infinity
        public var maxAbsDriftPPM = 0.0
    }
    public private(set) var extremes = Extremes()

    /// When the last frame was judged (live) or its last sample's capture time (offline); 0: none yet. And
    /// when the judge started.
    var lastFrameMonotonicNs: Int64 = 0
    let startMonotonicNs: Int64

    public init(config: HealthMonitor.Configuration, sampleRate: Int, startMonotonicNs: Int64) {
        self.config = config
        self.sampleRate = Double(max(sampleRate, 1))
        self.startMonotonicNs = startMonotonicNs
        let blocksPerSecond = 1e9 / Double(Self.blockNs)
        let nFloors = max(1, Int((config.floorBaselineSeconds * blocksPerSecond).rounded(.up)))
        floors = [Double](repeating: 0, count: nFloors)
        floorScratch = [Double](repeating: 0, count: nFloors)
        let nChecks = max(2, Int((config.driftWindowSeconds * blocksPerSecond).rounded(.up)) + 1)
        checkpoints = [(Int64, Int64)](repeating: (0, 0), count: nChecks)
    }

    /// Faults active now, in ``Kind`` order.
    public var active: [Kind] { Kind.allCases.enumerated().filter { trackers[$0.offset].active }.map(\.element) }
    public func isActive(_ kind: Kind) -> Bool { trackers[index(kind)].active }
    /// The learned noise-floor baseline (dBFS, A-weighted, uncalibrated), nil until enough audio was seen.
    public var floorBaselineDb: Double? { baseline }
    /// The clock drift measured over the last full window (ppm), 0 before one is complete.
    public var driftPPM: Double { lastDriftPPM }

    func index(_ k: Kind) -> Int { Kind.allCases.firstIndex(of: k)! }

    static func ns(_ seconds: Double) -> Int64 { Int64((seconds * 1e9).rounded()) }

    /// Frames whose capture time lags the judge's clock by more than this do not count for clock drift.
    public static let driftMaxLagNs: Int64 = 1_000_000_000

    /// Feeds one frame; returns the transitions it caused (usually none).
    /// - Parameters:
    ///   - nowMonotonicNs: live: when the frame is judged. A frame captured more than ``driftMaxLagNs`` earlier
    ///     restarts the drift measurement: after a stall the capture thread brings its timestamps back to
    ///     real time gradually (the capture thread), which would read as drift. nil offline.
    ///   - nowWallNs: live: the time a `no_data` fault ends (a frame arrived); nil: the frame's `wallNs`.
    public mutating func frame(_ h: FrameHeader, nowMonotonicNs: Int64? = nil, nowWallNs: Int64? = nil) -> [Transition] {
        var out: [Transition] = []
        // When the last frame was seen: live, when it was judged (a backlog read at once counts as now).
        lastFrameMonotonicNs = nowMonotonicNs ?? max(lastFrameMonotonicNs, h.lastSampleMonotonicNs)
        if let now = nowMonotonicNs, now - h.lastSampleMonotonicNs > Self.driftMaxLagNs { checkpointsCount = 0 }
        if isActive(.noData) {
            trackers[index(.noData)].active = false
            checkpointsCount = 0
            out.append(Transition(kind: .noData, started: false, wallNs: nowWallNs ?? h.wallNs, value: 0,
                                  threshold: config.noDataSeconds))
        }
        guard config.enabled else { return out }
        if h.isDiscontinuity {
            blockStartNs = nil
            checkpointsCount = 0
            for i in trackers.indices { trackers[i].restart() }
        }
        let s = h.health
        if blockStartNs == nil {
            blockStartNs = h.wallNs; blockSamples = 0; blockSum = 0; blockAllConstant = true; blockClipped = 0
            blockLongestClipRun = 0; blockMinLAF = .infinity; blockFirstSample = h.firstSample
            blockFirstMonotonicNs = h.monotonicNs
        }
        blockSamples += Int(s.samples)
        blockSum += s.sum
        blockClipped += Int(s.clipped)
        blockLongestClipRun = max(blockLongestClipRun, Int(s.longestClipRun))
        blockConstantRun = s.constantRun
        // Frames of (mostly) exact zeros are the silence check's business, not the noise floor's: a sample
        // file's digital-zero tail is not a collapsed microphone.
        if s.isConstant || Int(s.zeros) * 2 > Int(s.samples) {
            blockAllConstant = blockAllConstant && s.isConstant
        } else {
            blockAllConstant = false
            blockMinLAF = min(blockMinLAF, Double(h.features.laf))
        }
        guard let start = blockStartNs, h.wallNs - start >= Self.blockNs else { return out }
        endBlock(startNs: start, endNs: h.wallNs, endSample: h.firstSample, endMonotonicNs: h.monotonicNs, into: &out)
        blockStartNs = nil
        return out
    }

    /// Checks for the absence of frames (call periodically, e.g. every 100 ms).
    public mutating func tick(nowMonotonicNs now: Int64, nowWallNs: Int64) -> [Transition] {
        guard config.enabled, !isActive(.noData) else { return [] }
        let since = lastFrameMonotonicNs != 0 ? lastFrameMonotonicNs : startMonotonicNs
        let silentNs = now - since
        guard silentNs >= Self.ns(config.noDataSeconds) else { return [] }
        trackers[index(.noData)].active = true
        return [Transition(kind: .noData, started: true, wallNs: nowWallNs - silentNs, value: Double(silentNs) / 1e9,
                           threshold: config.noDataSeconds)]
    }

    mutating func endBlock(startNs: Int64, endNs: Int64, endSample: Int64, endMonotonicNs: Int64, into out: inout [Transition]) {
        let c = config
        let clear = Self.ns(c.clearSeconds)
        func feed(_ kind: Kind, _ bad: Bool?, hold: Double, value: Double, threshold: Double) {
            let i = index(kind)
            if trackers[i].update(bad: bad, startNs: startNs, endNs: endNs, startHoldNs: Self.ns(hold), endHoldNs: clear) {
                let active = trackers[i].active
                let at = (active ? trackers[i].badSinceNs : trackers[i].goodSinceNs) ?? startNs
                out.append(Transition(kind: kind, started: active, wallNs: at, value: value, threshold: threshold))
            }
        }
        let n = max(blockSamples, 1)
        // Digital silence: every sample of the block equal to the one before.
        let constantSeconds = Double(blockConstantRun) / sampleRate
        extremes.maxConstantSeconds = max(extremes.maxConstantSeconds, constantSeconds)
        feed(.silence, blockAllConstant, hold: c.silenceSeconds, value: constantSeconds, threshold: c.silenceSeconds)
        // DC offset: the block's mean.
        let mean = blockSum / Double(n)
        extremes.maxAbsMean = max(extremes.maxAbsMean, abs(mean))
        let dcBad: Bool? = abs(mean) > c.dcLimit ? true : (abs(mean) < c.dcLimit * 0.8 ? false : nil)
        feed(.dcOffset, dcBad, hold: c.dcHoldSeconds, value: mean, threshold: c.dcLimit)
        // Clipping: share of flat-topped full-scale samples, or one long flat run.
        let share = Double(blockClipped) / Double(n)
        extremes.maxClipShare = max(extremes.maxClipShare, share)
        extremes.maxClipRun = max(extremes.maxClipRun, blockLongestClipRun)
        let clipBad: Bool? = share >= c.clipShare || blockLongestClipRun >= c.clipRunSamples ? true
            : (share < c.clipShare / 2 ? false : nil)
        feed(.clipping, clipBad, hold: c.clipHoldSeconds, value: share, threshold: c.clipShare)
        // Noise floor: the quietest LAF of the block against the absolute floor and the learned baseline.
        if blockMinLAF.isFinite {
            let floor = blockMinLAF
            extremes.minFloorDb = min(extremes.minFloorDb, floor)
            if let b = baseline { extremes.minFloorBelowBaselineDb = min(extremes.minFloorBelowBaselineDb, floor - b) }
            var bad = floor < c.floorMinDB
            var good = floor >= c.floorMinDB + 3
            var threshold = c.floorMinDB
            if let b = baseline {
                bad = bad || floor < b - c.floorDropDB
                good = good && floor >= b - c.floorDropDB + 3
                threshold = max(threshold, b - c.floorDropDB)
            }
            let i = index(.lowFloor)
            feed(.lowFloor, bad ? true : (good ? false : nil), hold: c.floorHoldSeconds, value: floor, threshold: threshold)
            if !trackers[i].active && !bad { learnFloor(floor) }
        } else {
            feed(.lowFloor, nil, hold: c.floorHoldSeconds, value: 0, threshold: c.floorMinDB)
        }
        // Clock drift: samples delivered vs monotonic time over the last full window.
        checkpoints[checkpointsHead] = (endSample, endMonotonicNs)
        checkpointsHead = (checkpointsHead + 1) % checkpoints.count
        checkpointsCount = min(checkpointsCount + 1, checkpoints.count)
        if checkpointsCount == checkpoints.count {
            let oldest = checkpoints[checkpointsHead]  // the next to be overwritten
            let newest = checkpoints[(checkpointsHead + checkpoints.count - 1) % checkpoints.count]
            let elapsed = Double(newest.1 - oldest.1) / 1e9
            if elapsed > 0 {
                let ppm = (Double(newest.0 - oldest.0) / sampleRate - elapsed) / elapsed * 1e6
                lastDriftPPM = ppm
                extremes.maxAbsDriftPPM = max(extremes.maxAbsDriftPPM, abs(ppm))
                let bad: Bool? = abs(ppm) > c.driftLimitPPM ? true : (abs(ppm) < c.driftLimitPPM * 0.8 ? false : nil)
                feed(.clockDrift, bad, hold: 0, value: ppm, threshold: c.driftLimitPPM)
            }
        }
    }

    mutating func learnFloor(_ floor: Double) {
        floors[floorsHead] = floor
        floorsHead = (floorsHead + 1) % floors.count
        floorsCount = min(floorsCount + 1, floors.count)
        blocksSinceBaseline += 1
        // Valid once half the baseline window was seen; refreshed every 20 blocks (10 s) or while filling.
        guard floorsCount * 2 >= floors.count, blocksSinceBaseline >= 20 || baseline == nil else { return }
        blocksSinceBaseline = 0
        for i in 0..<floorsCount { floorScratch[i] = floors[i] }
        floorScratch.withUnsafeMutableBufferPointer { b in
            var live = UnsafeMutableBufferPointer(rebasing: b[0..<floorsCount])
            live.sort()
            baseline = live[floorsCount / 2]
        }
    }
}
