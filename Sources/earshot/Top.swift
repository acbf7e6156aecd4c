import ArgumentParser
import EarshotClient
import EarshotDaemon
import EarshotProtocol
import EarshotSinks
import Foundation
import Synchronization

struct Top: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Full-screen live view of a running daemon: log-mel waterfall, levels, alerts, onsets, health.",
        discussion: """
            Draws a log-mel waterfall in colour (24-bit when COLORTERM is truecolor or 24bit, the 256-colour
            palette otherwise), large LAF digits with LAS, Leq (from the rolling windows), the peak (held 3 s)
            and the alert threshold (alerts.level.threshold_db of the configuration, then of each level alert)
            marked on a level bar, health when the daemon reports one, xrun and drop counters, the last alerts
            and onsets. When the daemon restarts it shows RECONNECTING and reconnects with backoff
            (0.25 s doubling to 5 s). q (or Ctrl-C) quits and restores the terminal. When stdout is not a
            terminal (or with --plain) it prints one status line per --interval seconds and a line per alert,
            onset and reconnect.
            """)

    @Option(help: "Socket path (default: socket.path of the configuration, /run/earshot/earshot.sock).") var socket: String?
    @Option(help: "The daemon's configuration, for socket.path and the alert threshold (default: /etc/earshot/earshot.yaml or $EARSHOT_CONFIG, if readable).")
    var config: String?
    @Option(help: "Show every Nth frame (100 frames/s at the defaults: 5 gives 20 waterfall rows per second).") var every = 5
    @Flag(help: "Plain text lines even on a terminal.") var plain = false
    @Option(help: "Seconds between two status lines in plain mode.") var interval = 1.0
    @Option(help: "Exit after this many seconds.") var duration: Double?

    func validate() throws {
        guard every >= 1, every <= 1_000_000 else { throw ValidationError("--every must be 1–1000000") }
        guard interval.isFinite, interval >= 0.1, interval <= 3600 else { throw ValidationError("--interval must be 0.1–3600 s") }
        if let duration { guard duration.isFinite, duration > 0 else { throw ValidationError("--duration must be positive") } }
    }

    func run() throws {
        let env = ProcessInfo.processInfo.environment
        let config: EarshotConfig?
        if let path = self.config {
            // Asked for by name: a bad file is an error (exit 78), as for check-config.
            do { config = try EarshotConfig.load(configPath: path, environment: env, options: .init(checkSystem: false)) } catch {
                fail("\(error)"); throw ExitCode(error.exitCode)
            }
        } else {
            config = try? EarshotConfig.load(configPath: nil, environment: env, options: .init(checkSystem: false))
        }
        let path = socket ?? config?.socket.path ?? EarshotConfig.defaults.socket.path
        let alerts = (config ?? EarshotConfig.defaults).alerts.level
        var state = TopState(threshold: alerts.enabled ? alerts.thresholdDB : nil, weighting: alerts.weighting.rawValue)
        let connection = StreamConnection(path: path, commands: [
            .subscribe([.frame, .onset, .alert, .rolling, .status, .stats], every: every, fields: [.logmel, .laf, .las]),
        ])
        let signals = TerminalSignals.install()
        let terminal = plain || isatty(STDOUT_FILENO) == 0 ? nil : RawTerminal(colorterm: env["COLORTERM"])
        defer { terminal?.restore() }
        let deadline = duration.map { Date().addingTimeInterval($0) }
        // Keys come from stdin when it is a terminal (`earshot top < /dev/null` on a tty: Ctrl-C quits).
        let keys = isatty(STDIN_FILENO) != 0
        var nextPlain = Date()
        var nextDraw = Date()
        var readable = false
        while true {
            for event in connection.service(readable: readable) { state.apply(event) }
            let now = Date()
            if let deadline, now >= deadline { return }
            if let terminal {
                _ = state.takeEvents()
                if now >= nextDraw {
                    terminal.draw(state)
                    nextDraw = now.addingTimeInterval(0.1)
                }
            } else {
                // Alerts and onsets carry their audio time; connection events get the wall clock.
                for line in state.takeEvents() {
                    emit(line.first?.isNumber == true ? line : "\(TailClient.LiveView.clock(now.timeIntervalSince1970))  \(line)")
                }
                if now >= nextPlain {
                    emit(TopScreen.plainLine(state))
                    nextPlain = now.addingTimeInterval(interval)
                }
            }
            // Wait for the socket, a key, a signal, the next redraw or the next reconnect attempt.
            var fds = [pollfd(fd: signals, events: Int16(POLLIN), revents: 0)]
            if terminal != nil, keys { fds.append(pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)) }
            if connection.fd >= 0 { fds.append(pollfd(fd: connection.fd, events: Int16(POLLIN), revents: 0)) }
            var timeout: Int32 = terminal != nil ? 100 : Int32(max(1, nextPlain.timeIntervalSinceNow * 1000))
            let retry = connection.pollTimeoutMs()
            if retry >= 0 { timeout = min(timeout, retry) }
            let r = poll(&fds, nfds_t(fds.count), timeout)
            readable = false
            if r < 0 { if errno == EINTR { continue }; return }
            for p in fds where p.revents != 0 {
                if p.fd == signals {
                    let taken = TerminalSignals.take()
                    if taken.contains(.quit) { return }
                    if taken.contains(.resize) { terminal?.resize() }
                } else if p.fd == STDIN_FILENO {
                    var key: UInt8 = 0
                    let n = read(STDIN_FILENO, &key, 1)
                    if n == 0 || (n == 1 && (key == UInt8(ascii: "q") || key == UInt8(ascii: "Q") || key == 3)) { return }
                } else {
                    readable = true
                }
            }
        }
    }

    func emit(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }
}

