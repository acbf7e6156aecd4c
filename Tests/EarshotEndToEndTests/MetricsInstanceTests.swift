#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

extension EndToEnd {
    /// Issue 10 item 6: two `earshot@` instances with metrics. Each scrape carries its instance and device
    /// labels; a second instance on the same port exits 70 and says what to change.
    @Suite("metrics per instance", .serialized) struct MetricsInstances {
        static func scrape(port: Int) -> String? {
            guard let p = try? DaemonProcess(executable: "/usr/bin/env", arguments: [
                "python3", "-c", "import urllib.request,sys;sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:\(port)/metrics',timeout=2).read().decode())",
            ], environment: baseChildEnvironment()), p.wait(timeout: 10) == .exited(0) else { return nil }
            return p.stdout
        }

        @Test func labelledSeriesAndABusyPortNamesTheFix() throws {
            let port = SupervisorHardening.freePort()
            let rig = try PublishingRig("metrics-instance", extraYAML: "metrics:\n  enabled: true\n  listen: 127.0.0.1:\(port)\n")
            defer { rig.cleanup() }
            var env = baseChildEnvironment()
            for (k, v) in rig.device.environment { env[k] = v }
            env["EARSHOT_INSTANCE"] = "north"
            let first = try DaemonProcess(earshot: ["run", "--config", rig.config.path], environment: env)
            defer { first.killAndReap() }
            var body = ""
            #expect(!first.wait(until: 3) { !$0.isRunning }, "the instance stopped: \(first.stderr)")
            #expect(waitFor(15) { body = Self.scrape(port: port) ?? ""; return body.contains("earshot_frames_total{") },
                    "no scrape; \(first.stderr.suffix(1500))")
            let samples = body.split(separator: "\n").filter { !$0.hasPrefix("#") }
            #expect(!samples.isEmpty)
            #expect(samples.allSatisfy { $0.contains(#"device="paced",instance="north""#) }, "\(samples.prefix(5))")
            #expect(body.contains(#"earshot_build_info{device="paced",instance="north",commit=""#) && body.contains(#"",swift=""#))

            // A second instance configured with the same port (and its own socket).
            let second = try PublishingRig("metrics-instance-2", extraYAML: "metrics:\n  enabled: true\n  listen: 127.0.0.1:\(port)\n")
            defer { second.cleanup() }
            var env2 = baseChildEnvironment()
            for (k, v) in second.device.environment { env2[k] = v }
            env2["EARSHOT_INSTANCE"] = "south"
            let other = try DaemonProcess(earshot: ["run", "--config", second.config.path], environment: env2)
            defer { other.killAndReap() }
            #expect(other.wait(timeout: 15) == .exited(70), "\(other.stderr.suffix(1500))")
            #expect(other.stderr.contains("each earshot@ instance needs its own metrics.listen port") && other.stderr.contains("/etc/earshot/south.yaml"),
                    "\(other.stderr.suffix(1500))")
            #expect(first.isRunning)
            first.signal(SIGTERM)
            #expect(first.wait(timeout: 5) == .exited(0))
        }
    }
}
