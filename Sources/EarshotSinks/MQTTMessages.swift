public import EarshotPipeline

/// What the MQTT sink publishes: the topic of each message, its QoS and retain flag, the payload (the
/// socket's JSON line with `node`, `instance`, and — when the message lacks them — `t` and `level_unit`
/// spliced in), the decimated level payload and the Home Assistant discovery documents. Pure functions.
///
/// Topic tree under `<prefix>/<node>/<instance>/` (README "MQTT"):
/// `status` (retained `online`/`offline`, Last Will), `rolling/<window_s>` (QoS 1), `alert` (QoS 1),
/// `event` (status events, QoS 1), `health` (QoS 1, retained), `clip` (QoS 1), `stats` (QoS 0),
/// `levels` (decimated frame levels, QoS 0), and `<type>` (QoS 1) for any other message type.
public enum MQTTMessages {
    public struct Routed: Equatable, Sendable {
        public var topic: String
        public var qos: Int32
        public var retain: Bool
        public var payload: [UInt8]
    }

    /// Message types published retained (the last value is what a late subscriber needs).
    static let retainedTypes: Set<String> = ["health"]
    /// Message types published at QoS 0 and never spooled.
    static let qos0Types: Set<String> = ["stats"]

    /// `base` = `<prefix>/<node>/<instance>`.
    public static func base(prefix: String, node: String, instance: String) -> String {
        "\(prefix)/\(node)/\(instance)"
    }

    /// The topic, QoS, retain flag and payload of one message line from the ``MessageFanout``; nil for a line
    /// that is not a JSON object with a usable `type` (or a `frame`, which comes from the bus instead).
    public static func route(line: some Collection<UInt8>, wallNs: Int64, base: String, node: String, instance: String,
                             levelUnit: String) -> Routed? {
        var body = Array(line)
        while let last = body.last, last == 0x0A || last == 0x0D || last == 0x20 { body.removeLast() }
        guard let json = try? ProtocolJSON.parse(body), let object = json.objectValue,
              let type = object["type"]?.stringValue, isTopicWord(type), type != "frame",
              body.first == 0x7B
        else { return nil }
        let topic: String
        switch type {
        case "rolling":
            guard let w = object["window_s"]?.doubleValue, w.isFinite, w > 0 else { return nil }
            topic = base + "/rolling/" + formatWindow(w)
        case "status": topic = base + "/event"
        default: topic = base + "/" + type
        }
        var out: [UInt8] = [0x7B]
        func add(_ key: String, _ valueJSON: String) {
            out += ByteWriter.jsonLiteral(key).utf8; out.append(0x3A); out += valueJSON.utf8; out.append(0x2C)
        }
        if object["node"] == nil { add("node", ByteWriter.jsonLiteral(node)) }
        if object["instance"] == nil { add("instance", ByteWriter.jsonLiteral(instance)) }
        if object["t"] == nil { add("t", seconds(wallNs)) }
        if object["level_unit"] == nil { add("level_unit", ByteWriter.jsonLiteral(levelUnit)) }
        out += body.dropFirst()  // the object has at least `type`, so the spliced members are followed by one
        return Routed(topic: topic, qos: qos0Types.contains(type) ? 0 : 1, retain: retainedTypes.contains(type), payload: out)
    }

    /// `1`, `10`, `60`, `0.5`: the window as written in `rolling.windows_s`.
    public static func formatWindow(_ w: Double) -> String {
        if w == w.rounded(), abs(w) < 1e15 { return String(Int(w)) }
        return String(w)
    }

    static func seconds(_ ns: Int64) -> String {
        let w = ByteWriter(capacity: 32)
        w.fixed(Double(ns) / 1e9, decimals: 6)
        return String(decoding: w.bytes, as: UTF8.self)
    }

