#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// The onset-detection function (one value per frame, ≥ 0), in one of two definitions
/// (``OnsetFunctionConfig/function``):
///
/// - ``OnsetFunctionKind/superflux`` (default): a causal log-magnitude spectral flux over a
///   log-frequency filterbank of the full-band power spectrum (independent of the mel `fmax`), with
///   SuperFlux's frequency max-filter and lag (Böck & Widmer, DAFx 2013), measured against each band's
///   decaying peak memory (the peak spectral profile of Stowell & Plumbley's adaptive whitening, 2007)
///   raised to a tracked per-band background level:
///   - `E[b] = Σ_k W[b,k] · P[k] · (2/Σw)²` — triangular bands, 12 per octave, 30 Hz to 0.95 × Nyquist
///     (bands narrower than one FFT bin merged), `P` the frame's power spectrum, scaled so that a
///     full-scale sine reads 0 dB;
///   - `L[b] = 10·log10(E[b] + 1e-10)` (dB);
///   - peak memory `M[b]`: `L[b]` of the first frame, then `max(L[b], M[b] − decay)` (`decay` =
///     ``OnsetFunctionConfig/memoryDecayDbPerSecond`` per second), so the random fluctuation of a decaying
///     cymbal or reverberation tail does not read as a rise;
///   - background level `N[b]`: of the band power smoothed by a one-pole filter (time constant
///     ``OnsetFunctionConfig/floorSmoothingSeconds``, 50 ms) in dB, `S[b]`: `S[b]` of the first frame, then
///     a step of at most `floor_slew_db_per_s` toward `S[b]` (up or down, never past it), so it settles at
///     the running median of `S[b]`: the level of a steady background and of a background with frequent
///     weaker events of its own (distant speech, traffic). Fast start: on the `n`-th frame after the
///     start or a ``reset()`` the step may be `max(slew per frame, fastStartDb / n)` dB
///     (``OnsetFunctionConfig/fastStartDb``, 20 dB: about 20·ln n dB over n frames), so the level settles
///     within tens of frames instead of seconds, whatever the first frame held;
///   - reference `R[b] = max(max(M[b−m … b+m] of frame t−lag), N[b] + floor_margin_db)` (`m` =
///     `max_filter_bands`);
///   - strength = root mean square of the `top_bands` largest `max(0, L[b] − R[b])` (dB; when fewer
///     bands rise, the missing ones count 0): `sqrt(Σ r_i² / top_bands)`. Taking the largest bands
///     rather than all of them lets a narrow-band event (a bird chirp) count as much as a broadband hit
///     of the same rise; the RMS weights the largest rises more than their mean does, so a few bands far
///     above their references (an attack) outweigh several bands just above theirs (noise).
///   0 for the first `lag` frames (and after ``reset()``).
/// - ``OnsetFunctionKind/logmel``: `librosa.onset.onset_strength(S=logmel_db, lag=1, max_size=1,
///   center=False)` computed causally, i.e. `mean_m max(0, S[m,t] − S[m,t−1])` in dB, 0 for the first
///   frame (and the first frame after ``reset()``), as librosa pads one zero.
///
/// Real-time safe: ``process(power:logmel:)`` and ``process(logmel:)`` do no allocation, take no lock
/// (everything is allocated in `init`). One thread at a time per instance (it keeps history).
public final class OnsetStrength: @unchecked Sendable {
    public let nMels: Int
    public let config: OnsetFunctionConfig
    /// Number of log-frequency bands of the ``OnsetFunctionKind/superflux`` function (0 for `logmel`).
    public let bandCount: Int

    // logmel
    let previous: UnsafeMutablePointer<Float>
    let hasPrevious: UnsafeMutablePointer<Bool>
    // superflux: band k-ranges and flat triangular weights
    let bandStart: UnsafeMutablePointer<Int>
    let bandLength: UnsafeMutablePointer<Int>
    let weightOffset: UnsafeMutablePointer<Int>
    let weights: UnsafeMutablePointer<Float>
    let history: UnsafeMutablePointer<Float>  // (lag + 1) rows of bandCount peak memories
    let floor: UnsafeMutablePointer<Float>     // tracked background level (power)
    let smoothed: UnsafeMutablePointer<Float>  // band power, one-pole smoothed (background tracking input)
    let current: UnsafeMutablePointer<Float>   // this frame's band power
    let reference: UnsafeMutablePointer<Float> // scratch: each band's reference, then its power ratio to it
    let top: UnsafeMutablePointer<Float>
    let frames: UnsafeMutablePointer<Int>
    let powerScale: Float
    let slewUp: Float        // 10^(slew per frame / 10)
    let slewDown: Float      // 1 / slewUp
    let decayFactor: Float   // 10^(−memory decay per frame / 10)
    let marginFactor: Float  // 10^(floor_margin_db / 10)
    let smoothing: Float
    let binCount: Int
    /// ``OnsetFunctionConfig/fastStartDb`` (0 if not finite or negative).
    let fastStartDb: Float
    /// Frames after a start or reset during which the fast-start slew (`fastStartDb / t` dB per frame)
    /// exceeds the configured slew: `fastStartDb` / (slew per frame).
    let fastStartFrames: Float

