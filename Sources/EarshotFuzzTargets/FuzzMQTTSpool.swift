#if canImport(Glibc)
import Glibc
#endif
import EarshotSinks

/// Fuzz target body (corpus: Fuzz/corpus/spool). Must be total: no trap, no hang, bounded memory, for any bytes.
///
/// The bytes are a spool directory as a crash, a full disk or another program could leave it: sections split
/// at 0x1E are the `cursor` file and up to 4 segment files (`NNNNNNNNNNNN.spool`, whose indexes are picked by
/// byte 0 from ordinary, gapped, near-limit and beyond-limit numbers). The real ``MQTTSpool`` opens it (locks,
/// lists, reads the cursor, cuts the torn tail, counts records), hands out every record, acknowledging every
/// other one, appends new ones, expires, and is reopened twice (a restart), the reopened one drained to the end.
/// Invariants: records come out in increasing position order, each read at most once per opening (bounded by
/// the bytes given); every record appended (accepted) after the old ones are drained comes back next, intact;
/// pending counts stay ≥ 0.
public func fuzzMQTTSpool(_ data: UnsafeRawBufferPointer) {
    guard let flags = data.first else { return }
    let dir = FuzzScratch.directory("spool")
    FuzzScratch.empty(dir)
    var sections = data.dropFirst().split(separator: 0x1E, maxSplits: 4, omittingEmptySubsequences: false)
    let cursor = sections.isEmpty ? [] : Array(sections.removeFirst())
    FuzzScratch.write(dir + "/cursor", cursor)
    let bases = [0, 1, 7, 999_999_999_997, 999_999_999_999_0]
    let base = bases[Int(flags & 3)] + (flags & 4 != 0 ? 1_000_000_000_000 - 2 : 0)
    for (i, seg) in sections.enumerated() {
        let index = base + i * (flags & 8 != 0 ? 2 : 1)  // gapped indexes too
        var digits = String(index)
        if digits.count < 12 { digits = String(repeating: "0", count: 12 - digits.count) + digits }
        FuzzScratch.write(dir + "/" + digits + ".spool", Array(seg))
    }
    let maxBytes = flags & 16 != 0 ? 4096 : 1 << 20
    let maxAgeNs: Int64 = flags & 32 != 0 ? 1_000_000_000 : 604_800_000_000_000
    let nowNs: Int64 = 1_800_000_000_000_000_000
    let bound = data.count + 16  // no more records than bytes (each ends with a newline)

    do {
        let spool = try MQTTSpool(directory: dir, maxBytes: maxBytes, maxAgeNs: maxAgeNs)
        drain(spool, nowNs: nowNs, bound: bound, acknowledgeEvery: 2)
        // New records after the old ones: each accepted one must be the next record handed out, intact.
        for k in 0..<3 {
            let topic = "earshot/fuzz/\(k)"
            let payload = Array("{\"k\":\(k),\"flags\":\(flags)}".utf8)
            // (Old segments may be dropped to make room; never the newest, which holds this record.)
            guard spool.append(topic: topic, payload: payload, retain: k == 1, nowNs: nowNs) == .written else { continue }
            guard let (rec, expired) = spool.next(nowNs: nowNs) else { fatalError("appended record \(k) not handed out") }
            precondition(!expired && rec.topic == topic && rec.payload == payload && rec.retain == (k == 1),
                         "appended record \(k) came back as \(rec.topic) \(rec.payload.count) bytes, expired \(expired)")
            if k != 2 { spool.acknowledge(through: rec.start, end: rec.end) }
        }
        spool.expire(nowNs: nowNs &+ (flags & 64 != 0 ? maxAgeNs * 2 : 0))
        precondition(spool.pendingMessages >= 0 && spool.pendingBytes >= 0, "pending \(spool.pendingMessages)")
        spool.close()
    } catch {
        _ = error.description
    }
    for _ in 0..<2 {  // restarts: the spool as the previous run left it
        guard let spool = try? MQTTSpool(directory: dir, maxBytes: maxBytes, maxAgeNs: maxAgeNs) else { continue }
        precondition(spool.pendingMessages >= 0 && spool.pendingBytes >= 0, "pending after reopen \(spool.pendingMessages)")
        drain(spool, nowNs: nowNs, bound: bound + 3, acknowledgeEvery: 1)
        spool.close()
    }
}

private func drain(_ spool: MQTTSpool, nowNs: Int64, bound: Int, acknowledgeEvery: Int) {
    var last: MQTTSpool.Position?
    var count = 0
    while let (rec, _) = spool.next(nowNs: nowNs) {
        precondition(rec.start < rec.end, "empty record at \(rec.start)")
        if let last { precondition(last <= rec.start, "records out of order: \(last) then \(rec.start)") }
        last = rec.end
        count += 1
        precondition(count <= bound, "more records than the spool holds bytes")
        if count % acknowledgeEvery == 0 { spool.acknowledge(through: rec.start, end: rec.end) }
    }
}

/// A per-process scratch directory for targets that need files (libFuzzer runs one input at a time).
enum FuzzScratch {
    static func directory(_ name: String) -> String {
        let d = "/tmp/earshot-fuzz-\(getpid())-\(name)"
        mkdir(d, 0o700)
        return d
    }

    /// Removes every file in `dir` (flat: the targets create no subdirectories).
    static func empty(_ dir: String) {
        guard let d = opendir(dir) else { return }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(d)
        for n in names { unlink(dir + "/" + n) }
    }

    static func write(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o600) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { return }
        _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        fchmod(fd, mode)
        close(fd)
    }
}
