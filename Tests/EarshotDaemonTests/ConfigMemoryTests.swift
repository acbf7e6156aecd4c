import EarshotCapture
import EarshotDSP
import EarshotPipeline
import Testing

@testable import EarshotDaemon

/// The memory estimate is only a bound if its formulas follow the real allocations: build the real pipeline
/// for a few configurations and compare element counts term by term.
@Suite("Config memory estimate")
struct ConfigMemoryTests {
    static func config(_ edit: (inout EarshotConfig) -> Void) -> EarshotConfig {
        var c = EarshotConfig.defaults
        edit(&c)
        return c
    }

    static let configurations: [EarshotConfig] = [
        .defaults,
        config { $0.capture.ringSeconds = 10; $0.capture.periodFrames = 64; $0.capture.bufferPeriods = 32 },
        config { $0.capture.sampleRate = 16_000; $0.analysis.hop = 160; $0.analysis.nFFT = 512; $0.analysis.nMels = 40; $0.analysis.nMFCC = 20 },
        config { $0.capture.periodFrames = 8192; $0.capture.bufferPeriods = 64; $0.capture.ringSeconds = 0.5 },
        config { $0.capture.channels = 2 },
        config { $0.capture.channels = 6; $0.capture.ringSeconds = 3 },
        config { $0.capture.channels = 6; $0.capture.channel = 2 },
    ]

    @Test(arguments: configurations)
    func estimateMatchesThePipelineItDescribes(_ c: EarshotConfig) throws {
        let estimate = c.memoryEstimate
        func bytes(_ name: String) throws -> Double { try #require(estimate.terms.first { $0.name == name }).bytes }
        let pipeline = LivePipeline(capture: c.captureConfig, analyzer: try FrameAnalyzer(config: c.analyzerConfig),
                                    busCapacity: MemoryEstimate.busFrames, ringSeconds: c.capture.ringSeconds)
        #expect(try bytes("sample ring") == Double(pipeline.samples.capacity * 4 * 2))
        // The side ring and the DSP's side scratch: counted when capture writes them (2…64 channels read whole).
        let side = estimate.terms.first { $0.name == "side ring" }?.bytes
        if c.capture.channels >= 2 && c.capture.channel == nil {
            #expect(side == Double((pipeline.side.capacity + pipeline.dsp.sideScratchFloats) * 4))
            let stride = c.capture.channels == 2 ? 1 : c.capture.channels
            #expect(pipeline.side.capacity >= Int(c.capture.ringSeconds * Double(c.capture.sampleRate)) * stride)
        } else {
            #expect(side == nil)
        }
        // 3…64 channels: the frame processor's n_fft window and the capture thread's period of every channel.
        let window = estimate.terms.first { $0.name == "channel window" }?.bytes
        if c.capture.channels >= 3 && c.capture.channel == nil {
            #expect(window == Double((c.analysis.nFFT + c.captureConfig.periodFrames) * c.capture.channels * 4))
        } else {
            #expect(window == nil)
        }
        #expect(try bytes("period stamps") == Double(pipeline.stamps.capacity * MemoryLayout<CaptureStamp>.stride))
        #expect(try bytes("frame bus") == Double(pipeline.bus.capacity * (MemoryLayout<FrameHeader>.stride + (c.analysis.nMels + max(c.analysis.nMFCC, 1)) * 4)))
        #expect(estimate.totalMB < Double(c.limits.maxMemoryMB))
    }
}

extension EarshotConfig: CustomTestStringConvertible {
    public var testDescription: String { "channels \(capture.channels) rate \(capture.sampleRate) hop \(analysis.hop) period \(capture.periodFrames.map(String.init) ?? "hop") ring \(capture.ringSeconds) s" }
}
