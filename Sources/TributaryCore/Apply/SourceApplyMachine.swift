/// One source's applier under `run` and `drain`: what it does next, from what it read of the
/// control state and the staging store. Pure: events and the time in, the next action out; the
/// applier part performs the actions (DESIGN.md §4).
///
/// A step reads the source's position and asks; `.list` is answered with the batches the listing
/// found after the applied position; each other action ends the step.
public struct SourceApplyMachine: Sendable {
    public typealias Instant = ContinuousClock.Instant

    public struct Settings: Sendable, Equatable {
        /// How long the applier waits with nothing to do before it lists the store again (a
        /// replicator's NOTIFY wakes it sooner).
        public var pollInterval: Duration = .seconds(5)
        /// Batches applied in one step: a stop or a pause is looked at between steps.
        public var batchesPerStep = 200

        public init() {}
    }

    public enum Event: Sendable, Equatable {
        /// The control state of the source, read at the start of a step. `lockHeld`: this process
        /// holds the one-applier lock (no source applies without it); `applied` is nil until a
        /// snapshot is in STG; `flushed` is what its replicator has stored or confirmed.
        case position(lockHeld: Bool, paused: Bool, applied: LSN?, flushed: LSN?)
        /// How many batches the store holds after the applied position.
        case listed(waiting: Int)
    }

    public enum Action: Sendable, Equatable {
        /// List the store's batches after `after`.
        case list(after: LSN)
        /// Apply up to this many of the batches listed, in LSN order, then step again at once.
        case apply(batches: Int)
        /// Nothing is stored after `from` and the replicator has confirmed up to `to` without an
        /// object (idle heartbeats): STG is current up to `to`.
        case advanceOverIdle(from: LSN, to: LSN)
        /// Nothing to do before `until` (or a wake-up call: a batch stored, a pause lifted).
        case idle(until: Instant)
    }

    public let settings: Settings
    private var position: (applied: LSN, flushed: LSN?)?

    public init(settings: Settings = Settings()) {
        self.settings = settings
    }

    public mutating func handle(_ event: Event, now: Instant) -> Action {
        switch event {
        case .position(let lockHeld, let paused, let applied, let flushed):
            // Paused by an operator, or no snapshot applied yet (changes have nothing to apply to):
            // a NOTIFY on the control channel wakes it when that changes.
            guard lockHeld, !paused, let applied else {
                position = nil
                return .idle(until: now + settings.pollInterval)
            }
            position = (applied, flushed)
            return .list(after: applied)
        case .listed(let waiting):
            guard let position else { return .idle(until: now + settings.pollInterval) }
            self.position = nil
            if waiting > 0 { return .apply(batches: min(waiting, settings.batchesPerStep)) }
            // `flushed` was read before the listing, and the replicator records it only after the
            // batches up to it are stored: none is missing, the rest were idle heartbeats.
            if let flushed = position.flushed, flushed > position.applied {
                return .advanceOverIdle(from: position.applied, to: flushed)
            }
            return .idle(until: now + settings.pollInterval)
        }
    }
}
