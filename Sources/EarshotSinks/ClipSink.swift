#if canImport(Glibc)
import Glibc
#endif
public import EarshotPipeline
public import EarshotProtocol
import EarshotRealtime
public import Logging
import Synchronization

/// Event clips: keeps the last seconds of raw audio and, when a level alert, onset alert or health fault
/// starts (the kinds in ``Configuration/kinds``), writes a WAV clip from `t − pre_roll_s` to `t + post_roll_s`;
/// alerts that start while a clip is open (inside its range) extend it, up to `max_clip_s`.
///
/// Samples come from the pipeline's ``ClipTap`` (the DSP thread copies each frame's new samples into it); this
/// sink's thread (`es-clips`) drains it every 20 ms into its own history of `max_clip_s` + 2 s, preallocated
/// at start. Triggers come from the daemon's ``MessageFanout`` (``publish(_:line:wallNs:)`` copies the line
/// into a bounded queue and returns). Files are float32 mono at the capture rate — exactly the captured samples
/// — written to a `.part` name and renamed; then retention (``ClipRetention``) runs, a ``ClipMessage`` goes on
/// the `alert` stream and `clip written path=… kind=…` is logged. A write failure (full or read-only disk) is
/// logged once until a write succeeds again and counted; it never blocks capture (the tap is lossy).
public final class ClipSink: ConfigurableSink, MessagePublisher, @unchecked Sendable {
    public struct Configuration: Sendable, Equatable {
        /// Where clips go; nil: clips off (`clips.directory`).
        public var directory: String?
        public var preRollSeconds = 5.0
        public var postRollSeconds = 5.0
        /// Longest clip (overlapping alerts stop extending it there); sizes the history.
        public var maxClipSeconds = 60.0
        public var maxFiles = 200
        public var maxMB = 500.0
        public var maxAgeSeconds = 2_592_000.0
        /// Alert kinds that open a clip: `level`, `onset`, `health`.
        public var kinds: [String] = ["level", "health"]
        /// The file-name instance (`$EARSHOT_INSTANCE` or `earshot`; set by the daemon, not from YAML).
        public var instance = "earshot"

        public init() {}

        public static let allKinds = ["level", "onset", "health"]
        /// Seconds of audio the pipeline's tap holds (the sink drains it every 20 ms; the rest is for a slow disk).
        public static let tapSeconds = 4.0

        public enum Limits {
            public static let rollSeconds = SinkRange(0, 300)
            public static let maxClipSeconds = SinkRange(1, 300)
            public static let maxFiles = 1...1_000_000
            public static let maxMB = SinkRange(0, 1_048_576, lowerExclusive: true)
            public static let maxAgeSeconds = SinkRange(0, 315_360_000, lowerExclusive: true)
            public static let directoryBytes = 4000
        }

        public func validate() throws(SinkConfigError) {
            if let d = directory {
                guard !d.isEmpty, d.utf8.count <= Limits.directoryBytes, !d.utf8.contains(0) else {
                    throw SinkConfigError(field: "directory", message: "must be a path of 1 to \(Limits.directoryBytes) bytes")
                }
            }
            try Limits.rollSeconds.check("pre_roll_s", preRollSeconds)
            try Limits.rollSeconds.check("post_roll_s", postRollSeconds)
            try Limits.maxClipSeconds.check("max_clip_s", maxClipSeconds)
            if preRollSeconds + postRollSeconds <= 0 {
                // 0 + 0 would enable clips that never hold a sample (nothing written, nothing logged).
                var e = SinkConfigError(field: "post_roll_s", message: "pre_roll_s + post_roll_s must be more than 0 (a clip holds the seconds around its alert)")
                e.related = "pre_roll_s"
                throw e
            }
            if preRollSeconds + postRollSeconds > maxClipSeconds {
                var e = SinkConfigError(field: "pre_roll_s", message: "pre_roll_s + post_roll_s (\(preRollSeconds + postRollSeconds)) must not exceed max_clip_s (\(maxClipSeconds))")
                e.related = "max_clip_s"
                throw e
            }
            try checkRange("max_files", maxFiles, Limits.maxFiles)
            try Limits.maxMB.check("max_mb", maxMB)
            try Limits.maxAgeSeconds.check("max_age_s", maxAgeSeconds)
            for k in kinds where !Self.allKinds.contains(k) {
                throw SinkConfigError(field: "kinds", message: "unknown kind '\(k)': must be level, onset or health")
            }
        }
    }

    struct Mark { var pos: Int64; var wallNs: Int64; var count: Int }
    struct Pending { var startNs: Int64; var endNs: Int64; var limitNs: Int64; var kind: String; var alertNs: Int64; var alerts: Int }

