internal import CALSA
#if canImport(Glibc)
import Glibc
#endif

/// A libasound error: the negative errno a `snd_*` call returned, with `snd_strerror` text.
///
/// The corresponding C values are the negative `errno` constants (`-EPIPE`, `-ENODEV`, …).
public struct ALSAError: Error, RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    /// The negative errno, as libasound returns it.
    public let rawValue: Int32

    public init(rawValue: Int32) { self.rawValue = rawValue > 0 ? -rawValue : rawValue }

    /// The positive errno value.
    public var errno: Int32 { -rawValue }

    /// `snd_strerror` text.
    public var message: String { String(cString: snd_strerror(rawValue)) }

    public var description: String { "\(message) (errno \(errno))" }

    /// Overrun (`-EPIPE`).
    public static let overrun = ALSAError(rawValue: -32)
    /// Suspended (`-ESTRPIPE`).
    public static let suspended = ALSAError(rawValue: -86)
    /// Try again (`-EAGAIN`).
    public static let tryAgain = ALSAError(rawValue: -11)

    /// Whether the capture thread handles this error on the open PCM (`EPIPE` overrun, `ESTRPIPE` suspend,
    /// `EAGAIN`). Everything else (`ENODEV`, `EBADFD`, `EIO`, …, and a failed recovery) counts as device loss:
    /// the PCM is closed and reopened with backoff.
    public var isRecoverableInPlace: Bool { rawValue == -32 || rawValue == -86 || rawValue == -11 }
}

/// An error opening or configuring a capture device, naming the device, the parameter and what the device
/// supports.
public struct CaptureError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, as a closed set of codes.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Base: Hashable, Sendable {
            case deviceNotFound, deviceUnavailable, parameterNotSupported, configurationFailed, invalidConfig
        }
        fileprivate let base: Base
        /// No PCM of that name is defined (an unknown name, `ENOENT`).
        public static let deviceNotFound = Code(base: .deviceNotFound)
        /// The device exists but could not be opened now (busy, server not running, unplugged).
        public static let deviceUnavailable = Code(base: .deviceUnavailable)
        /// A hardware parameter (format, rate, channels, period, buffer, access) cannot be set.
        public static let parameterNotSupported = Code(base: .parameterNotSupported)
        /// Applying hw/sw parameters failed for another reason.
        public static let configurationFailed = Code(base: .configurationFailed)
        /// The `CaptureConfig` itself is invalid (e.g. channel index ≥ channels).
        public static let invalidConfig = Code(base: .invalidConfig)
        public var description: String { "\(base)" }
    }

    public var code: Code
    /// The device name as given.
    public var device: String
    /// The parameter that could not be set (`"format"`, `"rate"`, `"channels"`, …), if any.
    public var parameter: String?
    /// What was requested for that parameter.
    public var requested: String?
    /// What the device supports for that parameter (a range or list), if known.
    public var supported: String?
    /// The libasound error behind it, if any.
    public var alsaError: ALSAError?
    /// Capture devices that exist, filled in for ``Code/deviceNotFound``.
    public var availableDevices: [CaptureDeviceInfo]

    public init(
        code: Code, device: String, parameter: String? = nil, requested: String? = nil,
        supported: String? = nil, alsaError: ALSAError? = nil, availableDevices: [CaptureDeviceInfo] = []
    ) {
        self.code = code
        self.device = device
        self.parameter = parameter
        self.requested = requested
        self.supported = supported
        self.alsaError = alsaError
        self.availableDevices = availableDevices
    }

    /// Whether waiting and retrying might help (the device may appear later), as opposed to a
    /// configuration error that will fail the same way every time.
    public var isTransient: Bool { code == .deviceUnavailable }

    /// `name` with control characters escaped (`\n`, `\u{1B}`): device names come from configuration and
    /// from libasound, and one must not be able to forge a log line.
    public static func printable(_ name: String) -> String {
        func isControl(_ u: Unicode.Scalar) -> Bool { u.value < 0x20 || (0x7F...0x9F).contains(u.value) }
        guard name.unicodeScalars.contains(where: isControl) else { return name }
        var out = ""
        for u in name.unicodeScalars {
            switch u {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where isControl(u): out += "\\u{\(String(u.value, radix: 16, uppercase: true))}"
            default: out.unicodeScalars.append(u)
            }
        }
        return out
    }

    public var description: String {
        var s: String
        let device = Self.printable(device)
        switch code {
        case .deviceNotFound:
            s = "capture device '\(device)' not found"
        case .deviceUnavailable:
            s = "capture device '\(device)' unavailable"
        case .parameterNotSupported:
            s = "capture device '\(device)' cannot set \(parameter ?? "parameter")"
            if let requested { s += " to \(requested)" }
            if let supported { s += "; device supports \(supported)" }
        case .invalidConfig:
            s = "invalid capture configuration for '\(device)'"
            if let parameter { s += ": \(parameter)" }
            if let requested { s += " = \(requested)" }
            if let supported { s += " (\(supported))" }
        default:
            s = "capture device '\(device)': configuration failed"
            if let parameter { s += " (\(parameter))" }
        }
        if let alsaError { s += " [\(alsaError)]" }
        if alsaError?.errno == EBUSY { s += ": device busy, \(DeviceProbe.busyExplanation(device: device))" }
        if code == .deviceNotFound {
            if availableDevices.isEmpty {
                s += "; no capture devices found"
            } else {
                s += "; available capture devices: "
                s += availableDevices.map { Self.printable($0.name) }.joined(separator: ", ")
            }
        }
        return s
    }
}
