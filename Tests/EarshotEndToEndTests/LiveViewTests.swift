#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

extension EndToEnd {
    /// `earshot top` in a real terminal (a private tmux server) and `earshot tail`, both against a live daemon
    /// on a paced FIFO, through a daemon restart: the waterfall (colour escapes) and the readouts are on the
    /// screen, both say they are reconnecting, then show data again; `q` quits top with the terminal restored.
    @Suite("earshot top and tail, live") struct LiveViews {
        /// Runs tmux on its own server socket.
        struct Tmux {
            let tmux: String
            let server: String
            @discardableResult
            func run(_ args: [String]) throws -> (Int32, String) {
                let p = try DaemonProcess(executable: tmux, arguments: ["-L", server] + args, environment: baseChildEnvironment())
                let t = p.wait(timeout: 10)
                return (t == .exited(0) ? 0 : 1, p.stdout)
            }
            func capture() -> String { (try? run(["capture-pane", "-p", "-e", "-t", "top"]).1) ?? "" }
            func waitFor(_ timeout: Double, _ what: (String) -> Bool) -> String? {
                let deadline = Date().addingTimeInterval(timeout)
                while Date() < deadline {
                    let screen = capture()
                    if what(screen) { return screen }
                    usleep(200_000)
                }
                return nil
            }
        }

        @Test func topAndTailSurviveADaemonRestart() throws {
            let tmuxPath = try #require(findExecutable("tmux"), "tmux is not installed")
            let earshot = try EarshotBinary.require()
            let rig = try PublishingRig("liveviews", extraYAML: "alerts:\n  level:\n    threshold_db: -33\n")
            defer { rig.cleanup() }
            _ = try rig.start()
            let tmux = Tmux(tmux: tmuxPath, server: "earshot-test-\(getpid())")
            defer { _ = try? tmux.run(["kill-server"]) }
            // After top exits the pane shows its status and whether the tty is back in canonical mode with echo.
            let command = "env COLORTERM=truecolor '\(earshot)' top --config '\(rig.config.path)'; "
                + "echo TOP-EXITED=$?; stty -a | tr ' ' '\\n' | grep -E '^-?(icanon|echo)$' | tr '\\n' ' '; echo; sleep 60"
            try tmux.run(["new-session", "-d", "-s", "top", "-x", "110", "-y", "40", command])
            let tail = try DaemonProcess(earshot: ["tail", "--socket", rig.socketPath, "--streams", "frame,stats", "--every", "25", "--duration", "40"])
            defer { tail.killAndReap() }

            // The screen: header, readouts, threshold from the configuration, and the waterfall in 24-bit colour.
            let first = tmux.waitFor(15) { $0.contains("connected") && $0.contains("LAS  -") && $0.contains("38;2;") && $0.contains("▀") }
            #expect(first != nil, "top did not show the live view: \(tmux.capture())")
            if let first {
                #expect(first.contains("alert threshold -33.0 dBFS"), "\(first)")
                #expect(first.contains("LAF") && first.contains("peak") && first.contains("xruns"), "\(first)")
            }
            #expect(tail.wait(until: 10) { $0.lines.contains { $0.contains("LAF") } }, "tail: \(tail.stdout) \(tail.stderr)")

            // Restart the daemon.
            rig.daemon?.signal(SIGTERM)
            #expect(rig.daemon?.wait(timeout: 10) == .exited(0))
            #expect(tmux.waitFor(10) { $0.contains("RECONNECTING") } != nil, "no reconnecting state: \(tmux.capture())")
            #expect(tail.wait(until: 10) { $0.stderr.contains("lost") && $0.stderr.contains("reconnecting") }, "tail stderr: \(tail.stderr)")
            let linesBefore = tail.lineCount
            _ = try rig.start()
            let again = tmux.waitFor(15) { $0.contains("│ connected │") && $0.contains("LAS  -") }
            #expect(again != nil, "top did not come back: \(tmux.capture())")
            #expect(tail.wait(until: 10) { $0.stderr.contains("reconnected") && $0.lineCount > linesBefore + 2 }, "tail: \(tail.stderr)")
            // stats are readable in tail's human mode.
            #expect(tail.wait(until: 12) { $0.lines.contains { $0.contains("stats  frames ") && $0.contains("xruns") } }, "tail: \(tail.stdout.suffix(2000))")
            #expect(!tail.stdout.contains("\"latency_ms\""))

            // q quits; the pane then shows the exit status and a terminal back in canonical mode with echo.
            try tmux.run(["send-keys", "-t", "top", "q"])
            let done = tmux.waitFor(10) { $0.contains("TOP-EXITED=") && $0.contains("icanon") }
            #expect(done?.contains("TOP-EXITED=0") == true, "\(tmux.capture())")
            #expect(done?.contains("-icanon") == false && done?.contains("-echo ") == false, "terminal not restored: \(done ?? "")")
            #expect(try tmux.run(["display-message", "-p", "-t", "top", "#{alternate_on}"]).1.trimmingCharacters(in: .whitespacesAndNewlines) == "0")
        }

        /// Not a terminal: plain status lines.
        @Test func topPrintsPlainLinesWhenNotATerminal() throws {
            let rig = try PublishingRig("topplain")
            defer { rig.cleanup() }
            _ = try rig.start()
            let top = try DaemonProcess(earshot: ["top", "--socket", rig.socketPath, "--interval", "0.5", "--duration", "3"])
            #expect(top.wait(timeout: 15) == .exited(0), "\(top.stderr)")
            let status = top.lines.filter { $0.contains("LAF -") && $0.contains("LAS") && $0.contains("xruns") }
            #expect(status.count >= 3, "\(top.stdout)")
            #expect(!top.stdout.contains("\u{1B}["), "escape sequences on a pipe")
        }
    }
}
