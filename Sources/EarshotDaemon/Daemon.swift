#if canImport(Glibc)
import Glibc
#endif
import EarshotCapture
import EarshotDSP
@_spi(Testing) import EarshotPipeline
import EarshotRealtime
import EarshotSinks
import Foundation
public import Logging

/// How `earshot run` was asked to run (everything that is not in the configuration file).
public struct DaemonOptions: Sendable {
    /// Also write frames to stdout in this format (`--stdout`).
    public var stdout: FrameFormat?
    /// Features written to stdout.
    public var stdoutFeatures: Set<EarshotPipeline.Feature> = Set(EarshotPipeline.Feature.allCases)
    /// Add per-frame timing fields to stdout frames.
    public var timing = false
    /// Serve the Unix socket (off with `--no-socket`).
    public var socket = true
    /// The `--config` flag (nil: `$EARSHOT_CONFIG` or the default path) and `--set` overrides, kept for reloads.
    public var configPath: String?
    public var overrides: [String] = []
    /// Warnings from loading the configuration at start (logged once the daemon's logging is set up).
    public var configWarnings: [String] = []
    public var environment: [String: String] = ProcessInfo.processInfo.environment
    /// Validation used for reloads (the same as at start: no socket directory check with `--no-socket`).
    public var validation = ConfigValidationOptions()
    /// Stop after this many seconds (tests, demos); nil = until SIGTERM/SIGINT.
    public var duration: Double?
    /// Supervisor tick (watchdog, status, stats, metrics); at most a quarter of the watchdog interval. Signals
    /// and capture events wake the supervisor at once, whatever the tick.
    public var tickMilliseconds: Int32 = 500

    public init() {}
}

/// The live daemon: capture → DSP → sinks, supervised from the calling thread.
///
/// The supervisor (the thread that calls ``run()``) never touches samples: it polls the signal descriptor
/// and the capture thread's event descriptor (tick: 500 ms), turns capture events into log lines and
/// `status` messages, feeds systemd (`READY=1`, `STATUS=`, `WATCHDOG=1` only while frames flow), reloads on
/// SIGHUP and shuts down on SIGTERM/SIGINT.
public final class Daemon {
    public let logger: Logger
    public private(set) var config: EarshotConfig
    public let options: DaemonOptions
    let notifier: SystemdNotifier
    var pipeline: LivePipeline
    /// The running sinks (built by ``SinkRegistry``), without the socket publisher.
    var sinks: [any Sink] = []
    var socket: SocketPublisher?
    /// Every non-frame message (rolling, alerts, status, stats) goes through here: to the socket publisher
    /// and to the sinks that consume messages.
    let messages = MessageFanout()
    var latency: LatencyTracker? { sinks.lazy.compactMap { $0 as? LatencyTracker }.first }
    var metrics: MetricsSink? { sinks.lazy.compactMap { $0 as? MetricsSink }.first }
    var healthMonitor: HealthMonitor? { sinks.lazy.compactMap { $0 as? HealthMonitor }.first }
    var lastStatsNs: Int64 = 0
    var lastMetricsNs: Int64 = 0
    /// Last `malloc_trim` (``HeapPolicy``).
    var lastHeapTrimNs: Int64 = 0
    /// Seconds between two `stats` messages on the socket.
    public static let statsIntervalSeconds = 5.0
    var startNs: Int64 = 0
    /// READY=1 / WATCHDOG=1 / STATUS= decisions (set up when ``run()`` starts).
    var health = HealthPolicy(startNs: 0, watchdogIntervalNs: nil)
    /// Capture events → log lines and status events.
    var captureReporter: CaptureEventReporter
    var lastDiscontinuities = 0
    var sanitizedReporter = SanitizedSampleReporter()
    /// libasound's error lines: each distinct one at most every 10 s; lost lines summed between reports.
    var alsaLineLog = KeyedLogRateLimiter(), alsaLostLog = LogRateLimiter()
    var alsaLinesLost = 0
    /// Sinks whose last start failed (reported, left stopped) and failed starts per sink since the daemon started.
    var sinkUp: [String: Bool] = [:]
    var sinkFailures: [String: Int] = [:]
    /// SIGHUP received and not yet acted on; reloads run at most once per ``reloadIntervalSeconds``.
    var reloadPending = false
    var lastReloadNs: Int64 = 0
    /// The configuration file bytes the running configuration was parsed from by the last reload
    /// (`.some(nil)`: no file); a SIGHUP with the same bytes does nothing.
    var reloadSource: Data??
    /// Minimum seconds between two reloads: a SIGHUP storm is coalesced into one reload per interval (one in
    /// flight, one pending), so the DSP and the sinks keep running between them.
    public static let reloadIntervalSeconds = 1.0
    /// Test-only fault (`EARSHOT_TEST_FAULT=dsp_stall=AFTER_S:DURATION_S`): the DSP thread stops consuming
    /// for DURATION_S seconds, AFTER_S seconds after start — the watchdog tests need a stuck pipeline.
    var pendingDSPStall: (afterNs: Int64, milliseconds: Int)?
    var latest = FrameHeader()

