#if canImport(Glibc)
import Glibc
#endif
import EarshotPipeline

/// One serialized message, shared by every client queue it is put on (a frame line is encoded once).
final class OutMessage {
    let bytes: [UInt8]
    /// The stream of a data message (may be dropped when a queue is full); nil for replies and notices,
    /// which are never dropped.
    let stream: StreamKind?

    init(_ bytes: [UInt8], stream: StreamKind?) { self.bytes = bytes; self.stream = stream }
}

/// A connected subscriber, owned by the publisher's I/O thread.
final class SocketClient {
    let fd: Int32
    let id: Int
    var subscriptions = Set<StreamKind>()
    var every = 1
    /// nil: every enabled feature (the shared line).
    var fields: Set<Feature>? = nil
    /// Bytes of a command line not terminated yet.
    var input: [UInt8] = []
    /// Set after a fatal protocol error: input is discarded, the queue flushed, then the socket closed.
    var closingDeadlineNs: Int64? = nil

    // Output queue: items[head...] are pending; items[head] may be partly written (`headOffset`).
    private var items: [OutMessage] = []
    private var head = 0
    private(set) var headOffset = 0
    private(set) var dataCount = 0
    private(set) var queuedBytes = 0
    /// Data messages dropped per stream and not yet reported with a `dropped` notice.
    var pendingDropped: [StreamKind: Int] = [:]
    /// When the queue last became non-empty or last made write progress (CLOCK_MONOTONIC).
    private(set) var waitingSinceNs: Int64 = 0

    init(fd: Int32, id: Int) { self.fd = fd; self.id = id }

    var queuedCount: Int { items.count - head }
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
        }
        if isEmpty { waitingSinceNs = nowNs }
        items.append(m)
        queuedBytes += m.bytes.count
        return dropped
    }

    /// Removes the oldest droppable data message, recording it in ``pendingDropped``.
    private func evictOldestData() -> Bool {
        var j = head + (headOffset > 0 ? 1 : 0)
        while j < items.count, items[j].stream == nil { j += 1 }
        guard j < items.count, let stream = items[j].stream else { return false }
        let m = items[j]
        // Shift the (few) messages in front of it by one and advance the head.
        var k = j
        while k > head { items[k] = items[k - 1]; k -= 1 }
        head += 1
        dataCount -= 1
        queuedBytes -= m.bytes.count
        pendingDropped[stream, default: 0] += 1
        compactIfNeeded()
        return true
    }

    private func compactIfNeeded() {
        if head == items.count { items.removeAll(keepingCapacity: true); head = 0 }
        else if head >= 1024 && head * 2 >= items.count { items.removeFirst(head); head = 0 }
    }

    /// Outcome of ``flush(nowNs:)``.
    enum FlushResult { case drained, wouldBlock, failed(Int32) }

    /// Writes as much as the socket takes without blocking (`sendmsg` with up to 64 buffers per call).
    func flush(nowNs: Int64) -> FlushResult {
        while !isEmpty {
            let n = min(64, items.count - head)
            let written: Int = withUnsafeTemporaryAllocation(of: iovec.self, capacity: n) { iov in
                for k in 0..<n {
                    let m = items[head + k]
                    let skip = k == 0 ? headOffset : 0
                    m.bytes.withUnsafeBufferPointer { b in
                        iov[k] = iovec(iov_base: UnsafeMutableRawPointer(mutating: b.baseAddress! + skip), iov_len: b.count - skip)
                    }
                }
                var msg = msghdr()
                msg.msg_iov = iov.baseAddress
                msg.msg_iovlen = n
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
        }
        return .drained
    }

    // The items array is only read inside the iovec closure; the arrays it points into stay alive because
    // `items` holds them until `consume` runs after the call.
    private func consume(_ count: Int) {
        var left = count
        while left > 0, head < items.count {
            let m = items[head]
            let remaining = m.bytes.count - headOffset
            if left >= remaining {
                left -= remaining
                headOffset = 0
                queuedBytes -= m.bytes.count
                if m.stream != nil { dataCount -= 1 }
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
