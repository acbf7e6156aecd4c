import EarshotRealtime

/// Interleaved PCM sample encodings Earshot reads, from ALSA or from WAV files.
public enum SampleFormat: String, Sendable, CaseIterable, CustomStringConvertible {
    /// 32-bit IEEE float, little endian. ALSA: `SND_PCM_FORMAT_FLOAT_LE`.
    case float32 = "FLOAT_LE"
    /// 32-bit signed integer, little endian. ALSA: `SND_PCM_FORMAT_S32_LE`.
    case s32 = "S32_LE"
    /// 24-bit signed integer packed in 3 bytes, little endian. ALSA: `SND_PCM_FORMAT_S24_3LE`.
    case s24Packed = "S24_3LE"
    /// 24-bit signed integer in the low bits of 4 bytes, little endian. ALSA: `SND_PCM_FORMAT_S24_LE`.
    case s24In32 = "S24_LE"
    /// 16-bit signed integer, little endian. ALSA: `SND_PCM_FORMAT_S16_LE`.
    case s16 = "S16_LE"

    /// Bytes one sample of one channel occupies.
    public var bytesPerSample: Int {
        switch self {
        case .float32, .s32, .s24In32: 4
        case .s24Packed: 3
        case .s16: 2
        }
    }

    public var description: String { rawValue }
}

/// Converts interleaved PCM to mono Float32 in [-1, 1): integer formats are divided by 2^(bits-1)
/// (so `Int16.min` → −1.0), several channels are averaged (downmix) or one is picked.
///
/// The live capture path and `earshot analyze` both go through this, so the same bytes give the same
/// floats bit for bit. Real-time safe: no allocation, no locks.
///
/// A non-finite `FLOAT_LE` sample of one channel counts as 0 in the average and one beyond ±1000 as ±1000
/// (``decodeChannelSample(_:format:replaced:)``): a NaN in one channel must not erase the others, and the sum
/// of channels near `Float.greatestFiniteMagnitude` must not overflow to infinity (the DSP's input guard
/// would zero the whole averaged sample). A single channel (or a picked one) is passed through as it is;
/// the DSP's guard counts and replaces its samples.
///
/// - Parameters:
///   - source: `frames * channels * format.bytesPerSample` bytes, interleaved.
///   - channel: the 0-based channel to keep, or `nil` to average all channels.
///   - destination: room for `frames` floats.
/// - Returns: the channel samples replaced before the average.
@inlinable @discardableResult
public func convertToMono(
    _ source: UnsafeRawPointer, format: SampleFormat, frames: Int, channels: Int, channel: Int?,
    into destination: UnsafeMutablePointer<Float>
) -> ChannelReplacements {
    let stride = channels * format.bytesPerSample
    if let channel {
        let offset = channel * format.bytesPerSample
        for f in 0..<frames {
            destination[f] = decodeSample(source + (f * stride + offset), format: format)
        }
    } else if channels == 1 {
        // One loop per format (the switch hoisted out of the loop), so the common cases vectorize.
        switch format {
        case .s16:
            for f in 0..<frames {
                destination[f] = Float(Int16(littleEndian: source.loadUnaligned(fromByteOffset: f &* 2, as: Int16.self)))
                    * (1 / 32_768)
            }
        case .float32:
            for f in 0..<frames {
                destination[f] = Float(
                    bitPattern: UInt32(littleEndian: source.loadUnaligned(fromByteOffset: f &* 4, as: UInt32.self)))
            }
        case .s32:
            for f in 0..<frames {
                destination[f] = Float(Int32(littleEndian: source.loadUnaligned(fromByteOffset: f &* 4, as: Int32.self)))
                    * (1 / 2_147_483_648)
            }
        case .s24In32, .s24Packed:
            for f in 0..<frames { destination[f] = decodeSample(source + f * stride, format: format) }
        }
    } else {
        let scale = 1 / Float(channels)
        var replaced = ChannelReplacements()
        for f in 0..<frames {
            var acc: Float = 0
            var p = source + f * stride
            for _ in 0..<channels {
                acc += decodeChannelSample(p, format: format, replaced: &replaced)
                p += format.bytesPerSample
            }
            destination[f] = acc * scale
        }
        return replaced
    }
    return ChannelReplacements()
}

/// Converts interleaved 2-channel PCM to the mid signal `M = (L + R) / 2` (bit for bit the averaged downmix of
/// ``convertToMono(_:format:frames:channels:channel:into:)``) and the side signal `S = (L − R) / 2`.
///
/// The level meter runs its weightings on both and adds their energies: by linearity
/// `A(M)² + A(S)² = (A(L)² + A(R)²) / 2`, the energy mean over the two channels, which anti-phase content
/// cannot cancel. A non-finite `FLOAT_LE` sample of one channel counts as 0 and one beyond ±1000 as ±1000
/// (the other channel's level stays measured, `L ± R` cannot overflow). Real-time safe: no allocation, no locks.
///
/// - Returns: the channel samples replaced.
@inlinable @discardableResult
public func convertToMidSide(
    _ source: UnsafeRawPointer, format: SampleFormat, frames: Int,
    mid: UnsafeMutablePointer<Float>, side: UnsafeMutablePointer<Float>
) -> ChannelReplacements {
    let b = format.bytesPerSample
    let stride = 2 * b
    var replaced = ChannelReplacements()
    for f in 0..<frames {
        let p = source + f * stride
        let l = decodeChannelSample(p, format: format, replaced: &replaced)
        let r = decodeChannelSample(p + b, format: format, replaced: &replaced)
        mid[f] = (0 + l + r) * 0.5
        side[f] = (l - r) * 0.5
    }
    return replaced
}

