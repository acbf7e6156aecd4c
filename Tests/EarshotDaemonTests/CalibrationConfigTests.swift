import EarshotCapture
import EarshotProtocol
@testable import EarshotDaemon
import Foundation
import Testing

/// `earshot calibrate --write`'s config edit, the calibration keys of the schema, and busy-device reports.
@Suite("Calibration config")
struct CalibrationConfigTests {
    static let shipped = packageRoot.appendingPathComponent("config/earshot.yaml")
    static let values: [(key: String, yaml: String)] = [
        ("calibration_db", "120.37"), ("calibration_date", "\"2026-12-02T12:40:20Z\""), ("calibration_reference_db", "94"),
    ]

    @Test func editKeepsEveryOtherLineByteForByte() throws {
        let text = try String(contentsOf: Self.shipped, encoding: .utf8)
        let edited = try ConfigFileEditor.setting(Self.values, in: "levels", text: text)
        let a = text.split(separator: "\n", omittingEmptySubsequences: false)
        let b = edited.split(separator: "\n", omittingEmptySubsequences: false)
        // Lines before and after the levels keys are identical; the keys that existed changed in place.
        let changed = zip(a, b).enumerated().filter { $0.element.0 != $0.element.1 }
        #expect(changed.count >= 1)
        #expect(changed.first.map { String($0.element.1) } == "  calibration_db: 120.37")
        let config = try EarshotConfig.parse(yaml: edited, file: "edited.yaml", options: .init(checkSystem: false))
        #expect(config.levels.calibrationDB == 120.37)
        #expect(config.levels.calibrationDate == "2026-12-02T12:40:20Z")
        #expect(config.levels.calibrationReferenceDB == 94)
        #expect(config.calibrationInfo == CalibrationInfo(date: "2026-12-02T12:40:20Z", referenceDb: 94, offsetDb: 120.37))
        // Only the three key lines differ: removing them from both gives the same text.
        func strip(_ s: String) -> [Substring] {
            s.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("  calibration_") }
        }
        #expect(strip(text) == strip(edited))
        // Editing again replaces, never duplicates.
        let again = try ConfigFileEditor.setting([("calibration_db", "-3.5")], in: "levels", text: edited)
        #expect(again.components(separatedBy: "calibration_db:").count == 2)
        #expect(try EarshotConfig.parse(yaml: again, options: .init(checkSystem: false)).levels.calibrationDB == -3.5)
    }

    @Test func editKeepsTrailingCommentsAddsMissingKeysAndSections() throws {
        let text = "# top\r\ncapture:\r\n  device: hw:1  # the mic\r\nlevels:\r\n    calibration_db: 3   # old\r\n# between\r\nlogging:\r\n  level: info\r\n"
        let edited = try ConfigFileEditor.setting(Self.values, in: "levels", text: text)
        #expect(edited == "# top\r\ncapture:\r\n  device: hw:1  # the mic\r\nlevels:\r\n    calibration_db: 120.37   # old\r\n    calibration_date: \"2026-12-02T12:40:20Z\"\r\n    calibration_reference_db: 94\r\n# between\r\nlogging:\r\n  level: info\r\n")
        let noSection = "capture:\n  device: x\n"
        let appended = try ConfigFileEditor.setting(Self.values, in: "levels", text: noSection)
        #expect(appended.hasPrefix(noSection))
        #expect(try EarshotConfig.parse(yaml: appended, options: .init(checkSystem: false)).levels.calibrationReferenceDB == 94)
        let emptySection = "levels:\n  # nothing yet\nsocket:\n  max_clients: 3\n"
        let filled = try ConfigFileEditor.setting(Self.values, in: "levels", text: emptySection)
        let c = try EarshotConfig.parse(yaml: filled, options: .init(checkSystem: false))
        #expect(c.levels.calibrationDB == 120.37 && c.socket.maxClients == 3)
        #expect(filled.contains("  # nothing yet\n"))
    }

    /// A lone CR is a YAML line break: `levels:\r` is the section's header, not text to append a second
    /// `levels:` after (found by the editor fuzz target: the second, identical edit then refused its own
    /// output for a duplicate section). An appended section uses the file's own line break.
    @Test func editTreatsALoneCRAsALineBreakAndAppendsWithTheFilesLineBreak() throws {
        for text in ["levels:\r", "levels:\r  calibration_db: 3\r", "capture:\r\n  device: x"] {
            let edited = try ConfigFileEditor.setting(Self.values, in: "levels", text: text)
            #expect(edited.components(separatedBy: "levels:").count == 2, "\(text.debugDescription) → \(edited.debugDescription)")
            #expect(try ConfigFileEditor.setting(Self.values, in: "levels", text: edited) == edited)
            let c = try EarshotConfig.parse(yaml: edited, options: .init(checkSystem: false))
            #expect(c.levels.calibrationDB == 120.37 && c.levels.calibrationReferenceDB == 94)
        }
        #expect(try ConfigFileEditor.setting(Self.values, in: "levels", text: "levels:\r")
            == "levels:\r  calibration_db: 120.37\r  calibration_date: \"2026-12-02T12:40:20Z\"\r  calibration_reference_db: 94\r")
        #expect(try ConfigFileEditor.setting([("calibration_db", "1")], in: "levels", text: "capture:\r\n  device: x")
            == "capture:\r\n  device: x\r\n\r\nlevels:\r\n  calibration_db: 1\r\n")
    }

    @Test func editRefusesWhatALineEditCannotDoSafely() {
        #expect(throws: ConfigFileEditor.EditError.self) {
            try ConfigFileEditor.setting(Self.values, in: "levels", text: "levels: {calibration_db: 3}\n")
        }
        #expect(throws: ConfigFileEditor.EditError.self) {
            try ConfigFileEditor.setting(Self.values, in: "levels", text: "levels:\n  calibration_db:\n    3\n")
        }
        #expect(throws: ConfigFileEditor.EditError.self) {
            try ConfigFileEditor.setting(Self.values, in: "levels", text: "levels:\n  calibration_db: 1\nlevels:\n  calibration_db: 2\n")
        }
    }

    @Test func fileEditIsAtomicKeepsPermissionsAndRefusesAnInvalidFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("earshot-edit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("earshot.yaml").path
        try FileManager.default.copyItem(atPath: Self.shipped.path, toPath: file)
        chmod(file, 0o640)
        let config = try ConfigFileEditor.edit(path: file, section: "levels", values: Self.values)
        #expect(config.levels.calibrationDB == 120.37)
        var st = stat()
        #expect(stat(file, &st) == 0 && st.st_mode & 0o7777 == 0o640)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["earshot.yaml"])  // no temp left
        // An invalid file is refused and left as it was.
        let bad = "levels:\n  calibration_db: 999\n"
        try bad.write(toFile: file, atomically: false, encoding: .utf8)
        #expect(throws: ConfigError.self) { try ConfigFileEditor.edit(path: file, section: "levels", values: Self.values) }
        #expect(try String(contentsOfFile: file, encoding: .utf8) == bad)
        // A verify callback that refuses stops the write.
        try "levels:\n  calibration_db: 1\n".write(toFile: file, atomically: false, encoding: .utf8)
        #expect(throws: ConfigFileEditor.EditError.self) {
            try ConfigFileEditor.edit(path: file, section: "levels", values: Self.values) { _ in "no" }
        }
        #expect(try String(contentsOfFile: file, encoding: .utf8) == "levels:\n  calibration_db: 1\n")
    }

    @Test func calibrationDateAndReferenceAreValidatedByTheSchema() throws {
        for good in ["2026-12-02T12:40:20Z", "2026-02-28", "2024-02-29T00:00:00Z"] {
            #expect(throws: Never.self) { try EarshotConfig.parse(yaml: "levels:\n  calibration_date: \"\(good)\"\n", options: .init(checkSystem: false)) }
        }
        for bad in ["2026-02-30", "2026-12-02 12:40:20", "yesterday", "2026-13-01T00:00:00Z", "1969-12-31"] {
            #expect(throws: ConfigError.self) { try EarshotConfig.parse(yaml: "levels:\n  calibration_date: \"\(bad)\"\n", options: .init(checkSystem: false)) }
        }
        #expect(throws: ConfigError.self) { try EarshotConfig.parse(yaml: "levels:\n  calibration_reference_db: 500\n", options: .init(checkSystem: false)) }
        #expect(CalibrationInfo.unixSeconds("2026-12-02T12:40:20Z") == 1_796_215_220)
        #expect(CalibrationInfo.format(unixSeconds: 1_796_215_220) == "2026-12-02T12:40:20Z")
        #expect(CalibrationInfo.unixSeconds("1970-01-01") == 0)
        // Uncalibrated: no calibration info for hello / metrics.
        #expect(EarshotConfig.defaults.calibrationInfo == nil)
    }

    @Test func aBusyDeviceIsAWarningWithTheHolderAndAHintAtGrowingIntervals() {
        var r = CaptureEventReporter(device: "hw:CARD=Mic,DEV=0", realtimePriority: 0)
        r.busyExplanation = { _ in "held by pid 42 (arecord) (/dev/snd/pcmC1D0c); a hw: device has one reader at a time: share it with dsnoop" }
        var logged: [CaptureEventReporter.Report] = []
        for i in 1...20 {
            let now = Int64(i) * 1_000_000_000
            if let rep = r.report(CaptureEvent(kind: .retrying, errno: EBUSY, monotonicNs: now, value: 1000), now: now) { logged.append(rep) }
        }
        #expect(logged.map { $0.metadata["attempts"] } == ["1", "2", "4", "8", "16"])
        #expect(logged.allSatisfy { $0.level == .warning && $0.message.contains("busy") })
        #expect(logged.first?.metadata["holder"]?.contains("pid 42 (arecord)") == true)
        #expect(logged.first?.metadata["holder"]?.contains("dsnoop") == true)
        // Other errors stay info lines without a holder scan.
        var other = CaptureEventReporter(device: "pulse", realtimePriority: 0)
        other.busyExplanation = { _ in Issue.record("scanned for a non-busy error"); return "" }
        let rep = other.report(CaptureEvent(kind: .retrying, errno: ECONNREFUSED, monotonicNs: 1, value: 500), now: 1)
        #expect(rep?.level == .info && rep?.metadata["holder"] == nil)
    }
}

