#if canImport(Glibc)
import Glibc
#endif
internal import CEarshotSupport

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
///
/// Total on any input: the header is read sequentially with fixed-size buffers (a chunk's declared size is
/// checked against the file size before anything is read, and never allocated: at most 64 bytes of `fmt `
/// are kept, other chunks are skipped), so a 48-byte file declaring a 4 GiB chunk costs 48 bytes.
///
/// Pipes, FIFOs and other non-seekable inputs (``init(fileDescriptor:name:ownsDescriptor:timeout:)``,
/// `analyze -`) are read strictly in order; a data size of 0 or 0xFFFFFFFF (streaming writers) means
/// "until end of input". Every wait for bytes from such an input is bounded by `timeout`: a FIFO without a
/// writer, or a writer that stops, is an error naming the input after `timeout` seconds, never a hang.
public final class WAVFile {
    public let path: String
    public let sampleRate: Int
    public let channels: Int
    public let format: SampleFormat
    /// Sample frames in the data chunk; `nil` for a stream whose size is open (read until end of input).
    public let frameCount: Int?
    /// Whether the input is a regular file (sizes checked up front) rather than a pipe/FIFO/device.
    public let isSeekable: Bool
    private let fd: Int32
    private let ownsDescriptor: Bool
    /// `F_GETFL` before this changed it (restored when done: stdin's flags are shared with other processes).
    private var originalFlags: Int32 = -1
    private let timeoutMs: Int32
    /// Data bytes not read yet (`nil`: until end of input).
    private var remainingBytes: Int?
    private var dataBytesRead = 0
    /// Float samples of one channel replaced before a multi-channel mix so far (see
    /// ``convertToMono(_:format:frames:channels:channel:into:)``).
    public private(set) var replacedChannelSamples = ChannelReplacements()

