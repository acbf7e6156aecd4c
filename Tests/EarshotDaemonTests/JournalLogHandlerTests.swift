import Foundation
import Logging
import Testing

@testable import EarshotDaemon

#if canImport(Glibc)
import Glibc
#endif

/// Logs through a real `Logger` into a temp file and returns its lines.
private func capture(format: JournalLogHandler.Format, level: Logger.Level = .trace,
                     _ body: (inout Logger) -> Void) throws -> [String] {
    let dir = try TempDir()
    defer { dir.cleanUp() }
    let path = dir.path + "/log.txt"
    let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
    #expect(fd >= 0)
    var logger = Logger(label: "earshot") { JournalLogHandler(label: $0, level: level, format: format, fileDescriptor: fd) }
    body(&logger)
    close(fd)
    let text = try String(contentsOfFile: path, encoding: .utf8)
    return text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
}

@Suite("JournalLogHandler")
struct JournalLogHandlerTests {
    @Test func journalLinesCarrySyslogPriority() throws {
        let lines = try capture(format: .journal) { logger in
            logger.trace("t")
            logger.debug("d")
            logger.info("i")
            logger.notice("n")
            logger.warning("w")
            logger.error("e")
            logger.critical("c")
        }
        #expect(lines == ["<7>earshot: t", "<7>earshot: d", "<6>earshot: i", "<5>earshot: n",
                          "<4>earshot: w", "<3>earshot: e", "<2>earshot: c"])
    }

    @Test func plainLinesHaveTimestampAndLevel() throws {
        let lines = try capture(format: .plain) { $0.warning("over budget", metadata: ["stage": "dsp"]) }
        #expect(lines.count == 1)
        let line = try #require(lines.first)
        let regex = try Regex(#"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z warning earshot: over budget stage=dsp$"#)
        #expect(line.wholeMatch(of: regex) != nil, "\(line)")
        #expect(JournalLogHandler.timestamp(seconds: 1_795_442_400, milliseconds: 123) == "2026-11-23T14:00:00.123Z")
    }

    @Test func metadataIsSortedMergedAndQuoted() throws {
        let lines = try capture(format: .journal) { logger in
            logger[metadataKey: "device"] = "hw:CARD=USB,DEV=0"
            logger.info("alert", metadata: [
                "alert": "level", "state": "start", "level_db": "-12.5",
                "note": "two words", "quote": "say \"hi\"", "empty": "", "list": ["a", "b"],
            ])
        }
        #expect(lines == [
            #"<6>earshot: alert alert=level device="hw:CARD=USB,DEV=0" empty="" level_db=-12.5 list=[a,b] note="two words" quote="say \"hi\"" state=start"#
        ])
    }

    @Test func messagesStayOnOneLine() throws {
        let lines = try capture(format: .journal) { $0.error("first\nsecond", metadata: ["k": "a\nb"]) }
        #expect(lines == [#"<3>earshot: first\nsecond k="a\nb""#])
    }

    @Test func levelFiltersMessages() throws {
        let lines = try capture(format: .journal, level: .warning) { logger in
            logger.info("hidden")
            logger.warning("shown")
        }
        #expect(lines == ["<4>earshot: shown"])
    }

    @Test func concurrentLinesNeverInterleave() async throws {
        let dir = try TempDir()
        defer { dir.cleanUp() }
        let path = dir.path + "/log.txt"
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        let logger = Logger(label: "earshot") { JournalLogHandler(label: $0, level: .info, format: .journal, fileDescriptor: fd) }
        let padding = String(repeating: "x", count: 3000)
        await withTaskGroup(of: Void.self) { group in
            for t in 0..<8 {
                group.addTask {
                    for i in 0..<100 { logger.info("line", metadata: ["t": "\(t)", "i": "\(i)", "pad": "\(padding)"]) }
                }
            }
        }
        close(fd)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 800)
        // Sorted metadata: i, pad, t — a torn or interleaved line would break this shape.
        #expect(lines.allSatisfy { $0.hasPrefix("<6>earshot: line i=") && $0.contains(" pad=\(padding) t=") && !$0.dropFirst(3).contains("<") })
        #expect(Set(lines).count == 800)
    }

    @Test func formatDetection() throws {
        #expect(JournalLogHandler.detectFormat(environment: [:]) == .plain)
        #expect(JournalLogHandler.detectFormat(environment: ["JOURNAL_STREAM": "1"]) == .journal)
        // JOURNAL_STREAM naming the descriptor's own device:inode → journal; another stream → plain.
        let dir = try TempDir()
        defer { dir.cleanUp() }
        let fd = open(dir.path + "/f", O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        defer { close(fd) }
        var st = stat()
        fstat(fd, &st)
        #expect(JournalLogHandler.detectFormat(environment: ["JOURNAL_STREAM": "\(st.st_dev):\(st.st_ino)"], fileDescriptor: fd) == .journal)
        #expect(JournalLogHandler.detectFormat(environment: ["JOURNAL_STREAM": "\(st.st_dev):\(st.st_ino + 1)"], fileDescriptor: fd) == .plain)
    }

    @Test func metadataIsAValue() {
        // swift-log's LogHandler requirement: changing one logger's metadata/level leaves copies alone.
        var a = Logger(label: "a") { JournalLogHandler(label: $0, format: .journal) }
        a[metadataKey: "k"] = "1"
        var b = a
        b[metadataKey: "k"] = "2"
        b.logLevel = .error
        #expect(a[metadataKey: "k"] == "1")
        #expect(a.logLevel == .info)
    }
}
