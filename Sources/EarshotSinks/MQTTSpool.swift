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
/// `cursor` file `segment offset` naming the first record not yet acknowledged. A segment is deleted once
/// every record in it is acknowledged.
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
    /// Records dropped (size or age bound, or too long).
    package private(set) var dropped = 0

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
        if n > 0 {
            let parts = String(decoding: buf.prefix(n), as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" })
            // A corrupt cursor (an index past every segment, or one no segment name could have) is ignored: the
            // spool then sends from its oldest segment (at-least-once) instead of unlinking what it holds.
            if parts.count >= 2, let s = Int(parts[0]), let o = Int(parts[1]), s >= 0, o >= 0, s <= (indexes.last ?? 0) {
                saved = Position(segment: s, offset: o)
            }
        }
        for i in indexes {
            var size = fileSize(path(i))
            if i < saved.segment { unlink(path(i)); continue }  // fully acknowledged before the restart
            if i == indexes.last { size = truncateTornTail(i, size: size) }
            let from = i == saved.segment ? min(saved.offset, size) : 0
            segments.append(Segment(index: i, size: size, pending: countRecords(i, from: from, to: size)))
        }
        if let first = segments.first {
            committed = first.index == saved.segment ? Position(segment: saved.segment, offset: min(saved.offset, first.size))
                                                     : Position(segment: first.index, offset: 0)
        } else {
            committed = Position(segment: saved.segment, offset: 0)
        }
        sendCursor = committed
        try openWriteSegment()
    }

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
            throw MQTTSinkError("cannot open spool segment \(path(index)): \(String(cString: strerror(errno)))")
        }
    }

    /// Appends one record (oldest segments are dropped to stay within the size bound). Returns false if it
    /// could not be written (too long, or a write error), counted in ``dropped``.
    @discardableResult
    package func append(topic: String, payload: some Collection<UInt8>, retain: Bool, nowNs: Int64) -> Bool {
        var line: [UInt8] = []
        line.reserveCapacity(payload.count + topic.utf8.count + 32)
        line += String(nowNs).utf8; line.append(0x09)
        line.append(retain ? 0x31 : 0x30); line.append(0x09)
        line += topic.utf8; line.append(0x09)
        line += payload.filter { $0 != 0x0A }
        line.append(0x0A)
        guard line.count <= Self.maxRecordBytes else { dropped += 1; return false }
        if let last = segments.last, last.size > 0, last.size + line.count > segmentBytes {
            segments.append(Segment(index: last.index + 1, size: 0, pending: 0))
            do { try openWriteSegment() } catch { dropped += 1; return false }
        }
        while segments.count > 1, segments.reduce(0, { $0 + $1.size }) + line.count > maxBytes { dropOldestSegment() }
        let written = line.withUnsafeBytes { write(writeFD, $0.baseAddress, $0.count) }
        guard written == line.count else {
            if written > 0 { _ = ftruncate(writeFD, off_t(segments[segments.count - 1].size)) }
            dropped += 1
            return false
        }
        segments[segments.count - 1].size += line.count
        segments[segments.count - 1].pending += 1
        return true
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
                // Unreadable or an over-long line: skip the rest of the segment.
                dropped += 1
                sendCursor = Position(segment: seg.index, offset: seg.size)
                continue
            }
            let start = sendCursor
            sendCursor = Position(segment: seg.index, offset: lineEnd)
            guard let rec = parse(line, start: start, end: sendCursor) else { dropped += 1; continue }
            let expired = rec.enqueuedNs < nowNs &- maxAgeNs
            if expired { dropped += 1 }
            return (rec, expired)
        }
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
        committed = end
        while segments.count > 1, segments[0].index < committed.segment
                || (segments[0].index == committed.segment && committed.offset >= segments[0].size) {
            let s = segments.removeFirst()
            dropped += s.pending  // records skipped over (none in normal operation)
            unlink(path(s.index))
            if committed.segment == s.index { committed = Position(segment: segments[0].index, offset: 0) }
        }
        saveCursor()
    }

    /// Hands out again everything not acknowledged (after a disconnect).
    package func rewind() { sendCursor = committed }

    private func saveCursor() {
        var text = Array("\(committed.segment) \(committed.offset)\n".utf8)
        while text.count < 40 { text.insert(0x20, at: text.count - 1) }  // fixed width: one pwrite overwrites it
        _ = text.withUnsafeBytes { pwrite(cursorFD, $0.baseAddress, $0.count, 0) }
    }
}
