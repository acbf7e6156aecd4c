/// Draws ``TopState`` for a terminal: a header, large LAF digits with LAS/Leq/peak/threshold beside them, a
/// level bar with the threshold and the peak marked, the log-mel waterfall in colour (newest row at the top,
/// two frames per text row with `▀`), and the last alerts, onsets and counters. Pure: returns the lines.
public enum TopScreen {
    /// How colours are written.
    public enum ColorMode: Sendable {
        /// `ESC[38;2;R;G;Bm` (COLORTERM=truecolor or 24bit).
        case truecolor
        /// The xterm 256-colour cube, `ESC[38;5;Nm`.
        case palette256

        /// From the environment's `COLORTERM`.
        public init(colorterm: String?) {
            self = colorterm == "truecolor" || colorterm == "24bit" ? .truecolor : .palette256
        }
    }

    static let esc = "\u{1B}["
    static let reset = "\u{1B}[0m"

    /// The full screen: `height` lines (without newlines), each at most `width` columns wide.
    public static func render(_ s: TopState, width: Int, height: Int, color: ColorMode) -> [String] {
        let w = max(20, width), h = max(6, height)
        var lines: [String] = []
        lines.append(header(s, width: w))
        let big = bigNumber(s.laf)
        let side = sideReadouts(s)
        for i in 0..<5 {
            let left = (i == 0 ? "LAF " : "    ") + big[i]
            lines.append(fit(pad(left, 26) + (i < side.count ? side[i] : ""), w))
        }
        lines.append(levelBar(s, width: w))
        let footer = footerLines(s, width: w)
        let waterfallRows = max(0, h - lines.count - footer.count - 1)
        if waterfallRows > 0 {
            lines.append(axis(s, width: w))
            lines.append(contentsOf: waterfall(s, width: w, rows: waterfallRows - 1, color: color))
        }
        lines.append(contentsOf: footer)
        while lines.count < h { lines.append("") }
        return Array(lines.prefix(h))
    }

    /// One line for a log (stdout is not a terminal).
    public static func plainLine(_ s: TopState) -> String {
        var parts: [String] = []
        parts.append(s.lastFrameT.map(TailClient.LiveView.clock) ?? "--:--:--.---")
        parts.append("LAF \(num(s.laf))")
        parts.append("LAS \(num(s.las))")
        for w in s.leq.keys.sorted() { parts.append("Leq\(TailClient.LiveView.format(w, 0))s \(num(s.leq[w]))") }
        parts.append("peak \(num(s.peak))")
        if let t = s.threshold { parts.append("threshold \(num(t))\(s.alertActive ? " ALERT" : "")") }
        parts.append(s.levelUnit)
        parts.append("xruns \(s.counter("xruns")) dropped \(s.droppedTotal)")
        if let hl = s.health { parts.append("health \(hl)") }
        if case .reconnecting(let reason, _) = s.connection { parts.append("RECONNECTING (\(reason))") }
        return parts.joined(separator: "  ")
    }

    static func header(_ s: TopState, width: Int) -> String {
        let state: String = switch s.connection {
        case .connecting: "connecting…"
        case .connected: "connected"
        case .reconnecting(let reason, let retry): "RECONNECTING in \(TailClient.LiveView.format(max(0, retry), 1)) s: \(reason)"
        }
        let text = " earshot top │ \(state) │ \(s.device)  \(s.sampleRate) Hz hop \(s.hop)  daemon \(s.daemonVersion)"
        return esc + "7m" + pad(fit(text, width), width) + reset
    }

