#if canImport(Glibc)
import Glibc
#endif

/// Why a WAV file was refused. Every case names the problem; the CLI exits with 65 (EX_DATAERR).
public struct WAVError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var message: String
    public var description: String { "\(path): \(message)" }
}

/// A WAV file opened for streaming: RIFF/WAVE with PCM 16/24/32-bit integer or 32-bit float samples,
/// any number of channels (plain `fmt ` or WAVE_FORMAT_EXTENSIBLE).
///
/// Refuses, by name, anything else: compressed encodings (µ-law, A-law, ADPCM, MP3, …), 8-bit and 64-bit
/// samples, a missing `fmt `/`data` chunk, a file shorter than its header declares, and non-WAV files.
public final class WAVFile {
    public let path: String
    public let sampleRate: Int
    public let channels: Int
    public let format: SampleFormat
    /// Sample frames in the data chunk.
    public let frameCount: Int
    private let fd: Int32
    private let dataOffset: Int
    private var framesRead = 0

    public init(path: String) throws(WAVError) {
        self.path = path
        func fail(_ message: String) -> WAVError { WAVError(path: path, message: message) }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw fail("cannot open: \(String(cString: strerror(errno)))") }
        var st = stat()
        guard fstat(fd, &st) == 0 else { close(fd); throw fail("cannot stat") }
        let fileSize = Int(st.st_size)

        func readExactly(_ count: Int, at offset: Int) -> [UInt8]? {
            var bytes = [UInt8](repeating: 0, count: count)
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
            return n == count ? bytes : nil
        }
        func u16(_ b: [UInt8], _ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 }
        func u32(_ b: [UInt8], _ o: Int) -> Int { u16(b, o) | u16(b, o + 2) << 16 }

        do throws(WAVError) {
            guard let riff = readExactly(12, at: 0) else { throw fail("not a WAV file (shorter than a RIFF header)") }
            let tag = String(decoding: riff[0..<4], as: UTF8.self)
            if tag == "RF64" { throw fail("RF64 WAV files are not supported") }
            guard tag == "RIFF", String(decoding: riff[8..<12], as: UTF8.self) == "WAVE" else {
                throw fail("not a WAV file (no RIFF/WAVE header)")
            }
            var offset = 12
            var fmt: [UInt8]?
            var data: (offset: Int, size: Int)?
            while offset + 8 <= fileSize, data == nil {
                guard let header = readExactly(8, at: offset) else { break }
                let id = String(decoding: header[0..<4], as: UTF8.self)
                let size = u32(header, 4)
                if id == "fmt " {
                    guard size >= 16, let body = readExactly(size, at: offset + 8) else {
                        throw fail("truncated or invalid 'fmt ' chunk")
                    }
                    fmt = body
                } else if id == "data" {
                    data = (offset + 8, size)
                }
                offset += 8 + size + (size & 1)
            }
            guard let fmt else { throw fail("no 'fmt ' chunk: not a valid WAV file") }
            guard let data else { throw fail("no 'data' chunk") }
            var formatTag = u16(fmt, 0)
            let channels = u16(fmt, 2)
            let rate = u32(fmt, 4)
            let blockAlign = u16(fmt, 12)
            let bits = u16(fmt, 14)
            if formatTag == 0xFFFE {  // WAVE_FORMAT_EXTENSIBLE: the sub-format GUID's first two bytes
                guard fmt.count >= 40 else { throw fail("truncated WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk") }
                formatTag = u16(fmt, 24)
            }
            let format: SampleFormat
            switch (formatTag, bits) {
            case (1, 16): format = .s16
            case (1, 24): format = blockAlign == channels * 3 ? .s24Packed : .s24In32
            case (1, 32): format = .s32
            case (3, 32): format = .float32
            case (1, _): throw fail("\(bits)-bit PCM is not supported (16, 24 or 32-bit PCM, or 32-bit float)")
            case (3, _): throw fail("\(bits)-bit float is not supported (32-bit float only)")
            default: throw fail("\(Self.encodingName(formatTag)) (format tag 0x\(String(formatTag, radix: 16))) is not PCM: convert it to PCM first")
            }
            guard channels >= 1 else { throw fail("channel count is 0") }
            guard rate >= 1 else { throw fail("sample rate is 0") }
            guard blockAlign == channels * format.bytesPerSample else {
                throw fail("block align \(blockAlign) does not match \(channels) channel(s) of \(bits)-bit samples")
            }
            var dataSize = data.size
            if dataSize == 0xFFFF_FFFF || dataSize == 0 && fileSize > data.offset {
                dataSize = fileSize - data.offset  // streaming writers leave the size open
            }
            guard data.offset + dataSize <= fileSize else {
                throw fail("truncated: the data chunk declares \(dataSize) bytes but only \(fileSize - data.offset) are present")
            }
            guard dataSize % blockAlign == 0 else {
                throw fail("truncated: the data chunk ends in the middle of a sample frame")
            }
            self.fd = fd
            self.sampleRate = rate
            self.channels = channels
            self.format = format
            self.dataOffset = data.offset
            self.frameCount = dataSize / blockAlign
        } catch {
            close(fd)
            throw error
        }
    }

    deinit { close(fd) }

    /// Bytes per interleaved sample frame.
    public var bytesPerFrame: Int { channels * format.bytesPerSample }

    /// Reads up to `maxFrames` sample frames, converted to mono Float32 (downmix when `channel` is nil).
    ///
    /// - Parameters:
    ///   - scratch: caller-owned bytes, at least `maxFrames * bytesPerFrame` long.
    ///   - destination: room for `maxFrames` floats.
    /// - Returns: frames read; 0 at the end of the data.
    public func read(
        maxFrames: Int, channel: Int?, scratch: UnsafeMutableRawBufferPointer,
        into destination: UnsafeMutablePointer<Float>
    ) throws(WAVError) -> Int {
        let frames = min(maxFrames, frameCount - framesRead, scratch.count / bytesPerFrame)
        guard frames > 0 else { return 0 }
        let bytes = frames * bytesPerFrame
        var got = 0
        while got < bytes {
            let n = pread(fd, scratch.baseAddress! + got, bytes - got, off_t(dataOffset + framesRead * bytesPerFrame + got))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw WAVError(path: path, message: "read failed or file shrank while reading") }
            got += n
        }
        convertToMono(scratch.baseAddress!, format: format, frames: frames, channels: channels, channel: channel, into: destination)
        framesRead += frames
        return frames
    }

    static func encodingName(_ tag: Int) -> String {
        switch tag {
        case 0x0002: "Microsoft ADPCM"
        case 0x0006: "A-law"
        case 0x0007: "µ-law"
        case 0x0011: "IMA ADPCM"
        case 0x0031: "GSM 6.10"
        case 0x0050: "MPEG audio"
        case 0x0055: "MP3"
        case 0x00FF: "AAC"
        case 0x1610: "AAC (ADTS)"
        case 0xF1AC: "FLAC"
        default: "a compressed or unknown encoding"
        }
    }
}

