#if canImport(Glibc)
import Glibc
#endif
import EarshotPipeline
import EarshotProtocol
import EarshotRealtime

/// One serialized message, shared by every client queue it is put on (a frame line is encoded once).
final class OutMessage {
    /// Changed only by ``refill(_:)`` (no dynamic exclusivity check: read several times per message per
    /// client on the socket thread, which alone owns it).
    @exclusivity(unchecked) private(set) var bytes: [UInt8]
    /// The stream of a data message (may be dropped when a queue is full); nil for replies and notices,
    /// which are never dropped.
    let stream: StreamKind?

    init(_ bytes: [UInt8], stream: StreamKind?) { self.bytes = bytes; self.stream = stream }

    /// Replaces the bytes in place (no allocation once the array is large enough). Only for a message no
    /// client queue holds any more (see ``SocketLoop/frameMessage(_:)``).
    func refill(_ b: UnsafeBufferPointer<UInt8>) {
        bytes.removeAll(keepingCapacity: true)
        bytes.append(contentsOf: b)
    }
}

/// A connected subscriber, owned by the publisher's I/O thread.
final class SocketClient {
    let fd: Int32
    let id: Int
    /// The peer's uid (`SO_PEERCRED`), for the per-uid connection limit; nil when it is not counted (refused).
    var uid: uid_t? = nil
    var subscriptions = Set<StreamKind>() {
        didSet {
            if subscriptions.isEmpty != oldValue.isEmpty { idleSinceNs = subscriptions.isEmpty ? Clock.monotonicNanoseconds() : nil }
            wantsFrames = subscriptions.contains(.frame)
            wantsOnsets = subscriptions.contains(.onset)
        }
    }
    /// `subscriptions` contains `.frame` / `.onset` (looked at for every frame: no hashing then).
    private(set) var wantsFrames = false, wantsOnsets = false
    var every = 1
    /// nil: every enabled feature (the shared line).
    var fields: Set<Feature>? = nil
    /// Command bytes read but not executed yet: whole lines waiting for their turn, then a partial line.
    var input: CommandLineBuffer
    /// Set after a fatal protocol error: input is discarded, the queue flushed, then the socket closed.
    var closingDeadlineNs: Int64? = nil
    /// Why the connection is closing (logged when it is closed).
    var closingReason = "protocol error"
    /// The client shut down its sending side (read returned 0): it is still served until it closes.
    var inputClosed = false
    /// Since when the client has had no subscription (connect, or its last `unsubscribe`); nil while subscribed.
    private(set) var idleSinceNs: Int64?
    /// A `backfill_s` replay in progress: absolute index of the next backfill line to queue. Commands wait
    /// until it is done; live `rolling` lines reach the client through it meanwhile.
    var replayNext: Int? = nil
    /// When the client's next slice of commands or replay may run (CLOCK_MONOTONIC).
    var nextSliceNs: Int64 = 0
    /// The last write found the socket full; writing resumes when `epoll` reports `EPOLLOUT`.
    var blocked = false
    /// The events the socket loop's epoll set watches for this client now, and those it reported in the
    /// current loop iteration.
    var watched: UInt32 = 0
    var revents: UInt32 = 0

    // Output queue: items[head...] are pending, nil slots are data messages evicted from behind replies;
    // items[head] may be partly written (`headOffset`).
    private var items: [OutMessage?] = []
    private var head = 0
    /// No data message is pending before this index (eviction resumes its search here: each slot is looked
    /// at once, so evicting behind a long run of replies costs O(1) amortized, not a shift of the replies).
    private var dataScan = 0
    private var holes = 0
    private(set) var headOffset = 0
    private(set) var dataCount = 0
    private(set) var queuedBytes = 0
    /// Bytes of queued replies and notices (never dropped; commands are not read while this is large).
    private(set) var replyBytes = 0
    /// Data messages dropped per stream and not yet reported with a `dropped` notice.
    var pendingDropped: [StreamKind: Int] = [:]
    /// When the queue last became non-empty or last made write progress (CLOCK_MONOTONIC).
    private(set) var waitingSinceNs: Int64 = 0

    init(fd: Int32, id: Int, maxLineBytes: Int, nowNs: Int64) {
        self.fd = fd; self.id = id
        input = CommandLineBuffer(maxLineBytes: maxLineBytes)
        idleSinceNs = nowNs
    }

    var queuedCount: Int { items.count - head - holes }
    var isEmpty: Bool { head == items.count }

