internal import CALSA
import Foundation

/// What a capture PCM accepts, and whether it is free: `earshot devices --probe`.
public struct DeviceCapabilities: Sendable, Equatable {
    public var device: String
    /// The device could be opened for capture now.
    public var available: Bool
    /// Opening failed with `EBUSY`: another process has it.
    public var busy: Bool
    /// Why opening failed (nil when it opened).
    public var error: String?
    /// Formats accepted (ALSA names, e.g. `S16_LE`), from ``DeviceProbe/probedFormats``.
    public var formats: [String] = []
    /// Common rates accepted (``DeviceProbe/probedRates``), Hz.
    public var rates: [Int] = []
    public var rateMin: Int = 0
    public var rateMax: Int = 0
    public var channelsMin: Int = 0
    public var channelsMax: Int = 0
    /// The kernel device node (`/dev/snd/pcmC0D0c`) when the name points at one card and device.
    public var node: String?
    /// Processes holding ``node`` open (nil: not known — not a hw device, or not visible).
    public var holders: [DeviceHolder]?
}

/// A process that has a device node open.
public struct DeviceHolder: Sendable, Equatable, CustomStringConvertible {
    public var pid: Int32
    /// `/proc/PID/comm`.
    public var command: String
    public init(pid: Int32, command: String) { self.pid = pid; self.command = command }
    public var description: String { "pid \(pid) (\(CaptureError.printable(command)))" }
}

public enum DeviceProbe {
    /// Rates tested with `snd_pcm_hw_params_test_rate`.
    public static let probedRates = [8_000, 11_025, 16_000, 22_050, 32_000, 44_100, 48_000, 88_200, 96_000, 176_400, 192_000, 384_000]
    /// Formats tested with `snd_pcm_hw_params_test_format` (Earshot reads the first five).
    public static let probedFormats = ["FLOAT_LE", "S32_LE", "S24_3LE", "S24_LE", "S16_LE", "U8", "S8", "S16_BE", "S32_BE", "FLOAT64_LE"]