    /// The librosa-compatible function on `nMels` log-mel bands (``OnsetFunctionKind/logmel``).
    public convenience init(nMels: Int) {
        var c = OnsetFunctionConfig()
        c.function = .logmel
        self.init(config: c, sampleRate: 48_000, nFFT: 16, nMels: nMels)
    }

    /// - Parameters:
    ///   - config: validated function parameters.
    ///   - sampleRate, nFFT: the STFT the power spectra come from (the periodic Hann window's sum is
    ///     `nFFT/2`).
    ///   - nMels: number of log-mel bands (≥ 1).
    public init(config: OnsetFunctionConfig, sampleRate: Int, nFFT: Int, nMels: Int, hop: Int = 480) {
        precondition(nMels >= 1 && nFFT >= 2 && sampleRate > 0)
        self.nMels = nMels
        self.config = config
        previous = .allocate(capacity: nMels)
        previous.initialize(repeating: 0, count: nMels)
        hasPrevious = .allocate(capacity: 1)
        hasPrevious.initialize(to: false)
        binCount = nFFT / 2 + 1
        let edges = config.function == .superflux
            ? Self.bandEdges(sampleRate: sampleRate, nFFT: nFFT, bandsPerOctave: OnsetFunctionConfig.bandsPerOctave) : []
        let bands = max(edges.count - 2, 0)
        bandCount = bands
        bandStart = .allocate(capacity: max(bands, 1))
        bandLength = .allocate(capacity: max(bands, 1))
        weightOffset = .allocate(capacity: max(bands, 1))
        var flat: [Float] = []
        for b in 0..<bands {
            let lo = edges[b], c = edges[b + 1], hi = edges[b + 2]
            bandStart[b] = lo
            bandLength[b] = hi - lo + 1
            weightOffset[b] = flat.count
            for k in lo...hi {
                let w: Double = k <= c
                    ? (c > lo ? Double(k - lo) / Double(c - lo) : 1)
                    : Double(hi - k) / Double(hi - c)
                flat.append(Float(w))
            }
        }
        weights = .allocate(capacity: max(flat.count, 1))
        weights.initialize(repeating: 0, count: max(flat.count, 1))
        for (i, w) in flat.enumerated() { weights[i] = w }
        let lag = max(config.lagFrames, 1)
        history = .allocate(capacity: max(bands, 1) * (lag + 1))
        history.initialize(repeating: 0, count: max(bands, 1) * (lag + 1))
        floor = .allocate(capacity: max(bands, 1))
        floor.initialize(repeating: 0, count: max(bands, 1))
        smoothed = .allocate(capacity: max(bands, 1))
        smoothed.initialize(repeating: 0, count: max(bands, 1))
        current = .allocate(capacity: max(bands, 1))
        current.initialize(repeating: 0, count: max(bands, 1))
        reference = .allocate(capacity: max(bands, 1))
        reference.initialize(repeating: 0, count: max(bands, 1))
        top = .allocate(capacity: max(config.topBands, 1))
        top.initialize(repeating: 0, count: max(config.topBands, 1))
        frames = .allocate(capacity: 1)
        frames.initialize(to: 0)
        let windowSum = Double(nFFT) / 2
        powerScale = Float((2 / windowSum) * (2 / windowSum))
        let perFrame = Double(max(hop, 1)) / Double(sampleRate)
        let up = min(pow(10, Double(config.floorSlewDbPerSecond) * perFrame / 10), Double(Float.greatestFiniteMagnitude))
        slewUp = Float(up)
        slewDown = Float(1 / up)
        let fast = config.fastStartDb.isFinite ? max(config.fastStartDb, 0) : 0
        fastStartDb = fast
        let slewPerFrame = Double(config.floorSlewDbPerSecond) * perFrame
        fastStartFrames = slewPerFrame > 0 ? Float(min(Double(fast) / slewPerFrame, 1e9)) : 1e9
        decayFactor = Float(pow(10, -Double(config.memoryDecayDbPerSecond) * perFrame / 10))
        marginFactor = Float(pow(10, Double(config.floorMarginDb) / 10))
        smoothing = Float(exp(-Double(max(hop, 1)) / (OnsetFunctionConfig.floorSmoothingSeconds * Double(sampleRate))))
    }