    static func sideReadouts(_ s: TopState) -> [String] {
        let u = s.levelUnit
        var leqText = "Leq"
        if s.leq.isEmpty { leqText += "  (waiting for the first rolling window)" }
        for w in s.leq.keys.sorted() { leqText += "  \(TailClient.LiveView.format(w, 0)) s \(num(s.leq[w]))" }
        let thr = s.threshold.map { "alert threshold \(num($0)) \(u) (\(s.weighting))" } ?? "alert threshold: not known"
        let alert = s.alertActive ? "   " + esc + "1;31m● LEVEL ALERT" + reset : ""
        let health = s.health.map { "health \($0)" } ?? "health n/a"
        return [
            "LAS  \(num(s.las)) \(u)",
            leqText,
            "peak \(num(s.peak)) \(u) (hold \(TailClient.LiveView.format(s.peakHoldSeconds, 0)) s)",
            thr + alert,
            "\(health)  xruns \(s.counter("xruns"))  dropped \(s.droppedTotal)  reconnects \(s.counter("reconnects"))/\(s.reconnects)",
        ]
    }

    /// `|█████····┃··│···|` from `lo` to `hi` dB: `┃` the peak, `│` (red) the threshold.
    static func levelBar(_ s: TopState, width: Int) -> String {
        let (lo, hi) = s.levelUnit == "dBFS" ? (-90.0, 0.0) : (20.0, 110.0)
        let n = max(10, width - 20)
        func col(_ v: Double?) -> Int? {
            guard let v, v.isFinite else { return nil }
            return min(n - 1, max(0, Int(((v - lo) / (hi - lo) * Double(n)).rounded(.down))))
        }
        let fill = col(s.laf).map { $0 + 1 } ?? 0
        let peak = col(s.peak), thr = col(s.threshold)
        var out = pad(TailClient.LiveView.format(lo, 0), 5) + " "
        for i in 0..<n {
            if i == thr { out += esc + "1;31m│" + reset }
            else if i == peak { out += "┃" }
            else { out += i < fill ? "█" : "·" }
        }
        return out + " " + TailClient.LiveView.format(hi, 0)
    }

    /// Frequency labels over the waterfall.
    static func axis(_ s: TopState, width: Int) -> String {
        let n = s.melCentresHz.count
        guard n > 0 else { return "Hz" }
        var chars = [Character](repeating: " ", count: width)
        var x = 0
        while x < width - 5 {
            let band = min(n - 1, x * n / width)
            let label = Array(hzLabel(s.melCentresHz[band]))
            for (i, c) in label.enumerated() where x + i < width { chars[x + i] = c }
            x += max(label.count + 2, width / 8)
        }
        return String(chars)
    }

    static func hzLabel(_ f: Double) -> String {
        f < 1000 ? "\(Int(f.rounded()))" : (TailClient.LiveView.format(f / 1000, 1) + "k")
    }

    /// The waterfall: `rows` text rows, two log-mel frames each (upper half = newer).
    static func waterfall(_ s: TopState, width: Int, rows: Int, color: ColorMode) -> [String] {
        let frames = s.waterfall
        guard let first = frames.first, !first.isEmpty, rows > 0 else {
            return (0..<rows).map { $0 == rows / 2 ? fit("        (waiting for frames)", width) : "" }
        }
        // Colours span the top 80 dB of what is on screen.
        let visible = frames.prefix(rows * 2)
        var top: Float = -200
        for r in visible { for v in r where v > top { top = v } }
        let bottom = top - 80
        func index(_ row: [Float]?, _ x: Int) -> Int? {
            guard let row, !row.isEmpty else { return nil }
            let a = x * row.count / width, b = max(a + 1, (x + 1) * row.count / width)
            var m: Float = -.infinity
            for k in a..<min(b, row.count) where row[k] > m { m = row[k] }
            return Int(((m - bottom) / 80 * 255).rounded())
        }
        var out: [String] = []
        for r in 0..<rows {
            let upper = 2 * r < frames.count ? frames[2 * r] : nil
            let lower = 2 * r + 1 < frames.count ? frames[2 * r + 1] : nil
            var line = ""
            var lastFg = -1, lastBg = -1
            for x in 0..<width {
                let fg = index(upper, x), bg = index(lower, x)
                if fg == nil && bg == nil { line += reset + " "; lastFg = -1; lastBg = -1; continue }
                let f = min(255, max(0, fg ?? 0)), b = min(255, max(0, bg ?? 0))
                if f != lastFg { line += sgr(f, foreground: true, color); lastFg = f }
                if b != lastBg { line += sgr(b, foreground: false, color); lastBg = b }
                line += "▀"
            }
            out.append(line + reset)
        }
        return out
    }

