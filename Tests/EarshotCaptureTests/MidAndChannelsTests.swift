import EarshotCapture
import Testing

/// ``convertToMidAndChannels(_:format:frames:channels:mid:channelSamples:)``: the downmix of
/// ``convertToMono(_:format:frames:channels:channel:into:)`` bit for bit, and each channel's decoded sample.
@Suite("mid and channels conversion")
struct MidAndChannelsTests {
    @Test(arguments: SampleFormat.allCases)
    func midIsTheDownmixBitForBitAndChannelsAreDecoded(_ format: SampleFormat) {
        for channels in [3, 4, 7] {
            let frames = 301
            var g = SystemRandomNumberGenerator()
            var bytes = (0..<(frames * channels * format.bytesPerSample)).map { _ in UInt8.random(in: 0...255, using: &g) }
            if format == .float32 {  // hostile floats in some channels (random bytes are mostly huge or NaN anyway)
                for (i, v) in [Float.nan, 1e30, -Float.infinity, 0.25].enumerated() {
                    withUnsafeBytes(of: v.bitPattern.littleEndian) { b in for k in 0..<4 { bytes[(i * 5) * 4 + k] = b[k] } }
                }
            }
            var mono = [Float](repeating: 0, count: frames), mid = mono
            var chans = [Float](repeating: 0, count: frames * channels)
            let (r1, r2) = bytes.withUnsafeBytes { raw in
                (convertToMono(raw.baseAddress!, format: format, frames: frames, channels: channels, channel: nil, into: &mono),
                 convertToMidAndChannels(raw.baseAddress!, format: format, frames: frames, channels: channels, mid: &mid,
                                         channelSamples: &chans))
            }
            #expect(mid.map(\.bitPattern) == mono.map(\.bitPattern), "\(format) × \(channels): mid is not the downmix")
            #expect(r1 == r2)
            if format == .float32 { #expect(r2.nonFinite >= 2 && r2.clamped >= 1) }
            var replaced = ChannelReplacements()
            bytes.withUnsafeBytes { raw in
                for i in 0..<(frames * channels) {
                    let want = decodeChannelSample(raw.baseAddress! + i * format.bytesPerSample, format: format, replaced: &replaced)
                    #expect(chans[i].bitPattern == want.bitPattern, "\(format) × \(channels): sample \(i)")
                }
            }
            #expect(chans.allSatisfy { $0.isFinite && abs($0) <= ChannelReplacements.limit })
            #expect(sideStride(channels: channels, channel: nil) == channels && sideStride(channels: channels, channel: 1) == 0)
        }
        #expect(sideStride(channels: 2, channel: nil) == 1 && sideStride(channels: 1, channel: nil) == 0
                && sideStride(channels: 65, channel: nil) == 0)
    }
}