    /// Queues `m`. A data message that would exceed `maxMessages`/`maxBytes` evicts the oldest data messages
    /// (never a partly written one, never a reply).
    /// - Returns: how many messages were dropped to make room (the new one included if it could not fit).
    @discardableResult
    func enqueue(_ m: OutMessage, maxMessages: Int, maxBytes: Int, nowNs: Int64) -> Int {
        var dropped = 0
        if let stream = m.stream {
            while dataCount >= maxMessages || (dataCount > 0 && queuedBytes + m.bytes.count > maxBytes) {
                guard evictOldestData() else { break }
                dropped += 1
            }
            if dataCount >= maxMessages || queuedBytes + m.bytes.count > maxBytes {
                pendingDropped[stream, default: 0] += 1
                return dropped + 1
            }
            dataCount += 1
        } else {
            replyBytes += m.bytes.count
        }
        if isEmpty { waitingSinceNs = nowNs }
        items.append(m)
        queuedBytes += m.bytes.count
        return dropped
    }

    /// Trims the data messages until the queue holds at most `maxBytes` (the share of the global budget went
    /// down because more clients connected). Returns how many were dropped.
    func trim(toBytes maxBytes: Int) -> Int {
        var dropped = 0
        while queuedBytes > maxBytes, evictOldestData() { dropped += 1 }
        return dropped
    }

    /// Removes the oldest droppable data message, recording it in ``pendingDropped``: its slot becomes a
    /// hole, nothing is shifted.
    private func evictOldestData() -> Bool {
        var j = max(dataScan, head + (headOffset > 0 ? 1 : 0))
        while j < items.count, items[j]?.stream == nil { j += 1 }
        dataScan = j
        guard j < items.count, let m = items[j], let stream = m.stream else { return false }
        items[j] = nil
        holes += 1
        dataCount -= 1
        queuedBytes -= m.bytes.count
        pendingDropped[stream, default: 0] += 1
        compactIfNeeded()
        return true
    }

    /// Drops every queued data message that has not started to go out (replies stay).
    func dropQueuedData() {
        while evictOldestData() {}
        pendingDropped.removeAll()
    }

    private func compactIfNeeded() {
        while head < items.count, items[head] == nil { head += 1; holes -= 1 }
        // Emptied: restarted from index 0 once 64 slots are used (not after every flush: removing the few nil
        // slots of a flush cost more than the flush's own bookkeeping), or at once to free a large array.
        if head == items.count, head >= 64 || items.capacity > 4096 {
            items.removeAll(keepingCapacity: items.capacity <= 4096)
            head = 0; dataScan = 0; holes = 0
        } else if holes >= 1024 && holes * 2 >= items.count - head {
            // Mostly holes (a client that never reads while frames keep coming): squeeze them out, O(n) once
            // per n evictions.
            items = items[head...].filter { $0 != nil }
            head = 0; dataScan = 0; holes = 0
        } else if head >= 1024 && head * 2 >= items.count {
            items.removeFirst(head)
            dataScan = max(0, dataScan - head)
            head = 0
        }
    }

    /// Outcome of ``flush(nowNs:)``.
    enum FlushResult { case drained, wouldBlock, failed(Int32) }

    /// Writes as much as the socket takes without blocking (`sendmsg` with up to 64 buffers per call).
    func flush(nowNs: Int64) -> FlushResult {
        while !isEmpty {
            var batch = 0
            let written: Int = withUnsafeTemporaryAllocation(of: iovec.self, capacity: 64) { iov in
                var k = head
                while batch < 64, k < items.count {
                    defer { k += 1 }
                    guard let m = items[k] else { continue }
                    let skip = batch == 0 ? headOffset : 0
                    m.bytes.withUnsafeBufferPointer { b in
                        iov[batch] = iovec(iov_base: UnsafeMutableRawPointer(mutating: b.baseAddress! + skip), iov_len: b.count - skip)
                    }
                    batch += 1
                }
                var msg = msghdr()
                msg.msg_iov = iov.baseAddress
                msg.msg_iovlen = batch
                while true {
                    let r = sendmsg(fd, &msg, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
                    if r < 0 && errno == EINTR { continue }
                    return r
                }
            }
            if written < 0 {
                let err = errno
                if err == EAGAIN || err == EWOULDBLOCK { return .wouldBlock }
                return .failed(err)
            }
            if written > 0 { waitingSinceNs = nowNs }
            consume(written)
            if written == 0 { return .wouldBlock }
        }
        return .drained
    }

    // The items array is only read inside the iovec closure; the arrays it points into stay alive because
    // `items` holds them until `consume` runs after the call.
    private func consume(_ count: Int) {
        var left = count
        while left > 0, head < items.count {
            guard let m = items[head] else { head += 1; holes -= 1; continue }
            let remaining = m.bytes.count - headOffset
            if left >= remaining {
                left -= remaining
                headOffset = 0
                queuedBytes -= m.bytes.count
                if m.stream != nil { dataCount -= 1 } else { replyBytes -= m.bytes.count }
                items[head] = nil
                head += 1
            } else {
                headOffset += left
                left = 0
            }
        }
        compactIfNeeded()
    }

    /// True when the queue has waited longer than `limitNs` without any write progress.
    func isStalled(nowNs: Int64, limitNs: Int64) -> Bool {
        !isEmpty && nowNs &- waitingSinceNs > limitNs
    }
}
