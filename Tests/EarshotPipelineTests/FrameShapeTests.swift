import EarshotCapture
import EarshotDSP
import EarshotPipeline
import Testing

/// `AnalyzerConfig.frameShape` is the one definition of "same frame shape": `LivePipeline.replan` refuses an
/// analyzer of another shape (it used to be a `precondition` that would have crashed a reload).
@Suite("frame shape")
struct FrameShapeTests {
    @Test func replanRefusesAnotherShapeInsteadOfTrapping() throws {
        let base = AnalyzerConfig()
        let pipeline = LivePipeline(capture: CaptureConfig(device: "null"), analyzer: try FrameAnalyzer(config: base))
        for change: (inout AnalyzerConfig) -> Void in [{ $0.nMels = 40 }, { $0.nMFCC = 20 }, { $0.nFFT = 2048 }, { $0.hop = 240 }] {
            var other = base
            change(&other)
            #expect(other.frameShape != base.frameShape)
            #expect(!pipeline.replan(analyzer: try FrameAnalyzer(config: other)))
            #expect(pipeline.analyzerConfig == base, "a refused replan changed the analyzer")
        }
    }
}
