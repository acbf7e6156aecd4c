import ArgumentParser
import EarshotCapture
import EarshotPipeline
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
                let q = ByteWriter.jsonLiteral
                var line = "{\"name\":\(q(d.name)),\"description\":\(q(d.description))"
                if let c = d.cardID { line += ",\"card\":\(q(c))" }
                print(line + "}")
            } else {
                let desc = d.description.replacingOccurrences(of: "\n", with: " — ")
                print("\(d.name)\n    \(desc)\(d.cardID.map { "  [card \($0)]" } ?? "")")
            }
        }
    }
}
