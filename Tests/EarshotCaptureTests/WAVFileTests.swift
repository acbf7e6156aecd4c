#if canImport(Glibc)
import Glibc
#endif
import EarshotCapture
import Foundation
import Testing

/// The WAV reader on the committed seed corpus (Fuzz/corpus/wav): what is read and what is refused, and why.
@Suite struct WAVFileTests {
    static let corpus = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz/corpus/wav")

    /// Opens a seed as a regular file (memfd) and reads every frame: (frames, error message).
    static func read(_ name: String) throws -> (frames: Int, error: String?) {
        let data = try Data(contentsOf: corpus.appendingPathComponent(name))
        return data.withUnsafeBytes { bytes in
            do {
                let wav = try WAVFile(bytes: bytes, name: name)
                let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * wav.bytesPerFrame, alignment: 16)
                defer { scratch.deallocate() }
                var floats = [Float](repeating: 0, count: 64)
                var total = 0
                while true {
                    let n = try floats.withUnsafeMutableBufferPointer {
                        try wav.read(maxFrames: 64, channel: nil, scratch: scratch, into: $0.baseAddress!)
                    }
                    if n == 0 { break }
                    total += n
                }
                return (total, nil)
            } catch {
                return (0, "\(error)")
            }
        }
    }

    @Test(arguments: [
        ("s16-mono.wav", 64), ("s16-stereo.wav", 48), ("s24-packed-mono.wav", 40), ("s24-in-32.wav", 40),
        ("s32-stereo.wav", 32), ("float-mono.wav", 64), ("float-nan-inf.wav", 4), ("extensible-pcm-stereo.wav", 32),
        ("extensible-float-6ch.wav", 8), ("list-before-fmt.wav", 32), ("odd-chunk-padding.wav", 16),
        ("list-after-data.wav", 16), ("two-fmt-chunks.wav", 16), ("streaming-ffffffff.wav", 24),
        ("streaming-zero-size.wav", 24),
        ("odd-list-unpadded.wav", 16),  // a writer left out the pad byte after an odd-sized LIST chunk
        // Data size 0 with audio after it, RIFF size closed (a writer that patched only the RIFF size): to the
        // end, as from a pipe (was 0 frames from the file, 24 through stdin); an empty data chunk followed by
        // a LIST chunk stays empty.
        ("zero-data-size-closed-riff.wav", 24), ("empty-data-then-list.wav", 0),
    ])
    func readable(_ name: String, _ frames: Int) throws {
        let r = try Self.read(name)
        #expect(r.error == nil && r.frames == frames, "\(name): \(r)")
    }

    @Test(arguments: [
        ("huge-fmt-48-bytes.wav", "the 'fmt ' chunk declares 4294967295 bytes but only 28 are present"),
        ("huge-data-size.wav", "truncated: the data chunk declares 4294967280 bytes"),
        ("huge-list-chunk.wav", "no 'data' chunk"),
        ("truncated-data.wav", "truncated: the data chunk declares 200 bytes"),
        ("truncated-mid-frame.wav", "ends in the middle of a sample frame"),
        ("data-before-fmt.wav", "no 'fmt ' chunk"),
        ("extensible-truncated-fmt.wav", "truncated WAVE_FORMAT_EXTENSIBLE"),
        ("mulaw.wav", "µ-law (format tag 0x7) is not PCM"),
        ("pcm-8bit.wav", "8-bit PCM is not supported"),
        ("float64.wav", "64-bit float is not supported"),
        ("zero-channels.wav", "channel count is 0"),
        ("max-channels.wav", "65535 channels is more than the 256 supported"),
        ("rf64.wav", "RF64"),
        ("not-riff.wav", "no RIFF/WAVE header"),
        ("short.wav", "shorter than a RIFF header"),
    ])
    func refusedByName(_ name: String, _ message: String) throws {
        let r = try Self.read(name)
        #expect(r.error?.contains(message) == true, "\(name): \(r)")
    }

    /// A pipe is read in order: chunks before `data` are read and discarded, an open size (0xFFFFFFFF) is
    /// read to the end of input; a pipe whose writer stays silent fails after the timeout instead of hanging.
    @Test func pipesAreReadSequentiallyAndTimeOut() throws {
        let data = try Data(contentsOf: Self.corpus.appendingPathComponent("list-before-fmt.wav"))
        + Data()  // regular and streamed: same frames
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        _ = data.withUnsafeBytes { write(fds[1], $0.baseAddress, $0.count) }
        close(fds[1])
        let wav = try WAVFile(fileDescriptor: fds[0], name: "pipe", ownsDescriptor: true, timeout: 1)
        #expect(!wav.isSeekable && wav.frameCount == 32)
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { scratch.deallocate() }
        var floats = [Float](repeating: 0, count: 1024)
        let n = try floats.withUnsafeMutableBufferPointer { try wav.read(maxFrames: 1024, channel: nil, scratch: scratch, into: $0.baseAddress!) }
        #expect(n == 32)

        var silent: [Int32] = [0, 0]
        #expect(pipe(&silent) == 0)
        defer { close(silent[1]) }
        let t0 = Date()
        #expect(throws: WAVError.self) { _ = try WAVFile(fileDescriptor: silent[0], name: "silent", ownsDescriptor: true, timeout: 0.3) }
        #expect(Date().timeIntervalSince(t0) < 2)
    }
}
