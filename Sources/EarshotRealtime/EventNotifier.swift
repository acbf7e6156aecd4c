#if canImport(Glibc)
import Glibc
#endif
internal import CEarshotSupport

/// A pollable wake-up (Linux `eventfd`): the DSP thread calls ``notify()`` once per frame, a sink's I/O
/// thread puts ``fileDescriptor`` in its `poll` set and calls ``consume()`` when it becomes readable.
///
/// `notify()` is one non-blocking `write(2)`: allowed once per frame on the DSP thread, never per sample.
public final class EventNotifier: @unchecked Sendable {
    /// The descriptor to poll for `POLLIN`.
    public let fileDescriptor: Int32

    public init() {
        fileDescriptor = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        precondition(fileDescriptor >= 0, "eventfd failed: \(errno)")
    }

    deinit { close(fileDescriptor) }

    /// Makes the descriptor readable. Never blocks; a saturated counter is ignored.
    @inline(__always)
    public func notify() {
        var one: UInt64 = 1
        _ = write(fileDescriptor, &one, 8)
    }

    /// Resets the descriptor; returns how many notifications were pending.
    @discardableResult
    public func consume() -> UInt64 {
        var value: UInt64 = 0
        return read(fileDescriptor, &value, 8) == 8 ? value : 0
    }

    /// Waits up to `timeoutMilliseconds` for a notification (for consumers that have nothing else to poll).
    @discardableResult
    public func wait(timeoutMilliseconds: Int32) -> Bool {
        var p = pollfd(fd: fileDescriptor, events: Int16(POLLIN), revents: 0)
        let r = poll(&p, 1, timeoutMilliseconds)
        if r > 0 { consume(); return true }
        return false
    }
}
