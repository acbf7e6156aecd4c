#if canImport(Glibc)
import Glibc
#endif

/// Retention of the clips directory: which clip files to remove, oldest first (pure; ``ClipSink`` applies it
/// after each write). Only files named like a clip (`YYYYMMDDTHHMMSS.mmmZ-….wav`) are considered; their name
/// starts with the UTC time, so name order is age order. The newest clip is always kept (one clip larger than
/// `max_mb` is kept until the next one arrives).
public enum ClipRetention {
    public struct File: Sendable, Equatable {
        public var name: String
        public var bytes: Int
        public var mtime: Double
        public init(name: String, bytes: Int, mtime: Double) { self.name = name; self.bytes = bytes; self.mtime = mtime }
    }

    /// Whether `name` is a clip file this sink wrote.
    public static func isClipName(_ name: String) -> Bool {
        let u = Array(name.utf8)
        guard u.count > 20, name.hasSuffix(".wav"), u[8] == UInt8(ascii: "T"), u[19] == UInt8(ascii: "Z") else { return false }
        return u[0..<8].allSatisfy { $0 >= 48 && $0 <= 57 } && u[9..<15].allSatisfy { $0 >= 48 && $0 <= 57 }
    }

    /// The files to remove (oldest first): older than `maxAgeSeconds`, then the oldest while more than
    /// `maxFiles` remain or they hold more than `maxBytes`.
    public static func plan(_ files: [File], now: Double, maxFiles: Int, maxBytes: Int, maxAgeSeconds: Double) -> [String] {
        var kept = files.filter { isClipName($0.name) }.sorted { ($0.name, $0.mtime) < ($1.name, $1.mtime) }
        var total = kept.reduce(0) { $0 + $1.bytes }
        var remove: [String] = []
        while kept.count > 1 {
            let oldest = kept[0]
            guard now - oldest.mtime > maxAgeSeconds || kept.count > maxFiles || total > maxBytes else { break }
            remove.append(oldest.name)
            total -= oldest.bytes
            kept.removeFirst()
        }
        return remove
    }

    /// Lists `directory`'s clip files (regular files only).
    public static func list(_ directory: String) -> [File] {
        guard let d = opendir(directory) else { return [] }
        defer { closedir(d) }
        var out: [File] = []
        while let e = readdir(d) {
            let name = withUnsafePointer(to: e.pointee.d_name) { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
            guard isClipName(name) else { continue }
            var st = stat()
            guard stat(directory + "/" + name, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            out.append(File(name: name, bytes: Int(st.st_size), mtime: Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9))
        }
        return out
    }
}
