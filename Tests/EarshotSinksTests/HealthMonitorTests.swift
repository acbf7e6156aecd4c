import EarshotDSP
import EarshotPipeline
import Foundation
import Logging
import EarshotRealtime
import Synchronization
import Testing

@testable import EarshotSinks

/// The health sink on a real frame bus: log lines, `health` messages, the state and counters, `/metrics`.
@Suite(.serialized) struct HealthMonitorTests {
    typealias K = HealthTestKit

    @Test func zerosOnTheBusRaiseAndClearSilence() throws {
        let logs = SinkTestKit2.LogStore()
        let publisher = SinkTestKit2.Publisher()
        let changes = Mutex<[[HealthMessage.Kind]]>([])
        let sink = HealthMonitor(configuration: K.short, logger: logs.logger(), publisher: publisher,
                                 onChange: { active in changes.withLock { $0.append(active) } })
        let bus = FrameBus(capacity: 2048, nMels: SinkTestKit2.nMels, nMFCC: 2)
        var frames = try K.frames(K.noise(seconds: 1, rms: 0.01) + [Float](repeating: 0, count: 3 * K.rate) + K.noise(seconds: 2, rms: 0.01))
        // Live-like capture times (the sink also checks how late frames are, for the drift measurement).
        let now = EarshotRealtime.Clock.monotonicNanoseconds()
        for i in frames.indices {
            let shift = now - frames.last!.lastSampleMonotonicNs
            frames[i].monotonicNs += shift; frames[i].lastSampleMonotonicNs += shift
        }
        try sink.start(bus: bus, stream: SinkTestKit2.stream())  // its no_data timer runs from here
        for chunk in stride(from: 0, to: frames.count, by: 100) {
            SinkTestKit2.publish(Array(frames[chunk..<min(chunk + 100, frames.count)]), on: bus)
            Thread.sleep(forTimeInterval: 0.01)
        }
        // The sink judges on its 500 ms batch timer: wait (bounded) for the end of the silence fault.
        #expect(waitUntil(seconds: 3) { publisher.lines(.alert).count >= 2 }, "\(publisher.lines(.alert))")
        #expect(sink.activeFaults.isEmpty)
        #expect(sink.counters.contains { $0.0 == "health_events_silence" && $0.1 == 1 }, "\(sink.counters)")
        let lines = publisher.lines(.alert)
        #expect(lines.count == 2 && lines[0].contains(#""kind":"silence","state":"start""#) && lines[0].contains(#""active":["silence"]"#), "\(lines)")
        #expect(lines.last?.contains(#""state":"end""#) == true && lines.last?.contains(#""active":[]"#) == true)
        let start = logs.all.first { $0.message.hasPrefix("alert=health kind=silence state=start") }
        let end = logs.all.first { $0.message.hasPrefix("alert=health kind=silence state=end") }
        #expect(start?.level == .warning && end?.level == .notice, "\(logs.all.map(\.message))")
        #expect(SinkTestKit2.fields(start?.message ?? "")["active"] == "silence")
        #expect(changes.withLock { $0 } == [[.silence], []])

        // Then nothing arrives: the sink's own timer notices (no_data after 1 s; judged within one 500 ms tick).
        #expect(waitUntil(seconds: 3) { sink.activeFaults == [.noData] }, "\(publisher.lines(.alert))")
        #expect(HealthMonitor.summary(sink.activeFaults) == "no_data")
        sink.stop()
    }

    @Test func metricsExportHealthGaugesAndEventCounters() throws {
        let logs = SinkTestKit2.LogStore()
        let sink = MetricsSink(configuration: MetricsSink.Configuration(enabled: true, listen: nil), logger: logs.logger(),
                               rolling: nil, latency: nil)
        var m = MetricsSnapshot()
        m.health = ["silence": true, "clipping": false]
        m.healthEvents = ["silence": 2, "clipping": 1]
        sink.update(m)
        let text = String(decoding: sink.render(), as: UTF8.self)
        #expect(text.contains(#"earshot_health{kind="silence"} 1"#), "\(text)")
        #expect(text.contains(#"earshot_health{kind="clipping"} 0"#))
        #expect(text.contains(#"earshot_health_events_total{kind="silence"} 2"#))
    }
}
