import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TributaryCore
import TributaryPostgres

/// Runs one `Part` as a service of the process's `ServiceGroup`: step after step until a graceful
/// shutdown, idle between steps when the part says so (a wake-up call on its doorbell ends the
/// wait), and after a failed step either waits it out (backoff, the part's sessions reset) or
/// ends, as `SupervisionPolicy` decides. The one loop every part of `run` and `drain` runs in.
public struct SupervisedPart<Wrapped: Part>: Service {
    /// What a part's permanent failure does.
    public enum OnPermanentFailure: Sendable {
        /// The process ends with the error.
        case stopProcess
        /// The part stops and says why (`/readyz`, the log); the others go on, until the last of
        /// the `group` has stopped too.
        case park(ParkedParts)
    }

    let part: Wrapped
    let liveness: Liveness
    /// The part's own: set by its graceful shutdown only, so it stops in its turn.
    let stop = StopSignal()
    let doorbell: Doorbell
    let logger: Logger
    let onPermanentFailure: OnPermanentFailure
    let policy: SupervisionPolicy

    /// - Parameter doorbell: rung to wake the part from an idle wait (by another part).
    public init(_ part: Wrapped, liveness: Liveness, logger: Logger, doorbell: Doorbell = Doorbell(),
                onPermanentFailure: OnPermanentFailure = .stopProcess, policy: SupervisionPolicy = SupervisionPolicy()) {
        self.part = part
        self.liveness = liveness
        self.doorbell = doorbell
        self.logger = logger.with(LogKey.part, part.name)
        self.onPermanentFailure = onPermanentFailure
        self.policy = policy
        liveness.register(part.name)
        if case .park(let group) = onPermanentFailure { group.join() }
    }

    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await supervise()
        } onGracefulShutdown: { [stop, doorbell] in
            stop.request()
            doorbell.ring()
        }
    }

    private func supervise() async throws {
        var part = self.part
        var policy = self.policy
        let name = part.name
        let context = PartContext(name: name, liveness: liveness, stop: stop, logger: logger)
        while !stop.isRequested && !Task.isCancelled {
            liveness.beat(name)
            let started = ContinuousClock.now
            // A ring while the step works wakes the wait after it.
            let rings = doorbell.rings
            do {
                switch try await part.step(context) {
                case .again:
                    policy.succeeded()
                case .idle(let until):
                    policy.succeeded()
                    await idle(until: until, since: rings)
                case .finished:
                    await part.finish()
                    return
                }
            } catch {
                // Stopping: a step cut short by the stop (or the group's cancellation) is no failure.
                if Task.isCancelled || (stop.isRequested && error is CancellationError) { break }
                let now = ContinuousClock.now
                switch policy.failed(part.judge(error, now: now), started: started, now: now) {
                case .retry(let delay):
                    if let source = part.source { PipelineMetrics.error(source: source, part: part.kind) }
                    logger.warning("\(name): \(error); trying again in \(String(format: "%.1f", delay.seconds)) s",
                                   metadata: [LogKey.delaySeconds: .stringConvertible(delay.seconds)])
                    liveness.ready(name, false, "interrupted: \(error)")
                    await part.reset()
                    await idle(until: .now + delay, since: doorbell.rings)
                case .stop:
                    if let source = part.source { PipelineMetrics.error(source: source, part: part.kind) }
                    liveness.ready(name, false, "stopped: \(error)")
                    await part.finish()
                    try await stopped(by: error)
                    return
                }
            }
        }
        await part.finish()
    }

    /// Until `deadline`, a stop, or a ring after the count `rings`, beating all along so the wait is
    /// never taken for a hang.
    private func idle(until deadline: ContinuousClock.Instant, since rings: UInt64) async {
        while !stop.isRequested && !Task.isCancelled && ContinuousClock.now < deadline {
            liveness.beat(part.name)
            if await doorbell.wait(until: min(deadline, .now + .seconds(1)), since: rings) { return }
        }
    }

    private func stopped(by error: any Error) async throws {
        switch onPermanentFailure {
        case .stopProcess:
            throw error
        case .park(let group):
            logger.error("\(part.name) stopped: \(error)")
            if let error = error as? PostgresError, error.detailMayHoldData {
                logger.debug("the server's detail", metadata: [LogKey.detail: .string(error.fullDescription)])
            }
            if group.park(part.name, error) { throw group.failure }
            // Parked: idle, ready to stop with the others.
            while !stop.isRequested && !Task.isCancelled {
                liveness.beat(part.name)
                await doorbell.wait(until: .now + .seconds(1))
            }
        }
    }
}

/// Parts that stop alone on a permanent failure (each source's applier: the other sources go on);
/// once every one of them has, the process ends with their errors.
public final class ParkedParts: Sendable {
    private let state = Mutex<(members: Int, parked: [(String, any Error)])>((0, []))

    public init() {}

    func join() { state.withLock { $0.members += 1 } }

    /// True when this was the last member still going.
    func park(_ name: String, _ error: any Error) -> Bool {
        state.withLock { state in
            state.parked.append((name, error))
            return state.parked.count >= state.members
        }
    }

    /// Every parked part's error in one.
    var failure: TributaryError {
        let parked = state.withLock { $0.parked }
        return TributaryError(.stopped, parked.map { "\($0.0) stopped: \($0.1)" }.joined(separator: "; "))
    }
}
