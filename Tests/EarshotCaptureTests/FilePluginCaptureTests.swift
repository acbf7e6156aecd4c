import EarshotCapture
import EarshotRealtime
import EarshotTestKit
import Foundation
import Testing

extension CaptureTests {
    /// Capture through the ALSA `file` plugin (unpaced): what the ring holds equals `convertToMono` of the
    /// file's bytes, value for value; stamps are contiguous.
    @Suite struct FilePlugin {
        struct Case: Sendable, CustomStringConvertible {
            var format: SampleFormat?  // nil: auto
            var fileFormat: SampleFormat
            var channels: Int
            var channel: Int?
            var description: String { "\(fileFormat) ×\(channels) ch \(channel.map(String.init) ?? "mix")" }
        }

        static let cases: [Case] = [
            Case(format: .s16, fileFormat: .s16, channels: 1, channel: nil),
            Case(format: nil, fileFormat: .float32, channels: 1, channel: nil),  // auto picks FLOAT_LE
            Case(format: .s16, fileFormat: .s16, channels: 2, channel: nil),
            Case(format: .s16, fileFormat: .s16, channels: 2, channel: 1),
            Case(format: .s24Packed, fileFormat: .s24Packed, channels: 2, channel: 0),
        ]

        @Test(arguments: cases)
        func samplesEqualConvertedFile(_ c: Case) throws {
            let dir = try ALSAFilePlugin.makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(at: dir) }
            let frames = 4800 * 2 + 123  // 20 whole periods and a partial one
            var bytes: [UInt8]
            if c.fileFormat == .float32 {
                // Finite floats in [-1, 1): random bit patterns could be NaN, which never compare equal.
                var floats = [Float](repeating: 0, count: frames * c.channels)
                var x: UInt64 = 12345
                for i in floats.indices {
                    x = x &* 6_364_136_223_846_793_005 &+ 1
                    floats[i] = Float(Int32(truncatingIfNeeded: x >> 32)) / 2_147_483_648
                }
                bytes = floats.withUnsafeBytes { Array($0) }
            } else {
                bytes = pseudoRandomBytes(count: frames * c.channels * c.fileFormat.bytesPerSample, seed: 7)
            }
            let plugin = try ALSAFilePlugin(directory: dir, bytes: bytes)
            plugin.install()
            defer { ALSAFilePlugin.uninstall() }

            let config = CaptureConfig(
                device: plugin.pcmName, sampleRate: 48_000, channels: c.channels, channel: c.channel,
                format: c.format, periodFrames: 480, bufferPeriods: 8)
            let h = CaptureHarness(config: config, sampleCapacity: 1 << 23)
            h.thread.start()
            // Unpaced: poll until enough periods arrived (the ring holds ~170 s, far more than needed).
            let need = (frames + 479) / 480 + 2
            let deadline = Date().addingTimeInterval(10)
            while h.thread.periods < need && Date() < deadline { usleep(500) }
            h.thread.stop()
            h.drain()

            #expect(h.thread.state == .stopped)
            #expect(h.lostSamples == 0)
            let neg = try #require(h.thread.negotiated)
            #expect(neg.format == c.fileFormat)
            #expect(neg.periodFrames == 480)
            #expect(h.captured.count >= need * 480)
            let expected = referenceMono(bytes, format: c.fileFormat, channels: c.channels, channel: c.channel)
            #expect(Array(h.captured.prefix(frames)) == expected)
            // Past the end of the infile: silence (zero-filled reads), not stale samples.
            let tail = h.captured[frames..<(need * 480)]
            #expect(tail.allSatisfy { $0 == 0 })
            // Stamps: contiguous in ring positions, one per period, only the first flagged.
            #expect(h.capturedStamps.count == h.captured.count / 480)
            for (i, s) in h.capturedStamps.enumerated() {
                #expect(s.firstSample == Int64(i * 480))
                #expect(s.frames == 480)
                #expect(s.discontinuity == (i == 0 ? CaptureStamp.Discontinuity.start : 0))
                #expect(s.gapSamples == 0)
            }
            #expect(h.capturedEvents.contains { $0.kind == .opened })
            #expect(h.thread.timestampSource != .unknown)
        }