    /// Frames older than this mean "not flowing" for the watchdog.
    public static let staleFrameSeconds = Double(HealthPolicy.staleFrameNs) / 1e9

    /// Builds the pipeline for `config` and probes the device.
    /// - Throws: ``DaemonStartError`` for a device that cannot work (unknown name, impossible parameters) —
    ///   a device that is merely absent now is waited for instead.
    public init(config: EarshotConfig, options: DaemonOptions, logger: Logger) throws(DaemonStartError) {
        self.config = config
        self.options = options
        self.logger = logger
        notifier = SystemdNotifier(environment: options.environment)
        captureReporter = CaptureEventReporter(device: config.capture.device, realtimePriority: config.capture.realtimePriority)
        ALSALibraryLog.capture()  // libasound's error lines → drainCaptureEvents → the logger, with a level
        pipeline = try Self.makePipeline(config: config, logger: logger)
        #if DEBUG
        if let fault = options.environment["EARSHOT_TEST_FAULT"] {
            if let stall = Self.parseDSPStallFault(fault) {
                pendingDSPStall = stall
            } else {
                logger.warning("EARSHOT_TEST_FAULT ignored: expected dsp_stall=AFTER_S:DURATION_S (0–3600 s, 0–60 s)")
            }
        }
        #endif
    }

    #if DEBUG
    /// `dsp_stall=AFTER_S:DURATION_S` with 0 ≤ AFTER_S ≤ 3600 and 0 ≤ DURATION_S ≤ 60; nil for anything else.
    /// Debug builds only: release builds (`swift build -c release`) have no test hooks.
    static func parseDSPStallFault(_ fault: String) -> (afterNs: Int64, milliseconds: Int)? {
        guard fault.hasPrefix("dsp_stall=") else { return nil }
        let parts = fault.dropFirst("dsp_stall=".count).split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let after = Double(parts[0]), let duration = Double(parts[1]),
              (0...3600).contains(after), (0...60).contains(duration) else { return nil }
        return (Int64(after * 1e9), Int(duration * 1000))
    }
    #endif

    static func makePipeline(config: EarshotConfig, logger: Logger) throws(DaemonStartError) -> LivePipeline {
        let captureConfig = config.captureConfig
        do {
            let negotiated = try CaptureThread.probe(captureConfig)
            logger.info("capture device ready", metadata: [
                "device": "\(negotiated.device)", "format": "\(negotiated.format)", "rate": "\(negotiated.sampleRate)",
                "channels": "\(negotiated.channels)", "period_frames": "\(negotiated.periodFrames)",
                "buffer_frames": "\(negotiated.bufferFrames)"])
        } catch {
            if error.isTransient {
                logger.warning("capture device not available yet, waiting for it: \(error)")
            } else {
                throw DaemonStartError(message: "\(error)", exitCode: 69)
            }
        }
        let analyzer: FrameAnalyzer
        do { analyzer = try FrameAnalyzer(config: config.analyzerConfig) } catch {
            throw DaemonStartError(message: "\(error)", exitCode: 78)
        }
        let pipeline = LivePipeline(capture: captureConfig, analyzer: analyzer, ringSeconds: config.capture.ringSeconds,
                                    clipTapSeconds: config.clipTapSeconds)
        // Level data is split at the rolling windows' common grid, so each window integrates to the sample.
        pipeline.dsp.processor.levelGridNs = FrameProcessor<FrameBus>.levelGrid(windowsSeconds: config.rolling.windowsSeconds)
        return pipeline
    }

