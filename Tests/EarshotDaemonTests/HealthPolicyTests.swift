import EarshotCapture
@testable import EarshotDaemon
import Testing

/// READY=1 / WATCHDOG=1 / STATUS= decisions, driven by a hand-made clock.
@Suite("Health policy")
struct HealthPolicyTests {
    static let s: Int64 = 1_000_000_000

    func obs(_ now: Int64, frames: Int = 0, lastFrame: Int64 = 0, _ state: CaptureState = .running) -> HealthPolicy.Observation {
        .init(now: now, frames: frames, lastFrameNs: lastFrame, captureState: state)
    }

    @Test func readyAtTheFirstFrameOnce() {
        var p = HealthPolicy(startNs: 10 * Self.s, watchdogIntervalNs: nil)
        #expect(!p.tick(obs(11 * Self.s)).ready)
        let a = p.tick(obs(12 * Self.s, frames: 1, lastFrame: 12 * Self.s))
        #expect(a.ready && a.readyBecauseFramesFlow)
        #expect(!p.tick(obs(13 * Self.s, frames: 100, lastFrame: 13 * Self.s)).ready, "READY=1 is sent once")
    }

    @Test func readyAfterFiveSecondsWithoutADevice() {
        var p = HealthPolicy(startNs: 0, watchdogIntervalNs: nil)
        #expect(!p.tick(obs(5 * Self.s, .starting)).ready)
        let a = p.tick(obs(5 * Self.s + 1, .starting))
        #expect(a.ready && !a.readyBecauseFramesFlow)
        // A running device without frames is not "waiting for the device": no READY=1 for it.
        var q = HealthPolicy(startNs: 0, watchdogIntervalNs: nil)
        #expect(!q.tick(obs(30 * Self.s, .running)).ready)
    }

    @Test func watchdogOnlyWhileFramesFlowOrTheDeviceIsAwaited() {
        var p = HealthPolicy(startNs: 0, watchdogIntervalNs: Self.s / 2)
        #expect(!p.tick(obs(Self.s / 10)).watchdog, "no ping before READY=1")
        #expect(p.tick(obs(Self.s, frames: 1, lastFrame: Self.s)).watchdog)
        #expect(!p.tick(obs(Self.s + Self.s / 4, frames: 2, lastFrame: Self.s)).watchdog, "within the interval")
        #expect(p.tick(obs(Self.s + Self.s / 2, frames: 3, lastFrame: Self.s)).watchdog)
        // Frames stale (> 2 s) with the device "running": stuck, no ping.
        #expect(!p.tick(obs(4 * Self.s, frames: 3, lastFrame: Self.s, .running)).watchdog)
        #expect(!p.tick(obs(5 * Self.s, frames: 3, lastFrame: Self.s, .stopped)).watchdog)
        // Lost device, retrying with backoff: legitimately waiting, pings go on.
        #expect(p.tick(obs(6 * Self.s, frames: 3, lastFrame: Self.s, .lost)).watchdog)
        #expect(p.tick(obs(7 * Self.s, frames: 3, lastFrame: Self.s, .starting)).watchdog)
        // Frames again.
        #expect(p.tick(obs(8 * Self.s, frames: 4, lastFrame: 8 * Self.s - 1, .running)).watchdog)
    }

    @Test func noWatchdogWithoutAnInterval() {
        var p = HealthPolicy(startNs: 0, watchdogIntervalNs: nil)
        for t in 1...10 { #expect(!p.tick(obs(Int64(t) * Self.s, frames: t, lastFrame: Int64(t) * Self.s)).watchdog) }
    }

    @Test func statusEveryFiveSeconds() {
        var p = HealthPolicy(startNs: 0, watchdogIntervalNs: nil)
        var sent: [Int] = []
        for t in stride(from: 0, through: 20_000, by: 100) {
            let now = 5 * Self.s + Int64(t) * 1_000_000
            if p.tick(obs(now, frames: 1, lastFrame: now)).status { sent.append(t) }
        }
        #expect(sent == [0, 5_000, 10_000, 15_000, 20_000], "\(sent)")
    }

    @Test func framesFlowingIsTwoSeconds() {
        #expect(HealthPolicy.framesFlowing(obs(3 * Self.s, lastFrame: Self.s + 1)))
        #expect(!HealthPolicy.framesFlowing(obs(3 * Self.s, lastFrame: Self.s)))
        #expect(!HealthPolicy.framesFlowing(obs(3 * Self.s, lastFrame: 0)), "no frame yet")
    }

    @Test func statusLineSaysDeviceStateLevelAndCounts() {
        var f = HealthPolicy.StatusFields(device: "hw:CARD=Mic,DEV=0", state: .running, level: -38.24, unit: "dBFS",
                                          frames: 1200, xruns: 1, reconnects: 0, subscribers: 2)
        #expect(HealthPolicy.statusLine(f) == "device=hw:CARD=Mic,DEV=0 state=running level=-38.2 dBFS frames=1200 xruns=1 reconnects=0 subscribers=2")
        f.level = 55.96; f.unit = "dB SPL"; f.subscribers = nil; f.state = .lost
        #expect(HealthPolicy.statusLine(f) == "device=hw:CARD=Mic,DEV=0 state=lost level=56.0 dB SPL frames=1200 xruns=1 reconnects=0")
        f.level = nil
        #expect(!HealthPolicy.statusLine(f).contains("level="), "no level before the first frame")
    }

    @Test func sanitizedSamplesReportedOnceThenEveryTenSeconds() {
        var r = SanitizedSampleReporter()
        func report(_ n: Int, _ c: Int, _ t: Int64) -> Bool { r.shouldReport(nonFinite: n, clamped: c, now: t) }
        #expect(!report(0, 0, Self.s))
        #expect(report(3, 0, 2 * Self.s))
        #expect(!report(5, 1, 5 * Self.s), "within 10 s")
        #expect(report(5, 1, 12 * Self.s))
        #expect(!report(5, 1, 30 * Self.s), "nothing new")
        // A rebuilt pipeline counts from 0: new samples after it are reported (once the interval passed).
        #expect(report(0, 2, 40 * Self.s))
    }
}
