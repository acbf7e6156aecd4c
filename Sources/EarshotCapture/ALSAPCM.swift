internal import CALSA

#if canImport(Glibc)
import Glibc
#endif

extension SampleFormat {
    /// The ALSA format constant.
    var alsaFormat: snd_pcm_format_t {
        switch self {
        case .float32: SND_PCM_FORMAT_FLOAT_LE
        case .s32: SND_PCM_FORMAT_S32_LE
        case .s24Packed: SND_PCM_FORMAT_S24_3LE
        case .s24In32: SND_PCM_FORMAT_S24_LE
        case .s16: SND_PCM_FORMAT_S16_LE
        }
    }
}

/// An open, configured capture PCM (nonblocking mode). Setup may allocate; the read methods do not.
///
/// Not thread-safe: owned by the capture thread (or by ``CaptureThread/probe(_:timeout:)`` for a moment).
final class ALSAPCM {
    let handle: OpaquePointer
    let negotiated: CaptureNegotiated

    private init(handle: OpaquePointer, negotiated: CaptureNegotiated) {
        self.handle = handle
        self.negotiated = negotiated
    }

    deinit { snd_pcm_close(handle) }

    /// Opens `config.device` for capture and negotiates access, format, channels, rate, period, buffer,
    /// `avail_min` and monotonic timestamps. Throws a ``CaptureError`` naming what failed.
    static func open(_ config: CaptureConfig) throws(CaptureError) -> ALSAPCM {
        try config.validate()
        let device = config.device
        var pcm: OpaquePointer?
        let rc = snd_pcm_open(&pcm, device, SND_PCM_STREAM_CAPTURE, SND_PCM_NONBLOCK)
        guard rc == 0, let pcm else {
            let err = ALSAError(rawValue: rc)
            // ENOENT from an undefined name means "no such PCM"; a defined name (hw:CARD=X with the card
            // missing, pulse with the server down) is merely unavailable and may appear later.
            if !ALSADevices.isDefined(device) {
                throw CaptureError(
                    code: .deviceNotFound, device: device, alsaError: err,
                    availableDevices: ALSADevices.list())
            }
            throw CaptureError(code: .deviceUnavailable, device: device, alsaError: err)
        }
        do {
            let negotiated = try configure(pcm, config)
            return ALSAPCM(handle: pcm, negotiated: negotiated)
        } catch {
            snd_pcm_close(pcm)
            throw error
        }
    }