    var streamInfo: StreamInfo {
        let a = pipeline.analyzerConfig
        var info = StreamInfo(
            sampleRate: a.sampleRate, nFFT: a.nFFT, hop: a.hop, nMels: a.nMels, nMFCC: a.nMFCC,
            melBandEdgesHz: pipeline.dsp.processor.analyzer.melBandEdgesHz, levelUnit: config.levels.unit,
            levelOffsetDb: Float(config.levels.calibrationDB ?? 0), device: config.capture.device,
            onsetLookAheadMs: a.onsetLookAheadDuration * 1000)
        info.calibration = config.calibrationInfo
        info.levelChannels = config.capture.channel == nil ? max(config.capture.channels, 1) : 1
        return info
    }

    /// Creates and starts the sinks. At daemon start (`failuresAreFatal`) a sink that cannot start stops the
    /// daemon; on a reload it is reported (error log, `sink_failed` status, `earshot_sink_up` 0 and
    /// `earshot_sink_failures_total`), left stopped, and the other sinks still start.
    /// - Returns: the names of the sinks that failed to start.
    @discardableResult
    func startSinks(failuresAreFatal: Bool = true, replacing previous: [any Sink] = [], sameBus: Bool = true)
        throws(DaemonStartError) -> [String]
    {
        // What no successor took over (a rolling window whose length or measure changed) is published now.
        defer { for old in previous { old.finishHandover() } }
        let info = streamInfo
        if options.socket, socket == nil {
            let publisher = SocketPublisher(configuration: config.socketConfiguration, logger: logger, daemonVersion: EarshotVersion.string)
            do { try publisher.start(bus: pipeline.bus, stream: info) } catch {
                throw DaemonStartError(message: "\(error)", exitCode: 69)
            }
            socket = publisher
            messages.add(publisher)
            logger.info("listening", metadata: ["socket": "\(config.socket.path)"])
        }
        var context = SinkBuildContext(config: config, options: options, logger: logger, publisher: messages, messages: messages)
        context.onHealthChange = { [weak socket] active in socket?.update(health: active.map(\.rawValue)) }
        context.clipTap = pipeline.clipTap
        socket?.update(health: config.health.enabled ? [] : nil)
        sinks = SinkRegistry.build(&context)
        // A restart must not lose an ongoing alert or the frames between the old sinks' stop and these.
        for sink in sinks {
            if let old = previous.first(where: { $0.name == sink.name }) { sink.inherit(from: old, sameBus: sameBus) }
        }
        var failed: [String] = []
        sinkUp = socket == nil ? [:] : ["socket": true]
        for sink in sinks {
            do {
                try sink.start(bus: pipeline.bus, stream: info)
                sinkUp[sink.name] = true
            } catch {
                if failuresAreFatal {
                    var hint = ""
                    if sink.name == "metrics", let instance = options.environment["EARSHOT_INSTANCE"], !instance.isEmpty {
                        hint = " (each earshot@ instance needs its own metrics.listen port and metrics.textfile: set them in /etc/earshot/\(instance).yaml)"
                    }
                    throw DaemonStartError(message: "cannot start the \(sink.name) sink: \(error)\(hint)", exitCode: 70)
                }
                failed.append(sink.name)
                sinkUp[sink.name] = false
                sinkFailures[sink.name, default: 0] += 1
                logger.error("the \(sink.name) sink failed to start and stays stopped; the other sinks keep running", metadata: [
                    "sink": "\(sink.name)", "error": "\(error)", "failures_total": "\(sinkFailures[sink.name] ?? 0)"])
                publishStatus(.sinkFailed(sink: sink.name, error: "\(error)", failures: sinkFailures[sink.name] ?? 0))
            }
        }
        if !failed.isEmpty { sinks.removeAll { failed.contains($0.name) } }
        return failed
    }

    /// Stops the non-socket sinks; returns them (stopped) for ``startSinks(failuresAreFatal:replacing:sameBus:)``.
    @discardableResult
    /// - Parameter handingOver: the sinks are being replaced (a reload): they keep what their successors may take
    ///   over, and ``startSinks(failuresAreFatal:replacing:sameBus:)`` finishes the handover.
    func stopSinks(handingOver: Bool = false) -> [any Sink] {
        for sink in sinks {
            if let consumer = sink as? any MessagePublisher { messages.remove(consumer) }
            sink.stop(handingOver: handingOver)
        }
        defer { sinks.removeAll() }
        return sinks
    }