        /// A NaN or ±inf in one channel of a float source (issue 9, attack run): the mix counts it as 0 and keeps
        /// the other channel (averaged after the mix, the DSP's guard would zero the whole sample), and the
        /// capture thread counts it.
        @Test func nonFiniteSampleOfOneChannelKeepsTheOtherChannel() throws {
            let dir = try ALSAFilePlugin.makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(at: dir) }
            let frames = 4800
            var floats = [Float](repeating: 0, count: frames * 2)
            var bad = 0
            for f in 0..<frames {
                floats[2 * f] = 0.5 * sin(Float(f) * 0.05)
                floats[2 * f + 1] = 0.25
                if f % 7 == 3 { floats[2 * f + 1] = [Float.nan, .infinity, -.infinity][f % 3]; bad += 1 }
            }
            let bytes = floats.withUnsafeBytes { Array($0) }
            let plugin = try ALSAFilePlugin(directory: dir, bytes: bytes)
            plugin.install()
            defer { ALSAFilePlugin.uninstall() }
            let config = CaptureConfig(
                device: plugin.pcmName, sampleRate: 48_000, channels: 2, channel: nil, format: .float32,
                periodFrames: 480, bufferPeriods: 8)
            let h = CaptureHarness(config: config, sampleCapacity: 1 << 20)
            h.thread.start()
            let deadline = Date().addingTimeInterval(10)
            while h.thread.periods < frames / 480 + 1 && Date() < deadline { usleep(500) }
            h.thread.stop()
            h.drain()
            #expect(h.captured.count >= frames)
            for f in 0..<min(frames, h.captured.count) {
                let left = floats[2 * f], right = f % 7 == 3 ? 0 : floats[2 * f + 1]
                if h.captured[f] != (0 + left + right) * 0.5 {
                    Issue.record("frame \(f): \(h.captured[f]) != mix of \(left) and \(right)"); break
                }
            }
            #expect(h.thread.nonFiniteChannelSamples == bad)
        }

        @Test func unsupportedFormatNamesParameterAndSupportedFormats() throws {
            let dir = try ALSAFilePlugin.makeTemporaryDirectory()
            defer { try? FileManager.default.removeItem(at: dir) }
            // The `linear` plugin accepts linear integer formats only: FLOAT_LE is impossible.
            let plugin = try ALSAFilePlugin(
                directory: dir, bytes: [UInt8](repeating: 0, count: 960),
                extraConfig: #"pcm.intonly { type linear slave { pcm "null" format S16_LE } }"#)
            plugin.install()
            defer { ALSAFilePlugin.uninstall() }
            let start = Date()
            do {
                _ = try CaptureThread.probe(CaptureConfig(device: "intonly", format: .float32))
                Issue.record("FLOAT_LE accepted")
            } catch {
                #expect(error.code == .parameterNotSupported)
                #expect(error.parameter == "format")
                #expect(error.supported?.contains("S16_LE") == true)
                #expect(error.description.contains("intonly"))
                #expect(error.description.contains("FLOAT_LE"))
            }
            // Auto format falls back past FLOAT_LE to the first integer format.
            let neg = try CaptureThread.probe(CaptureConfig(device: "intonly"))
            #expect(neg.format == .s32)
            #expect(Date().timeIntervalSince(start) < 5)
        }

        @Test func impossibleRateIsAConfigError() {
            do {
                _ = try CaptureThread.probe(CaptureConfig(device: "default", sampleRate: 7))
                Issue.record("7 Hz accepted")
            } catch {
                #expect(error.code == .invalidConfig)
                #expect(error.parameter == "sample_rate")  // the stable key (capture.sample_rate)
                #expect(error.description.contains("7 Hz"))
            }
        }
    }

    @Suite struct Devices {
        @Test func unknownDeviceListsAvailableDevices() {
            let start = Date()
            do {
                _ = try CaptureThread.probe(CaptureConfig(device: "earshot_no_such_device"))
                Issue.record("unknown device opened")
            } catch {
                #expect(error.code == .deviceNotFound)
                #expect(!error.isTransient)
                #expect(!error.availableDevices.isEmpty)
                #expect(error.availableDevices.contains { $0.name == "default" })
                #expect(error.description.contains("earshot_no_such_device"))
                #expect(error.description.contains("available capture devices"))
            }
            #expect(Date().timeIntervalSince(start) < 5)
        }

        @Test func invalidConfigFailsFast() {
            #expect(throws: CaptureError.self) {
                _ = try CaptureThread.probe(CaptureConfig(device: "default", channels: 2, channel: 2))
            }
            #expect(throws: CaptureError.self) {
                _ = try CaptureThread.probe(CaptureConfig(device: "default", bufferPeriods: 2))
            }
        }

        @Test func listIncludesDefault() {
            let list = ALSADevices.list()
            #expect(list.contains { $0.name == "default" })
            for d in list where d.name.contains("CARD=") { #expect(d.cardID != nil) }
        }

        @Test func stopWhileWaitingForAbsentDeviceIsPrompt() {
            // A defined device that cannot open (pulse with no server, private runtime dir): the thread
            // retries with backoff; stop() must still return promptly.
            let dir = try? ALSAFilePlugin.makeTemporaryDirectory()
            setenv("PULSE_RUNTIME_PATH", dir?.path ?? "/nonexistent", 1)
            defer { unsetenv("PULSE_RUNTIME_PATH") }
            let h = CaptureHarness(config: CaptureConfig(device: "pulse", reconnectInitial: 0.2, reconnectMax: 0.4))
            h.thread.start()
            h.run(seconds: 1)
            #expect(h.thread.state == .starting)
            #expect(h.capturedEvents.contains { $0.kind == .retrying && $0.errno != 0 })
            let t0 = Date()
            h.thread.stop()
            #expect(Date().timeIntervalSince(t0) < 0.5)
            #expect(h.thread.state == .stopped)
        }
    }
}
