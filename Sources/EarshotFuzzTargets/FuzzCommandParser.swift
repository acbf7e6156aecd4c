/// Fuzz target body (corpus: Fuzz/corpus/command). Must be total: no trap, no hang, bounded memory, for any bytes.
public func fuzzCommandParser(_ data: UnsafeRawBufferPointer) {
    _ = data.count  // TODO: filled in by the hardening work
}
