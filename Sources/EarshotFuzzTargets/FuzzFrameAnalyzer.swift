/// Fuzz target body (corpus: Fuzz/corpus/analyzer). Must be total: no trap, no hang, bounded memory, for any bytes.
public func fuzzFrameAnalyzer(_ data: UnsafeRawBufferPointer) {
    _ = data.count  // TODO: filled in by the hardening work
}