    /// The escape sequence selecting magma entry `i` as foreground or background.
    static func sgr(_ i: Int, foreground: Bool, _ mode: ColorMode) -> String {
        let (r, g, b) = Magma.rgb(i)
        switch mode {
        case .truecolor:
            return esc + (foreground ? "38;2;" : "48;2;") + "\(r);\(g);\(b)m"
        case .palette256:
            func level(_ c: UInt8) -> Int { Int((Double(c) / 255 * 5).rounded()) }
            return esc + (foreground ? "38;5;" : "48;5;") + "\(16 + 36 * level(r) + 6 * level(g) + level(b))m"
        }
    }

    static func footerLines(_ s: TopState, width: Int) -> [String] {
        var out: [String] = []
        out.append(fit("alerts: " + (s.alerts.first ?? "none"), width))
        if s.alerts.count > 1 { out.append(fit("        " + s.alerts[1], width)) } else { out.append("") }
        out.append(fit("onsets: " + s.onsets.prefix(3).map { $0.split(separator: " ", maxSplits: 1).first.map(String.init) ?? "" }.joined(separator: "  ")
                           + (s.onsets.first.map { "   last: " + $0 } ?? (s.onsets.isEmpty ? "none" : "")), width))
        out.append(fit("stats: " + (s.statsLine ?? "(every 5 s)"), width))
        out.append(fit(esc + "2m" + "q quit   frames shown \(s.frames)   dropped for this view \(s.droppedForUs)" + reset, width + 8))
        return out
    }

    static func bigNumber(_ v: Double?) -> [String] {
        let text = v.map { TailClient.LiveView.format($0, 1) } ?? "--.-"
        var rows = [String](repeating: "", count: 5)
        for ch in text {
            let glyph = font[ch] ?? font[" "]!
            for i in 0..<5 { rows[i] += glyph[i] + " " }
        }
        return rows
    }

    static let font: [Character: [String]] = [
        "0": ["███", "█ █", "█ █", "█ █", "███"], "1": [" █ ", "██ ", " █ ", " █ ", "███"],
        "2": ["███", "  █", "███", "█  ", "███"], "3": ["███", "  █", "███", "  █", "███"],
        "4": ["█ █", "█ █", "███", "  █", "  █"], "5": ["███", "█  ", "███", "  █", "███"],
        "6": ["███", "█  ", "███", "█ █", "███"], "7": ["███", "  █", "  █", "  █", "  █"],
        "8": ["███", "█ █", "███", "█ █", "███"], "9": ["███", "█ █", "███", "  █", "███"],
        "-": ["   ", "   ", "███", "   ", "   "], ".": ["   ", "   ", "   ", "   ", " █ "],
        " ": ["   ", "   ", "   ", "   ", "   "], "n": ["   ", "   ", "██ ", "█ █", "█ █"],
        "/": ["  █", "  █", " █ ", "█  ", "█  "], "a": ["   ", "██ ", " ██", "█ █", "███"],
    ]

    static func num(_ v: Double?) -> String { v.map { TailClient.LiveView.format($0, 1) } ?? "--.-" }

    static func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }

    /// Cuts `s` to `n` visible characters (escape sequences do not count).
    static func fit(_ s: String, _ n: Int) -> String {
        var out = "", visible = 0, inEscape = false
        for ch in s {
            if inEscape { out.append(ch); if ch.isLetter { inEscape = false }; continue }
            if ch == "\u{1B}" { inEscape = true; out.append(ch); continue }
            if visible >= n { continue }
            out.append(ch); visible += 1
        }
        return out
    }
}
