/// Levels of an input with N ≥ 3 channels as the **energy mean over the channels**: per sample
/// `y² = (1/N) Σ_ch W(x_ch)²` for each weighting `W` (A, C, Z with its DC block), the Fast/Slow time weightings,
/// energies, maxima and minima on that mean exactly as for one channel, the C peak the largest `|C(x_ch)|`
/// (the peak of the loudest channel), band energies `(1/N) Σ_ch` of each channel's band energies.
///
/// The samples given to ``LevelMeter/process(_:)`` are then the averaged downmix (every other feature's input)
/// and ``LevelMeter/side`` holds the N channels interleaved (`side[j·N + ch]`). Each channel has its own
/// weighting filter states (and band filter bank, bands on), all preallocated. The block is processed in chunks
/// of ``LevelMeter/Multichannel/chunk`` samples: per channel, the chunk is deinterleaved into a scratch and run
/// through that channel's ``LevelMeter/Cascade``, adding its squares to per-sample sums; then the time
/// weightings run over the sums scaled by 1/N. Cost: the weighting filters (and band filters) N times per sample.
///
/// A block without channels (the side ring lapped: ``LevelMeter/side`` nil) reads the averaged downmix, as the
/// stereo meter does: its filters did not run while the channels came, so they restart from rest (the time
/// weightings keep their state); when the channels come back, their filters restart from rest likewise.
extension LevelMeter {
    /// Per-channel state and scratch of an N ≥ 3 channel meter. Only pointers (copied without reference
    /// counting); ``deallocate()`` frees them.
    struct Multichannel {
        /// Samples per chunk.
        static let chunk = 256
        let count: Int
        /// 1/N.
        let scale: Double
        let states: UnsafeMutablePointer<State>
        /// The band filter banks (retained; nil when bands are off).
        let banks: UnsafeMutablePointer<Unmanaged<BandFilterBank>>?
        /// One channel's chunk, deinterleaved.
        let input: UnsafeMutablePointer<Float>
        /// Per-sample sums over the channels: A², (C², Z²), and the largest |C|.
        let qa: UnsafeMutablePointer<Double>
        let qcz: UnsafeMutablePointer<D2>
        let peak: UnsafeMutablePointer<Double>
        /// Whether the last block had its channels (their filters are current).
        let active: UnsafeMutablePointer<Bool>

        init(channels: Int, bands: BandResolution, sampleRate: Int) {
            count = channels
            scale = 1 / Double(channels)
            states = .allocate(capacity: channels)
            states.initialize(repeating: State(), count: channels)
            if bands == .off {
                banks = nil
            } else {
                let b = UnsafeMutablePointer<Unmanaged<BandFilterBank>>.allocate(capacity: channels)
                for c in 0..<channels {
                    (b + c).initialize(to: .passRetained(BandFilterBank(resolution: bands, sampleRate: sampleRate)))
                }
                banks = b
            }
            input = .allocate(capacity: Self.chunk)
            input.initialize(repeating: 0, count: Self.chunk)
            qa = .allocate(capacity: Self.chunk)
            qa.initialize(repeating: 0, count: Self.chunk)
            qcz = .allocate(capacity: Self.chunk)
            qcz.initialize(repeating: D2(), count: Self.chunk)
            peak = .allocate(capacity: Self.chunk)
            peak.initialize(repeating: 0, count: Self.chunk)
            active = .allocate(capacity: 1)
            active.initialize(to: false)
        }

        func deallocate() {
            if let banks {
                for c in 0..<count { banks[c].release() }
                banks.deallocate()
            }
            states.deallocate(); input.deallocate(); qa.deallocate(); qcz.deallocate(); peak.deallocate()
            active.deallocate()
        }

        /// The channels' filters from rest.
        func resetFilters() {
            states.update(repeating: State(), count: count)
            if let banks { for c in 0..<count { banks[c]._withUnsafeGuaranteedRef { $0.reset() } } }
        }

        func reset() { resetFilters(); active.pointee = false }
    }

    /// ``process(_:)`` with the N channels interleaved in `channels` (sanitized like the samples). Real-time safe.
    func processChannels(_ mc: Multichannel, _ channels: UnsafePointer<Float>, count: Int, cut: Int) {
        if !mc.active.pointee { mc.resetFilters(); mc.active.pointee = true }
        let bands = bank != nil
        if bands { bandEnergies.update(repeating: 0, count: 2 * maxBands) }
        var st = state.pointee
        channelSegment(mc, channels, from: 0, count: cut, &st, into: sums, bands: bands ? bandEnergies : nil)
        channelSegment(mc, channels, from: cut, count: count - cut, &st, into: sums + 1,
                       bands: bands ? bandEnergies + maxBands : nil)
        state.pointee = st
        if bands {
            let s = Float(mc.scale)
            for i in 0..<(2 * maxBands) { bandEnergies[i] *= s }
        }
    }

    /// The averaged downmix comes alone after blocks with channels: its filters (not run meanwhile) restart from
    /// rest; the time weightings go on.
    func monoAfterChannels(_ mc: Multichannel) {
        state.pointee.cState = (0, 0, 0, 0)
        state.pointee.aState = (0, 0)
        state.pointee.zState = (0, 0)
        bank?.reset()
        mc.active.pointee = false
    }

    /// Samples `[start, start + count)` of the interleaved channels into `out` (and band energies into `bands`).
    @inline(__always)
    func channelSegment(_ mc: Multichannel, _ channels: UnsafePointer<Float>, from start: Int, count: Int,
                        _ st: inout State, into out: UnsafeMutablePointer<LevelSums>, bands: UnsafeMutablePointer<Float>?) {
        let n = mc.count
        let f = pairs[0], g = pairs[1], c1 = coef[1], c2 = coef[2]
        let x = mc.input, qa = mc.qa, qcz = mc.qcz, peak = mc.peak
        var done = 0
        while done < count {
            let m = min(Multichannel.chunk, count - done)
            qa.update(repeating: 0, count: m)
            qcz.update(repeating: D2(), count: m)
            peak.update(repeating: 0, count: m)
            let base = channels + (start + done) * n
            for c in 0..<n {
                for j in 0..<m { x[j] = base[j * n + c] }
                var cs = mc.states[c]
                var k = Cascade(cs)
                k.first(Self.sample(x[0]), f, c1)
                for j in 0..<(m - 1) {
                    let (a, cz) = k.next(Self.sample(x[j + 1]), f, g)
                    qa[j] += a[0] * a[0]
                    qcz[j] += cz * cz
                    peak[j] = max(peak[j], abs(cz[0]))
                }
                let (a, cz) = k.last(c2)
                qa[m - 1] += a[0] * a[0]
                qcz[m - 1] += cz * cz
                peak[m - 1] = max(peak[m - 1], abs(cz[0]))
                k.store(&cs)
                mc.states[c] = cs
                if let bands, let banks = mc.banks {
                    banks[c]._withUnsafeGuaranteedRef { $0.process(x, count: m, into: bands) }
                }
            }
            var w = TimeWeighting(st, fast: fastAlpha, slow: slowAlpha)
            let (fastFrom, slowFrom) = settledFrom(st)
            let s = mc.scale
            Self.phased(m, fastFrom: fastFrom, slowFrom: slowFrom) { j, fast, slow in
                w.add(D2(repeating: qa[j] * s), qcz[j] * s, peak: D2(peak[j], 0), fast: fast, slow: slow)
            }
            w.finish(count: m, &st, settleSlow: settleSlow, into: out)
            done += m
        }
    }
}
