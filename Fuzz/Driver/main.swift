#if canImport(Glibc)
import Glibc
#endif
import EarshotFuzzTargets

// `earshot-fuzz` runs one fuzz target, picked by `EARSHOT_FUZZ_TARGET` (wav, command, config, analyzer).
//
// Built by `make fuzz` with `-sanitize=fuzzer -DEARSHOT_LIBFUZZER`, it hands its arguments to libFuzzer
// (`LLVMFuzzerRunDriver`: corpus directories, -max_total_time, -rss_limit_mb, …). Built plainly it replays
// the files named on its command line through the target, for reproducing a crash without the fuzzer.

func complain(_ message: String) {
    let line = "earshot-fuzz: \(message)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}

func selectedTarget() -> @Sendable (UnsafeRawBufferPointer) -> Void {
    guard let name = getenv("EARSHOT_FUZZ_TARGET").map({ String(cString: $0) }),
          let target = FuzzTargets.named(name) else {
        let names = FuzzTargets.all.map(\.name).joined(separator: ", ")
        complain("set EARSHOT_FUZZ_TARGET to one of: \(names)")
        exit(64)
    }
    return target
}

#if EARSHOT_LIBFUZZER
/// Resolved on first use (a static is lazy), whichever `main` the linker keeps: ours below or libFuzzer's.
enum Selected { static let target = selectedTarget() }

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOneInput(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    Selected.target(UnsafeRawBufferPointer(start: bytes, count: size))
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

_ = Selected.target
// One empty input before libFuzzer's per-input timer starts: one-time set-ups (Yams compiles its resolver's
// regular expressions through ICU on first use, over 1 s under ASan on a busy machine: CI stop 20 failed
// with a timeout on the empty seed) are not charged to the first input.
Selected.target(UnsafeRawBufferPointer(start: nil, count: 0))
var argc = CommandLine.argc
var argv = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzOneInput))
#else
let target = selectedTarget()
var failures = 0
for path in CommandLine.arguments.dropFirst() {
    guard let f = fopen(path, "rb") else { complain("cannot open \(path)"); failures += 1; continue }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = fread(&chunk, 1, chunk.count, f)
        if n <= 0 { break }
        bytes.append(contentsOf: chunk[0..<n])
    }
    fclose(f)
    bytes.withUnsafeBytes { target($0) }
    print("ok \(path) (\(bytes.count) bytes)")
}
exit(failures == 0 ? 0 : 66)
#endif