/// Writes a PCM WAV file (used by tests, the demo and the benchmark to make inputs).
public func writeWAV(
    path: String, samples: [Float], sampleRate: Int, channels: Int = 1, format: SampleFormat = .s16
) throws(WAVError) {
    var out = [UInt8]()
    func put16(_ v: Int) { out.append(UInt8(v & 0xFF)); out.append(UInt8((v >> 8) & 0xFF)) }
    func put32(_ v: Int) { put16(v & 0xFFFF); put16((v >> 16) & 0xFFFF) }
    let bps = format.bytesPerSample
    let dataBytes = samples.count * bps
    out.append(contentsOf: Array("RIFF".utf8)); put32(36 + dataBytes)
    out.append(contentsOf: Array("WAVEfmt ".utf8)); put32(16)
    put16(format == .float32 ? 3 : 1); put16(channels); put32(sampleRate)
    put32(sampleRate * channels * bps); put16(channels * bps); put16(format == .s24In32 ? 32 : bps * 8)
    out.append(contentsOf: Array("data".utf8)); put32(dataBytes)
    out.reserveCapacity(out.count + dataBytes)
    for x in samples {
        switch format {
        case .s16: put16(Int(Int16(clamping: Int((x * 32768).rounded()))) & 0xFFFF)
        case .s24Packed:
            let v = Int(max(-8_388_608, min(8_388_607, (x * 8_388_608).rounded())))
            out.append(UInt8(v & 0xFF)); out.append(UInt8((v >> 8) & 0xFF)); out.append(UInt8((v >> 16) & 0xFF))
        case .s24In32: put32(Int(max(-8_388_608, min(8_388_607, (x * 8_388_608).rounded()))) & 0xFFFF_FFFF)
        case .s32: put32(Int(Int32(clamping: Int64((Double(x) * 2_147_483_648).rounded()))) & 0xFFFF_FFFF)
        case .float32: put32(Int(x.bitPattern))
        }
    }
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw WAVError(path: path, message: "cannot create: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    let ok = out.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) == $0.count }
    guard ok else { throw WAVError(path: path, message: "write failed") }
}