    /// Opens `path`. A FIFO is opened without blocking (no writer yet is not a hang) and read as a stream.
    public convenience init(path: String, timeout: Double = WAVFile.defaultTimeout) throws(WAVError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw WAVError(path: path, message: "cannot open: \(String(cString: strerror(errno)))") }
        try self.init(fileDescriptor: fd, name: path, ownsDescriptor: true, timeout: timeout)
    }

    /// Reads a WAV held in memory, through the same descriptor path as a file (copied into a `memfd`).
    public convenience init(bytes: UnsafeRawBufferPointer, name: String = "memory") throws(WAVError) {
        let fd = CEarshot_memfd_create("earshot-wav")
        guard fd >= 0 else { throw WAVError(path: name, message: "memfd_create: \(String(cString: strerror(errno)))") }
        var off = 0
        while off < bytes.count {
            let n = write(fd, bytes.baseAddress! + off, bytes.count - off)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { close(fd); throw WAVError(path: name, message: "write to memfd failed") }
            off += n
        }
        lseek(fd, 0, SEEK_SET)
        try self.init(fileDescriptor: fd, name: name, ownsDescriptor: true)
    }

    /// Most channels accepted: callers size read buffers as frames × channels, so the header must not choose it.
    public static let maxChannels = 256

    /// Seconds a stream may go without delivering a byte before reading fails.
    public static let defaultTimeout = 10.0

    /// Reads a WAV from an open descriptor (a regular file, memfd, pipe, FIFO or stdin).
    /// - Parameters:
    ///   - name: what error messages call the input (`stdin`, a path).
    ///   - ownsDescriptor: close `fileDescriptor` when done (also when this throws).
    ///   - timeout: longest wait for bytes from a non-seekable input, seconds.
    public init(fileDescriptor: Int32, name: String, ownsDescriptor: Bool, timeout: Double = WAVFile.defaultTimeout)
        throws(WAVError)
    {
        path = name
        fd = fileDescriptor
        self.ownsDescriptor = ownsDescriptor
        let tmo = Int32(timeout >= 0 ? min(timeout, 86_400) * 1000 : 0)  // NaN → 0 (no wait)
        timeoutMs = tmo
        func fail(_ message: String) -> WAVError { WAVError(path: name, message: message) }
        // Fixed scratch for headers and skipped chunks: what the header declares is never allocated.
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 16)
        defer { scratch.deallocate() }
        var regular = false
        var offset = 0
        /// Reads `count` (≤ 4096) bytes into `scratch`; returns how many arrived before the end of input.
        func fill(_ count: Int) throws(WAVError) -> Int {
            let n = try Self.readFully(fd: fileDescriptor, UnsafeMutableRawBufferPointer(start: scratch, count: count),
                                       timeoutMs: tmo, name: name, stream: !regular)
            offset += n
            return n
        }
        /// Skips `count` bytes (seek on files, read and discard on streams); returns how many were skipped.
        func skip(_ count: Int) throws(WAVError) -> Int {
            guard count > 0 else { return 0 }
            if regular {
                guard lseek(fileDescriptor, off_t(count), SEEK_CUR) >= 0 else { return 0 }
                offset += count
                return count
            }
            var done = 0
            while done < count {
                let n = try fill(min(4096, count - done))
                if n == 0 { break }
                done += n
            }
            return done
        }
        do throws(WAVError) {
            var st = stat()
            guard fstat(fileDescriptor, &st) == 0 else { throw fail("cannot stat: \(String(cString: strerror(errno)))") }
            if (st.st_mode & S_IFMT) == S_IFDIR { throw fail("is a directory") }
            regular = (st.st_mode & S_IFMT) == S_IFREG
            isSeekable = regular
            let flags = fcntl(fileDescriptor, F_GETFL)
            if flags >= 0 {  // files block (never long); streams wait in poll, bounded by the timeout
                let wanted = regular ? flags & ~O_NONBLOCK : flags | O_NONBLOCK
                if wanted != flags, fcntl(fileDescriptor, F_SETFL, wanted) == 0 { originalFlags = flags }
            }
            // Regular files: every declared size is checked against the file size. Streams: against what arrives.
            let fileSize = regular ? Int(st.st_size) : Int.max
            if regular { offset = max(0, Int(lseek(fileDescriptor, 0, SEEK_CUR))) }

            guard try fill(12) == 12 else { throw fail("not a WAV file (shorter than a RIFF header)") }
            let riff = Array(UnsafeRawBufferPointer(start: scratch, count: 12))
            let tag = Self.fourCC(riff[0..<4])
            if tag == "RF64" { throw fail("RF64 WAV files are not supported") }
            guard tag == "RIFF", Self.fourCC(riff[8..<12]) == "WAVE" else {
                throw fail("not a WAV file (no RIFF/WAVE header)")
            }
            // A streaming writer leaves the sizes open (0 or 0xFFFFFFFF in RIFF and data); only then does a data
            // size of 0 mean "to the end of the file" (otherwise it is an empty data chunk).
            let riffSize = Self.u32(riff, 4)
            let sizesOpen = riffSize == 0 || riffSize == 0xFFFF_FFFF
            var fmt = [UInt8](repeating: 0, count: 64)
            var fmtSize = -1
            var dataSize: Int?
            // Some writers leave out the pad byte after an odd-sized chunk: a letter there (every chunk ID starts
            // with one; a pad byte is 0, or garbage from writers that fill it) is taken as the first byte of the
            // next chunk header (streams cannot seek back).
            var carried: UInt8?
            while dataSize == nil {
                var chunk: [UInt8]
                if let first = carried {
                    carried = nil
                    guard try fill(7) == 7 else { break }
                    chunk = [first] + Array(UnsafeRawBufferPointer(start: scratch, count: 7))
                } else {
                    guard try fill(8) == 8 else { break }
                    chunk = Array(UnsafeRawBufferPointer(start: scratch, count: 8))
                }
                let id = Self.fourCC(chunk[0..<4])
                let size = Self.u32(chunk, 4)
                let available = fileSize - offset  // about Int.max for streams
                if id == "fmt " {
                    guard size >= 16 else { throw fail("invalid 'fmt ' chunk (\(size) bytes, at least 16 needed)") }
                    guard size <= available else {
                        throw fail("truncated: the 'fmt ' chunk declares \(size) bytes but only \(available) are present")
                    }
                    let keep = min(size, fmt.count)
                    guard try fill(keep) == keep else { throw fail("truncated 'fmt ' chunk") }
                    fmt = Array(UnsafeRawBufferPointer(start: scratch, count: keep)) + [UInt8](repeating: 0, count: 64 - keep)
                    fmtSize = size
                    guard try skip(size - keep) == size - keep else { throw fail("truncated 'fmt ' chunk") }
                    if size & 1 == 1 { _ = try skip(1) }
                } else if id == "data" {
                    dataSize = size
                } else {
                    guard size <= available, try skip(size) == size else { break }  // no data chunk follows
                    if size & 1 == 1 {
                        guard try fill(1) == 1 else { break }
                        let pad = scratch.load(as: UInt8.self)
                        if (0x41...0x5A).contains(pad) || (0x61...0x7A).contains(pad) { carried = pad }
                    }
                }
            }
            guard fmtSize >= 0 else { throw fail("no 'fmt ' chunk: not a valid WAV file") }
            guard var declared = dataSize else { throw fail("no 'data' chunk") }
            var formatTag = Self.u16(fmt, 0)
            let channels = Self.u16(fmt, 2)
            let rate = Self.u32(fmt, 4)
            let blockAlign = Self.u16(fmt, 12)
            let bits = Self.u16(fmt, 14)
            if formatTag == 0xFFFE {  // WAVE_FORMAT_EXTENSIBLE: the sub-format GUID's first two bytes
                guard fmtSize >= 40 else { throw fail("truncated WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk") }
                formatTag = Self.u16(fmt, 24)
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
            guard channels <= Self.maxChannels else {
                throw fail("\(channels) channels is more than the \(Self.maxChannels) supported")  // bounds read buffers
            }
            guard rate >= 1 else { throw fail("sample rate is 0") }
            guard blockAlign == channels * format.bytesPerSample else {
                throw fail("block align \(blockAlign) does not match \(channels) channel(s) of \(bits)-bit samples")
            }
            var remaining: Int?
            if regular {
                var open = declared == 0xFFFF_FFFF || declared == 0 && sizesOpen && fileSize > offset
                if declared == 0 && !open && fileSize - offset >= blockAlign {
                    // A data size of 0 with bytes after it: an empty data chunk is followed by another chunk
                    // (or nothing); anything else is audio whose writer patched the RIFF size but not the data
                    // size — read to the end, as from a stream (attack run F2: 0 frames from the file, all of
                    // them through stdin). Zero padding after an empty data chunk reads as silence.
                    var head = [UInt8](repeating: 0, count: 8)
                    let n = head.withUnsafeMutableBytes { pread(fileDescriptor, $0.baseAddress, 8, off_t(offset)) }
                    let chunkFollows = n == 8 && head[0..<4].allSatisfy { (0x20...0x7E).contains($0) }
                        && Self.u32(head, 4) <= fileSize - offset - 8
                    open = !chunkFollows
                }
                if open {  // streaming writers leave the size open (a partial last frame is refused, as from a pipe)
                    declared = fileSize - offset
                }
                guard declared <= fileSize - offset else {
                    throw fail("truncated: the data chunk declares \(declared) bytes but only \(fileSize - offset) are present")
                }
                guard declared % blockAlign == 0 else {
                    throw fail("truncated: the data chunk ends in the middle of a sample frame")
                }
                remaining = declared
            } else {
                remaining = declared == 0xFFFF_FFFF || declared == 0 ? nil : declared - declared % blockAlign
            }
            self.sampleRate = rate
            self.channels = channels
            self.format = format
            self.remainingBytes = remaining
            self.frameCount = remaining.map { $0 / blockAlign }
        } catch {
            if ownsDescriptor { close(fileDescriptor) } else if originalFlags >= 0 { _ = fcntl(fileDescriptor, F_SETFL, originalFlags) }
            throw error
        }
    }

    deinit {
        if ownsDescriptor { close(fd) } else if originalFlags >= 0 { _ = fcntl(fd, F_SETFL, originalFlags) }
    }

    /// Bytes per interleaved sample frame.
    public var bytesPerFrame: Int { channels * format.bytesPerSample }

    /// Reads up to `maxFrames` sample frames, converted to mono Float32 (downmix when `channel` is nil).
    ///
    /// - Parameters:
    ///   - scratch: caller-owned bytes, at least `maxFrames * bytesPerFrame` long.
    ///   - destination: room for `maxFrames` floats.
    ///   - side: room for `maxFrames × sideStride(channel:)` floats, or nil. For a 2-channel file read without
    ///     `channel` it receives the side signal `(L − R) / 2` next to the averaged downmix in `destination`
    ///     (``convertToMidSide(_:format:frames:mid:side:)``), for 3…64 channels every channel's samples
    ///     interleaved (``convertToMidAndChannels(_:format:frames:channels:mid:channelSamples:)``); see
    ///     ``hasSide(channel:)``.
    /// - Returns: frames read; 0 at the end of the data.
    /// - Throws: when the input ends before the size its header declares or in the middle of a frame, a
    ///   stream delivers nothing for the timeout, or reading fails.
    public func read(
        maxFrames: Int, channel: Int?, scratch: UnsafeMutableRawBufferPointer,
        into destination: UnsafeMutablePointer<Float>, side: UnsafeMutablePointer<Float>? = nil
    ) throws(WAVError) -> Int {
        var frames = min(maxFrames, scratch.count / bytesPerFrame)
        if let remainingBytes { frames = min(frames, remainingBytes / bytesPerFrame) }
        guard frames > 0 else { return 0 }
        let want = frames * bytesPerFrame
        let got = try Self.readFully(
            fd: fd, UnsafeMutableRawBufferPointer(rebasing: scratch[0..<want]), timeoutMs: timeoutMs, name: path,
            stream: !isSeekable)
        dataBytesRead += got
        if got < want {
            if let remainingBytes {
                throw WAVError(path: path, message: isSeekable
                    ? "read failed or file shrank while reading"
                    : "truncated: the data chunk declares \(dataBytesRead - got + remainingBytes) bytes but the input ended after \(dataBytesRead)")
            }
            if got % bytesPerFrame != 0 {
                throw WAVError(path: path, message: "truncated: the input ends in the middle of a sample frame")
            }
        }
        let whole = got / bytesPerFrame
        if whole > 0, let side, hasSide(channel: channel) {
            let r = channels == 2
                ? convertToMidSide(scratch.baseAddress!, format: format, frames: whole, mid: destination, side: side)
                : convertToMidAndChannels(scratch.baseAddress!, format: format, frames: whole, channels: channels,
                                          mid: destination, channelSamples: side)
            replacedChannelSamples.nonFinite += r.nonFinite; replacedChannelSamples.clamped += r.clamped
        } else if whole > 0 {
            let r = convertToMono(
                scratch.baseAddress!, format: format, frames: whole, channels: channels, channel: channel, into: destination)
            replacedChannelSamples.nonFinite += r.nonFinite; replacedChannelSamples.clamped += r.clamped
        }
        if remainingBytes != nil { remainingBytes! -= got }
        return whole
    }

    /// Whether ``read(maxFrames:channel:scratch:into:side:)`` fills `side` (2…64 channels, no `channel` picked).
    public func hasSide(channel: Int?) -> Bool { sideStride(channel: channel) > 0 }

    /// Side floats per frame ``read(maxFrames:channel:scratch:into:side:)`` writes (``sideStride(channels:channel:)``).
    public func sideStride(channel: Int?) -> Int { EarshotCapture.sideStride(channels: channels, channel: channel) }

    /// `read` until `buffer` is full or end of input; on a non-blocking descriptor waits in `poll` at most
    /// `timeoutMs` for each chunk of bytes.
    static func readFully(fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, timeoutMs: Int32, name: String, stream: Bool)
        throws(WAVError) -> Int
    {
        func noData(_ name: String, _ ms: Int32) -> WAVError {
            WAVError(path: name, message: "no data for \(Double(ms) / 1000) s (a pipe or FIFO with no writer, or one that stopped writing)")
        }
        var got = 0
        while got < buffer.count {
            let n = Glibc.read(fd, buffer.baseAddress! + got, buffer.count - got)
            if n > 0 { got += n; continue }
            if n == 0 {
                // A FIFO opened without blocking reads as "end" until a writer appears: wait (bounded) for data
                // or a hang-up before believing it. A pipe whose writer has left says POLLHUP at once.
                guard stream else { break }
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let r = poll(&p, 1, timeoutMs)
                if r == 0 { throw noData(name, timeoutMs) }
                if r > 0 && p.revents & Int16(POLLIN) != 0 { continue }
                if r < 0 && errno == EINTR { continue }
                break
            }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let r = poll(&p, 1, timeoutMs)
                if r == 0 { throw noData(name, timeoutMs) }
                if r < 0 && errno != EINTR { throw WAVError(path: name, message: "poll failed: \(String(cString: strerror(errno)))") }
                continue
            }
            throw WAVError(path: name, message: "read failed: \(String(cString: strerror(e)))")
        }
        return got
    }

    static func u16(_ b: [UInt8], _ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 }
    static func u32(_ b: [UInt8], _ o: Int) -> Int { u16(b, o) | u16(b, o + 2) << 16 }

    /// A chunk id as text, with anything unprintable as `?` (ids go into error messages).
    static func fourCC(_ b: ArraySlice<UInt8>) -> String {
        String(decoding: b.map { (0x20..<0x7F).contains($0) ? $0 : 0x3F }, as: UTF8.self)
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
