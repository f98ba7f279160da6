import Logging
import TributaryCore

/// One long-running part of a pipeline (a source's replicator, a source's applier, the applier's
/// lock, the BL models, the object sync, the collector, the status refresher, a drain's watch): a
/// body that decides and does one step at a time. Its supervisor (`SupervisedPart`) owns what
/// every part needs alike: the stop, liveness, waiting out temporary failures with backoff, and
/// reconnecting (by `reset`, after which the next step opens its sessions again).
public protocol Part: Sendable {
    /// Its kind among the process's parts (`replicate`, `apply`, `transform`): metrics and logs.
    var kind: String { get }
    /// The source it serves, if it serves one.
    var source: String? { get }

    /// Decides and does one step.
    mutating func step(_ context: PartContext) async throws -> PartStep

    /// How this part takes a failure of its step (by default: temporary when `TemporaryFailure`
    /// says so, permanent otherwise).
    mutating func judge(_ error: any Error, now: ContinuousClock.Instant) -> SupervisionPolicy.Failure

    /// After a failed step: closes what the part holds (the next step opens it again).
    mutating func reset() async

    /// The part stops: closes everything it holds.
    mutating func finish() async
}

extension Part {
    /// `replicate qvp`, `apply`: how liveness, `/readyz` and the logs name the part.
    public var name: String { source.map { "\(kind) \($0)" } ?? kind }

    public func judge(_ error: any Error, now: ContinuousClock.Instant) -> SupervisionPolicy.Failure {
        TemporaryFailure.matches(error) ? .temporary : .permanent
    }

    public mutating func reset() async {}

    public mutating func finish() async { await reset() }
}

/// What a part says after a step.
public enum PartStep: Sendable, Equatable {
    /// Step again at once.
    case again
    /// Nothing to do before this time, a wake-up call or a stop.
    case idle(until: ContinuousClock.Instant)
    /// The part's work is done: the process ends gracefully (a drain that reached its end).
    case finished
}

/// What a part's step may use of its supervisor.
public struct PartContext: Sendable {
    public let name: String
    public let liveness: Liveness
    /// Set when the process stops gracefully: a step in a long piece of work ends at its next
    /// safe point.
    public let stop: StopSignal
    public let logger: Logger

    /// The part is doing its job (`/readyz`), doing what `reason` says.
    public func ready(_ reason: String) { liveness.ready(name, true, reason) }

    /// The part is not doing its job, for `reason`.
    public func notReady(_ reason: String) { liveness.ready(name, false, reason) }

    /// The part's loop came round (for a step that loops inside).
    public func beat() { liveness.beat(name) }

    /// Runs `work` as a long piece of work the watchdog does not take for a hang.
    public func working<T>(_ work: () async throws -> T) async rethrows -> T {
        try await liveness.working(name, work)
    }
}
