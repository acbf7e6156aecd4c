#if canImport(Glibc)
import Glibc
#endif
import EarshotCapture

/// Fuzz target body (corpus: Fuzz/corpus/wav). Must be total: no trap, no hang, bounded memory, for any bytes.
///
/// Reads every frame twice, through both paths of the real reader: as a regular file (a `memfd`: sizes are
/// checked against the file size, chunks skipped with `lseek`) and, when it fits a pipe's buffer, as a stream
/// (a pipe whose writer has closed: sequential reads, skipped chunks read and discarded, open sizes read to
/// the end). Memory stays bounded by design: a header declaring 4 GiB allocates nothing extra.
public func fuzzWAVReader(_ data: UnsafeRawBufferPointer) {
    if let wav = try? WAVFile(bytes: data, name: "fuzz") { readAll(wav) }
    guard data.count <= 65_536 else { return }  // a pipe's default capacity: the write below never blocks
    var fds: (Int32, Int32) = (-1, -1)
    let ok = withUnsafeMutableBytes(of: &fds) { pipe($0.baseAddress!.assumingMemoryBound(to: Int32.self)) == 0 }
    guard ok else { return }
    var off = 0
    while off < data.count {
        let n = write(fds.1, data.baseAddress! + off, data.count - off)
        if n <= 0 { break }
        off += n
    }
    close(fds.1)
    if let wav = try? WAVFile(fileDescriptor: fds.0, name: "fuzz-pipe", ownsDescriptor: true, timeout: 1) {
        readAll(wav)
    } else {
        // `init` closed it (it owns the descriptor, also when it throws).
    }
}

private func readAll(_ wav: WAVFile) {
    // Bounded: buffers sized by the (capped) frame size, at most the bytes the input holds read.
    let chunkFrames = 256
    let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkFrames * wav.bytesPerFrame, alignment: 16)
    defer { scratch.deallocate() }
    let floats = UnsafeMutablePointer<Float>.allocate(capacity: chunkFrames)
    defer { floats.deallocate() }
    // Half the inputs (by the sample rate's parity) read one picked channel, the others read whole: the downmix
    // with the side signal (2 channels) or every channel (3…64, `convertToMidAndChannels`) as `analyze` does.
    let picked = wav.channels > 1 && wav.sampleRate & 1 == 0
    let channel = picked ? wav.channels - 1 : nil
    let stride = wav.sideStride(channel: channel)
    let side = UnsafeMutablePointer<Float>.allocate(capacity: chunkFrames * max(stride, 1))
    defer { side.deallocate() }
    while let n = try? wav.read(maxFrames: chunkFrames, channel: channel, scratch: scratch, into: floats,
                                side: stride > 0 ? side : nil), n > 0 {}
}
