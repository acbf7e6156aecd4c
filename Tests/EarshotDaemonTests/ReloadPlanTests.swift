@testable import EarshotDaemon
import Testing

/// The reload plan (issue 10 item 3): which step each key takes, restart-only keys, precedence.
@Suite("Reload plan")
struct ReloadPlanTests {
    func plan(_ change: (inout EarshotConfig) -> Void) -> ReloadPlan {
        var new = EarshotConfig()
        change(&new)
        return ReloadPlan(from: EarshotConfig(), to: new)
    }

    @Test func unchangedIsNone() {
        let p = plan { _ in }
        #expect(p.isEmpty && p.action == .none)
        #expect(!p.rebuild && !p.replan && !p.retune && !p.reopen && !p.restartSinks && !p.updateSinks)
    }

    @Test func onsetThresholdsRetune() {
        for change: (inout EarshotConfig) -> Void in [
            { $0.analysis.onset.delta = 4 }, { $0.analysis.onset.waitFrames = 9 },
            { $0.analysis.onset.preMaxFrames = 7 }, { $0.analysis.onset.preAvgFrames = 20 },
        ] {
            let p = plan(change)
            #expect(p.action == .retune, "\(p.keys)")
            #expect(p.retune && !p.replan && !p.rebuild && !p.reopen)
            #expect(p.keys.allSatisfy(ReloadPlan.retunableKeys.contains))
        }
    }

    @Test func lookAheadAndOtherAnalysisKeysReplan() {
        for change: (inout EarshotConfig) -> Void in [
            { $0.analysis.onset.postMaxFrames = 0 }, { $0.analysis.rolloff = 0.8 },
            { $0.analysis.fmax = 7000 }, { $0.analysis.logmelFloorDB = -100 },
        ] {
            let p = plan(change)
            #expect(p.action == .replan, "\(p.keys)")
            #expect(!p.retune && !p.rebuild)
        }
        // A re-plan builds the analyzer with the new onset parameters: no separate retune.
        let both = plan { $0.analysis.rolloff = 0.8; $0.analysis.onset.delta = 4 }
        #expect(both.replan && !both.retune && both.action == .replan)
    }

    @Test func frameShapeRebuilds() {
        for change: (inout EarshotConfig) -> Void in [
            { $0.analysis.nMels = 40 }, { $0.analysis.nMFCC = 20 }, { $0.analysis.nFFT = 2048 }, { $0.analysis.hop = 240 },
            { $0.capture.sampleRate = 44_100; $0.analysis.fmax = 8000 }, { $0.capture.ringSeconds = 8 },
        ] {
            var new = EarshotConfig()
            change(&new)
            #expect(!ReloadPlan.sameFrameShape(EarshotConfig(), new))
            let p = ReloadPlan(from: EarshotConfig(), to: new)
            #expect(p.action == .rebuild && p.rebuild, "\(p.keys)")
            #expect(!p.replan && !p.retune && !p.reopen, "a rebuild does everything itself")
        }
        #expect(ReloadPlan.sameFrameShape(EarshotConfig(), EarshotConfig()))
    }

    /// The level channels size the side ring, the DSP's side scratch and the level meter's filters: 2 → 4
    /// channels, 4 → 6, or picking one of 4 rebuilds; 1 ↔ 2 channels (no level channels either way) reopens.
    @Test func levelChannelsRebuild() {
        func config(_ channels: Int, _ channel: Int? = nil) -> EarshotConfig {
            var c = EarshotConfig()
            c.capture.channels = channels
            c.capture.channel = channel
            return c
        }
        for (old, new) in [(config(2), config(4)), (config(4), config(6)), (config(4), config(4, 1)), (config(1), config(3))] {
            #expect(!ReloadPlan.sameFrameShape(old, new))
            let p = ReloadPlan(from: old, to: new)
            #expect(p.action == .rebuild && p.rebuild, "\(p.keys)")
        }
        let p = ReloadPlan(from: config(1), to: config(2))
        #expect(p.action == .reopen && !p.rebuild, "\(p.keys)")
        #expect(config(4).analyzerConfig.levelChannels == 4 && config(4, 0).analyzerConfig.levelChannels == 0
                && config(2).analyzerConfig.levelChannels == 0)
    }

    @Test func captureKeysReopen() {
        let p = plan { $0.capture.bufferPeriods = 16 }
        #expect(p.action == .reopen && p.reopen && !p.replan && !p.retune)
        let withRetune = plan { $0.capture.bufferPeriods = 16; $0.analysis.onset.delta = 5 }
        #expect(withRetune.reopen && withRetune.retune && withRetune.action == .reopen)
    }

    @Test func sinkSettingsAreLive() {
        let thresholds = plan { $0.alerts.level.thresholdDB = -30; $0.budgets.dspMs = 4 }
        #expect(thresholds.action == .live && thresholds.updateSinks && !thresholds.restartSinks)
        for change: (inout EarshotConfig) -> Void in [
            { $0.rolling.windowsSeconds = [1, 5] }, { $0.levels.calibrationDB = 94 }, { $0.metrics.enabled = true },
            { $0.alerts.level.weighting = .las },
        ] {
            let p = plan(change)
            #expect(p.action == .live && p.restartSinks, "\(p.keys)")
        }
        let logging = plan { $0.logging.level = .debug }
        #expect(logging.action == .live && !logging.restartSinks && !logging.updateSinks)
    }

    @Test func socketAndBackfillWaitForARestart() {
        let p = plan { $0.socket.maxClients = 3; $0.socket.backfillSeconds = 60; $0.alerts.level.thresholdDB = -30 }
        #expect(Set(p.restartOnlyKeys) == ["socket.max_clients", "rolling.backfill_s"])
        #expect(p.config.socket == EarshotConfig().socket)
        #expect(p.config.alerts.level.thresholdDB == -30)
        #expect(p.keys == ["alerts.level.threshold_db"] && p.action == .live)
        let only = plan { $0.socket.path = "/tmp/x.sock" }
        #expect(only.isEmpty && only.action == .none && only.restartOnlyKeys == ["socket.path"])
    }
}
