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
        runWithSide(x, side, count: cut, &st, &ss, into: sums)
        runWithSide(x + cut, side + cut, count: count - cut, &st, &ss, into: sums + 1)
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

    @inline(__always)
    func runWithSide(_ x: UnsafePointer<Float>, _ sx: UnsafePointer<Float>, count n: Int, _ st: inout State,
                     _ ss: inout State, into out: UnsafeMutablePointer<LevelSums>) {
        guard n > 0 else { return }
        let c0 = coef[0], c1 = coef[1], c2 = coef[2], c3 = coef[3]
        let fa = fastAlpha, sa = slowAlpha
        var o = out.pointee
        var eA = 0.0, eC = 0.0, eZ = 0.0, pk = 0.0
        var mxAF = 0.0, mxAS = 0.0, mxCF = 0.0, mxZF = 0.0
        var mnAF = Double.infinity, mnAS = Double.infinity, mnCF = Double.infinity, mnZF = Double.infinity
        let fastFrom = max(0, settleFast - st.sinceReset), slowFrom = max(0, settleSlow - st.sinceReset)
        for i in 0..<n {
            let m = x[i], s = sx[i]
            let v = m.isFinite ? Double(m) : 0
            let w = s.isFinite ? Double(s) : 0
            var yc = Self.step(c0, v, &st.cState.0, &st.cState.1)
            yc = Self.step(c1, yc, &st.cState.2, &st.cState.3)
            let ya = Self.step(c2, yc, &st.aState.0, &st.aState.1)
            let yz = Self.step(c3, v, &st.zState.0, &st.zState.1)
            var zc = Self.step(c0, w, &ss.cState.0, &ss.cState.1)
            zc = Self.step(c1, zc, &ss.cState.2, &ss.cState.3)
            let za = Self.step(c2, zc, &ss.aState.0, &ss.aState.1)
            let zz = Self.step(c3, w, &ss.zState.0, &ss.zState.1)
            let qa = ya * ya + za * za, qc = yc * yc + zc * zc, qz = yz * yz + zz * zz
            eA += qa; eC += qc; eZ += qz
            pk = max(pk, abs(yc) + abs(zc))
            st.aFast += fa * (qa - st.aFast)
            st.aSlow += sa * (qa - st.aSlow)
            st.cFast += fa * (qc - st.cFast)
            st.zFast += fa * (qz - st.zFast)
            mxAF = max(mxAF, st.aFast); mxAS = max(mxAS, st.aSlow)
            mxCF = max(mxCF, st.cFast); mxZF = max(mxZF, st.zFast)
            if i >= fastFrom {
                mnAF = min(mnAF, st.aFast); mnCF = min(mnCF, st.cFast); mnZF = min(mnZF, st.zFast)
                if i >= slowFrom { mnAS = min(mnAS, st.aSlow) }
            }
        }
        st.sinceReset = min(st.sinceReset &+ n, settleSlow)
        o.merge(LevelSums(samples: n, energyA: eA, energyC: eC, energyZ: eZ, maxAF: mxAF, minAF: mnAF, maxAS: mxAS,
                          minAS: mnAS, maxCF: mxCF, minCF: mnCF, maxZF: mxZF, minZF: mnZF, peakC: pk))
        out.pointee = o
    }
}