    deinit {
        previous.deallocate(); hasPrevious.deallocate()
        bandStart.deallocate(); bandLength.deallocate(); weightOffset.deallocate(); weights.deallocate()
        history.deallocate(); floor.deallocate(); smoothed.deallocate(); current.deallocate(); reference.deallocate(); top.deallocate(); frames.deallocate()
    }

    /// FFT-bin edges of the log-frequency bands: `30 Hz · 2^(i/bandsPerOctave)` up to 0.95 × Nyquist,
    /// rounded to bins, duplicates dropped (so no band is narrower than a bin); always ≥ 3 edges.
    static func bandEdges(sampleRate: Int, nFFT: Int, bandsPerOctave: Int) -> [Int] {
        let nyquist = Double(sampleRate) / 2
        let fMin = 30.0, fMax = 0.95 * nyquist
        let lastBin = nFFT / 2
        var edges: [Int] = []
        if fMax > fMin {
            let n = Int((log2(fMax / fMin) * Double(bandsPerOctave)).rounded(.down))
            for i in 0...(n + 2) {
                let f = fMin * pow(2, Double(i) / Double(bandsPerOctave))
                if f > nyquist { break }
                let k = min(Int((f * Double(nFFT) / Double(sampleRate)).rounded()), lastBin)
                if edges.isEmpty || k > edges[edges.count - 1] { edges.append(k) }
            }
        }
        var k = (edges.last ?? -1) + 1
        while edges.count < 3 && k <= lastBin { edges.append(k); k += 1 }
        return edges
    }

    /// Forgets the history: the next strengths are 0 (for `lag` frames with `superflux`, one with `logmel`)
    /// and the peak memory and background level start again from the next frame.
    public func reset() {
        hasPrevious.pointee = false
        frames.pointee = 0
    }

    /// Returns this frame's onset strength (dB, ≥ 0) by the configured function and remembers the frame.
    /// Real-time safe.
    /// - Parameters:
    ///   - power: the frame's `nFFT/2 + 1` power-spectrum bins (used by `superflux`).
    ///   - logmel: `nMels` log-mel values in dB (used by `logmel`).
    @inline(__always)
    public func process(power: UnsafeBufferPointer<Float>, logmel: UnsafeBufferPointer<Float>) -> Float {
        config.function == .superflux ? superflux(power: power) : process(logmel: logmel)
    }