    public let name = "clips"
    public var configSection: String { "clips" }
    public let configuration: Configuration
    let logger: Logger
    let publisher: (any MessagePublisher)?
    let tap: ClipTap?
    public var latencyRecorder: StageRecorder?

    let queue = Mutex<[[UInt8]]>([])
    static let queueLimit = 256
    let wake = WakeSignal()
    let running = Atomic<Bool>(false)
    var handle: RealtimeThread.Handle?
    let _written = Atomic<Int>(0), _failed = Atomic<Int>(0), _removed = Atomic<Int>(0), _lost = Atomic<Int>(0)
    let _triggersDropped = Atomic<Int>(0)

    // Sink thread state.
    var reader: ClipTap.Reader?
    var history: UnsafeMutableBufferPointer<Float> = .init(start: nil, count: 0)
    var historyEnd: Int64 = 0
    var marks: [Mark] = []
    var markHead = 0, markCount = 0
    var pending: [Pending] = []
    var failing = false
    var sampleRate = 48000

    public init(configuration: Configuration, logger: Logger, publisher: (any MessagePublisher)?, tap: ClipTap?) {
        self.configuration = configuration
        self.logger = logger
        self.publisher = publisher
        self.tap = tap
    }

    deinit { history.deallocate() }

    public var dropped: Int { 0 }
    public var counters: [(String, Int)] {
        [("clips_written", _written.load(ordering: .relaxed)), ("clips_failed", _failed.load(ordering: .relaxed)),
         ("clips_removed", _removed.load(ordering: .relaxed)), ("clip_samples_lost", _lost.load(ordering: .relaxed)),
         ("clip_triggers_dropped", _triggersDropped.load(ordering: .relaxed))]
    }

    public struct NoTap: Error, CustomStringConvertible {
        public var description: String { "the pipeline has no clip tap (clips.directory set after it was built)" }
    }

    public func start(bus: FrameBus, stream: StreamInfo) throws {
        guard let tap, let directory = configuration.directory else { throw NoTap() }
        sampleRate = stream.sampleRate
        let capacity = Int((configuration.maxClipSeconds + 2) * Double(sampleRate))
        history = .allocate(capacity: capacity)
        marks = [Mark](repeating: Mark(pos: 0, wallNs: 0, count: 0), count: capacity / max(1, stream.hop / 2) + 64)
        reader = ClipTap.Reader(tap: tap)
        // Forget what the tap collected before this sink started (a restart on reload starts afresh).
        reader?.drain { _, _ in }
        var st = stat()
        if stat(directory, &st) != 0 && mkdir(directory, 0o750) != 0 {
            logger.warning("cannot create the clips directory: clips will fail until it exists", metadata: [
                "directory": "\(directory)", "error": "\(String(cString: strerror(errno)))"])
        }
        running.store(true, ordering: .releasing)
        handle = RealtimeThread.start(name: "es-clips", fifoPriority: 0, batchIfNotFIFO: true) { [self] in loop() }.0
    }

    public func stop() {
        guard running.exchange(false, ordering: .acquiringAndReleasing) else { return }
        wake.signal()
        if let h = handle { RealtimeThread.join(h); handle = nil }
    }

    public func publish(_ stream: StreamKind, line: [UInt8], wallNs: Int64) {
        guard stream == .alert else { return }
        let accepted = queue.withLock { q -> Bool in
            guard q.count < Self.queueLimit else { return false }
            q.append(line)
            return true
        }
        if accepted { wake.signal() } else { _triggersDropped.add(1, ordering: .relaxed) }
    }

    /// The alert kind and start time (ns) of an alert start this sink reacts to, else nil.
    static func trigger(_ line: [UInt8]) -> (kind: String, tNs: Int64)? {
        guard let json = try? ProtocolJSON.parse(line.last == 0x0A ? Array(line.dropLast()) : line),
              let type = json["type"]?.stringValue, let t = json["t"]?.doubleValue, t.isFinite, abs(t) < 1e10 else { return nil }
        let tNs = Int64((t * 1e6).rounded()) * 1000  // the wire has ms; µs rounding keeps them exact
        switch type {
        case "alert":
            switch json["alert"]?.stringValue {
            case "level" where json["state"]?.stringValue == "start": return ("level", tNs)
            case "onset": return ("onset", tNs)
            default: return nil
            }
        case "health" where json["state"]?.stringValue == "start": return ("health", tNs)
        default: return nil
        }
    }

    func loop() {
        while running.load(ordering: .acquiring) {
            _ = wake.wait(timeoutNanoseconds: 20_000_000)
            step(final: false)
        }
        step(final: true)
    }

