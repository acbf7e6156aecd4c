#if canImport(Glibc)
import Glibc
#endif
import EarshotPlot
import Foundation
import Testing

/// `earshot spectrogram --socket` fed with protocol lines, and the renderer with values no analyzer makes.
@Suite struct SocketSpectrogramTests {
    static func hello(rate: String = "48000", hop: String = "480") -> String {
        #"{"type":"hello","sample_rate":\#(rate),"n_fft":1024,"hop":\#(hop),"mel_band_edges_hz":[0,100,200,400,800,1600],"level_unit":"dBFS","device":"d"}"#
    }

    @Test func collectsTheWindowFromTheFirstFrame() throws {
        var c = SocketSpectrogram(seconds: 1, maxColumns: 500, maxRows: 300)
        try c.apply(line: Array(Self.hello().utf8))
        for i in 0..<150 {
            let t = 1000 + Double(i) * 0.01
            try c.apply(line: Array(#"{"type":"frame","seq":\#(i),"t":\#(t),"laf":-30,"logmel":[-80,-20,-70,-75]}"#.utf8))
        }
        #expect(c.isComplete && c.start == 1000)
        let grid = try #require(c.grid)
        #expect(grid.frames == 100 && grid.columns == 100 && grid.rows == 4)
        #expect(grid.values[5 * 4 + 1] == -20)
        #expect(throws: PlotError.self) { try c.apply(line: Array(#"{"type":"error","code":"unknown_field","message":"no"}"#.utf8)) }
    }

    @Test func hostileHelloAndFramesDoNotTrap() throws {
        var c = SocketSpectrogram(seconds: 3600, maxColumns: 1000, maxRows: 500)
        try c.apply(line: Array(Self.hello(rate: "9223372036854775807", hop: "1").utf8))
        try c.apply(line: Array(#"{"type":"frame","seq":0,"t":5,"laf":1e308,"logmel":[1e308,-1e308,null,0]}"#.utf8))
        try c.apply(line: Array(#"{"type":"onset","t":1e308}"#.utf8))
        let grid = try #require(c.grid)
        #expect(grid.columns == 1000)
        var bad = SocketSpectrogram(seconds: 1, maxColumns: 10, maxRows: 10)
        #expect(throws: PlotError.self) { try bad.apply(line: Array(Self.hello(rate: "0").utf8)) }
        // Draw it: the colour and level ranges cannot be resolved at ±1000 dB extremes mixed — still a picture.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("earshot-hostile-\(getpid()).png").path
        defer { unlink(path) }
        var options = PlotOptions()
        options.levelLabel = "LAF"
        options.showOnsets = true
        let layout = try SpectrogramPlot.writePNG(grid, options: options, to: path)
        #expect(layout.plot.width > 0 && FileManager.default.fileExists(atPath: path))
    }

    @Test func ticksAreBounded() {
        #expect(SpectrogramPlot.niceStep(10, maxTicks: 5) == 2)
        #expect(SpectrogramPlot.hz(1500) == "1.5k" && SpectrogramPlot.hz(8000) == "8k" && SpectrogramPlot.hz(46.9) == "47")
        #expect(SpectrogramPlot.fixed(-0.04, 1) == "0.0" && SpectrogramPlot.fixed(-2.25, 1) == "-2.3")
    }
}
