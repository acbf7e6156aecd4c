public import EarshotPipeline
import Synchronization

/// The daemon's one route for non-frame messages (rolling results, alerts, status, stats, and whatever later
/// sinks add): every message published here goes, in the order targets were added, to each target — the
/// socket publisher first, then the sinks that consume messages (they register themselves when the
/// ``SinkRegistry`` builds them and are removed when the sink set is stopped).
///
/// Never called from the capture or DSP threads (sinks and the supervisor publish); a target's
/// ``MessagePublisher/publish(_:line:wallNs:)`` must not block (queue and return), so one slow target never
/// holds up the others.
public final class MessageFanout: MessagePublisher {
    private let targets = Mutex<[any MessagePublisher]>([])

    public init() {}

    public func add(_ target: any MessagePublisher) {
        targets.withLock { list in
            if !list.contains(where: { $0 === target }) { list.append(target) }
        }
    }

    public func remove(_ target: any MessagePublisher) {
        targets.withLock { $0.removeAll { $0 === target } }
    }

    /// Targets now registered (for tests and `stats`).
    public var count: Int { targets.withLock { $0.count } }

    public func publish(_ stream: StreamKind, line: [UInt8], wallNs: Int64) {
        let current = targets.withLock { $0 }
        for target in current { target.publish(stream, line: line, wallNs: wallNs) }
    }
}
