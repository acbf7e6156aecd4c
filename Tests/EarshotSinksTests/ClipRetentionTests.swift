#if canImport(Glibc)
import Glibc
#endif
import EarshotSinks
import Foundation
import Testing

/// Retention of the clips directory (issue 11 item 2): oldest first, by count, size and age, on real files.
@Suite struct ClipRetentionTests {
    func name(_ i: Int, _ kind: String = "level") -> String { String(format: "20261202T1335%02d.250Z-earshot-%@.wav", i, kind) }

    @Test func planRemovesTheOldestFirst() {
        let now = 1_000_000.0
        let files = (0..<5).map { ClipRetention.File(name: name($0), bytes: 100, mtime: now - Double(50 - $0)) }
        #expect(ClipRetention.plan(files.shuffled(), now: now, maxFiles: 3, maxBytes: 10_000, maxAgeSeconds: 1e6) == [name(0), name(1)])
        #expect(ClipRetention.plan(files, now: now, maxFiles: 10, maxBytes: 250, maxAgeSeconds: 1e6) == [name(0), name(1), name(2)])
        #expect(ClipRetention.plan(files, now: now, maxFiles: 10, maxBytes: 10_000, maxAgeSeconds: 47.5) == [name(0), name(1), name(2)])
        #expect(ClipRetention.plan(files, now: now, maxFiles: 10, maxBytes: 10_000, maxAgeSeconds: 1e6).isEmpty)
        // The newest is kept even when it alone is over the limits.
        #expect(ClipRetention.plan(files, now: now, maxFiles: 1, maxBytes: 1, maxAgeSeconds: 1) == (0..<4).map { name($0) })
        // Files not named like clips are never touched.
        let other = files + [ClipRetention.File(name: "notes.wav", bytes: 1_000_000, mtime: 0),
                             ClipRetention.File(name: ".20261202T133500.250Z-earshot-level.wav.part", bytes: 5, mtime: 0)]
        #expect(ClipRetention.plan(other, now: now, maxFiles: 10, maxBytes: 10_000, maxAgeSeconds: 1e6).isEmpty)
    }

    @Test func listAndPlanOnATemporaryDirectory() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clip-retention-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for i in 0..<4 {
            FileManager.default.createFile(atPath: dir.appendingPathComponent(name(i, i % 2 == 0 ? "level" : "health")).path,
                                           contents: Data(count: 1000 * (i + 1)))
        }
        FileManager.default.createFile(atPath: dir.appendingPathComponent("keep-me.txt").path, contents: Data(count: 10))
        try FileManager.default.createDirectory(at: dir.appendingPathComponent(name(9)), withIntermediateDirectories: false)
        let files = ClipRetention.list(dir.path)
        #expect(Set(files.map(\.name)) == Set((0..<4).map { name($0, $0 % 2 == 0 ? "level" : "health") }))
        #expect(files.map(\.bytes).reduce(0, +) == 10_000)
        let remove = ClipRetention.plan(files, now: Date().timeIntervalSince1970, maxFiles: 10, maxBytes: 7_500, maxAgeSeconds: 3600)
        #expect(remove == [name(0), name(1, "health")])
    }
}
