/// The feature catalogue: every per-frame feature, its wire name, kind, unit and definition.
///
/// A per-frame feature as named on the wire and in `earshot analyze` output.
public enum Feature: String, CaseIterable, Sendable, Hashable {
    case rmsDbfs = "rms_dbfs"
    case peakDbfs = "peak_dbfs"
    case laf, las, lcf, lzf
    case zcr
    case centroidHz = "centroid_hz"
    case bandwidthHz = "bandwidth_hz"
    case rolloffHz = "rolloff_hz"
    case flatness
    case flux
    case onsetStrength = "onset_strength"
    case logmel
    case mfcc

    /// What a feature's value is on the wire.
    public enum Kind: Sendable, Equatable {
        /// One number per frame (`null` when not finite).
        case scalar
        /// An array: `n_mels` values (`logmel`) or `n_mfcc` values (`mfcc`).
        case vector
    }

    public var kind: Kind {
        switch self {
        case .logmel, .mfcc: .vector
        default: .scalar
        }
    }

    /// True for the weighted levels, which are in the stream's `level_unit` (a frame carrying one of them
    /// also carries `level_unit`).
    public var isWeightedLevel: Bool {
        switch self {
        case .laf, .las, .lcf, .lzf: true
        default: false
        }
    }

    /// Unit shown in the protocol's feature catalogue (`levelUnit` for the weighted levels).
    public func unit(levelUnit: String) -> String {
        switch self {
        case .rmsDbfs, .peakDbfs: "dBFS"
        case .laf, .las, .lcf, .lzf: levelUnit
        case .zcr: "crossings/sample"
        case .centroidHz, .bandwidthHz, .rolloffHz: "Hz"
        case .flatness: "ratio"
        case .flux: "normalized magnitude"
        case .onsetStrength, .logmel: "dB"
        case .mfcc: "dB (DCT-II ortho of log-mel)"
        }
    }

    /// One-line description for the catalogue and the README.
    public var summary: String {
        switch self {
        case .rmsDbfs: "RMS over the frame's n_fft samples, 20*log10(rms); full-scale sine = -3.01"
        case .peakDbfs: "sample peak over the frame, 20*log10(max|x|)"
        case .laf: "A-weighted level, time weighting Fast (125 ms), at the frame's last sample"
        case .las: "A-weighted level, time weighting Slow (1 s)"
        case .lcf: "C-weighted level, Fast"
        case .lzf: "unweighted (Z) level, Fast"
        case .zcr: "zero-crossing rate (librosa, center=False)"
        case .centroidHz: "spectral centroid (librosa)"
        case .bandwidthHz: "spectral bandwidth, p=2 (librosa)"
        case .rolloffHz: "spectral roll-off frequency at roll_percent"
        case .flatness: "spectral flatness (librosa, power=2)"
        case .flux: "L2 norm of the positive spectral flux of |X|, normalized by the window sum"
        case .onsetStrength: "onset function of analysis.onset.function: superflux (log-band SuperFlux over the noise floor) or librosa's log-mel onset_strength"
        case .logmel: "log-mel power, 10*log10(max(mel,1e-10)), slaney mel bank, one value per band"
        case .mfcc: "MFCC, orthonormal DCT-II of the log-mel"
        }
    }

    /// Parses a comma-separated list (`all` = everything); unknown names are reported by name.
    public static func parseList(_ text: String) throws(FeatureListError) -> Set<Feature> {
        var out = Set<Feature>()
        for raw in text.split(separator: ",") {
            let name = String(raw.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
            if name == "all" { out.formUnion(Feature.allCases); continue }
            guard let f = Feature(rawValue: name) else { throw FeatureListError(name: name) }
            out.insert(f)
        }
        if out.isEmpty { throw FeatureListError(name: text) }
        return out
    }
}

public struct FeatureListError: Error, CustomStringConvertible, Sendable {
    public var name: String
    public var description: String {
        "unknown feature '\(name)'; known: \(Feature.allCases.map(\.rawValue).joined(separator: ", ")), all"
    }
}
