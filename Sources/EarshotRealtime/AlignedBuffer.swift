#if canImport(Glibc)
import Glibc
#endif

/// A fixed-size, 64-byte aligned, zero-initialised buffer owned by a `~Copyable` handle; freed in `deinit`.
///
/// Allocate at start-up; hot paths borrow it and work through ``pointer`` / ``buffer`` only.
public struct AlignedBuffer<Element: BitwiseCopyable>: ~Copyable, @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Element>

    public init(count: Int, alignment: Int = 64) {
        precondition(count >= 0)
        var raw: UnsafeMutableRawPointer?
        let bytes = max(1, count * MemoryLayout<Element>.stride)
        let rc = posix_memalign(&raw, max(alignment, MemoryLayout<Element>.alignment), bytes)
        precondition(rc == 0 && raw != nil, "posix_memalign failed")
        memset(raw!, 0, bytes)
        self.count = count
        self.pointer = raw!.bindMemory(to: Element.self, capacity: max(count, 1))
    }

    deinit { free(pointer) }

    /// The whole buffer.
    @inlinable public var buffer: UnsafeMutableBufferPointer<Element> { .init(start: pointer, count: count) }

    /// Sets every element to zero bytes.
    public func clear() { memset(pointer, 0, count * MemoryLayout<Element>.stride) }
}
