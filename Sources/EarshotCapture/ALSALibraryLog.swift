internal import CALSA
internal import CEarshotSupport
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// libasound's own error messages (`ALSA lib pcm_file.c:…` lines it prints to stderr by default, which
/// reach the journal without a priority), routed into a bounded process-wide queue that the daemon drains
/// and logs with a level.
///
/// libasound calls its error handler on whatever thread made the failing call — the capture thread
/// included. The handler (a C shim: it is variadic) formats into a stack buffer, and the sink copies the
/// line into a preallocated slot under a `Mutex` it only tries to take (a line that finds it held is
/// counted as dropped, never waited for): no allocation, no logging, no blocking. `drain` holds the lock
/// only to copy the slots out, and builds its strings after releasing it. `EINTR` lines are dropped: they are the capture thread's
/// own stop/reconfigure interrupts (the `file` plugin reports an interrupted `read`).
public enum ALSALibraryLog {
    /// One libasound error line. `message` has control characters replaced by `?` (a device name from the
    /// configuration cannot forge a log line through it).
    public struct Line: Sendable, Equatable {
        public var source: String
        public var errno: Int32
        public var message: String
    }

    static let slots = 64
    static let slotBytes = 384

    /// `slots` fixed slots: [file NUL][function NUL][message NUL], plus line and errno; guarded by `queue`.
    nonisolated(unsafe) static let text = UnsafeMutablePointer<UInt8>.allocate(capacity: slots * slotBytes)
    nonisolated(unsafe) static let errnos = UnsafeMutablePointer<Int32>.allocate(capacity: slots)
    nonisolated(unsafe) static let sourceLines = UnsafeMutablePointer<Int32>.allocate(capacity: slots)
    /// `drain`'s copy of the slots (supervisor thread only).
    nonisolated(unsafe) static let drained = UnsafeMutablePointer<UInt8>.allocate(capacity: slots * slotBytes)
    /// Lines dropped because `drain` held the lock at that moment.
    static let droppedWhileDraining = Atomic<Int>(0)

    struct Queue {
        var head = 0  // next slot to read
        var count = 0
        var dropped = 0
    }

    static let queue = Mutex(Queue())
    static let installed = Atomic<Bool>(false)

    /// Routes libasound's error messages into the queue from now on (idempotent; call before the first
    /// libasound use whose errors should be logged). Until then they go to stderr as usual.
    public static func capture() {
        guard !installed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        CEarshot_alsa_set_error_sink { file, line, function, err, message in
            guard err != EINTR, let message else { return }
            ALSALibraryLog.append(file: file, line: line, function: function, errno: err, message: message)
        }
        _ = CEarshotALSA_set_error_handler(CEarshot_alsa_error_handler())
    }

    /// Called on the thread that hit the error: copies bytes, no allocation.
    static func append(
        file: UnsafePointer<CChar>?, line: Int32, function: UnsafePointer<CChar>?, errno: Int32,
        message: UnsafePointer<CChar>
    ) {
        let taken: Void? = queue.withLockIfAvailable { q in
            let index: Int
            if q.count == slots {
                index = q.head
                q.head = (q.head + 1) % slots
                q.dropped += 1
            } else {
                index = (q.head + q.count) % slots
                q.count += 1
            }
            let slot = text + index * slotBytes
            var n = 0
            func put(_ s: UnsafePointer<CChar>?, limit: Int) {
                guard let s else { return }
                var i = 0
                while n < limit - 1, s[i] != 0 {
                    let b = UInt8(bitPattern: s[i])
                    slot[n] = b < 0x20 || b == 0x7F ? 0x3F : b  // '?' for control characters
                    n += 1
                    i += 1
                }
            }
            // Only the base name of libasound's source file.
            var base = file
            if let f = file {
                var i = 0
                while f[i] != 0 { if f[i] == 0x2F { base = f + i + 1 }; i += 1 }
            }
            put(base, limit: 96)
            slot[n] = 0
            n += 1
            put(function, limit: 192)
            slot[n] = 0
            n += 1
            put(message, limit: slotBytes)
            slot[n] = 0
            sourceLines[index] = line
            errnos[index] = errno
        }
        if taken == nil { droppedWhileDraining.add(1, ordering: .relaxed) }
    }

    /// Takes the queued lines (oldest first) and how many older ones were overwritten since the last call.
    public static func drain() -> (lines: [Line], dropped: Int) {
        var meta: [(line: Int32, errno: Int32)] = []
        meta.reserveCapacity(slots)  // appended under the lock without reallocating
        let dropped = queue.withLock { q -> Int in
            for k in 0..<q.count {
                let index = (q.head + k) % slots
                (drained + k * slotBytes).update(from: text + index * slotBytes, count: slotBytes)
                meta.append((sourceLines[index], errnos[index]))
            }
            let dropped = q.dropped
            q.head = 0
            q.count = 0
            q.dropped = 0
            return dropped
        }
        var lines: [Line] = []
        lines.reserveCapacity(meta.count)
        for (k, m) in meta.enumerated() {
            let slot = drained + k * slotBytes
            let function = slot + strlen(UnsafeRawPointer(slot).assumingMemoryBound(to: CChar.self)) + 1
            let message = function + strlen(UnsafeRawPointer(function).assumingMemoryBound(to: CChar.self)) + 1
            let file = String(cString: slot)
            let functionName = String(cString: function)
            lines.append(Line(source: "\(file):\(m.line) \(functionName)", errno: m.errno, message: String(cString: message)))
        }
        return (lines, dropped + droppedWhileDraining.exchange(0, ordering: .relaxed))
    }
}
