/// The fuzz targets by name: `earshot-fuzz` (built with `-sanitize=fuzzer`) picks one with
/// `EARSHOT_FUZZ_TARGET`, and `EarshotFuzzTests` replays every committed corpus file through each.
public enum FuzzTargets {
    public static let all: [(name: String, run: @Sendable (UnsafeRawBufferPointer) -> Void)] = [
        ("wav", fuzzWAVReader),
        ("command", fuzzCommandParser),
        ("config", fuzzConfigLoader),
        ("analyzer", fuzzFrameAnalyzer),
        ("bands", fuzzBandFilters),
        ("spool", fuzzMQTTSpool),
        ("credentials", fuzzCredentials),
        ("editor", fuzzConfigEditor),
    ]

    public static func named(_ name: String) -> (@Sendable (UnsafeRawBufferPointer) -> Void)? {
        all.first { $0.name == name }?.run
    }
}
