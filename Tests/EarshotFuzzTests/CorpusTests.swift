import Foundation
import Testing
import EarshotFuzzTargets

/// Every committed corpus file (seeds, and every crash a fuzz run found, kept as a regression input) goes
/// through its target: a trap here is a crash the fuzzer found again.
@Suite struct CorpusTests {
    static let corpusRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz/corpus")

    @Test(arguments: FuzzTargets.all.map(\.name))
    func replayCorpus(_ name: String) throws {
        let dir = Self.corpusRoot.appendingPathComponent(name)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(!files.isEmpty, "no seed corpus for \(name)")
        let run = try #require(FuzzTargets.named(name))
        for file in files {
            let data = try Data(contentsOf: dir.appendingPathComponent(file))
            data.withUnsafeBytes { run($0) }
        }
    }
}