/// Converts interleaved PCM of `channels` ≥ 3 channels to the averaged downmix `M` (bit for bit that of
/// ``convertToMono(_:format:frames:channels:channel:into:)``) and every channel's decoded sample, interleaved
/// as in the source (`channelSamples[f * channels + c]`).
///
/// The level meter runs its weightings on each channel and averages their energies (the energy mean over the
/// channels, which anti-phase content cannot cancel; ``sideStride(channels:channel:)``). Each channel sample
/// is the one the downmix adds: a non-finite `FLOAT_LE` sample counts as 0, one beyond ±1000 as ±1000, counted
/// once. Real-time safe: no allocation, no locks.
///
/// - Returns: the channel samples replaced.
@inlinable @discardableResult
public func convertToMidAndChannels(
    _ source: UnsafeRawPointer, format: SampleFormat, frames: Int, channels: Int,
    mid: UnsafeMutablePointer<Float>, channelSamples: UnsafeMutablePointer<Float>
) -> ChannelReplacements {
    let b = format.bytesPerSample
    let stride = channels * b
    let scale = 1 / Float(channels)
    var replaced = ChannelReplacements()
    for f in 0..<frames {
        var acc: Float = 0
        var p = source + f * stride
        let out = channelSamples + f * channels
        for c in 0..<channels {
            let v = decodeChannelSample(p, format: format, replaced: &replaced)
            out[c] = v
            acc += v
            p += b
        }
        mid[f] = acc * scale
    }
    return replaced
}

/// Floats of side information per sample that carry a multi-channel input's levels next to its averaged
/// downmix: 0 for one channel or a picked one (`channel` set), 1 for 2 channels (the side signal
/// `S = (L − R) / 2`, ``convertToMidSide(_:format:frames:mid:side:)``), `channels` for 3 or more (every channel,
/// ``convertToMidAndChannels(_:format:frames:channels:mid:channelSamples:)``) up to 64 (a WAV file with more
/// reads the levels of its averaged downmix).
@inlinable
public func sideStride(channels: Int, channel: Int?) -> Int {
    guard channel == nil else { return 0 }
    return channels == 2 ? 1 : (3...CaptureConfig.Limits.channels.upperBound).contains(channels) ? channels : 0
}

/// Channel samples replaced before a mix (see ``decodeChannelSample(_:format:replaced:)``).
public struct ChannelReplacements: Sendable, Equatable {
    /// NaN or ±infinity, counted as 0.
    public var nonFinite = 0
    /// Finite beyond ±``limit``, counted as ±``limit``.
    public var clamped = 0
    /// ``SampleLimit/magnitude`` (+60 dBFS), the DSP input guard's bound.
    public static let limit: Float = SampleLimit.magnitude
    public init(nonFinite: Int = 0, clamped: Int = 0) { self.nonFinite = nonFinite; self.clamped = clamped }
    public var total: Int { nonFinite &+ clamped }
}

/// One channel's sample for a mix of several: a non-finite float becomes 0, one beyond ±1000 becomes ±1000,
/// each counted in `replaced` (integer formats are always within [−1, 1); the check is one compare on the
/// common path).
@inlinable @inline(__always)
public func decodeChannelSample(_ p: UnsafeRawPointer, format: SampleFormat, replaced: inout ChannelReplacements) -> Float {
    let v = decodeSample(p, format: format)
    if format == .float32 && !(abs(v) <= ChannelReplacements.limit) {
        if !v.isFinite { replaced.nonFinite &+= 1; return 0 }
        replaced.clamped &+= 1
        return v > 0 ? ChannelReplacements.limit : -ChannelReplacements.limit
    }
    return v
}

/// Decodes one little-endian sample at `p`.
@inlinable @inline(__always)
public func decodeSample(_ p: UnsafeRawPointer, format: SampleFormat) -> Float {
    switch format {
    case .float32:
        return Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)))
    case .s32:
        return Float(Int32(littleEndian: p.loadUnaligned(as: Int32.self))) * (1 / 2_147_483_648)
    case .s24In32:
        // Sign-extend the low 24 bits.
        let raw = Int32(littleEndian: p.loadUnaligned(as: Int32.self))
        return Float((raw << 8) >> 8) * (1 / 8_388_608)
    case .s24Packed:
        let b0 = Int32(p.load(fromByteOffset: 0, as: UInt8.self))
        let b1 = Int32(p.load(fromByteOffset: 1, as: UInt8.self))
        let b2 = Int32(p.load(fromByteOffset: 2, as: UInt8.self))
        let v = ((b0 | (b1 << 8) | (b2 << 16)) << 8) >> 8
        return Float(v) * (1 / 8_388_608)
    case .s16:
        return Float(Int16(littleEndian: p.loadUnaligned(as: Int16.self))) * (1 / 32_768)
    }
}