    /// Every count, gathered now (``DaemonStats``: the `stats` counters and the metrics snapshot).
    var stats: DaemonStats {
        var d = DaemonStats()
        d.frames = pipeline.dsp.frames; d.xruns = pipeline.xruns; d.reconnects = pipeline.reconnects
        d.discontinuities = pipeline.dsp.discontinuities; d.ringOverrunSamples = pipeline.dsp.ringOverrunSamples
        d.captureGapSamples = pipeline.capture.gapSamples
        d.nonFiniteSamples = pipeline.nonFiniteSamples; d.clampedSamples = pipeline.clampedSamples
        d.deviceUp = pipeline.capture.state == .running
        if let socket {
            var s = DaemonStats.Socket()
            s.clients = socket.clients; s.connectionsTotal = socket.connectionsTotal
            s.droppedMessages = socket.droppedTotal; s.stalledDisconnects = socket.disconnectedStalled
            s.protocolErrors = socket.protocolErrors; s.refused = socket.refused; s.idleClosed = socket.idleClosed
            s.droppedFrames = socket.dropped
            d.socket = s
        }
        d.sinkDroppedFrames = sinks.map { ($0.name, $0.dropped) }
        d.sinkUp = sinkUp
        d.sinkFailures = sinkFailures
        d.sinkCounters = sinks.map { ($0.name, $0.counters) }.filter { !$0.1.isEmpty }
        return d
    }

    func publishStats(now: Int64) {
        guard let latency else { return }
        let line = latency.statsJSON(counters: stats.counters, health: healthMonitor.map { HealthMonitor.summary($0.activeFaults) })
        messages.publish(.stats, line: line, wallNs: now &+ Clock.wallMinusMonotonicNanoseconds())
    }

    func updateMetrics() {
        guard let metrics else { return }
        metrics.update(stats.metricsSnapshot)
    }

    /// Sends a `status` message to socket subscribers and the message-consuming sinks.
    func publishStatus(_ event: StatusMessage.Event) {
        let now = Clock.monotonicNanoseconds() &+ Clock.wallMinusMonotonicNanoseconds()
        messages.publish(.status, line: StatusMessage(event, t: Double(now) / 1e9, device: config.capture.device).line(), wallNs: now)
    }

    /// Runs until SIGTERM/SIGINT (or `options.duration`); returns the process exit code.
    public func run() -> Int32 {
        let signalFD = SignalEvents.install()
        do { try startSinks() } catch {
            logger.critical("\(error.message)")
            return error.exitCode
        }
        pipeline.start(dspFifoPriority: Int32(config.capture.realtimePriority))
        startNs = Clock.monotonicNanoseconds()
        health = HealthPolicy(startNs: startNs, watchdogIntervalNs: notifier.watchdogInterval.map {
            Int64($0.components.seconds) * 1_000_000_000 + $0.components.attoseconds / 1_000_000_000 })
        lastStatsNs = startNs
        logger.info("earshot \(EarshotVersion.string) started", metadata: [
            "device": "\(config.capture.device)", "sample_rate": "\(config.capture.sampleRate)",
            "n_fft": "\(config.analysis.nFFT)", "hop": "\(config.analysis.hop)", "n_mels": "\(config.analysis.nMels)"])
        for warning in options.configWarnings { logger.warning("configuration: \(warning)") }
        let reloadIntervalNs = Int64(Self.reloadIntervalSeconds * 1e9)
        var tickMs = Int64(max(1, options.tickMilliseconds))
        if let w = health.watchdogIntervalNs { tickMs = max(10, min(tickMs, w / 4_000_000)) }
        while true {
            var timeout = tickMs
            let now = Clock.monotonicNanoseconds()
            if reloadPending { timeout = max(0, min(timeout, (lastReloadNs + reloadIntervalNs - now) / 1_000_000 + 1)) }
            if let d = options.duration, d.isFinite {
                timeout = max(0, min(timeout, (startNs + Int64(min(d, 1e9) * 1e9) - now) / 1_000_000 + 1))
            }
            // Signals and capture events (device lost, xrun, …) wake the supervisor at once; the rest waits for
            // the tick. The pipeline (and so the event descriptor) changes on a rebuild: read it every time.
            var pfds = [pollfd(fd: signalFD, events: Int16(POLLIN), revents: 0),
                        pollfd(fd: pipeline.capture.eventNotifier.fileDescriptor, events: Int16(POLLIN), revents: 0)]
            if poll(&pfds, 2, Int32(timeout)) > 0, pfds[1].revents != 0 { pipeline.capture.eventNotifier.consume() }
            let pending = SignalEvents.take()
            if pending.contains(.terminate) { break }
            if let d = options.duration, Double(Clock.monotonicNanoseconds() - startNs) / 1e9 >= d { break }
            if pending.contains(.reload) { reloadPending = true }
            if reloadPending, lastReloadNs == 0 || Clock.monotonicNanoseconds() - lastReloadNs >= reloadIntervalNs {
                // Every SIGHUP that arrived until now is served by this one reload.
                reloadPending = false
                reload()
                lastReloadNs = Clock.monotonicNanoseconds()
            }
            tick()
        }
        return shutdown()
    }

