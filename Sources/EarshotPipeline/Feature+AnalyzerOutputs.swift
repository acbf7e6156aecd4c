import EarshotDSP

extension AnalyzerOutputs {
    /// What a ``FrameAnalyzer`` must compute to produce `features` (onset strength is always computed,
    /// so it maps to nothing).
    public init(features: some Sequence<Feature>) {
        self = []
        for f in features { formUnion(f.analyzerOutputs) }
    }
}

extension Feature {
    /// The analyzer output that produces this feature (empty for onset strength).
    public var analyzerOutputs: AnalyzerOutputs {
        switch self {
        case .rmsDbfs: .rms
        case .peakDbfs: .peak
        case .zcr: .zcr
        case .laf, .las, .lcf, .lzf: .levels
        case .centroidHz: .centroid
        case .bandwidthHz: .bandwidth
        case .rolloffHz: .rolloff
        case .flatness: .flatness
        case .flux: .flux
        case .mfcc: .mfcc
        case .logmel: .logmel
        case .onsetStrength: []
        }
    }
}
