/// The socket protocol's streams (the names clients put in `subscribe`'s `streams`).
public enum StreamKind: String, Sendable, CaseIterable, Hashable {
    case frame, rolling, onset, alert, status, stats
    /// Linear power spectra (optional, decimated by `every`; see `SpectrumMessage`).
    case spectrum
}

/// Version of the socket protocol (`hello.protocol`); bumped by breaking changes.
public let protocolVersion = 1
