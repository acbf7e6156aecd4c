import EarshotCapture
import EarshotPipeline
import EarshotSinks

/// What a configuration will allocate, term by term, so that validation can refuse (exit 78, naming the
/// keys) a configuration whose buffers exceed `limits.max_memory_mb` instead of letting the daemon exhaust
/// memory or abort in an allocation.
///
/// The formulas mirror the allocations they estimate (an upper bound: rings are rounded up to powers of two
/// as ``SPSCRing`` and ``FrameBus`` do): ``LivePipeline`` (sample and stamp rings, DSP scratch),
/// `CaptureThread`/ALSA (period and buffer), ``FrameBus`` (slots), `MelFilterbank` (its dense matrix at
/// setup), `RollingAggregator` (per-window levels), `SocketLoop` (backfill lines, per-client input and
/// queue entries, the shared encoded frames). `ConfigMemoryTests` checks them against the real objects.
/// Fixed costs (code, libraries, FFTW plans, threads: about 30 MB) are not included.
public struct MemoryEstimate: Sendable, Equatable {
    /// One allocation (or group of allocations sized by the same keys).
    public struct Term: Sendable, Equatable {
        /// What it is, e.g. `rolling windows`.
        public var name: String
        /// The keys that size it, most decisive first (the first one the user set is named in errors).
        public var keys: [String]
        public var bytes: Double
        /// How the size comes about, e.g. `86400 s × 12000 frames/s × 8 bytes`.
        public var detail: String
    }

    public var terms: [Term]
    public var totalBytes: Double { terms.reduce(0) { $0 + $1.bytes } }
    public var totalMB: Double { totalBytes / 1_048_576 }
    /// Frames kept by the frame bus (``LivePipeline``'s default bus capacity).
    public static let busFrames = 1024
    /// Upper bound of the bytes of one `rolling` line and one encoded `frame` line besides the per-band values.
    static let lineOverheadBytes = 600.0
    /// Bytes of one band value in an encoded line (`-123.456,`).
    static let bytesPerBandValue = 10.0
    /// Bytes a client's queue entry takes besides the (shared) message bytes.
    static let queueEntryBytes = 48.0
}

/// The next power of two ≥ `n` (as the rings round up), in floating point so no size can trap.
func powerOfTwoCeil(_ n: Double) -> Double {
    var p = 1.0
    while p < n && p < 1e300 { p *= 2 }
    return p
}

extension EarshotConfig {
    /// Frames per second above which a configuration is refused (`capture.sample_rate / analysis.hop`): one
    /// frame per millisecond. Above it the DSP cannot keep up on the boxes this runs on and the frame
    /// stream would be mostly drops.
    public static let maxFramesPerSecond = 1000

