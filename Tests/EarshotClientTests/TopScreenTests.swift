import EarshotClient
import EarshotProtocol
import Testing

/// `earshot top`'s state and screen, fed with protocol lines (no daemon).
@Suite struct TopScreenTests {
    static let hello = #"{"type":"hello","protocol":1,"daemon_version":"9.9","sample_rate":48000,"n_fft":1024,"hop":480,"n_mels":4,"n_mfcc":0,"mel_band_edges_hz":[0,100,200,400,800,1600],"level_unit":"dBFS","device":"hw:X","onset_lookahead_ms":10,"features":[],"streams":[],"limits":{},"health":"silence"}"#

    static func frame(_ seq: Int, t: Double, laf: Double, logmel: [Double]) -> String {
        #"{"type":"frame","seq":\#(seq),"t":\#(t),"laf":\#(laf),"las":\#(laf - 1),"logmel":[\#(logmel.map { "\($0)" }.joined(separator: ","))],"level_unit":"dBFS"}"#
    }

    func state() -> TopState {
        var s = TopState(threshold: -20, weighting: "laf")
        s.apply(.connected(reconnect: false))
        for line in [Self.hello, Self.frame(0, t: 100, laf: -30, logmel: [-80, -20, -60, -70]),
                     Self.frame(5, t: 100.05, laf: -10, logmel: [-80, -70, -20, -70]),
                     Self.frame(10, t: 101, laf: -40, logmel: [-80, -70, -60, -20]),
                     #"{"type":"rolling","window_s":1,"leq":-31.5,"t":99,"t_end":100}"#,
                     #"{"type":"alert","alert":"level","state":"start","level_db":-18,"threshold_db":-25,"t":100.1,"seq":5,"decided_seq":25,"weighting":"las"}"#,
                     #"{"type":"onset","seq":7,"t":100.07,"strength":9.5,"delay_ms":30,"detected_seq":8}"#,
                     #"{"type":"stats","t":101,"frames":1000,"xruns":2,"reconnects":1,"discontinuities":3,"subscribers":1,"dropped_frames_socket":4,"socket_dropped_messages":1,"level_alerts":1,"onset_alerts":0,"latency_ms":{"dsp":{"count":5,"p50":0.02,"p99":0.04,"max":0.05}},"over_budget":{"dsp":0},"new_counter":7}"#] {
            s.apply(line: Array(line.utf8))
        }
        return s
    }

