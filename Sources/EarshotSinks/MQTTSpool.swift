#if canImport(Glibc)
import Glibc
#endif

/// The MQTT sink's on-disk queue of QoS-1 messages: every QoS-1 message is appended here first and published
/// from here in order; a record is released only when the broker acknowledged it (PUBACK). So a broker
/// outage, a lost connection with messages in flight or a daemon restart loses nothing that fits the bounds
/// (at-least-once: a message whose PUBACK was lost is sent again).
///
/// Layout (one directory, e.g. `/var/lib/earshot/mqtt-spool`): append-only segment files `NNNNNNNNNNNN.spool`
/// of records `enqueued_ns \t retain(0|1) \t topic \t payload \n` (payloads are single-line JSON), and a
/// `cursor` file `segment offset check` naming the first record not yet acknowledged. A segment is deleted once
/// every record in it is acknowledged — the segment being appended to as well (the next record starts a new
/// one), so a drained spool holds no segment file.
///
/// The cursor is written in place with one `pwrite` of a fixed 40 bytes (written when the spool is opened, so
/// the file has its block before a disk can fill up: later writes need no new space), with an FNV-1a check of
/// its numbers. A cursor that is empty, short, fails its check, or points past every segment is not trusted:
/// the spool then resends from the start of its oldest segment (at most that segment's acknowledged part is
/// sent again — at-least-once — and nothing is lost); ``cursorProblem`` says what was found.
///
/// A failed write (full disk, read-only file system) is not counted as a drop here: ``append(topic:payload:retain:nowNs:)``
/// returns `.failed(errno)` and the caller keeps the record (the MQTT sink holds it in memory);
/// ``writeErrno`` is the error while appends or the cursor cannot be written.
///
/// Bounds: at most `maxBytes` of segments (a new segment starts every `maxBytes / 8`, at least 4 KiB and at
/// most 1 MiB); when the next record would exceed it, the oldest segment is deleted and its unacknowledged
/// records are counted in ``dropped``. Records enqueued more than `maxAgeNs` ago are skipped when read and
/// counted too. A record longer than ``maxRecordBytes`` is refused (counted).
///
/// Single-threaded: used only by the MQTT sink's thread.
package final class MQTTSpool {
    package struct Position: Comparable, Sendable {
        package var segment: Int
        package var offset: Int
        package static func < (a: Position, b: Position) -> Bool { (a.segment, a.offset) < (b.segment, b.offset) }
    }

    package struct Record {
        package var enqueuedNs: Int64
        package var retain: Bool
        package var topic: String
        package var payload: [UInt8]
        /// Where the record starts and where the next one starts.
        package var start: Position
        package var end: Position
    }

    struct Segment {
        var index: Int
        var size: Int
        /// Records in this segment not yet acknowledged (or dropped).
        var pending: Int
    }

    static let maxRecordBytes = 1 << 20
    /// The largest segment index read from a file name (12 digits, as they are written): a larger one is not
    /// a segment of ours, and `index + 1` stays far from overflowing.
    static let maxIndex = 999_999_999_999
    let directory: String
    let maxBytes: Int
    let segmentBytes: Int
    let maxAgeNs: Int64

    private(set) var segments: [Segment] = []
    /// First record not yet acknowledged.
    private(set) var committed = Position(segment: 0, offset: 0)
    /// Next record to hand out with ``next(nowNs:)``.
    private(set) var sendCursor = Position(segment: 0, offset: 0)
    private var writeFD: Int32 = -1
    private var cursorFD: Int32 = -1
    private var lockFD: Int32 = -1
    private var readCache: (segment: Int, offset: Int, bytes: [UInt8]) = (-1, 0, [])
    /// Records dropped (size or age bound, too long, or unreadable), each counted once.
    package private(set) var dropped = 0
    /// The end of the furthest record handed out or skipped by ``next(nowNs:)``: a record handed out again after
    /// a ``rewind()`` is not counted (as dropped, or off its segment's pending count) a second time.
    private var handedOut = Position(segment: 0, offset: 0)
    /// errno of the last append that could not be written (0: the last one was written).
    package private(set) var appendErrno: Int32 = 0
    /// errno of the last cursor write that failed (0: the cursor on disk is current).
    package private(set) var cursorErrno: Int32 = 0
    /// Why the cursor found on open was not used (empty, short, damaged, past every segment), or nil.
    package private(set) var cursorProblem: String?

    /// The error that keeps the spool from being written (appends or the cursor), or 0.
    package var writeErrno: Int32 { appendErrno != 0 ? appendErrno : cursorErrno }

    /// What ``append(topic:payload:retain:nowNs:)`` did.
    package enum AppendResult: Equatable, Sendable {
        case written
        /// Longer than ``maxRecordBytes``: refused and counted in ``dropped``.
        case tooLong
        /// Not written (errno: ENOSPC, EROFS, EIO, …); not counted: the caller keeps the record.
        case failed(Int32)
    }

    package var pendingBytes: Int { segments.reduce(0) { $0 + $1.size } - committed.offset * (segments.first?.index == committed.segment ? 1 : 0) }
    package var pendingMessages: Int { segments.reduce(0) { $0 + $1.pending } }

    /// Opens (creating if needed, mode 0700) `directory` and resumes where a previous run stopped: a record
    /// torn by a crash at the end of the last segment is cut off.
    package init(directory: String, maxBytes: Int, maxAgeNs: Int64) throws(MQTTSinkError) {
        self.directory = directory
        self.maxBytes = max(maxBytes, 4096)
        self.segmentBytes = min(max(self.maxBytes / 8, 4096), 1 << 20)
        self.maxAgeNs = maxAgeNs
        try Self.makeDirectories(directory)
        // One daemon per spool: a second one (two instances given the same mqtt.spool.directory) is refused.
        lockFD = open(directory + "/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lockFD >= 0, flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
            let why = errno == EWOULDBLOCK ? "it is in use by another earshot process" : String(cString: strerror(errno))
            if lockFD >= 0 { Glibc.close(lockFD); lockFD = -1 }
            throw MQTTSinkError("cannot use spool directory \(directory): \(why)")
        }
        var indexes: [Int] = []
        guard let d = opendir(directory) else {
            throw MQTTSinkError("cannot open spool directory \(directory): \(String(cString: strerror(errno)))")
        }
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if name.hasSuffix(".spool"), let i = Int(name.dropLast(6)), i >= 0, i <= Self.maxIndex { indexes.append(i) }
        }
        closedir(d)
        indexes.sort()
        cursorFD = open(directory + "/cursor", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard cursorFD >= 0 else {
            throw MQTTSinkError("cannot open \(directory)/cursor: \(String(cString: strerror(errno)))")
        }
        var saved = Position(segment: indexes.first ?? 0, offset: 0)
        var buf = [UInt8](repeating: 0, count: 64)
        let n = buf.withUnsafeMutableBytes { pread(cursorFD, $0.baseAddress, 64, 0) }
        switch Self.parseCursor(buf.prefix(max(n, 0))) {
        case .success(let p):
            // A cursor past every segment (or one no segment name could have) is not trusted: the spool then
            // sends from its oldest segment (at-least-once) instead of unlinking what it holds. With no segment
            // at all, any cursor is fine (nothing is pending) and only numbers the next segment.
            if let last = indexes.last, p.segment > last {
                cursorProblem = "it points past every segment (\(p.segment) \(p.offset))"
            } else {
                saved = p
            }
        case .failure(let problem):
            // A new spool has no cursor yet: not a problem when there is nothing to resend either.
            if !(n == 0 && indexes.isEmpty) { cursorProblem = problem.reason }
        }
        for i in indexes {
            var size = fileSize(path(i))
            if i < saved.segment { unlink(path(i)); continue }  // fully acknowledged before the restart
            if i == indexes.last { size = truncateTornTail(i, size: size) }
            var from = 0
            if i == saved.segment {
                from = min(saved.offset, size)
                // A cursor in the middle of a record (a damaged file): back to that record's start (sent again).
                if from > 0 && from < size { from = recordStart(i, before: from) }
                if from >= size && size > 0 || size == 0 && i != indexes.last { unlink(path(i)); continue }  // acknowledged
            }
            segments.append(Segment(index: i, size: size, pending: countRecords(i, from: from, to: size)))
            if i == saved.segment { saved.offset = from }
        }
        if let first = segments.first {
            committed = first.index == saved.segment ? Position(segment: saved.segment, offset: min(saved.offset, first.size))
                                                     : Position(segment: first.index, offset: 0)
        } else {
            let next = max(saved.segment, (indexes.last ?? -1) + 1)
            committed = Position(segment: next <= Self.maxIndex ? next : 0, offset: 0)
        }
        sendCursor = committed
        handedOut = committed
        // The cursor gets its 40 bytes now (a fresh or damaged one too), while the disk has room.
        saveCursor()
        if n > Self.cursorBytes { _ = ftruncate(cursorFD, off_t(Self.cursorBytes)) }
        // The segment to append to is opened by the first append (none is created for nothing).
    }

    struct CursorProblem: Error { var reason: String }

    /// The FNV-1a hash of `text` (the cursor's check value).
    static func check(_ text: String) -> UInt32 {
        var h: UInt32 = 2_166_136_261
        for b in text.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
        return h
    }

    /// `segment offset check` padded to 40 bytes ending in a newline; the check is ``check(_:)`` of
    /// `segment offset` in hex. The two-number form of earlier versions (same 40 bytes, no check) is read too.
    static func parseCursor(_ bytes: ArraySlice<UInt8>) -> Result<Position, CursorProblem> {
        guard !bytes.isEmpty else { return .failure(CursorProblem(reason: "the cursor file is empty")) }
        guard bytes.count == cursorBytes, bytes.last == 0x0A else {
            return .failure(CursorProblem(reason: "the cursor file is \(bytes.count) bytes long, not \(cursorBytes) (a truncated write)"))
        }
        let parts = bytes.split(whereSeparator: { $0 == 0x20 || $0 == 0x0A }).map { String(decoding: $0, as: UTF8.self) }
        guard parts.count == 2 || parts.count == 3, let s = Int(parts[0]), let o = Int(parts[1]), s >= 0, o >= 0, s <= maxIndex,
              parts.count == 2 || parts[2] == String(check("\(s) \(o)"), radix: 16) else {
            return .failure(CursorProblem(reason: "the cursor file is damaged"))
        }
        return .success(Position(segment: s, offset: o))
    }

    static let cursorBytes = 40

    deinit { close() }

    /// Closes the files and releases the directory lock (the sink's thread does this when it ends).
    package func close() {
        for fd in [writeFD, cursorFD, lockFD] where fd >= 0 { Glibc.close(fd) }
        writeFD = -1; cursorFD = -1; lockFD = -1
    }

    private func path(_ i: Int) -> String {
        var digits = String(i)
        if digits.count < 12 { digits = String(repeating: "0", count: 12 - digits.count) + digits }
        return directory + "/" + digits + ".spool"
    }

    static func makeDirectories(_ dir: String) throws(MQTTSinkError) {
        var prefix = ""
        for part in dir.split(separator: "/") {
            prefix += "/" + part
            if mkdir(prefix, 0o700) != 0 && errno != EEXIST {
                throw MQTTSinkError("cannot create spool directory \(dir): \(prefix): \(String(cString: strerror(errno)))")
            }
        }
        var st = stat()
        guard stat(dir, &st) == 0, st.st_mode & S_IFMT == S_IFDIR, access(dir, W_OK) == 0 else {
            throw MQTTSinkError("spool directory \(dir) is not a writable directory")
        }
    }

    private func fileSize(_ p: String) -> Int {
        var st = stat()
        return stat(p, &st) == 0 ? Int(st.st_size) : 0
    }

    /// Where the record holding byte `offset - 1` of segment `i` starts (after the newline before it, or 0).
    private func recordStart(_ i: Int, before offset: Int) -> Int {
        let fd = open(path(i), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 0 }
        defer { Glibc.close(fd) }
        var end = offset
        var buf = [UInt8](repeating: 0, count: 4096)
        while end > 0 {
            let from = max(0, end - buf.count)
            let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, end - from, off_t(from)) }
            guard n == end - from else { return 0 }
            if let nl = buf[0..<n].lastIndex(of: 0x0A) { return from + nl + 1 }
            end = from
        }
        return 0
    }

    /// Cuts a partial last line (a crash in the middle of a write) off segment `i`.
    private func truncateTornTail(_ i: Int, size: Int) -> Int {
        guard size > 0 else { return 0 }
        let fd = open(path(i), O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return size }
        defer { Glibc.close(fd) }
        var end = size
        var b: UInt8 = 0
        while end > 0 {
            guard pread(fd, &b, 1, off_t(end - 1)) == 1 else { break }
            if b == 0x0A { break }
            end -= 1
        }
        if end != size { _ = ftruncate(fd, off_t(end)) }
        return end
    }

    private func countRecords(_ i: Int, from: Int, to: Int) -> Int {
        let fd = open(path(i), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 0 }
        defer { Glibc.close(fd) }
        var count = 0, off = from
        var buf = [UInt8](repeating: 0, count: 65_536)
        while off < to {
            let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, min($0.count, to - off), off_t(off)) }
            if n <= 0 { break }
            for j in 0..<n where buf[j] == 0x0A { count += 1 }
            off += n
        }
        return count
    }

    /// Opens the segment to append to: the last one while it has room, else a new one (``appendErrno`` is set
    /// when it throws).
    private func openWriteSegment() throws(MQTTSinkError) {
        if writeFD >= 0 { Glibc.close(writeFD); writeFD = -1 }
        let index: Int
        if let last = segments.last, last.size < segmentBytes { index = last.index }
        else {
            index = (segments.last?.index).map { $0 + 1 } ?? committed.segment
            segments.append(Segment(index: index, size: 0, pending: 0))
        }
        writeFD = open(path(index), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard writeFD >= 0 else {
            let e = errno
            appendErrno = e == 0 ? EIO : e
            throw MQTTSinkError("cannot open spool segment \(path(index)): \(String(cString: strerror(e)))")
        }
    }

    /// Appends one record (oldest segments are dropped to stay within the size bound). A record that cannot
    /// be written leaves no partial line behind and is not counted (`.failed`: the caller keeps it).
    @discardableResult
    package func append(topic: String, payload: some Collection<UInt8>, retain: Bool, nowNs: Int64) -> AppendResult {
        var line: [UInt8] = []
        line.reserveCapacity(payload.count + topic.utf8.count + 32)
        line += String(nowNs).utf8; line.append(0x09)
        line.append(retain ? 0x31 : 0x30); line.append(0x09)
        line += topic.utf8; line.append(0x09)
        line += payload.filter { $0 != 0x0A }
        line.append(0x0A)
        guard line.count <= Self.maxRecordBytes else { dropped += 1; return .tooLong }
        if let last = segments.last, last.size > 0, last.size + line.count > segmentBytes {
            segments.append(Segment(index: last.index + 1, size: 0, pending: 0))
            if writeFD >= 0 { Glibc.close(writeFD); writeFD = -1 }
        }
        if writeFD < 0 {
            do { try openWriteSegment() } catch { return .failed(appendErrno) }
        }
        while segments.count > 1, segments.reduce(0, { $0 + $1.size }) + line.count > maxBytes { dropOldestSegment() }
        let written = line.withUnsafeBytes { write(writeFD, $0.baseAddress, $0.count) }
        guard written == line.count else {
            let e = written < 0 ? errno : ENOSPC  // a short write: the file system ran out of room
            if written > 0 { _ = ftruncate(writeFD, off_t(segments[segments.count - 1].size)) }
            return failed(e)
        }
        appendErrno = 0
        segments[segments.count - 1].size += line.count
        segments[segments.count - 1].pending += 1
        if cursorErrno != 0 { saveCursor() }  // space again: bring the cursor up to date too
        return .written
    }

    private func failed(_ e: Int32) -> AppendResult {
        appendErrno = e == 0 ? EIO : e
        return .failed(appendErrno)
    }

    /// Deletes the oldest segment; its unacknowledged records are counted as dropped.
    private func dropOldestSegment() {
        let s = segments.removeFirst()
        dropped += s.pending
        unlink(path(s.index))
        if readCache.segment == s.index { readCache = (-1, 0, []) }
        let next = Position(segment: segments.first?.index ?? s.index + 1, offset: 0)
        if committed < next { committed = next; saveCursor() }
        if sendCursor < next { sendCursor = next }
    }

    /// Drops whole segments whose newest record is older than the age bound (cheap housekeeping; single
    /// expired records are skipped by ``next(nowNs:)``).
    package func expire(nowNs: Int64) {
        while segments.count > 1 {
            var st = stat()
            guard stat(path(segments[0].index), &st) == 0 else { dropOldestSegment(); continue }
            let mtimeNs = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
            guard nowNs - mtimeNs > maxAgeNs else { break }
            dropOldestSegment()
        }
    }

    /// The next record after those already handed out, or nil. `expired`: older than the age bound (the
    /// caller must not publish it, and acknowledges it at once).
    package func next(nowNs: Int64) -> (record: Record, expired: Bool)? {
        while true {
            guard let si = segments.firstIndex(where: { $0.index == sendCursor.segment }) else {
                guard let s = segments.first(where: { $0.index > sendCursor.segment }) else { return nil }
                sendCursor = Position(segment: s.index, offset: 0)
                continue
            }
            let seg = segments[si]
            if sendCursor.offset >= seg.size {
                guard si + 1 < segments.count else { return nil }
                sendCursor = Position(segment: segments[si + 1].index, offset: 0)
                continue
            }
            guard let (line, lineEnd) = readLine(segment: seg.index, offset: sendCursor.offset, size: seg.size) else {
                // Unreadable or an over-long line: skip the rest of the segment (its records are dropped).
                let end = Position(segment: seg.index, offset: seg.size)
                if handedOut < end {
                    let from = max(sendCursor, handedOut)
                    skipped(segment: si, records: max(1, countRecords(seg.index, from: from.offset, to: seg.size)))
                    handedOut = end
                }
                // Nothing before it awaits an acknowledgement: the cursor moves past it (the segment goes).
                if sendCursor == committed { advance(to: end) } else { sendCursor = end }
                continue
            }
            let start = sendCursor
            sendCursor = Position(segment: seg.index, offset: lineEnd)
            let first = handedOut < sendCursor
            if first { handedOut = sendCursor }
            guard let rec = parse(line, start: start, end: sendCursor) else {
                if first { skipped(segment: si, records: 1) }
                if start == committed { advance(to: sendCursor) }
                continue
            }
            let expired = rec.enqueuedNs < nowNs &- maxAgeNs
            if expired && first { dropped += 1 }
            return (rec, expired)
        }
    }

    /// `records` of segment `segments[si]` are skipped unread (damaged): dropped, and no longer pending.
    private func skipped(segment si: Int, records: Int) {
        dropped += records
        segments[si].pending = max(0, segments[si].pending - records)
    }

    private func parse(_ line: ArraySlice<UInt8>, start: Position, end: Position) -> Record? {
        let fields = line.split(separator: 0x09, maxSplits: 3, omittingEmptySubsequences: false)
        guard fields.count == 4, let ns = Int64(String(decoding: fields[0], as: UTF8.self)), ns >= 0 else { return nil }
        return Record(enqueuedNs: ns, retain: fields[1].first == 0x31, topic: String(decoding: fields[2], as: UTF8.self),
                      payload: Array(fields[3]), start: start, end: end)
    }

    /// The line starting at `offset` of segment `segment` (without its newline) and where the next begins.
    private func readLine(segment: Int, offset: Int, size: Int) -> (ArraySlice<UInt8>, Int)? {
        func cached() -> (ArraySlice<UInt8>, Int)? {
            guard readCache.segment == segment, offset >= readCache.offset else { return nil }
            let from = offset - readCache.offset
            guard from < readCache.bytes.count else { return nil }
            guard let nl = readCache.bytes[from...].firstIndex(of: 0x0A) else { return nil }
            return (readCache.bytes[from..<nl], readCache.offset + nl + 1)
        }
        if let hit = cached() { return hit }
        let fd = open(path(segment), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var length = min(65_536, size - offset)
        while true {
            var buf = [UInt8](repeating: 0, count: length)
            let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, length, off_t(offset)) }
            guard n > 0 else { return nil }
            readCache = (segment, offset, Array(buf.prefix(n)))
            if let hit = cached() { return hit }
            guard n == length, length < min(Self.maxRecordBytes, size - offset) else { return nil }
            length = min(length * 4, Self.maxRecordBytes, size - offset)
        }
    }

    /// Every record up to `end` (exclusive) is acknowledged: advances the committed cursor (persisted) and
    /// deletes segments left behind. Positions at or before the cursor are ignored.
    package func acknowledge(through record: Position, end: Position) {
        guard committed < end else { return }
        if let i = segments.firstIndex(where: { $0.index == record.segment }), segments[i].pending > 0 { segments[i].pending -= 1 }
        advance(to: end)
    }

    /// Moves the committed cursor to `end` (persisted), deleting the segments left behind.
    private func advance(to end: Position) {
        committed = end
        // Every segment wholly before the cursor goes, the one being appended to as well (the next append
        // starts a new one): a drained spool leaves no segment file behind.
        while let s = segments.first, s.index < committed.segment || (s.index == committed.segment && committed.offset >= s.size) {
            segments.removeFirst()
            dropped += s.pending  // records skipped over (none in normal operation)
            unlink(path(s.index))
            if readCache.segment == s.index { readCache = (-1, 0, []) }
            if segments.isEmpty {
                // All acknowledged, nothing in flight: the next segment may take any number (after the
                // largest a name can have, numbering starts again at 0), and every position restarts there.
                if writeFD >= 0 { Glibc.close(writeFD); writeFD = -1 }
                committed = Position(segment: s.index < Self.maxIndex ? s.index + 1 : 0, offset: 0)
                sendCursor = committed
                handedOut = committed
            } else if committed.segment == s.index {
                committed = Position(segment: segments[0].index, offset: 0)
            }
        }
        if sendCursor < committed { sendCursor = committed }
        if handedOut < committed { handedOut = committed }
        saveCursor()
    }

    /// Writes the cursor again if its last write failed (housekeeping, once space is back).
    package func retryCursor() {
        if cursorErrno != 0 { saveCursor() }
    }

    /// Hands out again everything not acknowledged (after a disconnect).
    package func rewind() { sendCursor = committed }

    /// One in-place `pwrite` of the fixed-size cursor (overwriting its own 40 bytes needs no new space). A cursor
    /// file that cannot get its first bytes (created on a full disk) is removed rather than left empty or short —
    /// a missing cursor reads like an empty one — and created again by the next write (``retryCursor()``).
    private func saveCursor() {
        if cursorFD < 0 {
            cursorFD = open(directory + "/cursor", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            guard cursorFD >= 0 else { cursorErrno = errno == 0 ? EIO : errno; return }
        }
        let numbers = "\(committed.segment) \(committed.offset)"
        var text = Array("\(numbers) \(String(Self.check(numbers), radix: 16))\n".utf8)
        while text.count < Self.cursorBytes { text.insert(0x20, at: text.count - 1) }  // fixed width
        let n = text.withUnsafeBytes { pwrite(cursorFD, $0.baseAddress, $0.count, 0) }
        guard n != text.count else { cursorErrno = 0; return }
        cursorErrno = n < 0 ? (errno == 0 ? EIO : errno) : ENOSPC
        var st = stat()
        if fstat(cursorFD, &st) == 0, st.st_size < Self.cursorBytes {
            unlink(directory + "/cursor")
            Glibc.close(cursorFD)
            cursorFD = -1
        }
    }
}
