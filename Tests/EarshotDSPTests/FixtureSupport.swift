import EarshotDSP
import Foundation

/// One librosa fixture written by scripts/make_fixtures.py.
struct Fixture {
    var name: String
    var config: AnalyzerConfig
    var samples: [Float]
    var frames: Int
    var arrays: [String: [Double]]

    static var directory: URL {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
    }

    static func names() throws -> [String] {
        let data = try Data(contentsOf: directory.appendingPathComponent("index.json"))
        let obj = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        return obj["fixtures"] as! [String]
    }

    static func load(_ name: String) throws -> Fixture {
        let data = try Data(contentsOf: directory.appendingPathComponent(name + ".json"))
        let obj = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let c = obj["config"] as! [String: Any]
        var config = AnalyzerConfig()
        config.sampleRate = (c["sr"] as! NSNumber).intValue
        config.nFFT = (c["n_fft"] as! NSNumber).intValue
        config.hop = (c["hop"] as! NSNumber).intValue
        config.nMels = (c["n_mels"] as! NSNumber).intValue
        config.fMin = (c["fmin"] as! NSNumber).doubleValue
        config.fMax = (c["fmax"] as! NSNumber).doubleValue
        config.nMFCC = (c["n_mfcc"] as! NSNumber).intValue
        // The fixtures hold librosa's onset_strength of the log-mel: compare the librosa-compatible function.
        config.onsetFunction.function = .logmel
        let input = obj["input"] as! String
        let raw = try Data(contentsOf: directory.appendingPathComponent(input))
        let samples = input.hasSuffix(".wav") ? try wavPCM16(raw) : raw.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        var arrays: [String: [Double]] = [:]
        for (k, v) in obj {
            if let a = v as? [NSNumber] { arrays[k] = a.map(\.doubleValue) }
        }
        return Fixture(
            name: name, config: config, samples: samples, frames: (obj["frames"] as! NSNumber).intValue,
            arrays: arrays)
    }

    /// Mono PCM16 WAV → Float (x / 32768, as soundfile reads it).
    static func wavPCM16(_ d: Data) throws -> [Float] {
        let b = [UInt8](d)
        func u32(_ i: Int) -> Int { Int(b[i]) | Int(b[i + 1]) << 8 | Int(b[i + 2]) << 16 | Int(b[i + 3]) << 24 }
        var i = 12
        while i + 8 <= b.count {
            let id = String(decoding: b[i..<i + 4], as: UTF8.self)
            let size = u32(i + 4)
            if id == "data" {
                let n = size / 2
                return (0..<n).map { k in
                    Float(Int16(bitPattern: UInt16(b[i + 8 + 2 * k]) | UInt16(b[i + 9 + 2 * k]) << 8)) / 32768
                }
            }
            i += 8 + size + (size & 1)
        }
        throw CocoaError(.fileReadCorruptFile)
    }
}

/// Runs a FrameAnalyzer over `samples` (center=False framing) and collects every output.
struct AnalyzerRun {
    var features: [FrameFeatures] = []
    var logmel: [[Float]] = []
    var mfcc: [[Float]] = []
    var onsets: [OnsetEvent] = []

    init(config: AnalyzerConfig, samples: [Float]) throws {
        let analyzer = try FrameAnalyzer(config: config)
        let n = samples.count >= config.nFFT ? 1 + (samples.count - config.nFFT) / config.hop : 0
        var lm = [Float](repeating: 0, count: config.nMels)
        var mf = [Float](repeating: 0, count: config.nMFCC)
        samples.withUnsafeBufferPointer { x in
            for i in 0..<n {
                let frame = UnsafeBufferPointer(rebasing: x[(i * config.hop)..<(i * config.hop + config.nFFT)])
                var f = FrameFeatures()
                let onset = lm.withUnsafeMutableBufferPointer { l in
                    mf.withUnsafeMutableBufferPointer { m in
                        analyzer.process(
                            frame: frame, newSampleCount: i == 0 ? config.nFFT : config.hop, features: &f,
                            logmel: l, mfcc: m)
                    }
                }
                if let onset { onsets.append(onset) }
                features.append(f)
                logmel.append(lm)
                mfcc.append(mf)
            }
        }
    }
}
