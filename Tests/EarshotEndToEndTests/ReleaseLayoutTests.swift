import Foundation
import Testing

extension EndToEnd {
    /// How the release binary (`make release`, which `make test` builds first) is laid out for a small resident
    /// set (Package.swift, bench/README.md issue 10 "Round 4"): it exports none of its own symbols, and the
    /// symbol ordering file still names the functions it defines — a stale file silently brings back ~4 MB of
    /// resident text, so this fails and says how to regenerate it. Skipped without a release build unless CI=true.
    @Suite("release binary layout") struct ReleaseLayout {
        static let binary = EarshotBinary.packageRoot.appendingPathComponent(".build/release/earshot").path
        static let enabled = ProcessInfo.processInfo.environment["CI"] == "true"
            || FileManager.default.isExecutableFile(atPath: binary)

        static func toolOutput(_ tool: String, _ args: [String]) throws -> [String] {
            let exe = try #require(findExecutable(tool), "\(tool) (binutils) is not installed")
            let p = try DaemonProcess(executable: exe, arguments: args, environment: baseChildEnvironment())
            #expect(p.wait(timeout: 120) == .exited(0), "\(tool): \(p.stderr)")
            return p.lines
        }

        @Test(.enabled(if: enabled, "no .build/release/earshot (make release)"))
        func exportsNoSymbolsOfItsOwn() throws {
            #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "build it: make release")
            // readelf --dyn-syms: "Num: Value Size Type Bind Vis Ndx Name"; Ndx UND marks an import.
            let defined = try Self.toolOutput("readelf", ["--dyn-syms", "-W", Self.binary]).filter {
                let f = $0.split(separator: " ", omittingEmptySubsequences: true)
                return f.count >= 8 && f[0].hasSuffix(":") && f[6] != "UND" && f[6] != "Ndx" && !f[7].isEmpty
            }
            #expect(defined.count < 50, "the binary exports \(defined.count) symbols, e.g. \(defined.prefix(3))")
        }

        @Test(.enabled(if: enabled, "no .build/release/earshot (make release)"))
        func symbolOrderingFileMatchesTheBinary() throws {
            let orderFile = EarshotBinary.packageRoot.appendingPathComponent("Sources/earshot/earshot.order")
            let ordered = try String(contentsOf: orderFile, encoding: .utf8).split(separator: "\n")
                .filter { !$0.hasPrefix("#") && !$0.isEmpty }.map(String.init)
            #expect(ordered.count > 1000, "earshot.order lists \(ordered.count) functions")
            let defined = Set(try Self.toolOutput("nm", ["--defined-only", "-j", Self.binary]))
            let present = ordered.filter { defined.contains($0) }.count
            #expect(Double(present) >= 0.75 * Double(ordered.count),
                    "only \(present) of the \(ordered.count) functions in Sources/earshot/earshot.order exist in the release binary: regenerate it (python3 bench/symbol_order.py, then relink)")
        }
    }
}
