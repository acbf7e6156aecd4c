import Foundation
import Testing

extension EndToEnd {
    /// `earshot tail`'s own usage checks, before it connects (no daemon needed).
    @Suite("earshot tail usage") struct TailUsage {
        /// An empty stream name (`--streams ''`, `a,,b`) subscribed to nothing and reconnected forever after each
        /// idle timeout (attack run): it is a usage error, like an unknown name.
        @Test func emptyStreamNameIsAUsageError() throws {
            for streams in ["", ",", "frame,,onset"] {
                let r = try DaemonProcess.run(["tail", "--socket", "/nonexistent/earshot.sock", "--streams", streams], timeout: 10)
                #expect(r.termination == .exited(64), "--streams '\(streams)': \(r.stderr)")
                #expect(r.stderr.contains("empty stream name"), "\(r.stderr)")
            }
        }
    }
}