    var nsPerSample: Double { 1e9 / Double(sampleRate) }
    var newestNs: Int64 {
        guard markCount > 0 else { return Int64.min }
        let m = marks[(markHead + markCount - 1) % marks.count]
        return m.wallNs &+ Int64(Double(m.count) * nsPerSample)
    }

    func step(final: Bool) {
        drainTap()
        let lines = queue.withLock { q -> [[UInt8]] in let out = q; q.removeAll(keepingCapacity: true); return out }
        for line in lines {
            guard let (kind, tNs) = Self.trigger(line), configuration.kinds.contains(kind) else { continue }
            addTrigger(kind: kind, tNs: tNs)
        }
        while let p = pending.first {
            let oldestKept = historyEnd - Int64(history.count) + Int64(sampleRate)  // 1 s before it is overwritten
            let startPos = position(of: p.startNs)
            // Written when the history reaches its end, would lose its start, or its end is 2 s past on the
            // wall clock without samples (a stopped source: no_data) — then with what was captured.
            let stale = Clock.wallNanoseconds() > p.endNs &+ 2_000_000_000
            guard final || newestNs >= p.endNs || startPos <= oldestKept || stale else { break }
            pending.removeFirst()
            write(p)
        }
    }

    func addTrigger(kind: String, tNs: Int64) {
        let pre = Int64(configuration.preRollSeconds * 1e9), post = Int64(configuration.postRollSeconds * 1e9)
        if var last = pending.last, tNs - pre <= last.endNs, tNs + post > last.endNs {
            last.endNs = min(tNs + post, last.limitNs)
            last.alerts += 1
            pending[pending.count - 1] = last
            return
        } else if let last = pending.last, tNs + post <= last.endNs {
            pending[pending.count - 1].alerts += 1
            return
        }
        guard pending.count < 16 else { return }
        let start = tNs - pre
        pending.append(Pending(startNs: start, endNs: tNs + post, limitNs: start + Int64(configuration.maxClipSeconds * 1e9),
                               kind: kind, alertNs: tNs, alerts: 1))
    }

    func drainTap() {
        guard let reader else { return }
        let cap = history.count
        reader.drain { chunk, samples in
            var src = samples
            if src.count > cap { src = UnsafeBufferPointer(rebasing: src[(src.count - cap)...]) }
            var done = 0
            while done < src.count {
                let at = Int(historyEnd % Int64(cap))
                let n = min(src.count - done, cap - at)
                (history.baseAddress! + at).update(from: src.baseAddress! + done, count: n)
                done += n
                historyEnd += Int64(n)
            }
            let m = Mark(pos: historyEnd - Int64(src.count), wallNs: chunk.wallNs, count: src.count)
            if markCount == marks.count { markHead = (markHead + 1) % marks.count; markCount -= 1 }
            marks[(markHead + markCount) % marks.count] = m
            markCount += 1
        }
        let lost = reader.lost
        if lost != _lost.load(ordering: .relaxed) { _lost.store(lost, ordering: .relaxed) }
    }

    /// History position of wall time `ns` (clamped to what the history holds).
    func position(of ns: Int64) -> Int64 {
        let oldest = max(0, historyEnd - Int64(history.count))
        guard markCount > 0 else { return historyEnd }
        var lo = 0, hi = markCount - 1, found = -1
        while lo <= hi {
            let mid = (lo + hi) / 2
            if marks[(markHead + mid) % marks.count].wallNs <= ns { found = mid; lo = mid + 1 } else { hi = mid - 1 }
        }
        guard found >= 0 else { return max(oldest, marks[markHead].pos) }
        let m = marks[(markHead + found) % marks.count]
        let off = min(Int64(m.count), max(0, Int64((Double(ns - m.wallNs) / nsPerSample).rounded())))
        return max(oldest, min(historyEnd, m.pos + off))
    }

    /// Wall time of history position `pos`.
    func wallNs(at pos: Int64) -> Int64 {
        for i in stride(from: markCount - 1, through: 0, by: -1) {
            let m = marks[(markHead + i) % marks.count]
            if m.pos <= pos { return m.wallNs + Int64((Double(pos - m.pos) * nsPerSample).rounded()) }
        }
        return 0
    }

