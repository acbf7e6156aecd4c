internal import CALSA

/// One capture-capable PCM from the ALSA configuration.
public struct CaptureDeviceInfo: Sendable, Hashable, CustomStringConvertible {
    /// The name to pass as `CaptureConfig.device` (e.g. `hw:CARD=Mic,DEV=0`, `pulse`, `default`).
    public var name: String
    /// The human description from the hint (`DESC`), lines joined with " — ".
    public var description: String
    /// The card id (`CARD=` value) when the name carries one.
    public var cardID: String?

    public init(name: String, description: String, cardID: String?) {
        self.name = name
        self.description = description
        self.cardID = cardID
    }
}

/// Enumerates ALSA capture devices and controls the process-wide ALSA configuration cache.
public enum ALSADevices {
    /// Capture-capable PCMs from `snd_device_name_hint(-1, "pcm")` (IOID `Input` or unset), plus `default`
    /// and `pulse` when the configuration defines them. Not real-time safe (allocates, reads config files).
    public static func list() -> [CaptureDeviceInfo] {
        var result: [CaptureDeviceInfo] = []
        var hints: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
        if snd_device_name_hint(-1, "pcm", &hints) == 0, let hints {
            var i = 0
            while let hint = hints[i] {
                i += 1
                let name = hintValue(hint, "NAME")
                let ioid = hintValue(hint, "IOID")
                guard let name, ioid == nil || ioid == "Input" else { continue }
                if name == "null" { continue }
                let desc = (hintValue(hint, "DESC") ?? "").split(separator: "\n").joined(separator: " — ")
                result.append(CaptureDeviceInfo(name: name, description: desc, cardID: cardID(in: name)))
            }
            snd_device_name_free_hint(hints)
        }
        for special in ["pulse", "default"] where !result.contains(where: { $0.name == special }) {
            if isDefined(special) {
                result.insert(
                    CaptureDeviceInfo(
                        name: special,
                        description: special == "pulse" ? "PulseAudio sound server" : "Default ALSA device",
                        cardID: nil), at: 0)
            }
        }
        return result
    }

    /// Whether the ALSA configuration defines a PCM named `name` (`pcm.NAME`).
    public static func isDefined(_ name: String) -> Bool {
        var top: OpaquePointer?
        guard snd_config_update_ref(&top) >= 0, let top else { return false }
        defer { snd_config_unref(top) }
        var node: OpaquePointer?
        let base = name.split(separator: ":", maxSplits: 1).first.map(String.init) ?? name
        return snd_config_search(top, "pcm.\(base)", &node) == 0
    }

    /// Drops libasound's cached global configuration so the next open re-reads `ALSA_CONFIG_PATH` and the
    /// files it names. Call with no PCM open (tests that switch configs; a daemon reload).
    public static func reloadConfiguration() {
        snd_config_update_free_global()
    }

    private static func hintValue(_ hint: UnsafeMutableRawPointer, _ id: String) -> String? {
        guard let p = snd_device_name_get_hint(hint, id) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    static func cardID(in name: String) -> String? {
        guard let colon = name.firstIndex(of: ":") else { return nil }
        for part in name[name.index(after: colon)...].split(separator: ",") where part.hasPrefix("CARD=") {
            let id = part.dropFirst(5)
            return id.isEmpty ? nil : String(id)
        }
        return nil
    }
}
