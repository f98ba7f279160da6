import Synchronization
import TributaryCore

/// The parts of a long-running process report here (see `PartHealth`); `/healthz`, `/readyz` and
/// the systemd watchdog read it. Shared by every part; thread-safe.
public final class Liveness: Sendable {
    private let health = Mutex(PartHealth())
    /// A part whose loop has not come round for this long (outside declared work) is stalled.
    public let stallLimit: Duration

    public init(stallLimit: Duration = .seconds(60)) {
        self.stallLimit = stallLimit
    }

    public func register(_ part: String) { health.withLock { $0.register(part, now: .now) } }

    public func beat(_ part: String) { health.withLock { $0.beat(part, now: .now) } }

    public func ready(_ part: String, _ ready: Bool, _ reason: String) { health.withLock { $0.ready(part, ready, reason: reason, now: .now) } }

    /// Runs `work` marked as a long piece of work of `part`.
    public func working<T>(_ part: String, _ work: () async throws -> T) async rethrows -> T {
        health.withLock { $0.working(part, true, now: .now) }
        defer { health.withLock { $0.working(part, false, now: .now) } }
        return try await work()
    }

    public var stalled: [String] { health.withLock { $0.stalled(now: .now, limit: stallLimit) } }
    public var notReady: [(part: String, reason: String)] { health.withLock { $0.notReady } }
    public var wasReady: Bool { health.withLock { $0.wasReady } }
    public var description: [String] { health.withLock { $0.describe(now: .now) } }
}

extension Optional where Wrapped == Liveness {
    func beat(_ part: String) { self?.beat(part) }
    func ready(_ part: String, _ ready: Bool, _ reason: String) { self?.ready(part, ready, reason) }
}