    static func utcName(_ ns: Int64) -> String {
        var secs = time_t(ns / 1_000_000_000)
        let ms = Int((ns % 1_000_000_000) / 1_000_000)
        var tm = tm()
        gmtime_r(&secs, &tm)
        func pad(_ v: Int32, _ w: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, w - s.count)) + s }
        return pad(tm.tm_year + 1900, 4) + pad(tm.tm_mon + 1, 2) + pad(tm.tm_mday, 2) + "T" + pad(tm.tm_hour, 2)
            + pad(tm.tm_min, 2) + pad(tm.tm_sec, 2) + "." + pad(Int32(ms), 3) + "Z"
    }

    static func safeInstance(_ s: String) -> String {
        let cleaned = String(s.unicodeScalars.prefix(64).map { c -> Character in
            c.isASCII && (c.properties.isAlphabetic || ("0"..."9").contains(c) || c == "-" || c == "_" || c == ".") ? Character(c) : "_"
        })
        return cleaned.isEmpty ? "earshot" : cleaned
    }

    func write(_ p: Pending) {
        guard let directory = configuration.directory else { return }
        let from = position(of: p.startNs), mapped = max(from, position(of: p.endNs))
        // The chunks' wall times jitter by a few samples, so the end is placed from the start by the clip's length
        // in samples whenever the audio is continuous (the mapped end within 2 ms of it); a gap inside the clip
        // (fewer samples than its wall span) or a history that ends early keeps the mapped end.
        let exact = from + Int64((Double(p.endNs - p.startNs) / nsPerSample).rounded())
        let to = abs(mapped - exact) <= Int64(2e6 / nsPerSample) ? min(exact, historyEnd) : mapped
        let count = Int(to - from)
        guard count > 0 else { return }
        let cap = Int64(history.count)
        let a = Int(from % cap), b = Int(to % cap)
        let base = history.baseAddress!
        let segments: [UnsafeBufferPointer<Float>] = a < b || count == 0
            ? [UnsafeBufferPointer(start: base + a, count: count)]
            : [UnsafeBufferPointer(start: base + a, count: Int(cap) - a), UnsafeBufferPointer(start: base, count: b)]
        var path = directory + "/" + Self.utcName(p.alertNs) + "-" + Self.safeInstance(configuration.instance) + "-" + p.kind + ".wav"
        var n = 2
        while access(path, F_OK) == 0 && n < 100 {
            path = directory + "/" + Self.utcName(p.alertNs) + "-" + Self.safeInstance(configuration.instance) + "-" + p.kind + "-\(n).wav"
            n += 1
        }
        do {
            try ClipWAVWriter.write(path: path, sampleRate: sampleRate, segments: segments)
        } catch {
            _failed.add(1, ordering: .relaxed)
            if !failing {
                failing = true
                logger.error("cannot write clip (logged once until a clip is written again)", metadata: [
                    "error": "\(error)", "directory": "\(directory)", "clips_failed": "\(_failed.load(ordering: .relaxed))"])
            }
            return
        }
        if failing {
            failing = false
            logger.notice("clips are written again", metadata: ["directory": "\(directory)"])
        }
        _written.add(1, ordering: .relaxed)
        let startNs = wallNs(at: from), endNs = startNs + Int64((Double(count - 1) * nsPerSample).rounded())
        logger.notice("clip written path=\(path) kind=\(p.kind) samples=\(count) alerts=\(p.alerts)")
        let msg = ClipMessage(path: path, kind: p.kind, start: Double(startNs) / 1e9, end: Double(endNs) / 1e9,
                              samples: count, sampleRate: sampleRate, alerts: p.alerts)
        publisher?.publish(.alert, line: msg.line(), wallNs: startNs)
        applyRetention(directory)
    }

    func applyRetention(_ directory: String) {
        let now = Double(Clock.wallNanoseconds()) / 1e9
        let remove = ClipRetention.plan(ClipRetention.list(directory), now: now, maxFiles: configuration.maxFiles,
                                        maxBytes: Int(configuration.maxMB * 1_048_576), maxAgeSeconds: configuration.maxAgeSeconds)
        for name in remove where unlink(directory + "/" + name) == 0 {
            _removed.add(1, ordering: .relaxed)
        }
    }
}

extension MetricsSink {
    /// `earshot_clips_written_total`, `earshot_clips_failed_total`, `earshot_clips_removed_total`,
    /// `earshot_clip_samples_lost_total`, `earshot_clip_triggers_dropped_total`.
    func updateClips(_ c: [String: Int], _ m: inout Mirror) {
        let help = [
            "clips_written": "Event clips written.", "clips_failed": "Event clips that could not be written (disk full, read-only, missing).",
            "clips_removed": "Event clips removed by retention.",
            "clip_samples_lost": "Samples the clips sink lost because it fell behind the DSP thread's tap.",
            "clip_triggers_dropped": "Alerts the clips sink dropped because its queue was full.",
        ]
        for (name, text) in help.sorted(by: { $0.key < $1.key }) {
            advanceLabelled(name, text, labels: [], to: c[name] ?? 0, &m)
        }
    }
}