    /// Lower-case letters, digits and `_`, 1–32 characters (a message type usable as a topic level).
    static func isTopicWord(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 32 && s.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }
    }

    /// A topic level from free text (host name, instance name): `/ + #`, whitespace and control characters
    /// become `_`, at most 64 bytes; never empty.
    public static func topicLevel(_ s: String) -> String {
        var out = ""
        for ch in s.unicodeScalars {
            guard out.utf8.count < 64 else { break }
            let bad = ch == "/" || ch == "+" || ch == "#" || ch.properties.isWhitespace || ch.value < 0x20 || ch.value == 0x7F
            out.unicodeScalars.append(bad ? "_" : ch)
        }
        return out.isEmpty ? "_" : out
    }

    /// The decimated level payload of one frame (topic `<base>/levels`): weighted levels, calibrated.
    public static func levels(_ h: FrameHeader, node: String, instance: String, levelUnit: String, offsetDb: Double) -> [UInt8] {
        let w = ByteWriter(capacity: 256)
        w.ascii("{\"node\":"); w.jsonString(node)
        w.ascii(",\"instance\":"); w.jsonString(instance)
        w.ascii(",\"t\":"); w.fixed(Double(h.wallNs) / 1e9, decimals: 6)
        w.ascii(",\"seq\":"); w.int(h.seq)
        for (key, weighting) in [("laf", LevelWeighting.laf), ("las", .las), ("lcf", .lcf), ("lzf", .lzf)] {
            w.ascii(","); w.jsonString(key); w.ascii(":"); w.fixed(Double(weighting.dbfs(h)) + offsetDb, decimals: 2)
        }
        w.ascii(",\"level_unit\":"); w.jsonString(levelUnit)
        w.ascii("}")
        return Array(w.bytes)
    }

    // MARK: Home Assistant discovery

    /// One discovery document: retained at `topic` (an empty payload removes the entity).
    public struct Discovery: Equatable, Sendable {
        public var key: String
        public var topic: String
        public var payload: [UInt8]
    }

    /// Home Assistant object ids: letters, digits, `_` and `-`.
    static func objectID(_ s: String) -> String {
        String(s.unicodeScalars.map { c -> Character in
            (c.properties.isAlphabetic && c.isASCII) || ("0"..."9").contains(c) || c == "_" || c == "-" ? Character(c) : "_"
        })
    }

    /// The sensor keys published for these windows (`laeq_1s`, …, `laf` when levels are published, `health`,
    /// `last_alert`, `onsets_per_minute`), for publishing and for removal.
    public static func discoveryKeys(windows: [Double], levels: Bool) -> [String] {
        windows.map { "laeq_\(objectID(formatWindow($0)))s" } + (levels ? ["laf"] : []) + ["health", "last_alert", "onsets_per_minute"]
    }

    /// The `homeassistant/sensor/<node>_<instance>_<key>/config` documents for one instance. `dB SPL` levels
    /// are `device_class: sound_pressure` with unit `dBA` for A-weighted levels, `dB` otherwise (the units
    /// Home Assistant accepts for that class are `dB` and `dBA`); dBFS levels have no device class (unit `dBFS`), as Home Assistant rejects other
    /// units for `sound_pressure`.
    public static func discovery(haPrefix: String, base: String, node: String, instance: String, windows: [Double],
                                 weighting: String, levelUnit: String, levels: Bool, version: String) -> [Discovery] {
        let letter: String = switch weighting {
        case "laf", "las": "A"
        case "lcf": "C"
        case "lzf": "Z"
        default: ""
        }
        let spl = levelUnit == "dB SPL"
        let levelUnitText = spl ? (letter == "A" ? "dBA" : "dB") : "dBFS"
        let deviceID = "earshot_" + objectID(node) + "_" + objectID(instance)
        func doc(_ key: String, name: String, stateTopic: String, template: String, level: Bool, unit: String? = nil,
                 extra: [(String, String)] = []) -> Discovery {
            var j = JSONWriter(capacity: 512)
            j.object { j in
                j.member("name", name)
                j.member("unique_id", deviceID + "_" + key)
                j.member("state_topic", stateTopic)
                j.member("value_template", template)
                j.member("availability_topic", base + "/status")
                j.member("payload_available", "online")
                j.member("payload_not_available", "offline")
                if level {
                    if spl { j.member("device_class", "sound_pressure") }
                    j.member("unit_of_measurement", unit ?? levelUnitText)
                    j.member("state_class", "measurement")
                    j.member("suggested_display_precision", 1)
                }
                for (k, v) in extra { j.member(k, v) }
                j.key("device")
                j.object { d in
                    d.member("identifiers", strings: [deviceID])
                    d.member("name", "Earshot \(node) \(instance)")
                    d.member("manufacturer", "Earshot")
                    d.member("model", "earshot")
                    d.member("sw_version", version)
                }
            }
            return Discovery(key: key, topic: "\(haPrefix)/sensor/\(deviceID)_\(key)/config", payload: j.bytes)
        }
        var out: [Discovery] = []
        for w in windows {
            let key = "laeq_\(objectID(formatWindow(w)))s"
            out.append(doc(key, name: "L\(letter)eq \(formatWindow(w)) s", stateTopic: base + "/rolling/" + formatWindow(w),
                           template: "{{ value_json.leq }}", level: true))
        }
        if levels {
            out.append(doc("laf", name: "LAF", stateTopic: base + "/levels", template: "{{ value_json.laf }}", level: true,
                           unit: spl ? "dBA" : "dBFS"))
        }
        out.append(doc("health", name: "Health", stateTopic: base + "/health",
                       template: "{{ value_json.state if value_json.state is defined else value_json.status }}", level: false,
                       extra: [("json_attributes_topic", base + "/health")]))
        out.append(doc("last_alert", name: "Last alert", stateTopic: base + "/alert",
                       template: "{{ value_json.alert }}{% if value_json.state is defined %} {{ value_json.state }}{% endif %}",
                       level: false, extra: [("json_attributes_topic", base + "/alert")]))
        if let w = windows.last {
            var d = doc("onsets_per_minute", name: "Onsets per minute", stateTopic: base + "/rolling/" + formatWindow(w),
                        template: "{{ (value_json.onsets * 60 / value_json.window_s) | round(1) }}", level: false)
            // A measurement with a unit but no device class (none fits a rate of events).
            var j = JSONWriter(capacity: d.payload.count + 64)
            j.raw(d.payload.dropLast())
            j.raw(",\"unit_of_measurement\":\"1/min\",\"state_class\":\"measurement\"}".utf8)
            d.payload = j.bytes
            out.append(d)
        }
        return out
    }
}