    private static func configure(_ pcm: OpaquePointer, _ config: CaptureConfig) throws(CaptureError)
        -> CaptureNegotiated
    {
        let device = config.device
        var hwp: OpaquePointer?
        guard snd_pcm_hw_params_malloc(&hwp) == 0, let hw = hwp else {
            throw CaptureError(code: .configurationFailed, device: device, parameter: "hw_params_malloc")
        }
        defer { snd_pcm_hw_params_free(hw) }
        var rc = snd_pcm_hw_params_any(pcm, hw)
        if rc < 0 {
            throw CaptureError(
                code: .deviceUnavailable, device: device, parameter: "hw_params_any",
                alsaError: ALSAError(rawValue: rc))
        }
        func unsupported(_ p: String, _ req: String, _ sup: String?, _ rc: Int32) -> CaptureError {
            CaptureError(
                code: .parameterNotSupported, device: device, parameter: p, requested: req, supported: sup,
                alsaError: ALSAError(rawValue: rc))
        }
        rc = snd_pcm_hw_params_set_access(pcm, hw, SND_PCM_ACCESS_RW_INTERLEAVED)
        if rc < 0 { throw unsupported("access", "RW_INTERLEAVED", nil, rc) }

        // Format.
        let supportedFormats = SampleFormat.allCases.filter {
            snd_pcm_hw_params_test_format(pcm, hw, $0.alsaFormat) == 0
        }
        let format: SampleFormat
        if let wanted = config.format {
            guard supportedFormats.contains(wanted) else {
                throw unsupported(
                    "format", wanted.rawValue, formatList(supportedFormats, pcm: pcm, hw: hw), -22)
            }
            format = wanted
        } else {
            guard let first = CaptureConfig.autoFormatOrder.first(where: { supportedFormats.contains($0) })
            else {
                throw unsupported("format", "any of FLOAT_LE, S32_LE, S24_3LE, S24_LE, S16_LE",
                    formatList(supportedFormats, pcm: pcm, hw: hw), -22)
            }
            format = first
        }
        rc = snd_pcm_hw_params_set_format(pcm, hw, format.alsaFormat)
        if rc < 0 { throw unsupported("format", format.rawValue, formatList(supportedFormats, pcm: pcm, hw: hw), rc) }

        // Channels.
        var cmin: UInt32 = 0, cmax: UInt32 = 0
        snd_pcm_hw_params_get_channels_min(hw, &cmin)
        snd_pcm_hw_params_get_channels_max(hw, &cmax)
        rc = snd_pcm_hw_params_set_channels(pcm, hw, UInt32(config.channels))
        if rc < 0 { throw unsupported("channels", "\(config.channels)", "\(cmin)…\(cmax)", rc) }

        // Rate, exactly.
        var rmin: UInt32 = 0, rmax: UInt32 = 0
        var dir: Int32 = 0
        snd_pcm_hw_params_get_rate_min(hw, &rmin, &dir)
        snd_pcm_hw_params_get_rate_max(hw, &rmax, &dir)
        rc = snd_pcm_hw_params_set_rate(pcm, hw, UInt32(config.sampleRate), 0)
        if rc < 0 {
            throw unsupported(
                "rate", "\(config.sampleRate) Hz",
                "\(rmin)…\(rmax) Hz (use plughw: or pulse to resample)", rc)
        }

        // Period and buffer.
        var pmin: snd_pcm_uframes_t = 0, pmax: snd_pcm_uframes_t = 0
        snd_pcm_hw_params_get_period_size_min(hw, &pmin, &dir)
        snd_pcm_hw_params_get_period_size_max(hw, &pmax, &dir)
        var period = snd_pcm_uframes_t(config.periodFrames)
        dir = 0
        rc = snd_pcm_hw_params_set_period_size_near(pcm, hw, &period, &dir)
        if rc < 0 { throw unsupported("period", "\(config.periodFrames) frames", "\(pmin)…\(pmax) frames", rc) }
        var bmin: snd_pcm_uframes_t = 0, bmax: snd_pcm_uframes_t = 0
        snd_pcm_hw_params_get_buffer_size_min(hw, &bmin)
        snd_pcm_hw_params_get_buffer_size_max(hw, &bmax)
        var buffer = period * snd_pcm_uframes_t(config.bufferPeriods)
        rc = snd_pcm_hw_params_set_buffer_size_near(pcm, hw, &buffer)
        if rc < 0 {
            throw unsupported("buffer", "\(Int(period) * config.bufferPeriods) frames", "\(bmin)…\(bmax) frames", rc)
        }
        rc = snd_pcm_hw_params(pcm, hw)
        if rc < 0 {
            throw CaptureError(
                code: .configurationFailed, device: device, parameter: "hw_params",
                alsaError: ALSAError(rawValue: rc))
        }
        snd_pcm_hw_params_get_period_size(hw, &period, &dir)
        snd_pcm_hw_params_get_buffer_size(hw, &buffer)

        // Software parameters: wake per period, timestamps on the monotonic clock.
        var swp: OpaquePointer?
        guard snd_pcm_sw_params_malloc(&swp) == 0, let sw = swp else {
            throw CaptureError(code: .configurationFailed, device: device, parameter: "sw_params_malloc")
        }
        defer { snd_pcm_sw_params_free(sw) }
        snd_pcm_sw_params_current(pcm, sw)
        snd_pcm_sw_params_set_avail_min(pcm, sw, period)
        snd_pcm_sw_params_set_tstamp_mode(pcm, sw, SND_PCM_TSTAMP_ENABLE)
        snd_pcm_sw_params_set_tstamp_type(pcm, sw, SND_PCM_TSTAMP_TYPE_MONOTONIC)
        rc = snd_pcm_sw_params(pcm, sw)
        if rc < 0 {
            throw CaptureError(
                code: .configurationFailed, device: device, parameter: "sw_params",
                alsaError: ALSAError(rawValue: rc))
        }
        return CaptureNegotiated(
            device: device, format: format, sampleRate: config.sampleRate, channels: config.channels,
            periodFrames: Int(period), bufferFrames: Int(buffer))
    }

    private static func formatList(_ ours: [SampleFormat], pcm: OpaquePointer, hw: OpaquePointer) -> String {
        if !ours.isEmpty { return ours.map(\.rawValue).joined(separator: ", ") }
        // None of ours: name what it does support.
        var names: [String] = []
        for raw in 0...Int32(SND_PCM_FORMAT_LAST.rawValue) {
            let f = snd_pcm_format_t(rawValue: raw)
            if snd_pcm_hw_params_test_format(pcm, hw, f) == 0, let n = snd_pcm_format_name(f) {
                names.append(String(cString: n))
            }
        }
        return names.isEmpty ? "no formats" : names.joined(separator: ", ") + " (none usable by Earshot)"
    }
}
