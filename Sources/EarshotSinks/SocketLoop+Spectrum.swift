#if canImport(Glibc)
import Glibc
#endif
import EarshotPipeline
import EarshotProtocol

/// The `spectrum` stream: the socket loop is the one reader of the bus's ``SpectrumTap``. It tells the DSP
/// thread which frames to copy (the gcd of the subscribers' `every`, 0 when nobody is subscribed: then the
/// DSP thread does nothing but one atomic load per frame) and encodes each spectrum once for every
/// subscriber whose `every` selects it.
extension SocketLoop {
    /// Recomputes the demand after a subscription change or a disconnect.
    func updateSpectrumDemand() {
        guard let tap = consumer.bus.spectrumTap else { return }
        var g = 0
        for c in clients.values where c.closingDeadlineNs == nil && c.subscriptions.contains(.spectrum) {
            g = Self.gcd(g, max(1, c.every))
        }
        if tap.every == 0 && g > 0 { tap.skipToNewest() }  // nothing stale from an earlier subscriber
        tap.every = g
    }

    static func gcd(_ a: Int, _ b: Int) -> Int {
        var (x, y) = (a, b)
        while y != 0 { (x, y) = (y, x % y) }
        return x
    }

    /// Delivers the spectra the DSP thread offered since the last call.
    func drainSpectra(now: Int64) {
        guard let tap = consumer.bus.spectrumTap, tap.every > 0 else { return }
        if spectrumBuffer.count < tap.bins {
            spectrumBuffer.deallocate()
            spectrumBuffer = .allocate(capacity: tap.bins)
        }
        let binHz = Double(stream.sampleRate) / Double(max(1, stream.nFFT))
        var budget = tap.capacity
        while budget > 0, let (seq, wallNs) = tap.next(into: spectrumBuffer) {
            budget -= 1
            var m: OutMessage?
            for c in clients.values where c.closingDeadlineNs == nil && c.subscriptions.contains(.spectrum)
                && (c.every <= 1 || seq % Int64(c.every) == 0) {
                if m == nil {
                    let db = (0..<tap.bins).map { Double(10 * log10f(max(spectrumBuffer[$0].isFinite ? spectrumBuffer[$0] : 0, 1e-10))) }
                    m = OutMessage(SpectrumMessage(seq: seq, t: Double(wallNs) / 1e9, binHz: binHz, powerDb: db).line(), stream: .spectrum)
                }
                deliver(m!, to: c, now: now)
            }
        }
    }
}
