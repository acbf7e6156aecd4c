// swift-tools-version: 6.1
import PackageDescription
#if canImport(Glibc)
import Glibc
#endif

/// The build host's glibc loads packed relative relocations (DT_RELR: glibc >= 2.36; the binary runs where it
/// is built, or from the .deb, which then depends on libc6 >= 2.36).
let hostGlibcHasRELR: Bool = {
    #if canImport(Glibc)
    var buf = [CChar](repeating: 0, count: 64)
    guard confstr(Int32(_CS_GNU_LIBC_VERSION), &buf, buf.count) > 0 else { return false }
    let v = String(cString: buf).split(separator: " ").last.map { $0.split(separator: ".").compactMap { Int($0) } } ?? []
    return v.count >= 2 && (v[0], v[1]) >= (2, 36)
    #else
    return false
    #endif
}()

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]
/// The real-time modules are optimized in debug builds too: the tests run the debug build, and unoptimized
/// generic code (SIMD, unspecialized generics) can allocate where the optimized code does not — the
/// allocation check must see what ships. It also keeps debug test runs close to real time.
let realtime: [SwiftSetting] = strict + [.unsafeFlags(["-O"], .when(configuration: .debug))]

let package = Package(
    name: "earshot",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "earshot", targets: ["earshot"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/ordo-one/malloc-interposer", from: "1.6.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CALSA", pkgConfig: "alsa", providers: [.apt(["libasound2-dev"])]),
        .systemLibrary(
            name: "CFFTW", pkgConfig: "fftw3f", providers: [.apt(["libfftw3-dev"])]),
        // Eclipse Mosquitto's MQTT client library (the `mqtt` sink) and Cairo (`earshot spectrogram`): their
        // headers (libmosquitto-dev, libcairo2-dev), and trampolines that open libmosquitto.so.1 / libcairo.so.2
        // on first use. The binary does not link them, so the daemon never maps them and their dependencies
        // (VmHWM); the .deb depends on libmosquitto1 and libcairo2 explicitly (scripts/make-deb.sh).
        .target(name: "CMosquitto", dependencies: ["CEarshotSupport"]),
        .target(name: "CCairo", dependencies: ["CEarshotSupport"]),
        .target(name: "CEarshotSupport"),
        .target(name: "EarshotRealtime", dependencies: ["CEarshotSupport"], swiftSettings: realtime),
        .target(
            name: "EarshotDSP", dependencies: ["CFFTW", "CEarshotSupport", "EarshotRealtime"],
            swiftSettings: realtime),
        .target(name: "EarshotCapture", dependencies: ["CALSA", "CEarshotSupport", "EarshotRealtime"], swiftSettings: realtime),
        // The socket protocol: message types and their encoders, the feature catalogue, the command parser and
        // builder. Pure: no I/O, no threads.
        .target(name: "EarshotProtocol", swiftSettings: strict),
        .target(
            name: "EarshotPipeline",
            dependencies: ["EarshotDSP", "EarshotCapture", "EarshotRealtime", "EarshotProtocol"],
            swiftSettings: realtime),
        .target(
            name: "EarshotSinks",
            dependencies: [
                "EarshotPipeline", "EarshotProtocol", "CEarshotSupport", "CMosquitto",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: strict),
        .target(
            name: "EarshotDaemon",
            dependencies: [
                "EarshotSinks", "EarshotBuildStamp",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict),
        // The git commit the binary is built from (`earshot --version`, `earshot_build_info`), stamped before
        // every build by the GitCommitStamp plugin.
        .target(name: "EarshotBuildStamp", swiftSettings: strict, plugins: ["GitCommitStamp"]),
        .plugin(name: "GitCommitStamp", capability: .buildTool()),
        // Pictures (`earshot spectrogram`): the spectrogram grid and its Cairo renderer.
        .target(name: "EarshotPlot", dependencies: ["EarshotPipeline", "EarshotDSP", "EarshotClient", "CCairo"], swiftSettings: strict),
        // The client side of the socket (`earshot tail`, `earshot top`): reconnecting subscription, screen rendering.
        .target(name: "EarshotClient", dependencies: ["EarshotProtocol", "EarshotRealtime"], swiftSettings: strict),
        .executableTarget(
            name: "earshot",
            dependencies: [
                "EarshotDaemon", "EarshotClient", "EarshotPlot",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["earshot.order"],
            swiftSettings: strict,
            // Linked by the toolchain's lld with packed relative relocations (DT_RELR, glibc >= 2.36): the
            // static binary has ~80,000 relative relocations, 1.9 MB of RELA entries read at every start
            // (resident), 16 KB as RELR; with lld's separate read-only segment the daemon's VmHWM falls by
            // ~3.5 MB (bench/README.md, issue 10). The functions a running daemon executes are placed
            // together (earshot.order, generated by bench/symbol_order.py): the kernel maps 64 KB around
            // each page fault, and scattered over the text they kept ~9 MB of it resident. No symbol of the
            // executable is exported (swiftc's static-stdlib link asks for --export-dynamic; nothing looks
            // the daemon's own symbols up, and every loaded library's lookups searched its 12,000).
            linkerSettings: [.unsafeFlags(
                ["-use-ld=lld", "-Xlinker", "--no-export-dynamic",
                 "-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/Sources/earshot/earshot.order",
                 "-Xlinker", "--no-warn-symbol-ordering"]
                + (hostGlibcHasRELR ? ["-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"] : []))]),
        // Counts heap allocations on the real-time path (run with LD_PRELOAD=libMallocInterposerSwift.so by
        // EarshotEndToEndTests); a test tool, not installed.
        .executableTarget(
            name: "earshot-alloc-check",
            dependencies: [
                "EarshotPipeline", "EarshotCapture", "EarshotTestKit",
                .product(name: "MallocInterposerSwift", package: "malloc-interposer"),
            ],
            path: "Tests/AllocationCheck",
            swiftSettings: strict),
        // Fuzz target bodies (one per parser/analyzer), replayed over Fuzz/corpus by EarshotFuzzTests and
        // driven by libFuzzer through `earshot-fuzz` (`make fuzz`).
        .target(
            name: "EarshotFuzzTargets",
            dependencies: ["EarshotDaemon", "EarshotSinks", "EarshotProtocol", "EarshotPipeline", "EarshotCapture", "EarshotDSP"],
            swiftSettings: strict),
        // libFuzzer driver: built only by `make fuzz` with `-sanitize=fuzzer` (which supplies main).
        .executableTarget(
            name: "earshot-fuzz", dependencies: ["EarshotFuzzTargets"], path: "Fuzz/Driver",
            swiftSettings: strict),
        .target(
            name: "EarshotTestKit",
            dependencies: ["EarshotPipeline", "EarshotCapture"],
            swiftSettings: strict),

        .testTarget(name: "EarshotRealtimeTests", dependencies: ["EarshotRealtime"]),
        .testTarget(
            name: "EarshotDSPTests", dependencies: ["EarshotDSP", "EarshotTestKit"],
            resources: [.copy("Fixtures")]),
        .testTarget(name: "EarshotCaptureTests", dependencies: ["EarshotCapture", "EarshotTestKit"]),
        .testTarget(name: "EarshotPipelineTests", dependencies: ["EarshotPipeline", "EarshotTestKit"]),
        .testTarget(name: "EarshotProtocolTests", dependencies: ["EarshotProtocol", "EarshotPipeline"]),
        .testTarget(name: "EarshotClientTests", dependencies: ["EarshotClient", "EarshotProtocol", "EarshotPlot"]),
        .testTarget(name: "EarshotSinksTests", dependencies: ["EarshotSinks", "EarshotClient", "EarshotTestKit"]),
        .testTarget(name: "EarshotDaemonTests", dependencies: ["EarshotDaemon", "EarshotTestKit"]),
        .testTarget(name: "EarshotFuzzTests", dependencies: ["EarshotFuzzTargets"]),
        .testTarget(
            name: "EarshotEndToEndTests", dependencies: ["EarshotTestKit"]),
    ]
)
