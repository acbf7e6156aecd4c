/// Fuzz target body (corpus: Fuzz/corpus/wav). Must be total: no trap, no hang, bounded memory, for any bytes.
public func fuzzWAVReader(_ data: UnsafeRawBufferPointer) {
    _ = data.count  // TODO: filled in by the hardening work
}
