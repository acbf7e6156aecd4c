/// Levels of a 2-channel input as the **energy mean over the channels**, from its mid `M = (L + R) / 2`
/// (the samples given to ``LevelMeter/process(_:)``) and side `S = (L − R) / 2` (``LevelMeter/side``).
///
/// The weighting filters `W` (A, C, Z with its DC block) are linear, so per sample
/// `W(M)² + W(S)² = (W(L)² + W(R)²) / 2`: the squared weighted sample of the energy mean. The Fast/Slow time
/// weightings, energies, maxima and minima run on that sum exactly as for one channel (per sample), and the C
/// peak is `|C(M)| + |C(S)| = max(|C(L)|, |C(R)|)`, the peak of the louder channel. Identical channels read
/// as one (S = 0), one silent channel reads 3.01 dB below the other alone, anti-phase channels read the level
/// of one channel (the averaged downmix would read silence). Band energies add the same way (a second bank
/// runs on S). Cost: the weighting filters (and band filters) twice per sample.
extension LevelMeter {
    /// ``process(_:)`` with a side signal (sanitized like the samples: see ``SampleGuard``). Real-time safe.
    func processWithSide(_ x: UnsafePointer<Float>, _ side: UnsafePointer<Float>, count: Int, cut: Int) {
        var st = state.pointee
        var ss = sideState.pointee
        run(x, side: side, count: cut, &st, &ss, into: sums)
        run(x + cut, side: side + cut, count: count - cut, &st, &ss, into: sums + 1)
        ss.sinceReset = 1  // marks the side filters as in use (``process(_:)`` clears them when the side ends)
        state.pointee = st
        sideState.pointee = ss
        if let bank {
            bandEnergies.update(repeating: 0, count: 2 * maxBands)
            bank.process(x, count: cut, into: bandEnergies)
            bank.process(x + cut, count: count - cut, into: bandEnergies + maxBands)
            if let sideBank {
                sideBank.process(side, count: cut, into: bandEnergies)
                sideBank.process(side + cut, count: count - cut, into: bandEnergies + maxBands)
            }
        }
    }

    /// One block of mid `x` and side `sx` samples (filter states `st`, `ss`; the time weightings are those in `st`)
    /// into `out`: a ``LevelMeter/Cascade`` per signal, squares added mid first (`W(M)² + W(S)²`).
    @inline(__always)
    func run(_ x: UnsafePointer<Float>, side sx: UnsafePointer<Float>, count n: Int, _ st: inout State,
             _ ss: inout State, into out: UnsafeMutablePointer<LevelSums>) {
        guard n > 0 else { return }
        let f = pairs[0], g = pairs[1], c1 = coef[1], c2 = coef[2]
        var m = Cascade(st), s = Cascade(ss)
        var w = TimeWeighting(st, fast: fastAlpha, slow: slowAlpha)
        m.first(Self.sample(x[0]), f, c1)
        s.first(Self.sample(sx[0]), f, c1)
        let (fastFrom, slowFrom) = settledFrom(st)
        Self.phased(n - 1, fastFrom: fastFrom, slowFrom: slowFrom) { j, fast, slow in
            let (a, cz) = m.next(Self.sample(x[j + 1]), f, g)
            let (sa, scz) = s.next(Self.sample(sx[j + 1]), f, g)
            w.add(a * a + sa * sa, cz * cz + scz * scz, peak: lanesAbs(cz) + lanesAbs(scz), fast: fast, slow: slow)
        }
        let (a, cz) = m.last(c2)
        let (sa, scz) = s.last(c2)
        w.add(a * a + sa * sa, cz * cz + scz * scz, peak: lanesAbs(cz) + lanesAbs(scz),
              fast: n - 1 >= fastFrom, slow: n - 1 >= slowFrom)
        m.store(&st)
        s.store(&ss)
        w.finish(count: n, &st, settleSlow: settleSlow, into: out)
    }
}
