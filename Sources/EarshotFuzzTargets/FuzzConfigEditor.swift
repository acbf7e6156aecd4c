import EarshotDaemon

/// Fuzz target body (corpus: Fuzz/corpus/editor). Must be total: no trap, no hang, bounded memory, for any bytes.
///
/// The bytes are a configuration file's text; `earshot calibrate --write`'s line editor
/// (``ConfigFileEditor/setting(_:in:text:)``) sets `levels.calibration_db` and `levels.calibration_date` (byte 0
/// picks the values and whether the section is `levels` or `capture`). Invariants: an edit either is refused
/// or gives a text in which each key's line reads `key: value`; editing the result again with the same values
/// changes nothing (the edit is a fixed point: a second `calibrate --write` with the same result leaves the
/// file as it is); and the edited text goes through the configuration loader (as `edit` does before writing),
/// which must not trap whatever the editor produced.
public func fuzzConfigEditor(_ data: UnsafeRawBufferPointer) {
    guard let text = String(validating: data.bindMemory(to: UInt8.self), as: UTF8.self) else { return }
    let selector = text.utf8.first ?? 0
    let values: [(key: String, yaml: String)] = selector & 1 == 0
        ? [("calibration_db", "-3.25"), ("calibration_date", "\"2026-12-02\"")]
        : [("calibration_db", "12"), ("calibration_date", "\"2026-12-02 # quoted, not a comment\"")]
    let section = selector & 2 == 0 ? "levels" : "capture"
    let edited: String
    do { edited = try ConfigFileEditor.setting(values, in: section, text: text) } catch {
        _ = error.message
        return
    }
    for (key, value) in values {
        precondition(edited.contains(key + ": " + value), "\(section).\(key) not written")
    }
    do {
        let again = try ConfigFileEditor.setting(values, in: section, text: edited)
        precondition(again == edited, "a second identical edit changed the text")
    } catch {
        fatalError("the editor refused its own output: \(error.message)")
    }
    var builder = ConfigBuilder()
    do throws(ConfigError) {
        try builder.applyYAML(edited, file: "<fuzz-edited>")
        _ = try builder.validated(ConfigValidationOptions(checkSystem: false))
    } catch {
        _ = error.description
    }
}