/// The terminal in raw mode on the alternate screen while `earshot top` runs; ``restore()`` (on every exit
/// path, and after SIGINT/SIGTERM/SIGHUP, which are turned into events) puts it back as it was.
final class RawTerminal {
    var saved = termios()
    var haveSaved = false
    var width = 80, height = 24
    let color: TopScreen.ColorMode
    var restored = false

    init(colorterm: String?) {
        color = TopScreen.ColorMode(colorterm: colorterm)
        if isatty(STDIN_FILENO) != 0, tcgetattr(STDIN_FILENO, &saved) == 0 {
            haveSaved = true
            var raw = saved
            raw.c_lflag &= ~tcflag_t(ICANON | ECHO)
            withUnsafeMutableBytes(of: &raw.c_cc) { cc in
                cc[Int(VMIN)] = 1
                cc[Int(VTIME)] = 0
            }
            tcsetattr(STDIN_FILENO, TCSANOW, &raw)
        }
        resize()
        write("\u{1B}[?1049h\u{1B}[?25l\u{1B}[2J")
    }

    func resize() {
        var ws = winsize()
        if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &ws) == 0, ws.ws_col > 0, ws.ws_row > 0 {
            width = Int(ws.ws_col); height = Int(ws.ws_row)
        }
        write("\u{1B}[2J")
    }

    func draw(_ state: TopState) {
        let lines = TopScreen.render(state, width: width, height: height, color: color)
        write("\u{1B}[H" + lines.joined(separator: "\u{1B}[0m\u{1B}[K\r\n") + "\u{1B}[0m\u{1B}[K")
    }

    func restore() {
        guard !restored else { return }
        restored = true
        write("\u{1B}[0m\u{1B}[?25h\u{1B}[?1049l")
        if haveSaved { tcsetattr(STDIN_FILENO, TCSANOW, &saved) }
    }

    func write(_ s: String) {
        var bytes = Array(s.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { Glibc.write(STDOUT_FILENO, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; return }
            bytes = bytes.dropFirst(n)
        }
    }
}

/// SIGINT/SIGTERM/SIGHUP (quit) and SIGWINCH (resize) as a pollable pipe, so `earshot top` leaves through its
/// normal exit path and restores the terminal.
enum TerminalSignals {
    struct Pending: OptionSet {
        let rawValue: Int
        static let quit = Pending(rawValue: 1)
        static let resize = Pending(rawValue: 2)
    }

    nonisolated(unsafe) static var readFD: Int32 = -1
    /// A plain `Int32` (not an array element) so the handler only loads it.
    nonisolated(unsafe) static var writeFD: Int32 = -1
    static let pending = Atomic<Int>(0)

    static func install() -> Int32 {
        if readFD >= 0 { return readFD }
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return -1 }
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        readFD = fds[0]
        writeFD = fds[1]
        let handler: @convention(c) (Int32) -> Void = { sig in
            TerminalSignals.pending.bitwiseOr(sig == SIGWINCH ? Pending.resize.rawValue : Pending.quit.rawValue, ordering: .sequentiallyConsistent)
            var one: UInt8 = 1
            _ = Glibc.write(TerminalSignals.writeFD, &one, 1)
        }
        SignalEvents.setHandler(handler, for: [SIGINT, SIGTERM, SIGHUP, SIGWINCH])
        return fds[0]
    }

    static func take() -> Pending {
        var buf = [UInt8](repeating: 0, count: 64)
        _ = read(readFD, &buf, 64)
        return Pending(rawValue: pending.exchange(0, ordering: .sequentiallyConsistent))
    }
}