    /// Stops capture, flushes the sinks, removes the socket. Returns 0.
    func shutdown() -> Int32 {
        notifier.stopping()
        logger.info("stopping")
        if !pipeline.stop() {
            logger.warning("capture thread did not stop within 1 s (device stuck); exiting without it",
                           metadata: ["device": "\(config.capture.device)"])
        }
        drainCaptureEvents()
        stopSinks()
        if let socket { messages.remove(socket) }
        socket?.stop()
        socket = nil
        logger.info("stopped", metadata: ["frames": "\(pipeline.dsp.frames)", "xruns": "\(pipeline.xruns)"])
        return 0
    }

    // MARK: supervision

    func tick() {
        drainCaptureEvents()
        let discontinuities = pipeline.dsp.discontinuities
        if discontinuities != lastDiscontinuities {
            publishStatus(.discontinuity(count: discontinuities - lastDiscontinuities, total: discontinuities,
                                         ringOverrunSamples: pipeline.dsp.ringOverrunSamples))
            lastDiscontinuities = discontinuities
        }
        let now = Clock.monotonicNanoseconds()
        reportSanitizedSamples(now: now)
        if let stall = pendingDSPStall, now - startNs >= stall.afterNs {
            pendingDSPStall = nil
            logger.warning("test fault: stalling the DSP thread", metadata: ["ms": "\(stall.milliseconds)"])
            pipeline.dsp.injectStall(milliseconds: stall.milliseconds)
        }
        let actions = health.tick(HealthPolicy.Observation(
            now: now, frames: pipeline.dsp.frames, lastFrameNs: pipeline.dsp.lastFrameMonotonicNs,
            captureState: pipeline.capture.state))
        if actions.ready {
            notifier.ready(status: statusLine())
            logger.info(actions.readyBecauseFramesFlow ? "ready: frames are flowing" : "ready: still waiting for the capture device")
        }
        if actions.watchdog { notifier.watchdog() }
        if now - lastStatsNs >= Int64(Self.statsIntervalSeconds * 1e9) {
            lastStatsNs = now
            publishStats(now: now)
        }
        if now - lastMetricsNs >= 1_000_000_000 {
            lastMetricsNs = now
            updateMetrics()
        }
        if actions.status { notifier.status(statusLine()) }
        HeapPolicy.trimIfDue(nowNs: now, last: &lastHeapTrimNs)
    }

    /// Samples the DSP input guard changed (``SampleGuard``: NaN/inf → 0, beyond ±1000 clamped): one warning
    /// and one `samples_sanitized` status with the totals, at most every 10 s while it keeps happening.
    func reportSanitizedSamples(now: Int64) {
        let nonFinite = pipeline.nonFiniteSamples, clamped = pipeline.clampedSamples
        guard sanitizedReporter.shouldReport(nonFinite: nonFinite, clamped: clamped, now: now) else { return }
        logger.warning("invalid audio samples replaced (non-finite → 0, beyond ±\(Int(SampleGuard.limit)) clamped)", metadata: [
            "device": "\(config.capture.device)", "nonfinite_total": "\(nonFinite)", "clamped_total": "\(clamped)"])
        publishStatus(.samplesSanitized(nonfinite: nonFinite, clamped: clamped))
    }

    /// `device=… state=… level=… frames=… xruns=… subscribers=…`
    public func statusLine() -> String {
        let level = pipeline.bus.latestHeader(into: &latest) ? latest.features.laf + Float(config.levels.calibrationDB ?? 0) : nil
        return HealthPolicy.statusLine(.init(
            device: config.capture.device, state: pipeline.capture.state, level: level, unit: config.levels.unit,
            frames: pipeline.dsp.frames, xruns: pipeline.xruns, reconnects: pipeline.reconnects, subscribers: socket?.clients)
            .with(health: healthMonitor.map { HealthMonitor.summary($0.activeFaults) }))
    }

