import EarshotDSP
import EarshotPipeline

/// A ``FrameOutput`` for ``FrameProcessor`` that puts every analyzed frame into a ``SpectrogramGrid``: the
/// log-mel the analyzer wrote (default), or the linear power spectrum it computed for that frame
/// (``FrameAnalyzer/powerSpectrum``, read only here, so the live path pays nothing for it), plus the A-weighted
/// Fast level and the onsets. Frames are placed at their centre, `(firstSample + n_fft/2) / sample_rate`.
public final class SpectrogramCollector: FrameOutput {
    public private(set) var grid: SpectrogramGrid
    public let linear: Bool
    /// Added to the level (the calibration, `dB SPL = dBFS + offset`).
    public let levelOffsetDb: Float
    let analyzer: FrameAnalyzer
    let logmel: UnsafeMutableBufferPointer<Float>
    let mfcc: UnsafeMutableBufferPointer<Float>
    let scratch: UnsafeMutableBufferPointer<Float>
    let centreOffset: Double
    let sampleRate: Double
    let hop: Int64

    /// - Parameters:
    ///   - analyzer: the analyzer the processor drives (its power spectrum is read after each frame).
    ///   - grid: where the frames go (its ``FrequencyScale`` must match `linear`).
    public init(analyzer: FrameAnalyzer, grid: SpectrogramGrid, linear: Bool, levelOffsetDb: Float) {
        let c = analyzer.config
        precondition(grid.scale.count == (linear ? c.binCount : c.nMels))
        self.analyzer = analyzer
        self.grid = grid
        self.linear = linear
        self.levelOffsetDb = levelOffsetDb
        logmel = .allocate(capacity: c.nMels); logmel.initialize(repeating: 0)
        mfcc = .allocate(capacity: c.nMFCC); mfcc.initialize(repeating: 0)
        scratch = .allocate(capacity: c.binCount); scratch.initialize(repeating: 0)
        centreOffset = Double(c.nFFT) / 2
        sampleRate = Double(c.sampleRate)
        hop = Int64(c.hop)
    }

    deinit { logmel.deallocate(); mfcc.deallocate(); scratch.deallocate() }

    /// The log-mel frequency scale of `analyzer` (its band centres).
    public static func melScale(_ analyzer: FrameAnalyzer) -> FrequencyScale {
        let edges = analyzer.melBandEdgesHz
        return .mel(centresHz: (0..<analyzer.config.nMels).map { Double(edges[$0 + 1]) })
    }

    /// The linear frequency scale of `analyzer` (`n_fft/2 + 1` bins).
    public static func linearScale(_ analyzer: FrameAnalyzer) -> FrequencyScale {
        .linear(binHz: Double(analyzer.config.sampleRate) / Double(analyzer.config.nFFT), bins: analyzer.config.binCount)
    }

    public func nextFrameBuffers() -> (logmel: UnsafeMutableBufferPointer<Float>, mfcc: UnsafeMutableBufferPointer<Float>) {
        (logmel, mfcc)
    }

    public func emit(_ header: FrameHeader) {
        let t = (Double(header.firstSample) + centreOffset) / sampleRate
        if linear {
            let power = analyzer.powerSpectrum
            for k in 0..<scratch.count { scratch[k] = powerToDb(power[k]) }
            grid.add(dB: UnsafeBufferPointer(scratch), at: t)
        } else {
            grid.add(dB: UnsafeBufferPointer(logmel), at: t)
        }
        grid.addLevel(header.features.laf + levelOffsetDb, at: t)
        if header.hasOnset {
            let back = header.seq &- header.onset.frameIndex
            grid.addOnset(at: (Double(header.firstSample &- back &* hop) + centreOffset) / sampleRate)
        }
    }
}
