import Foundation
import Testing

extension EndToEnd {
    /// The binary does not link Cairo or libmosquitto (they are opened on first use by `earshot spectrogram`
    /// and the `mqtt` sink, see CCairo/CMosquitto), so a daemon without them never maps those libraries and
    /// their dependencies; it still links ALSA (the check sees NEEDED entries).
    @Suite("lazily loaded libraries") struct LazyLibraryLink {
        @Test func binaryDoesNotLinkCairoOrMosquitto() throws {
            let readelf = try #require(findExecutable("readelf"), "readelf (binutils) is not installed")
            let p = try DaemonProcess(executable: readelf, arguments: ["-d", try EarshotBinary.require()], environment: baseChildEnvironment())
            #expect(p.wait(timeout: 30) == .exited(0), "\(p.stderr)")
            let needed = p.lines.filter { $0.contains("(NEEDED)") }
            #expect(needed.contains { $0.contains("libasound.so") }, "\(needed)")
            #expect(!needed.contains { $0.contains("libcairo") || $0.contains("libmosquitto") }, "\(needed)")
        }
    }
}
