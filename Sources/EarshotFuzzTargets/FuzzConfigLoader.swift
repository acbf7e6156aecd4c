/// Fuzz target body (corpus: Fuzz/corpus/config). Must be total: no trap, no hang, bounded memory, for any bytes.
public func fuzzConfigLoader(_ data: UnsafeRawBufferPointer) {
    _ = data.count  // TODO: filled in by the hardening work
}