    func drainCaptureEvents() {
        let alsa = ALSALibraryLog.drain()
        let now = Clock.monotonicNanoseconds()
        alsaLinesLost += alsa.dropped
        if alsaLinesLost > 0, alsaLostLog.admit(nowNs: now) != nil {
            logger.warning("libasound error lines lost: \(alsaLinesLost)")
            alsaLinesLost = 0
        }
        // A device in a bad state repeats one line hundreds of times a second: each line of libasound's source
        // (file:line function, errno; its text may carry changing numbers) is logged at most every 10 s, with how
        // many times it was not.
        for l in alsa.lines {
            guard let unlogged = alsaLineLog.admit("\(l.source) \(l.errno)", nowNs: now) else { continue }
            logger.warning("libasound: \(l.message)", metadata: [
                "source": "\(l.source)", "errno": "\(l.errno)", "repeats_unlogged": "\(unlogged)"])
        }
        var event = CaptureEvent(kind: .stopped, monotonicNs: 0)
        while true {
            let r = withUnsafeMutablePointer(to: &event) { p in
                pipeline.capture.events.readAvailable(into: UnsafeMutableBufferPointer(start: p, count: 1))
            }
            if r.lost > 0 { logger.warning("capture events lost: \(r.lost)") }
            guard r.count == 1 else { return }
            handle(event)
        }
    }

    func handle(_ e: CaptureEvent) {
        guard let r = captureReporter.report(e, now: Clock.monotonicNanoseconds()) else { return }
        var metadata: Logger.Metadata = [:]
        for (k, v) in r.metadata { metadata[k] = "\(v)" }
        logger.log(level: r.level, "\(r.message)", metadata: metadata.isEmpty ? nil : metadata)
        if let status = r.status { publishStatus(status) }
    }

    // MARK: reload

    /// Makes `next` the running configuration once a reload has been applied: the capture-event reporter
    /// names the new device, `logging.level` takes effect, and `source` is remembered (only once applied: a
    /// failed reload of the same bytes is tried again).
    func adopt(_ next: EarshotConfig, source: Data?) {
        let deviceChanged = next.capture.device != config.capture.device
        config = next
        if deviceChanged {
            // Another device: its loss/retry/xrun history starts afresh (no `down_s` from the old one).
            captureReporter = CaptureEventReporter(device: next.capture.device, realtimePriority: next.capture.realtimePriority)
        } else {
            captureReporter.realtimePriority = next.capture.realtimePriority
        }
        next.applyLogging()
        reloadSource = .some(source)
    }

