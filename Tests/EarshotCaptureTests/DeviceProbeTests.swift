import EarshotCapture
import EarshotTestKit
import Foundation
import Testing

extension CaptureTests {
    /// `earshot devices --probe`'s library part: what a PCM from a test ALSA config accepts, the capture node
    /// of hw-style names, and the /proc scan for the processes that hold a node.
    @Suite struct DeviceProbing {
        @Test func probeListsFormatsRatesAndChannelsOfAConfiguredDevice() throws {
            let dir = try ALSAFilePlugin.makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(at: dir) }
            let plugin = try ALSAFilePlugin(
                directory: dir, bytes: [UInt8](repeating: 0, count: 4096),
                extraConfig: #"pcm.intonly { type linear slave { pcm "null" format S16_LE } }"#)
            plugin.install()
            defer { ALSAFilePlugin.uninstall() }
            let linear = DeviceProbe.probe("intonly")
            #expect(linear.available && !linear.busy && linear.error == nil)
            // The linear plugin converts integer formats only: no FLOAT_LE.
            #expect(linear.formats.contains("S16_LE") && linear.formats.contains("S32_LE"))
            #expect(!linear.formats.contains("FLOAT_LE"))
            #expect(linear.rates.contains(48_000) && linear.rates.contains(8_000))
            #expect(linear.channelsMin == 1 && linear.channelsMax >= 2)
            #expect(linear.node == nil && linear.holders == nil)  // not a hw device: holder unknown
            let file = DeviceProbe.probe(plugin.pcmName)
            #expect(file.available && file.formats.contains("FLOAT_LE"))
            let missing = DeviceProbe.probe("hw:CARD=NoSuchCard,DEV=0")
            #expect(!missing.available && !missing.busy && missing.error != nil)
            // A FIFO nobody writes to: the open blocks; the bounded probe says so instead of hanging.
            let fifo = dir.appendingPathComponent("nowriter.fifo").path
            #expect(mkfifo(fifo, 0o600) == 0)
            try (try String(contentsOf: plugin.configFile, encoding: .utf8)
                + "pcm.stuck { type file slave.pcm \"null\" file \"/dev/null\" infile \"\(fifo)\" format \"raw\" }\n")
                .write(to: plugin.configFile, atomically: true, encoding: .utf8)
            ALSADevices.reloadConfiguration()
            let start = Date()
            let stuck = DeviceProbe.probe("stuck", timeout: 0.5)
            #expect(Date().timeIntervalSince(start) < 2)
            #expect(!stuck.available && stuck.error?.contains("did not answer") == true)
            // Unblock the left-behind open so the thread ends.
            let w = open(fifo, O_WRONLY | O_NONBLOCK)
            if w >= 0 { close(w) }
        }

        @Test func captureNodesOfHardwareNames() {
            #expect(DeviceProbe.captureNode(for: "hw:0") == "/dev/snd/pcmC0D0c")
            #expect(DeviceProbe.captureNode(for: "hw:1,2") == "/dev/snd/pcmC1D2c")
            #expect(DeviceProbe.captureNode(for: "plughw:CARD=2,DEV=1") == "/dev/snd/pcmC2D1c")
            #expect(DeviceProbe.captureNode(for: "dsnoop:3") == "/dev/snd/pcmC3D0c")
            #expect(DeviceProbe.captureNode(for: "default") == nil)
            #expect(DeviceProbe.captureNode(for: "pulse") == nil)
            #expect(DeviceProbe.captureNode(for: "hw:CARD=NoSuchCard,DEV=0") == nil)  // no such card id here
            #expect(DeviceProbe.busyExplanation(device: "default").contains("holder unknown"))
            // A busy open's error says so, with the hint (the holder part needs a card: none here).
            let busy = CaptureError(code: .deviceUnavailable, device: "pulse", alsaError: ALSAError(rawValue: -EBUSY))
            #expect("\(busy)".contains("device busy, holder unknown"), "\(busy)")
            #expect("\(busy)".contains("dsnoop"))
        }

        /// There is no sound card here, so EBUSY cannot be produced; the /proc scan is checked on a file this
        /// process and a child process hold open.
        @Test func procScanFindsTheProcessesHoldingAPath() throws {
            let dir = try ALSAFilePlugin.makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(at: dir) }
            let path = dir.appendingPathComponent("node").path
            #expect(FileManager.default.createFile(atPath: path, contents: Data()))
            #expect(DeviceProbe.holders(of: path).isEmpty)
            let fd = open(path, O_RDONLY)
            defer { close(fd) }
            let child = Process()
            child.executableURL = URL(fileURLWithPath: "/bin/sh")
            child.arguments = ["-c", "exec sleep 30 < '\(path)'"]
            try child.run()
            defer { kill(child.processIdentifier, SIGKILL); child.waitUntilExit() }
            var holders: [DeviceHolder] = []
            for _ in 0..<100 {
                holders = DeviceProbe.holders(of: path)
                // sh opens the redirect before it execs sleep: wait for the exec, not just the open.
                if holders.contains(where: { $0.pid == child.processIdentifier && $0.command == "sleep" }) { break }
                usleep(20_000)
            }
            #expect(holders.contains { $0.pid == getpid() })
            #expect(holders.contains { $0.pid == child.processIdentifier && $0.command == "sleep" }, "\(holders)")
            #expect(holders.first { $0.pid == child.processIdentifier }?.description == "pid \(child.processIdentifier) (sleep)")
        }
    }
}
