#if canImport(Glibc)
import Glibc
#endif
import EarshotCapture
import EarshotDSP
import EarshotRealtime

/// Output format of frames written to a stream.
public enum FrameFormat: String, Sendable, CaseIterable {
    case ndjson
    case csv
}

/// A ``FrameOutput`` that serializes every frame into a ``ByteWriter`` and flushes it to a file descriptor
/// in large writes (used by `earshot analyze`).
public final class EncodingOutput: FrameOutput, @unchecked Sendable {
    public let encoder: FrameEncoder
    public let format: FrameFormat
    public let fileDescriptor: Int32
    public let writer = ByteWriter(capacity: 1 << 20)
    let logmel: UnsafeMutableBufferPointer<Float>
    let mfcc: UnsafeMutableBufferPointer<Float>
    public private(set) var frames = 0
    public private(set) var onsets = 0
    public private(set) var writeError: Int32 = 0
    public var flushThreshold = 1 << 19

    public init(encoder: FrameEncoder, format: FrameFormat, nMels: Int, nMFCC: Int, fileDescriptor: Int32) {
        self.encoder = encoder
        self.format = format
        self.fileDescriptor = fileDescriptor
        logmel = .allocate(capacity: nMels); logmel.initialize(repeating: 0)
        mfcc = .allocate(capacity: nMFCC); mfcc.initialize(repeating: 0)
        if format == .csv { encoder.csvHeader(nMels: nMels, nMFCC: nMFCC, into: writer) }
    }

    deinit { logmel.deallocate(); mfcc.deallocate() }

    public func nextFrameBuffers() -> (logmel: UnsafeMutableBufferPointer<Float>, mfcc: UnsafeMutableBufferPointer<Float>) {
        (logmel, mfcc)
    }

    public func emit(_ header: FrameHeader) {
        frames += 1
        if header.hasOnset { onsets += 1 }
        switch format {
        case .ndjson: encoder.encodeJSON(header, logmel: UnsafeBufferPointer(logmel), mfcc: UnsafeBufferPointer(mfcc), into: writer)
        case .csv: encoder.encodeCSV(header, logmel: UnsafeBufferPointer(logmel), mfcc: UnsafeBufferPointer(mfcc), into: writer)
        }
        if writer.count >= flushThreshold { flush() }
    }

    /// Writes out everything buffered. Returns false (and records errno) if the descriptor failed.
    @discardableResult
    public func flush() -> Bool {
        var off = 0
        let b = writer.bytes
        while off < b.count {
            let n = write(fileDescriptor, b.baseAddress! + off, b.count - off)
            if n < 0 {
                if errno == EINTR { continue }
                writeError = errno
                writer.reset()
                return false
            }
            off += n
        }
        writer.reset()
        return true
    }
}

/// `earshot analyze`: the live pipeline's framing and analysis driven from a WAV file as fast as the CPU
/// allows. Frame times are `firstSample / sampleRate` seconds from the start of the file.
public enum OfflineAnalysis {
    /// The warning `analyze` and `spectrogram` print after a file whose samples were replaced (a non-finite
    /// channel sample counted as 0 in the mix, or a mixed sample the input guard changed), or nil.
    public static func sanitizedWarning<O: FrameOutput>(file: String, wav: WAVFile, processor: FrameProcessor<O>) -> String? {
        let sanitized = processor.sanitizedSamples
        let nonFinite = sanitized.nonFinite + wav.replacedChannelSamples.nonFinite
        let clamped = sanitized.clamped + wav.replacedChannelSamples.clamped
        guard nonFinite + clamped > 0 else { return nil }
        return "warning: \(file): \(nonFinite) non-finite sample(s) analyzed as 0, \(clamped) beyond ±\(Int(SampleGuard.limit)) clamped"
    }

    /// Analyzes `wav` into `output`; returns the number of frames.
    /// - Parameter endSample: stop reading once this many samples were read (nil: to the end of the file).
    @discardableResult
    public static func run<O: FrameOutput>(
        wav: WAVFile, channel: Int?, processor: FrameProcessor<O>, chunkFrames: Int = 16_384, endSample: Int64? = nil
    ) throws(WAVError) -> Int {
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkFrames * wav.bytesPerFrame, alignment: 16)
        defer { scratch.deallocate() }
        let samples = AlignedBuffer<Float>(count: chunkFrames)
        // 2…64-channel files: the side signal or the channels too, so the levels are the energy mean over the
        // channels (as live) when the analyzer expects them (``AnalyzerConfig/levelChannels`` of this file;
        // otherwise the averaged downmix alone).
        let stride = wav.sideStride(channel: channel)
        let withSide = stride > 0 && stride == processor.config.sideStride
        let sideBuffer = AlignedBuffer<Float>(count: withSide ? chunkFrames * stride : 1)
        let side = withSide ? sideBuffer.pointer : nil
        let before = processor.nextSeq
        var position: Int64 = 0
        let nsPerSample = 1e9 / Double(wav.sampleRate)
        while endSample.map({ position < $0 }) ?? true {
            let n = try wav.read(maxFrames: chunkFrames, channel: channel, scratch: scratch, into: samples.pointer,
                                 side: side)
            if n == 0 { break }
            let t = Int64((Double(position) * nsPerSample).rounded())
            processor.push(UnsafeBufferPointer(start: samples.pointer, count: n), side: side, firstSample: position,
                           monotonicNs: t, wallNs: t)
            position += Int64(n)
        }
        return Int(processor.nextSeq - before)
    }
}