    /// SIGHUP: re-read the configuration; apply it or keep the running one.
    func reload() {
        var next: EarshotConfig
        let source: Data?
        let warnings: [String]
        do {
            (next, source, warnings) = try EarshotConfig.loadWithSource(
                configPath: options.configPath, environment: options.environment, overrides: options.overrides,
                options: options.validation)
        } catch {
            logger.error("reload failed, keeping the running configuration: \(error)")
            return
        }
        for warning in warnings { logger.warning("reload: \(warning)") }
        // A sink that failed to start on an earlier reload (a busy port) is retried by the next SIGHUP, even
        // with the same file: its stopped state is the thing to fix.
        let sinksDown = sinkUp.values.contains(false)
        if let reloadSource, reloadSource == source, !sinksDown {
            logger.info("reload: configuration file unchanged")
            return
        }
        notifier.reloading()
        defer { notifier.ready(status: statusLine()) }
        let plan = ReloadPlan(from: config, to: next)
        if !plan.restartOnlyKeys.isEmpty {
            // The listening socket, its client limits and the backfill are set when it is bound: keep them.
            logger.warning("reload: \(plan.restartOnlyKeys.joined(separator: ", ")) take effect after a restart; keeping the running settings")
        }
        next = plan.config
        if plan.isEmpty && !sinksDown {
            reloadSource = .some(source)
            logger.info("reload: configuration unchanged")
            return
        }
        logger.notice("reloading configuration", metadata: [
            "changed": "\(plan.keys.joined(separator: ","))", "plan": "\(plan.action)"])
        let old = config
        if plan.rebuild {
            // Frame shape changes: a new pipeline and bus; sinks restart on it.
            let newPipeline: LivePipeline
            do { newPipeline = try Self.makePipeline(config: next, logger: logger) } catch {
                logger.error("reload failed, keeping the running configuration: \(error.message)")
                return
            }
            if !pipeline.stop() {
                logger.warning("capture thread did not stop within 1 s (device stuck); the new pipeline may find the device busy until it lets go",
                               metadata: ["device": "\(config.capture.device)"])
            }
            drainCaptureEvents()
            let stopped = stopSinks(handingOver: true)
            newPipeline.dsp.processor.continueSequence(at: pipeline.dsp.processor.nextSeq)
            adopt(next, source: source)
            pipeline = newPipeline
            let failed = (try? startSinks(failuresAreFatal: false, replacing: stopped, sameBus: false)) ?? []
            do { try socket?.switchBus(pipeline.bus, stream: streamInfo) } catch { logger.critical("\(error)") }
            pipeline.start(dspFifoPriority: Int32(config.capture.realtimePriority))
            publishStatus(.reload(changed: nil, rebuilt: true, plan: "\(plan.action)", failedSinks: failed))
            if failed.isEmpty {
                logger.notice("reload applied: pipeline rebuilt (sample rate, band counts or level channels changed)")
            } else {
                logger.error("reload partly applied: pipeline rebuilt, but sinks failed to start: \(failed.joined(separator: ", "))")
            }
            return
        }
        if plan.reopen, next.capture.device != config.capture.device {
            // Another device: one ALSA does not know, or that cannot capture as configured, is refused as at
            // start (exit 69 there) and the running one kept; one defined but absent or busy is waited for.
            do { _ = try CaptureThread.probe(next.captureConfig) } catch {
                if !error.isTransient {
                    logger.error("reload failed, keeping the running configuration: \(error)")
                    return
                }
            }
        }
        if plan.replan {
            do {
                let analyzer = try FrameAnalyzer(config: next.analyzerConfig)
                pipeline.replan(analyzer: analyzer)
                logger.notice("reload: DSP re-planned")
            } catch {
                logger.error("reload failed, keeping the running configuration: \(error)")
                return
            }
        } else if plan.retune {
            if pipeline.retune(onset: next.analyzerConfig.onset) {
                logger.notice("reload: onset picker retuned in place (DSP thread kept running)")
            } else {
                logger.error("reload failed, keeping the running configuration: the onset parameters cannot be retuned in place")
                return
            }
        }
        if plan.reopen {
            drainCaptureEvents()
            pipeline.reopen(capture: next.captureConfig)
            logger.notice("reload: capture device reopened", metadata: ["device": "\(next.capture.device)"])
        }
        adopt(next, source: source)
        let failed = applyLiveSettings(from: old, restartSinks: plan.restartSinks)
        socket?.updateStream(streamInfo)
        publishStatus(.reload(changed: plan.keys.count, rebuilt: false, plan: "\(plan.action)", failedSinks: failed))
        if failed.isEmpty {
            logger.notice("reload applied", metadata: ["plan": "\(plan.action)"])
        } else {
            logger.error("reload partly applied: sinks failed to start: \(failed.joined(separator: ", "))")
        }
    }


    /// Settings that take effect without restarting capture or DSP: alert thresholds and budgets live;
    /// rolling windows and metrics by restarting those sinks on the running bus.
    /// - Returns: the sinks that failed to restart (reported and left stopped; the others run).
    func applyLiveSettings(from old: EarshotConfig, restartSinks: Bool) -> [String] {
        let notLive = SinkRegistry.applyReload(to: sinks, config: config, options: options)
        if !notLive.isEmpty { logger.info("reload: restarting sinks", metadata: ["not_live": "\(notLive.joined(separator: ","))"]) }
        if restartSinks || !notLive.isEmpty || sinkUp.values.contains(false) {
            // Rebuild the non-socket sinks (the socket stays up); an ongoing alert carries over.
            let stopped = stopSinks(handingOver: true)
            return (try? startSinks(failuresAreFatal: false, replacing: stopped)) ?? []
        }
        return []
    }
}

extension LevelWeighting {
    init(_ w: EarshotConfig.Weighting) {
        switch w {
        case .laf: self = .laf
        case .las: self = .las
        case .lcf: self = .lcf
        case .lzf: self = .lzf
        case .rms: self = .rmsDbfs
        }
    }
}

/// The daemon could not start; `exitCode` is what the process should return.
public struct DaemonStartError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var exitCode: Int32
    public var description: String { message }
}