    @Test func stateFollowsTheMessages() {
        let s = state()
        #expect(s.device == "hw:X" && s.melCentresHz == [100, 200, 400, 800])
        #expect(s.waterfall.count == 3 && s.waterfall[0] == [-80, -70, -60, -20])  // newest first
        #expect(s.laf == -40 && s.las == -41)
        #expect(s.peak == -10)  // held for 3 s
        #expect(s.leq[1] == -31.5)
        #expect(s.threshold == -25 && s.weighting == "las" && s.alertActive)  // the alert's threshold replaces the configuration's
        #expect(s.health == "silence")
        #expect(s.counter("xruns") == 2 && s.droppedTotal == 5)
        #expect(s.alerts.count == 1 && s.onsets.count == 1)
        var later = s
        later.apply(line: Array(Self.frame(400, t: 104.5, laf: -45, logmel: [-80, -80, -80, -80]).utf8))
        #expect(later.peak == -45)  // the hold expired
        later.apply(.disconnected(reason: "Connection refused", retryIn: 0.5))
        #expect(later.connection == .reconnecting(reason: "Connection refused", retryIn: 0.5) && later.laf == nil)
        #expect(later.takeEvents().contains { $0.contains("connection lost") })
        later.apply(line: Array(#"{"type":"health","kind":"clipping","state":"start","t":5,"value":0.2,"threshold":0.01,"active":["silence","clipping"]}"#.utf8))
        #expect(later.health == "silence,clipping" && later.alerts[0].contains("health clipping start"))
        later.apply(line: Array(#"{"type":"health","kind":"clipping","state":"end","t":6,"value":0,"threshold":0.01,"active":[]}"#.utf8))
        #expect(later.health == "ok")
        later.apply(line: Array(#"{"type":"stats","t":7,"frames":1,"health_silence":1,"health_clipping":0,"health_events_silence":2}"#.utf8))
        #expect(later.health == "silence" && later.statsLine?.contains("health silence") == true)
        #expect(later.statsLine?.contains("health_events_silence 2") == true && later.statsLine?.contains("health_silence 1") == false)
    }

    @Test func screenHasEveryPartInBothColourModes() {
        let s = state()
        for (mode, escape) in [(TopScreen.ColorMode.truecolor, "\u{1B}[38;2;"), (.palette256, "\u{1B}[38;5;")] {
            let lines = TopScreen.render(s, width: 80, height: 30, color: mode)
            #expect(lines.count == 30)
            let text = lines.joined(separator: "\n")
            #expect(text.contains(escape), "\(mode)")
            #expect(text.contains("▀"))
            #expect(text.contains("LAS  -41.0 dBFS") && text.contains("peak -10.0") && text.contains("alert threshold -25.0 dBFS (las)"))
            #expect(text.contains("LEVEL ALERT") && text.contains("health silence") && text.contains("xruns 2"))
            #expect(text.contains("onset strength 9.5") && text.contains("level start -18.0 dBFS"))
            #expect(text.contains("stats: frames 1000"))
            for line in lines { #expect(Self.visibleWidth(line) <= 80, "\(line)") }
        }
        #expect(TopScreen.ColorMode(colorterm: "24bit") == .truecolor && TopScreen.ColorMode(colorterm: nil) == .palette256)
        var r = s
        r.apply(.disconnected(reason: "No such file or directory", retryIn: 2))
        #expect(TopScreen.render(r, width: 100, height: 20, color: .truecolor)[0].contains("RECONNECTING in 2.0 s: No such file or directory"))
        #expect(TopScreen.plainLine(r).contains("RECONNECTING"))
        #expect(!TopScreen.plainLine(s).contains("\u{1B}"))
    }

    @Test func tinyTerminalsStillRender() {
        let lines = TopScreen.render(state(), width: 10, height: 3, color: .palette256)
        #expect(lines.count == 6)
    }

    @Test func statsAreReadable() throws {
        let json = try ProtocolJSON.parse(Array(#"{"type":"stats","t":1,"frames":10,"xruns":0,"reconnects":0,"discontinuities":0,"subscribers":1,"dropped_frames_rolling":2,"socket_dropped_messages":0,"level_alerts":0,"onset_alerts":1,"latency_ms":{"end_to_end":{"count":1,"p50":1,"p99":2.5,"max":3}},"over_budget":{"end_to_end":1},"ring_overrun_samples":480}"#.utf8))
        let text = StatsText.summary(json)
        #expect(text.contains("frames 10") && text.contains("dropped 2 frames/0 msgs") && text.contains("end-to-end p99 2.50 ms"))
        #expect(text.contains("over budget 1") && text.contains("ring_overrun_samples 480") && !text.contains("{"))
    }

    static func visibleWidth(_ s: String) -> Int {
        var n = 0, esc = false
        for ch in s {
            if esc { if ch.isLetter { esc = false }; continue }
            if ch == "\u{1B}" { esc = true; continue }
            n += 1
        }
        return n
    }
}

/// Hostile values from the socket: nothing traps, hangs or breaks the scales.
@Suite struct HostileLinesTests {
    @Test func absurdNumbersAreTolerated() {
        var s = TopState()
        let lines = [
            TopScreenTests.hello,
            #"{"type":"frame","seq":0,"t":1e999,"laf":1e999,"logmel":[1e999]}"#,
            #"{"type":"frame","seq":1,"t":1e300,"laf":1e308,"las":-1e308,"logmel":[1e300,-1e300,null,"x"]}"#,
            #"{"type":"frame","seq":2,"t":-5e300,"laf":null,"logmel":[]}"#,
            #"{"type":"dropped","count":9223372036854775807,"stream":"frame"}"#,
            #"{"type":"dropped","count":9223372036854775807,"stream":"frame"}"#,
            #"{"type":"stats","t":1,"dropped_frames_a":9223372036854775807,"dropped_frames_b":9223372036854775807,"over_budget":{"a":9223372036854775807,"b":1}}"#,
            #"{"type":"rolling","window_s":1e308,"leq":1e308}"#,
            #"{"type":"alert","alert":"level","state":"start","threshold_db":-1e308,"t":1e308}"#,
            #"{"type":"onset","t":-1e308,"strength":1e308}"#,
            "not json", "{}", "[]",
        ]
        for line in lines { s.apply(line: Array(line.utf8)) }
        for mode in [TopScreen.ColorMode.truecolor, .palette256] {
            #expect(TopScreen.render(s, width: 90, height: 30, color: mode).count == 30)
        }
        #expect(!TopScreen.plainLine(s).isEmpty)
        #expect(s.peak == 1000 && s.laf == nil && s.threshold == -1000)
    }
}