    /// The `superflux` function, computed in the power domain (`L[b] − R[b]` in dB is `10·log10` of the
    /// power ratio, and every comparison is monotonic), so only the `top_bands` largest ratios take a
    /// logarithm.
    func superflux(power: UnsafeBufferPointer<Float>) -> Float {
        precondition(power.count == binCount)
        let p = power.baseAddress!
        let bands = bandCount
        let lag = max(config.lagFrames, 1)
        let rows = lag + 1
        let t = frames.pointee
        let row = history + (t % rows) * bands
        let previous = history + ((t + rows - 1) % rows) * bands  // frame t−1 (rows ≥ 2)
        // fast start: on the t-th frame after the start or a reset the background may move
        // max(slew per frame, fastStartDb / t) dB, so it settles in a few frames instead of seconds
        var up = slewUp, down = slewDown
        if t > 0 && Float(t) < fastStartFrames && fastStartDb > 0 {
            up = powf(10, fastStartDb / Float(t) / 10)
            down = 1 / up
        }
        for b in 0..<bands {
            let start = bandStart[b], n = bandLength[b]
            let w = weights + weightOffset[b]
            var e = Self.dot(w, p + start, count: n) * powerScale
            e = e.isNaN || e < 0 ? 0 : min(e, 1e30)  // total: no NaN, no sticky infinity in the smoothing
            current[b] = e + 1e-10
        }
        // peak memory (decaying) and background level (slew-limited follower of the smoothed power)
        if t == 0 {
            row.update(from: current, count: bands)
            smoothed.update(from: current, count: bands)
            floor.update(from: current, count: bands)
        } else {
            let keep = smoothing, take = 1 - smoothing, decay = decayFactor
            for b in 0..<bands {
                let e = current[b]
                row[b] = max(e, previous[b] * decay)
                let sm = keep * smoothed[b] + take * e
                smoothed[b] = sm
                // toward sm by at most one slew step: up ≥ 1 ≥ down, so this is
                // `sm > f ? min(f·up, sm) : max(f·down, sm)` without a branch
                let f = floor[b]
                floor[b] = min(f * up, max(f * down, sm))
            }
        }
        frames.pointee = t + 1  // 2^63 frames: never overflows in practice
        guard t >= lag else { return 0 }
        let old = history + ((t - lag) % rows) * bands
        let m = config.maxFilterBands
        // the K largest power ratios above 1 (K small: insertion into a sorted buffer)
        let k = min(max(config.topBands, 1), bands)
        var filled = 0
        // reference: the peak memory of frame t − lag, max-filtered over ±m bands (one pass per offset,
        // so each pass is a plain vectorizable loop), raised to the margin above the background
        let ref = reference
        ref.update(from: old, count: bands)
        if m > 0 && bands > 1 {
            for d in 1...min(m, bands - 1) {
                for b in d..<bands { ref[b] = max(ref[b], old[b - d]) }
                for b in 0..<(bands - d) { ref[b] = max(ref[b], old[b + d]) }
            }
        }
        let margin = marginFactor
        for b in 0..<bands { ref[b] = current[b] / max(ref[b], floor[b] * margin) }
        for b in 0..<bands {
            let q = ref[b]
            guard q > 1 else { continue }
            if filled < k {
                var i = filled
                while i > 0 && top[i - 1] < q { top[i] = top[i - 1]; i -= 1 }
                top[i] = q
                filled += 1
            } else if q > top[k - 1] {
                var i = k - 1
                while i > 0 && top[i - 1] < q { top[i] = top[i - 1]; i -= 1 }
                top[i] = q
            }
        }
        // root mean square of the K largest rises in dB (the missing ones count 0)
        var sum: Float = 0
        for i in 0..<filled {
            let r = 10 * log10(top[i])
            sum += r * r
        }
        let result = (sum / Float(k)).squareRoot()
        return result.isFinite ? result : 0
    }

    /// `Σ a[i]·b[i]` over `count` elements, in 8 lanes (a band's sum as one serial chain of adds cost
    /// about 4 cycles per bin: this function was a third of `analyze --features rms_dbfs,onset_strength`).
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count n: Int) -> Float {
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        var v = SIMD8<Float>()
        var i = 0
        while i &+ 8 <= n {
            v += ra.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self)
                * rb.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self)
            i &+= 8
        }
        var rest = SIMD4<Float>()
        if i &+ 4 <= n {
            rest = ra.loadUnaligned(fromByteOffset: i &* 4, as: SIMD4<Float>.self)
                * rb.loadUnaligned(fromByteOffset: i &* 4, as: SIMD4<Float>.self)
            i &+= 4
        }
        var acc = (v.lowHalf + v.highHalf + rest).sum()
        while i < n { acc += a[i] * b[i]; i &+= 1 }
        return acc
    }

    /// The ``OnsetFunctionKind/logmel`` function: returns this frame's strength (dB, ≥ 0) and remembers
    /// the frame. Real-time safe.
    /// - Parameter logmel: `nMels` log-mel values in dB.
    public func process(logmel: UnsafeBufferPointer<Float>) -> Float {
        precondition(logmel.count == nMels)
        let s = logmel.baseAddress!
        var result: Float = 0
        if hasPrevious.pointee {
            let cur = UnsafeRawPointer(s), prev = UnsafeRawPointer(previous)
            let zero = SIMD8<Float>()
            var a0 = SIMD4<Double>(), a1 = SIMD4<Double>()
            let blocks = nMels / 8
            for b in 0..<blocks {
                var d = cur.loadUnaligned(fromByteOffset: b &* 32, as: SIMD8<Float>.self)
                    - prev.loadUnaligned(fromByteOffset: b &* 32, as: SIMD8<Float>.self)
                d.replace(with: zero, where: .!(d .> zero))
                a0 += SIMD4<Double>(Double(d[0]), Double(d[1]), Double(d[2]), Double(d[3]))
                a1 += SIMD4<Double>(Double(d[4]), Double(d[5]), Double(d[6]), Double(d[7]))
            }
            var acc = (a0 + a1).sum()
            for m in (blocks &* 8)..<nMels {
                let d = s[m] - previous[m]
                if d > 0 { acc += Double(d) }
            }
            result = Float(acc / Double(nMels))
            if !result.isFinite { result = 0 }
        }
        previous.update(from: s, count: nMels)
        hasPrevious.pointee = true
        return result
    }
}
