#if canImport(Glibc)
import Glibc
#endif
internal import CCairo
import EarshotClient

/// A picture could not be made or written; the description says why.
public struct PlotError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// What to draw around a ``SpectrogramGrid``.
public struct PlotOptions: Sendable {
    public var width = 1200
    public var height = 600
    /// Colours span `[max − dbRange, max]` dB; quieter cells are drawn with the darkest colour.
    public var dbRange = 80.0
    public var title = ""
    public var timeLabel = "time (s)"
    /// The level panel's axis label (e.g. `LAF (dBFS)`); nil: no level panel.
    public var levelLabel: String?
    /// Draw a marker at every column with an onset.
    public var showOnsets = false

    public init() {}

    /// Smallest and largest accepted picture sizes (pixels).
    public static let minWidth = 320, minHeight = 200, maxSide = 8192
}

/// Where the parts of the picture are (pixels, origin top left).
public struct PlotLayout: Sendable, Equatable {
    public struct Rect: Sendable, Equatable {
        public var x: Int, y: Int, width: Int, height: Int
    }
    /// The spectrogram itself: column `x` of the plot is grid column `x * columns / width`, row `y` (from the
    /// top) is grid row `(height - 1 - y) * rows / height`.
    public var plot: Rect
    public var colorBar: Rect
    public var level: Rect?

    public init(width: Int, height: Int, level: Bool) {
        let left = 80, right = 104, top = 36, bottom = 50
        let w = max(16, width - left - right)
        let available = max(32, height - top - bottom)
        var plotHeight = available
        var levelRect: Rect?
        if level {
            let lh = max(40, available / 5)
            plotHeight = max(16, available - lh - 12)
            levelRect = Rect(x: left, y: top + plotHeight + 12, width: w, height: lh)
        }
        plot = Rect(x: left, y: top, width: w, height: plotHeight)
        colorBar = Rect(x: left + w + 16, y: top, width: 16, height: plotHeight)
        self.level = levelRect
    }

    /// `plot x=… y=… w=… h=…` (printed by `earshot spectrogram`).
    public var summary: String {
        "plot x=\(plot.x) y=\(plot.y) w=\(plot.width) h=\(plot.height)"
    }
}