    /// ``probe(_:)`` on a helper thread, given up after `timeout` seconds: an open that blocks (a `file`
    /// plugin on a FIFO nobody writes to, a plugin waiting for a stopped server) is reported as not answering
    /// and its thread left behind (for a command that exits afterwards).
    public static func probe(_ device: String, timeout: Double) -> DeviceCapabilities {
        final class Box: @unchecked Sendable { var caps: DeviceCapabilities? }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let caps = probe(device)
            box.caps = caps
            done.signal()
        }
        if done.wait(timeout: .now() + max(0, timeout)) == .success, let caps = box.caps { return caps }
        var caps = DeviceCapabilities(device: device, available: false, busy: false)
        caps.error = "the open did not answer within \(timeout) s (a FIFO nobody writes to, a stopped sound server?)"
        return caps
    }

    /// Opens `device` for capture (nonblocking, never started) and reads what its hardware parameters
    /// allow, then closes it. A device that cannot be opened is reported (``DeviceCapabilities/busy`` for
    /// `EBUSY`, with the holders of its node where Linux tells). Not real-time code. Blocks while the open
    /// blocks (a `file` plugin on a FIFO without a writer): ``probe(_:timeout:)`` bounds that.
    public static func probe(_ device: String) -> DeviceCapabilities {
        var caps = DeviceCapabilities(device: device, available: false, busy: false)
        caps.node = captureNode(for: device)
        if let node = caps.node { caps.holders = holders(of: node) }
        var pcm: OpaquePointer?
        let rc = snd_pcm_open(&pcm, device, SND_PCM_STREAM_CAPTURE, SND_PCM_NONBLOCK)
        guard rc == 0, let pcm else {
            let err = ALSAError(rawValue: rc)
            caps.busy = err.errno == EBUSY
            caps.error = "\(err)"
            return caps
        }
        defer { snd_pcm_close(pcm) }
        var hwp: OpaquePointer?
        guard snd_pcm_hw_params_malloc(&hwp) == 0, let hw = hwp else { caps.error = "out of memory"; return caps }
        defer { snd_pcm_hw_params_free(hw) }
        let any = snd_pcm_hw_params_any(pcm, hw)
        guard any >= 0 else { caps.error = "\(ALSAError(rawValue: any))"; return caps }
        caps.available = true
        for name in probedFormats {
            let f = snd_pcm_format_value(name)
            if f.rawValue >= 0, snd_pcm_hw_params_test_format(pcm, hw, f) == 0 { caps.formats.append(name) }
        }
        for r in probedRates where snd_pcm_hw_params_test_rate(pcm, hw, UInt32(r), 0) == 0 { caps.rates.append(r) }
        var dir: Int32 = 0
        var rmin: UInt32 = 0, rmax: UInt32 = 0, cmin: UInt32 = 0, cmax: UInt32 = 0
        snd_pcm_hw_params_get_rate_min(hw, &rmin, &dir)
        snd_pcm_hw_params_get_rate_max(hw, &rmax, &dir)
        snd_pcm_hw_params_get_channels_min(hw, &cmin)
        snd_pcm_hw_params_get_channels_max(hw, &cmax)
        caps.rateMin = Int(rmin); caps.rateMax = Int(rmax)
        caps.channelsMin = Int(cmin); caps.channelsMax = Int(cmax)
        return caps
    }

    /// The capture node of a name that names one card (`hw:0`, `hw:0,1`, `hw:CARD=Mic,DEV=0`, `plughw:…`,
    /// `dsnoop:…`, `sysdefault:CARD=Mic`): `/dev/snd/pcmC<card>D<dev>c`; nil for names without a card
    /// (`default`, `pulse`, custom PCMs), whose holder Earshot cannot tell.
    public static func captureNode(for device: String) -> String? {
        guard let colon = device.firstIndex(of: ":") else { return nil }
        let args = device[device.index(after: colon)...].split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
        }
        var card: String?, dev = "0"
        var positional = 0
        for a in args {
            if a.hasPrefix("CARD=") { card = String(a.dropFirst(5)) }
            else if a.hasPrefix("DEV=") { dev = String(a.dropFirst(4)) }
            else if !a.contains("=") {
                if positional == 0 { card = a } else if positional == 1 { dev = a }
                positional += 1
            }
        }
        guard let card, let devIndex = Int(dev), devIndex >= 0 else { return nil }
        let index = Int(card) ?? Int(snd_card_get_index(card))
        guard index >= 0 else { return nil }
        return "/dev/snd/pcmC\(index)D\(devIndex)c"
    }

    /// Processes with `path` open, from the `/proc/PID/fd` links this user may read (root sees all; others
    /// see only their own processes). The calling process is included.
    public static func holders(of path: String, procRoot: String = "/proc") -> [DeviceHolder] {
        guard let pids = try? FileManager.default.contentsOfDirectory(atPath: procRoot) else { return [] }
        var out: [DeviceHolder] = []
        var buf = [CChar](repeating: 0, count: 4096)
        for entry in pids {
            guard let pid = Int32(entry) else { continue }
            let fdDir = "\(procRoot)/\(entry)/fd"
            guard let fds = try? FileManager.default.contentsOfDirectory(atPath: fdDir) else { continue }
            var holds = false
            for fd in fds {
                let n = readlink("\(fdDir)/\(fd)", &buf, buf.count - 1)
                guard n > 0 else { continue }
                let target = buf.withUnsafeBufferPointer { String(decoding: $0[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
                if target == path { holds = true; break }
            }
            guard holds else { continue }
            let comm = (try? String(contentsOfFile: "\(procRoot)/\(entry)/comm", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
            out.append(DeviceHolder(pid: pid, command: comm))
        }
        return out.sorted { $0.pid < $1.pid }
    }

    /// One line for a busy device's log or error: who holds it (when known) and what to do.
    public static func busyExplanation(device: String) -> String {
        var s: String
        if let node = captureNode(for: device) {
            let others = holders(of: node).filter { $0.pid != getpid() }
            if others.isEmpty {
                s = "held by a process this user cannot see (\(node); try as root: fuser -v \(node))"
            } else {
                s = "held by " + others.map(\.description).joined(separator: ", ") + " (\(node))"
            }
            let servers = others.filter { ["pipewire", "wireplumber", "pulseaudio"].contains($0.command) }
            if !servers.isEmpty {
                s += "; the sound server owns the card: capture through it (capture.device: pulse, or default) instead of hw:"
            } else {
                s += "; a hw: device has one reader at a time: share it with dsnoop (e.g. dsnoop:CARD=…), or stop the other reader"
            }
        } else {
            s = "holder unknown (not a hw: device); if a sound server (PipeWire, PulseAudio) owns the card, capture through it (pulse), or use dsnoop to share a hw: device"
        }
        return s
    }
}