    /// The buffers this configuration allocates (see ``MemoryEstimate``).
    public var memoryEstimate: MemoryEstimate {
        let rate = Double(capture.sampleRate)
        let channels = Double(capture.channels)
        let period = Double(captureConfig.periodFrames)
        let periodKey = capture.periodFrames == nil ? "analysis.hop" : "capture.period_frames"
        let bufferPeriods = Double(capture.bufferPeriods)
        let hop = Double(analysis.hop)
        let nMels = Double(analysis.nMels), nMFCC = Double(analysis.nMFCC), nFFT = Double(analysis.nFFT)
        let n = formatNumber
        var terms: [MemoryEstimate.Term] = []

        // ALSA buffer (in the plugin or the kernel) plus the capture thread's period buffers (raw + float).
        let alsa = period * bufferPeriods * channels * 4 + period * channels * 4 + period * 4
        terms.append(.init(name: "ALSA buffer", keys: [periodKey, "capture.buffer_periods", "capture.channels"], bytes: alsa,
                           detail: "\(n(period)) frames × \(n(bufferPeriods)) periods × \(n(channels)) channels × 4 bytes"))

        // LivePipeline: the sample ring and the DSP thread's scratch of the same size.
        let ringRequested = max((rate * capture.ringSeconds).rounded(.towardZero), period * bufferPeriods * 4)
        let ringSamples = powerOfTwoCeil(ringRequested)
        terms.append(.init(name: "sample ring", keys: ["capture.ring_seconds", periodKey, "capture.buffer_periods", "capture.sample_rate"],
                           bytes: ringSamples * 4 * 2,
                           detail: "\(n(ringSamples)) samples × 4 bytes, twice (ring and DSP scratch)"))
        // The side ring (2…64 channels without capture.channel: the stereo side signal, or every channel) and
        // the DSP thread's side scratch (the ring's size for stereo, 4 periods of every channel for 3 or more).
        // One channel or a picked one: allocated the size of the sample ring but never touched (not counted).
        let stride = Double(EarshotCapture.sideStride(channels: capture.channels, channel: capture.channel))
        if stride > 0 {
            let sideRing = powerOfTwoCeil(ringRequested * stride)
            let scratch = stride == 1 ? max(period * 4, ringSamples) : period * 4 * stride
            terms.append(.init(name: "side ring", keys: ["capture.channels", "capture.channel", "capture.ring_seconds", periodKey,
                                                         "capture.buffer_periods", "capture.sample_rate"],
                               bytes: (sideRing + scratch) * 4,
                               detail: "\(n(sideRing)) + \(n(scratch)) floats (ring and DSP scratch, \(n(stride)) per sample) × 4 bytes"))
        }
        // 3…64 channels: the frame processor's window of every channel (n_fft samples) and the capture thread's
        // period of every channel, besides the ring above.
        if stride >= 3 {
            terms.append(.init(name: "channel window", keys: ["capture.channels", "analysis.n_fft", periodKey],
                               bytes: (nFFT + period) * stride * 4,
                               detail: "(\(n(nFFT)) + \(n(period))) samples × \(n(stride)) channels × 4 bytes"))
        }
        let stampCount = powerOfTwoCeil(max(64, (ringRequested / max(1, (period / 4).rounded(.towardZero))).rounded(.towardZero)))
        terms.append(.init(name: "period stamps", keys: ["capture.ring_seconds", periodKey], bytes: stampCount * Double(MemoryLayout<CaptureStamp>.stride),
                           detail: "\(n(stampCount)) stamps × \(MemoryLayout<CaptureStamp>.stride) bytes"))

        // FrameBus slots.
        let slot = Double(MemoryLayout<FrameHeader>.stride) + (max(nMels, 1) + max(nMFCC, 1)) * 4
        let busFrames = powerOfTwoCeil(Double(MemoryEstimate.busFrames))
        terms.append(.init(name: "frame bus", keys: ["analysis.n_mels", "analysis.n_mfcc"], bytes: busFrames * slot,
                           detail: "\(n(busFrames)) frames × \(n(slot)) bytes"))

        // Analyzer: the mel filterbank's dense matrix at setup, FFT-sized buffers.
        let bins = (nFFT / 2).rounded(.towardZero) + 1
        terms.append(.init(name: "analyzer", keys: ["analysis.n_mels", "analysis.n_fft"], bytes: nMels * bins * 4 + nFFT * 4 * 12,
                           detail: "\(n(nMels)) mel bands × \(n(bins)) FFT bins × 4 bytes"))

        // The spectrum tap (the `spectrum` stream's ring, allocated with the bus).
        let tapBins = Int(min(bins, Double(1 << 20)))
        let tapBytes = Double(SpectrumTap.bytes(bins: tapBins))
        terms.append(.init(name: "spectrum tap", keys: ["analysis.n_fft"], bytes: tapBytes,
                           detail: "\(SpectrumTap.capacity(bins: tapBins)) spectra × \(n(bins)) bins × 4 bytes"))

        // RollingAggregator: every frame's level, per window.
        let framesPerSecond = rate / hop
        var rollingFrames = 0.0
        for w in rolling.windowsSeconds { rollingFrames += (w * framesPerSecond).rounded(.up) + 2 }
        terms.append(.init(name: "rolling windows", keys: ["rolling.windows_s", "analysis.hop", "capture.sample_rate"], bytes: rollingFrames * 4,
                           detail: "\(n(rollingFrames)) frames (\(n(rolling.windowsSeconds.last ?? 0)) s at \(n(framesPerSecond.rounded())) frames/s) × 4 bytes"))

        // SocketLoop backfill: rolling lines kept for backfill_s (at most maxBackfillLines).
        let rollingLineBytes = MemoryEstimate.lineOverheadBytes + nMels * MemoryEstimate.bytesPerBandValue
        var linesPerSecond = 0.0
        for w in rolling.windowsSeconds { linesPerSecond += 1 / w }
        let backfillLines = min((socket.backfillSeconds * linesPerSecond).rounded(.up), Double(Self.socketBackfillLineLimit))
        terms.append(.init(name: "backfill", keys: ["rolling.backfill_s", "rolling.windows_s", "analysis.n_mels"], bytes: backfillLines * rollingLineBytes,
                           detail: "\(n(backfillLines)) rolling lines × \(n(rollingLineBytes)) bytes"))

        // SocketLoop clients: a 64 KiB read buffer and a partial command line each, the queue entries, and the
        // queued bytes, which all queues together keep under socket.queue_bytes_total (each client gets its
        // share, at most socket.queue_bytes).
        let clients = Double(socket.maxClients)
        let queue = Double(socket.queueMessages)
        terms.append(.init(name: "socket clients", keys: ["socket.max_clients", "socket.max_line_bytes", "socket.queue_messages"],
                           bytes: clients * (Double(SocketPublisher.Limits.readBufferBytes) + Double(socket.maxLineBytes) + queue * MemoryEstimate.queueEntryBytes),
                           detail: "\(n(clients)) clients × (64 KiB read buffer + \(socket.maxLineBytes) bytes of input + \(n(queue)) queue entries)"))
        // Each client's share is at least 64 KiB (SocketLoop), so many clients can exceed the total.
        let queued = min(clients * Double(socket.queueBytes), max(Double(socket.queueBytesTotal), clients * Double(SocketPublisher.Limits.minQueueShare)))
        terms.append(.init(name: "socket queued bytes", keys: ["socket.queue_bytes_total", "socket.queue_bytes"],
                           bytes: queued, detail: "\(n(queued)) bytes of queued messages (all clients)"))
        // Event clips (off unless clips.directory is set): the DSP thread's tap and the sink's history.
        if clips.directory != nil {
            let tap = powerOfTwoCeil(max(hop * 4, (rate * ClipSink.Configuration.tapSeconds).rounded(.towardZero)))
            let history = ((clips.maxClipSeconds + 2) * rate).rounded(.towardZero)
            terms.append(.init(name: "clips", keys: ["clips.max_clip_s", "capture.sample_rate"], bytes: tap * 4 * 2 + history * 4,
                               detail: "\(n(history)) history samples + \(n(tap)) tap samples (twice) × 4 bytes"))
        }
        // The MQTT sink: its bounded inbox and the spool's read buffer (the spool itself is on disk).
        if mqtt.enabled {
            let inbox = Double(MQTTSink.Configuration.Limits.inboxBytes + MQTTSink.Configuration.Limits.spoolRecordBytes)
            terms.append(.init(name: "mqtt inbox", keys: ["mqtt.broker"], bytes: inbox,
                               detail: "\(n(inbox)) bytes of messages waiting for the MQTT thread and one spool record"))
            // Messages held while the spool cannot be written: their bytes plus about 64 bytes of bookkeeping each.
            let held = Double(MQTTSink.Configuration.Limits.heldBytes + 64 * MQTTSink.Configuration.Limits.heldMessages)
            terms.append(.init(name: "mqtt held messages", keys: ["mqtt.broker"], bytes: held,
                               detail: "\(n(held)) bytes of QoS-1 messages held in memory while the spool cannot be written"))
        }
        return MemoryEstimate(terms: terms)
    }

    /// The socket never keeps more rolling lines than this.
    static let socketBackfillLineLimit = SocketPublisher.Limits.maxBackfillLines
}
