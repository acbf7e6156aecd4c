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

    /// `--duration nan|inf|-1` of `run` and `demo` meant "forever" or stopped at once (attack run): a usage error
    /// (exit 64) naming the option, before any configuration is read or device opened.
    @Suite("earshot run/demo --duration") struct DurationUsage {
        @Test func nonFiniteOrNegativeDurationIsAUsageError() throws {
            for command in ["run", "demo"] {
                for d in ["nan", "inf", "-1", "1e300"] {
                    let r = try DaemonProcess.run([command, "--duration=\(d)"], timeout: 10)
                    #expect(r.termination == .exited(64), "\(command) --duration \(d): \(r.stderr)")
                    #expect(r.stderr.contains("--duration must be a number of seconds"), "\(r.stderr)")
                }
            }
        }
    }
}
