#if canImport(Glibc)
import Glibc
#endif

/// Writes a mono float32 WAV from up to two contiguous sample segments (the clips sink's history ring may
/// wrap) without copying them: to `path + ".part"`, fsync'd, then renamed to `path`, so a reader never sees a
/// partial clip. Throws the failing step with `strerror` (ENOSPC, EROFS, EACCES…); the partial file is removed.
enum ClipWAVWriter {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func write(path: String, sampleRate: Int, segments: [UnsafeBufferPointer<Float>]) throws(Failure) {
        let count = segments.reduce(0) { $0 + $1.count }
        let dataBytes = count * 4
        var h = [UInt8]()
        h.reserveCapacity(44)
        func put16(_ v: Int) { h.append(UInt8(v & 0xFF)); h.append(UInt8((v >> 8) & 0xFF)) }
        func put32(_ v: Int) { put16(v & 0xFFFF); put16((v >> 16) & 0xFFFF) }
        h += Array("RIFF".utf8); put32(36 + dataBytes)
        h += Array("WAVEfmt ".utf8); put32(16)
        put16(3); put16(1); put32(sampleRate); put32(sampleRate * 4); put16(4); put16(32)
        h += Array("data".utf8); put32(dataBytes)
        let part = path + ".part"
        let fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw Failure(description: "cannot create \(part): \(String(cString: strerror(errno)))") }
        func fail(_ what: String) -> Failure {
            let e = String(cString: strerror(errno))
            close(fd)
            unlink(part)
            return Failure(description: "\(what) \(part): \(e)")
        }
        func all(_ p: UnsafeRawPointer?, _ n: Int) -> Bool {
            guard var p, n > 0 else { return true }
            var left = n
            while left > 0 {
                let w = Glibc.write(fd, p, left)
                if w < 0 { if errno == EINTR { continue }; return false }
                if w == 0 { errno = ENOSPC; return false }
                left -= w; p += w
            }
            return true
        }
        guard h.withUnsafeBytes({ all($0.baseAddress, $0.count) }) else { throw fail("cannot write") }
        for s in segments {
            guard all(s.baseAddress.map { UnsafeRawPointer($0) }, s.count * 4) else { throw fail("cannot write") }
        }
        guard fsync(fd) == 0 else { throw fail("cannot sync") }
        guard close(fd) == 0 else { unlink(part); throw Failure(description: "cannot close \(part): \(String(cString: strerror(errno)))") }
        guard rename(part, path) == 0 else {
            let e = String(cString: strerror(errno))
            unlink(part)
            throw Failure(description: "cannot rename \(part): \(e)")
        }
    }
}
