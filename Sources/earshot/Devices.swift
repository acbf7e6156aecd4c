import ArgumentParser
import EarshotCapture
import Foundation

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List ALSA capture devices (name, description, card id) usable as capture.device.")

    @Flag(help: "One JSON object per line.") var json = false

    func run() throws {
        let list = ALSADevices.list()
        if list.isEmpty, !json { print("no ALSA capture devices found (see README: Troubleshooting)") }
        for d in list {
            if json {
                var line = "{\"name\":\(jsonQuote(d.name)),\"description\":\(jsonQuote(d.description))"
                if let c = d.cardID { line += ",\"card\":\(jsonQuote(c))" }
                print(line + "}")
            } else {
                let desc = d.description.replacingOccurrences(of: "\n", with: " — ")
                print("\(d.name)\n    \(desc)\(d.cardID.map { "  [card \($0)]" } ?? "")")
            }
        }
    }
}

func jsonQuote(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\r": out += "\\r"
        default:
            if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}
