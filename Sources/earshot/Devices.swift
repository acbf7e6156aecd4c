import ArgumentParser
import EarshotCapture
import EarshotPipeline
import Foundation

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List ALSA capture devices (name, description, card id) usable as capture.device.",
        discussion: """
            --probe opens each device (never starting it) and shows the sample formats, common rates, the rate
            and channel ranges it accepts, and whether it is busy; for a busy hw:/plughw:/dsnoop: device the
            processes holding its node (/dev/snd/pcmC<card>D<dev>c) where this user may see them (root sees
            all). --listen SECONDS captures from every device at once (48 kHz mono, any format) and prints each
            one's level (dBFS RMS and peak) every half second. --device NAME (repeatable) probes or listens to
            these names instead of the listed ones. With --json, one JSON object per device and line.
            """)

    @Flag(help: "One JSON object per line.") var json = false
    @Flag(help: "Open each device and show the formats, rates and channels it accepts, and whether it is busy (and who holds it).")
    var probe = false
    @Option(help: "Capture from each device for this many seconds and show its level.") var listen: Double?
    @Option(name: .customLong("device"), help: "A device to probe or listen to instead of the listed ones (repeatable).")
    var devices: [String] = []

    func run() throws {
        ALSALibraryLog.capture()  // libasound's own error lines (an interrupted read at stop) stay off the terminal
        let list = devices.isEmpty ? ALSADevices.list() : devices.map { CaptureDeviceInfo(name: $0, description: "", cardID: nil) }
        if let listen {
            guard listen.isFinite, listen > 0, listen <= 3600 else { fail("--listen must be in (0, 3600] seconds"); throw ExitCode(ExitStatus.usage) }
            try listenTo(list.map(\.name), seconds: listen)
            return
        }
        if list.isEmpty, !json { print("no ALSA capture devices found (see README: Troubleshooting)") }
        let q = ByteWriter.jsonLiteral
        for d in list {
            let caps = probe ? DeviceProbe.probe(d.name, timeout: CaptureThread.probeTimeout) : nil
            if json {
                var line = "{\"name\":\(q(d.name)),\"description\":\(q(d.description))"
                if let c = d.cardID { line += ",\"card\":\(q(c))" }
                if let caps {
                    line += ",\"available\":\(caps.available),\"busy\":\(caps.busy)"
                    if let e = caps.error { line += ",\"error\":\(q(e))" }
                    if caps.available {
                        line += ",\"formats\":[\(caps.formats.map(q).joined(separator: ","))]"
                        line += ",\"rates\":[\(caps.rates.map(String.init).joined(separator: ","))]"
                        line += ",\"rate_min\":\(caps.rateMin),\"rate_max\":\(caps.rateMax)"
                        line += ",\"channels_min\":\(caps.channelsMin),\"channels_max\":\(caps.channelsMax)"
                    }
                    line += ",\"node\":\(caps.node.map(q) ?? "null")"
                    if let holders = caps.holders {
                        line += ",\"holders\":[" + holders.map { "{\"pid\":\($0.pid),\"command\":\(q($0.command))}" }.joined(separator: ",") + "]"
                    } else {
                        line += ",\"holders\":null"
                    }
                }
                print(line + "}")
            } else {
                let desc = d.description.replacingOccurrences(of: "\n", with: " — ")
                print("\(CaptureError.printable(d.name))\(desc.isEmpty ? "" : "\n    \(desc)")\(d.cardID.map { "  [card \($0)]" } ?? "")")
                if let caps { print(describe(caps)) }
            }
        }
    }

    func describe(_ c: DeviceCapabilities) -> String {
        var s: [String] = []
        if c.available {
            s.append("    formats: \(c.formats.isEmpty ? "none of \(DeviceProbe.probedFormats.joined(separator: ", "))" : c.formats.joined(separator: ", "))")
            s.append("    rates: \(c.rates.isEmpty ? "none of the common rates" : c.rates.map(String.init).joined(separator: ", ")) Hz (range \(c.rateMin)–\(c.rateMax) Hz)")
            s.append("    channels: \(c.channelsMin == c.channelsMax ? "\(c.channelsMin)" : "\(c.channelsMin)–\(c.channelsMax)")")
            s.append("    status: free")
        } else if c.busy {
            s.append("    status: busy, \(DeviceProbe.busyExplanation(device: c.device))")
        } else {
            s.append("    status: cannot open: \(c.error ?? "unknown error")")
        }
        return s.joined(separator: "\n")
    }

    func listenTo(_ names: [String], seconds: Double) throws {
        var taps: [(name: String, tap: CaptureTap, buffer: [Float])] = []
        for name in names {
            // Any format, 48 kHz mono (plugins convert; a hw: device that cannot is reported).
            let config = CaptureConfig(device: name, sampleRate: 48_000, channels: 1, periodFrames: 480)
            do { taps.append((name, try CaptureTap(config: config), [])) } catch {
                print("\(CaptureError.printable(name)): cannot listen: \(error)")
            }
        }
        guard !taps.isEmpty else { throw ExitCode(ExitStatus.unavailable) }
        let start = Date()
        var next = 0.5
        while true {
            let elapsed = Date().timeIntervalSince(start)
            if elapsed >= next || elapsed >= seconds {
                var parts: [String] = []
                for i in taps.indices {
                    taps[i].tap.drain(into: &taps[i].buffer)
                    let b = taps[i].buffer
                    var ms = 0.0, peak: Float = 0
                    for v in b where v.isFinite { ms += Double(v) * Double(v); peak = max(peak, abs(v)) }
                    let level = b.isEmpty ? "no data" : "\(formatted(10 * log10(max(ms / Double(b.count), 1e-20)), 1)) dBFS, peak \(formatted(20 * log10(max(Double(peak), 1e-10)), 1)) dBFS"
                    parts.append("\(CaptureError.printable(taps[i].name)): \(level)")
                    taps[i].buffer.removeAll(keepingCapacity: true)
                }
                print("\(formatted(min(elapsed, seconds), 1)) s  " + parts.joined(separator: "  |  "))
                fflush(nil)
                if elapsed >= seconds { break }
                next += 0.5
            }
            usleep(20_000)
            for i in taps.indices { taps[i].tap.drain(into: &taps[i].buffer) }
        }
        for t in taps { t.tap.stop() }
    }
}
