import EarshotRealtime

/// Where one frame's new samples sit on the capture timeline (one entry per frame in ``ClipTap/chunks``).
public struct ClipChunk: BitwiseCopyable, Sendable, Equatable {
    /// ``ClipTap/samples`` ring position just after this chunk's samples.
    public var ringEnd: Int64
    /// Timeline index (``FrameHeader/firstSample`` scale) of the chunk's first sample.
    public var firstSample: Int64
    /// UNIX time of the chunk's first sample, ns.
    public var wallNs: Int64
    /// The frame that brought these samples.
    public var seq: Int64
    public var count: Int32
    public init(ringEnd: Int64, firstSample: Int64, wallNs: Int64, seq: Int64, count: Int32) {
        self.ringEnd = ringEnd; self.firstSample = firstSample; self.wallNs = wallNs; self.seq = seq; self.count = count
    }
}

/// The raw samples for event clips: the DSP thread copies each frame's *new* samples (the ones
/// ``SampleHealth`` measures) into a preallocated ``SPSCRing`` with one ``ClipChunk`` per frame; the clips
/// sink drains both on its own thread. The frame bus carries features only, so this is the one path raw
/// audio takes out of the pipeline. Created with the pipeline when clips are enabled (``LivePipeline``'s
/// `clipTapSeconds`); nil otherwise, and then the DSP thread does not touch it.
///
/// Producer (DSP thread): two ring writes (memcpy) per frame, no allocation, lock or syscall. Consumer: one
/// thread. The ring only has to cover the consumer's wake-up interval plus a write stall; when it is lapped
/// the lost samples are counted (``ClipTap/Reader/lost``).
public final class ClipTap: @unchecked Sendable {
    public let samples: SPSCRing<Float>
    public let chunks: SPSCRing<ClipChunk>
    public let sampleRate: Int

    /// - Parameters: seconds: audio the ring holds (≥ 1 hop).
    public init(sampleRate: Int, hop: Int, seconds: Double) {
        self.sampleRate = sampleRate
        let n = max(hop * 4, Int(Double(sampleRate) * max(0, seconds)))
        samples = SPSCRing<Float>(minimumCapacity: n)
        chunks = SPSCRing<ClipChunk>(minimumCapacity: n / max(1, hop) + 16)
    }

    /// DSP thread: appends one frame's new samples.
    @inline(__always)
    public func record(_ s: UnsafeBufferPointer<Float>, firstSample: Int64, wallNs: Int64, seq: Int64) {
        samples.write(s)
        chunks.write(ClipChunk(ringEnd: Int64(samples.written), firstSample: firstSample, wallNs: wallNs, seq: seq,
                               count: Int32(truncatingIfNeeded: s.count)))
    }

    /// Consumer side: reads chunks with their samples; one reader per tap, on one thread.
    public final class Reader {
        let tap: ClipTap
        let buffer: UnsafeMutableBufferPointer<Float>
        let one: UnsafeMutableBufferPointer<ClipChunk>
        /// Samples lost because the consumer fell more than the ring behind.
        public private(set) var lost = 0

        public init(tap: ClipTap) {
            self.tap = tap
            buffer = .allocate(capacity: tap.samples.capacity)
            one = .allocate(capacity: 1)
        }
        deinit { buffer.deallocate(); one.deallocate() }

        /// Hands every complete chunk to `body` (its samples valid only during the call); the chunk's
        /// fields describe the samples passed (after a loss: the tail that survived). Returns chunks read.
        @discardableResult
        public func drain(_ body: (ClipChunk, UnsafeBufferPointer<Float>) -> Void) -> Int {
            var n = 0
            while true {
                let r = tap.chunks.read(into: one)
                guard r.count == 1 else { break }
                var c = one[0]
                let chunkStart = c.ringEnd &- Int64(c.count)
                var pos = Int64(tap.samples.consumed)
                if pos < chunkStart {  // samples of lost chunks
                    let skipped = tap.samples.skip(Int(chunkStart &- pos))
                    lost &+= skipped
                    pos &+= Int64(skipped)
                }
                let want = Int(c.ringEnd &- pos)
                if want <= 0 { continue }
                let got = tap.samples.read(into: UnsafeMutableBufferPointer(rebasing: buffer[0..<min(want, buffer.count)]))
                lost &+= got.lost
                if got.count == 0 { if got.lost == 0 { break } else { continue } }
                let missing = Int64(c.count) - Int64(got.count)
                if missing > 0 {
                    c.firstSample &+= missing
                    c.wallNs &+= Int64((Double(missing) * 1e9 / Double(tap.sampleRate)).rounded())
                    c.count = Int32(got.count)
                }
                body(c, UnsafeBufferPointer(rebasing: buffer[0..<got.count]))
                n += 1
            }
            return n
        }
    }
}