/// Draws a ``SpectrogramGrid`` with Cairo — the spectrogram in the magma colour map, a time axis in seconds,
/// a frequency axis in Hz on the true scale of the bins (mel or linear), a dB colour bar, a title, and
/// optionally onset markers and a level trace — and writes it as PNG (`cairo_surface_write_to_png`).
public enum SpectrogramPlot {
    /// Renders `grid` into a PNG at `path`; returns the layout used.
    @discardableResult
    public static func writePNG(_ grid: SpectrogramGrid, options: PlotOptions, to path: String) throws(PlotError) -> PlotLayout {
        let layout = PlotLayout(width: options.width, height: options.height, level: options.levelLabel != nil)
        guard CEarshot_cairo_load() == 1 else { throw PlotError(String(cString: CEarshot_cairo_error())) }
        guard let surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, Int32(options.width), Int32(options.height)),
              cairo_surface_status(surface) == CAIRO_STATUS_SUCCESS
        else { throw PlotError("cannot create a \(options.width)x\(options.height) image") }
        defer { cairo_surface_destroy(surface) }
        guard let cr = cairo_create(surface) else { throw PlotError("cannot create a Cairo context") }
        defer { cairo_destroy(cr) }
        draw(grid, options: options, layout: layout, cr: cr)
        cairo_surface_flush(surface)
        let status = cairo_surface_write_to_png(surface, path)
        guard status == CAIRO_STATUS_SUCCESS else {
            let why = status == CAIRO_STATUS_WRITE_ERROR ? String(cString: strerror(errno)) : String(cString: cairo_status_to_string(status))
            throw PlotError("\(path): cannot write the PNG: \(why)")
        }
        return layout
    }

    static func draw(_ grid: SpectrogramGrid, options: PlotOptions, layout: PlotLayout, cr: OpaquePointer) {
        cairo_set_source_rgb(cr, 1, 1, 1)
        cairo_paint(cr)
        cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL)
        let top = grid.maximum ?? 0
        let range = max(1, options.dbRange.isFinite ? options.dbRange : 80)
        // Values are dB of finite powers (the analyzer floors them); a range a Double cannot resolve at that
        // magnitude (only from a hostile socket) falls back to [-range, 0].
        var (vmin, vmax) = (Double(top) - range, Double(top))
        if !(vmax - vmin > 0.5) { (vmin, vmax) = (-range, 0) }
        drawCells(grid, layout.plot, vmin: vmin, vmax: vmax, cr: cr)
        let p = layout.plot
        setBlack(cr)
        cairo_set_line_width(cr, 1)
        cairo_rectangle(cr, Double(p.x) - 0.5, Double(p.y) - 0.5, Double(p.width) + 1, Double(p.height) + 1)
        cairo_stroke(cr)

        // Time axis (under the level panel when there is one).
        let timeRect = layout.level ?? p
        cairo_set_font_size(cr, 12)
        let span = grid.end - grid.start
        let tStep = niceStep(span, maxTicks: max(2, p.width / 90))
        let decimals = tStep >= 1 ? 0 : tStep >= 0.1 ? 1 : 2
        for t in ticks(grid.start, grid.end, tStep) {
            let x = Double(p.x) + (t - grid.start) / span * Double(p.width)
            for r in [p] + (layout.level.map { [$0] } ?? []) {
                line(cr, x, Double(r.y + r.height), x, Double(r.y + r.height) + 5)
            }
            text(cr, fixed(t, decimals), x, Double(timeRect.y + timeRect.height) + 8, h: 0.5, v: 0)
        }
        text(cr, options.timeLabel, Double(p.x) + Double(p.width) / 2, Double(options.height) - 6, h: 0.5, v: 1)

        // Frequency axis.
        var hzLabel = "frequency (Hz)"
        switch grid.scale {
        case .mel(let centres):
            hzLabel = "frequency (Hz, mel scale)"
            let n = centres.count
            let m = max(2, min(n, p.height / 40))
            var last = -1
            for k in 0..<m {
                let i = n == 1 ? 0 : Int((Double(k) * Double(n - 1) / Double(m - 1)).rounded())
                if i == last { continue }
                last = i
                let y = Double(p.y + p.height) - (Double(i) + 0.5) / Double(n) * Double(p.height)
                line(cr, Double(p.x) - 5, y, Double(p.x), y)
                text(cr, hz(centres[i]), Double(p.x) - 8, y, h: 1, v: 0.5)
            }
        case .linear(let binHz, let bins):
            let fmax = Double(bins - 1) * binHz
            let step = niceStep(fmax, maxTicks: max(2, p.height / 40))
            for f in ticks(0, fmax, step) {
                let y = Double(p.y + p.height) - (f / binHz + 0.5) / Double(bins) * Double(p.height)
                line(cr, Double(p.x) - 5, y, Double(p.x), y)
                text(cr, hz(f), Double(p.x) - 8, y, h: 1, v: 0.5)
            }
        }
        cairo_save(cr)
        cairo_translate(cr, 14, Double(p.y) + Double(p.height) / 2)
        cairo_rotate(cr, -Double.pi / 2)
        text(cr, hzLabel, 0, 0, h: 0.5, v: 0.5)
        cairo_restore(cr)

        drawColorBar(layout.colorBar, vmin: vmin, vmax: vmax, cr: cr)
        if options.showOnsets { drawOnsets(grid, p, cr: cr) }
        if let r = layout.level, let label = options.levelLabel { drawLevel(grid, r, label: label, cr: cr) }

        cairo_set_font_size(cr, 14)
        setBlack(cr)
        text(cr, options.title, Double(options.width) / 2, 10, h: 0.5, v: 0)
    }

    /// The cells, pixel by pixel (rows and columns mapped as ``PlotLayout/plot`` says).
    static func drawCells(_ grid: SpectrogramGrid, _ p: PlotLayout.Rect, vmin: Double, vmax: Double, cr: OpaquePointer) {
        guard let img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, Int32(p.width), Int32(p.height)) else { return }
        defer { cairo_surface_destroy(img) }
        guard cairo_surface_status(img) == CAIRO_STATUS_SUCCESS, let data = cairo_image_surface_get_data(img) else { return }
        let stride = Int(cairo_image_surface_get_stride(img))
        // A column nothing fell into (rounding of frame times to columns) shows the previous one; a longer
        // run of empty columns (a gap in a live stream) stays empty.
        var source = [Int](repeating: -1, count: grid.columns)
        var lastFilled = -1
        for c in 0..<grid.columns {
            if grid.values[c * grid.rows].isFinite { lastFilled = c }
            source[c] = lastFilled >= 0 && c - lastFilled <= 2 ? lastFilled : -1
        }
        var palette = [UInt32](repeating: 0, count: 256)
        for i in 0..<256 {
            let (r, g, b) = Magma.rgb(i)
            palette[i] = UInt32(r) << 16 | UInt32(g) << 8 | UInt32(b)
        }
        let empty: UInt32 = 0xD8D8D8
        let scale = 255 / max(1e-6, vmax - vmin)
        grid.values.withUnsafeBufferPointer { v in
            for y in 0..<p.height {
                let r = (p.height - 1 - y) * grid.rows / p.height
                let rowPtr = UnsafeMutableRawPointer(data + y * stride).assumingMemoryBound(to: UInt32.self)
                for x in 0..<p.width {
                    let c = source[x * grid.columns / p.width]
                    guard c >= 0 else { rowPtr[x] = empty; continue }
                    let value = Double(v[c * grid.rows + r])
                    guard value.isFinite else { rowPtr[x] = empty; continue }
                    let i = Int(((value - vmin) * scale).rounded())
                    rowPtr[x] = palette[min(255, max(0, i))]
                }
            }
        }
        cairo_surface_mark_dirty(img)
        cairo_set_source_surface(cr, img, Double(p.x), Double(p.y))
        cairo_paint(cr)
    }

    static func drawColorBar(_ r: PlotLayout.Rect, vmin: Double, vmax: Double, cr: OpaquePointer) {
        for y in 0..<r.height {
            let i = Int((Double(r.height - 1 - y) / Double(max(1, r.height - 1)) * 255).rounded())
            let (cr8, cg8, cb8) = Magma.rgb(i)
            cairo_set_source_rgb(cr, Double(cr8) / 255, Double(cg8) / 255, Double(cb8) / 255)
            cairo_rectangle(cr, Double(r.x), Double(r.y + y), Double(r.width), 1)
            cairo_fill(cr)
        }
        setBlack(cr)
        cairo_rectangle(cr, Double(r.x) - 0.5, Double(r.y) - 0.5, Double(r.width) + 1, Double(r.height) + 1)
        cairo_stroke(cr)
        cairo_set_font_size(cr, 11)
        let step = niceStep(vmax - vmin, maxTicks: max(2, r.height / 40))
        for v in ticks(vmin, vmax, step) {
            let y = Double(r.y + r.height) - (v - vmin) / (vmax - vmin) * Double(r.height)
            line(cr, Double(r.x + r.width), y, Double(r.x + r.width) + 4, y)
            text(cr, fixed(v, step >= 1 ? 0 : 1), Double(r.x + r.width) + 7, y, h: 0, v: 0.5)
        }
        text(cr, "dB", Double(r.x) + Double(r.width) / 2, Double(r.y) - 6, h: 0.5, v: 1)
    }

    static func drawOnsets(_ grid: SpectrogramGrid, _ p: PlotLayout.Rect, cr: OpaquePointer) {
        for c in 0..<grid.columns where grid.onsets[c] {
            let x = Double(p.x) + (Double(c) + 0.5) / Double(grid.columns) * Double(p.width)
            // A triangle above the plot pointing at the onset's column (nothing drawn over the cells).
            setBlack(cr)
            cairo_move_to(cr, x - 4, Double(p.y) - 9)
            cairo_line_to(cr, x + 4, Double(p.y) - 9)
            cairo_line_to(cr, x, Double(p.y) - 2)
            cairo_close_path(cr)
            cairo_fill(cr)
        }
    }

    static func drawLevel(_ grid: SpectrogramGrid, _ r: PlotLayout.Rect, label: String, cr: OpaquePointer) {
        var lo = Double.infinity, hi = -Double.infinity
        for c in 0..<grid.columns where grid.levelLow[c].isFinite {
            lo = min(lo, Double(grid.levelLow[c])); hi = max(hi, Double(grid.levelHigh[c]))
        }
        if !lo.isFinite { lo = -100; hi = 0 }
        if hi - lo < 10 { let mid = (hi + lo) / 2; lo = mid - 5; hi = mid + 5 }
        if !(hi - lo >= 1) || !(hi - lo).isFinite { lo = -100; hi = 0 }  // magnitudes a Double cannot resolve
        let step = niceStep(hi - lo, maxTicks: max(2, r.height / 25))
        lo = (lo / step).rounded(.down) * step
        hi = (hi / step).rounded(.up) * step
        func y(_ v: Double) -> Double { Double(r.y + r.height) - (v - lo) / (hi - lo) * Double(r.height) }
        cairo_set_source_rgb(cr, 0.96, 0.96, 0.96)
        cairo_rectangle(cr, Double(r.x), Double(r.y), Double(r.width), Double(r.height))
        cairo_fill(cr)
        cairo_set_source_rgb(cr, 0.75, 0.1, 0.1)
        cairo_set_line_width(cr, 1.5)
        var started = false
        var lastColumn = -10
        for x in 0..<r.width {
            let c = x * grid.columns / r.width
            guard grid.levelLow[c].isFinite else {
                if c - lastColumn > 2 { started = false }  // a gap, not a column rounding missed
                continue
            }
            lastColumn = c
            let (a, b) = (y(Double(grid.levelLow[c])), y(Double(grid.levelHigh[c])))
            if started { cairo_line_to(cr, Double(r.x + x) + 0.5, a) } else { cairo_move_to(cr, Double(r.x + x) + 0.5, a) }
            cairo_line_to(cr, Double(r.x + x) + 0.5, b)
            started = true
        }
        cairo_stroke(cr)
        cairo_set_line_width(cr, 1)
        setBlack(cr)
        cairo_rectangle(cr, Double(r.x) - 0.5, Double(r.y) - 0.5, Double(r.width) + 1, Double(r.height) + 1)
        cairo_stroke(cr)
        cairo_set_font_size(cr, 11)
        for v in ticks(lo, hi, step) {
            line(cr, Double(r.x) - 5, y(v), Double(r.x), y(v))
            text(cr, fixed(v, 0), Double(r.x) - 8, y(v), h: 1, v: 0.5)
        }
        text(cr, label, Double(r.x) + 6, Double(r.y) + 4, h: 0, v: 0)
    }

    // MARK: helpers

    static func setBlack(_ cr: OpaquePointer) { cairo_set_source_rgb(cr, 0, 0, 0) }

    static func line(_ cr: OpaquePointer, _ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double) {
        cairo_move_to(cr, x0, y0)
        cairo_line_to(cr, x1, y1)
        cairo_stroke(cr)
    }

    /// Draws `s` with its anchor at (x, y): `h` 0/0.5/1 = left/centre/right, `v` 0/0.5/1 = top/middle/bottom.
    static func text(_ cr: OpaquePointer, _ s: String, _ x: Double, _ y: Double, h: Double, v: Double) {
        var e = cairo_text_extents_t()
        cairo_text_extents(cr, s, &e)
        cairo_move_to(cr, x - e.width * h - e.x_bearing, y - e.height * v - e.y_bearing)
        cairo_show_text(cr, s)
    }

    /// The multiples of `step` in `[lo, hi]` (at most 200; none when the values are not usable, e.g. a step
    /// too small to move a value of that magnitude).
    static func ticks(_ lo: Double, _ hi: Double, _ step: Double) -> [Double] {
        guard lo.isFinite, hi.isFinite, step.isFinite, step > 0, hi >= lo, (hi - lo) / step <= 200 else { return [] }
        let first = (lo / step).rounded(.up)
        guard first.isFinite, abs(first) < 1e15 else { return [] }
        var out: [Double] = []
        var k = first
        while k * step <= hi + step * 1e-9, out.count < 200 { out.append(k * step); k += 1 }
        return out
    }

    /// A 1-2-5 step giving at most `maxTicks` ticks over `span`.
    public static func niceStep(_ span: Double, maxTicks: Int) -> Double {
        guard span.isFinite, span > 0 else { return 1 }
        let raw = span / Double(max(1, maxTicks))
        let mag = pow(10, (log10(raw)).rounded(.down))
        for m in [1.0, 2, 5, 10] where m * mag >= raw { return m * mag }
        return 10 * mag
    }

    /// `125`, `1.5k`, `8k`.
    public static func hz(_ f: Double) -> String {
        if f < 1000 { return fixed(f, 0) }
        let k = f / 1000
        return (abs(k - k.rounded()) < 0.05 ? fixed(k, 0) : fixed(k, 1)) + "k"
    }

    /// `v` with `decimals` digits after the point.
    public static func fixed(_ v: Double, _ decimals: Int) -> String {
        guard v.isFinite else { return "n/a" }
        let scale = pow(10, Double(decimals))
        let n = Int64((abs(v) * scale).rounded())
        let sign = v < 0 && n != 0 ? "-" : ""
        let whole = n / Int64(scale)
        guard decimals > 0 else { return "\(sign)\(whole)" }
        var frac = String(n % Int64(scale))
        while frac.count < decimals { frac = "0" + frac }
        return "\(sign)\(whole).\(frac)"
    }
}
