import EarshotFuzzTargets

#if EARSHOT_LIBFUZZER
/// libFuzzer entry point: `make fuzz` builds this with `-sanitize=fuzzer -DEARSHOT_LIBFUZZER` and picks the
/// target with `EARSHOT_FUZZ_TARGET` (wav, command, config, analyzer).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let name = getenv("EARSHOT_FUZZ_TARGET").map({ String(cString: $0) }),
          let target = FuzzTargets.named(name) else { fatalError("set EARSHOT_FUZZ_TARGET") }
    target(UnsafeRawBufferPointer(start: bytes, count: size))
    return 0
}
#endif
