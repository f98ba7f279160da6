/// One source's applier under `run` and `drain`: what it does next, from what it read of the
/// control state and the staging store. Pure: events and the time in, the next action out; the
/// applier part performs the actions (DESIGN.md §4).
///
/// A step reads the source's position and asks; `.list` is answered with the end LSNs of the
/// batches the listing found after the applied position; each other action ends the step.
///
/// A hold (`verify` comparing the source at one point S) stops STG at exactly the transactions
/// that committed before S: batches that end at or before S apply whole, a batch that runs across
/// S applies only its changes before S (not recorded: it applies whole once the hold is lifted,
/// the LSN guard making the repeat harmless), and nothing after it. Once STG holds exactly S, the
/// applier says so (`holdReached`) and waits.
public struct SourceApplyMachine: Sendable {
    public typealias Instant = ContinuousClock.Instant

    public struct Settings: Sendable, Equatable {
        /// How long the applier waits with nothing to do before it lists the store again (a
        /// replicator's NOTIFY wakes it sooner).
        public var pollInterval: Duration = .seconds(5)
        /// How soon it looks again while a verify's hold waits for the replicator to confirm past
        /// the point: that confirmation (a keepalive's) wakes no one, and the verify waits on it.
        public var holdPollInterval: Duration = .milliseconds(100)
        /// Batches applied in one step: a stop or a pause is looked at between steps.
        public var batchesPerStep = 200

        public init() {}
    }

    /// The control state of the source, read at the start of a step.
    public struct Position: Sendable, Equatable {
        /// This process holds the one-applier lock (no source applies without it).
        public var lockHeld: Bool
        public var paused: Bool
        /// Nil until a snapshot is in STG (changes have nothing to apply to).
        public var applied: LSN?
        /// What the source's replicator has stored or confirmed.
        public var flushed: LSN?
        /// Where STG is to stop, while a verify compares the source there.
        public var hold: LSN?
        /// Where STG was said to stop exactly (the hold reached).
        public var held: LSN?

        public init(lockHeld: Bool, paused: Bool, applied: LSN?, flushed: LSN?, hold: LSN? = nil, held: LSN? = nil) {
            self.lockHeld = lockHeld
            self.paused = paused
            self.applied = applied
            self.flushed = flushed
            self.hold = hold
            self.held = held
        }
    }

    public enum Event: Sendable, Equatable {
        case position(Position)
        /// The end LSNs of the batches the store holds after the applied position, in order.
        case listed([LSN])
    }

    public enum Action: Sendable, Equatable {
        /// List the store's batches after `after`.
        case list(after: LSN)
        /// Apply this many of the batches listed, in LSN order, then step again at once.
        case apply(batches: Int)
        /// Apply of the first batch listed only its changes before `hold` (none, if it begins
        /// after), then say STG holds `hold`.
        case applyBefore(hold: LSN)
        /// STG holds exactly the changes before `hold`: say so, and wait.
        case holdReached(LSN)
        /// Nothing is stored after `from` and the replicator has confirmed up to `to` without an
        /// object (idle heartbeats): STG is current up to `to`.
        case advanceOverIdle(from: LSN, to: LSN)
        /// Nothing to do before `until` (or a wake-up call: a batch stored, a pause lifted).
        case idle(until: Instant)
    }

    public let settings: Settings
    private var position: Position?

    public init(settings: Settings = Settings()) {
        self.settings = settings
    }

    public mutating func handle(_ event: Event, now: Instant) -> Action {
        switch event {
        case .position(let read):
            // Paused by an operator, or no snapshot applied yet: a NOTIFY on the control channel
            // wakes it when that changes.
            guard read.lockHeld, !read.paused, let applied = read.applied else {
                position = nil
                return .idle(until: now + settings.pollInterval)
            }
            if let hold = read.hold, applied >= hold {
                position = nil
                // Everything before the hold is in, nothing after it (the hold came after).
                return read.held == hold ? .idle(until: now + settings.pollInterval) : .holdReached(hold)
            }
            position = read
            return .list(after: applied)
        case .listed(let ends):
            guard let position, let applied = position.applied else { return .idle(until: now + settings.pollInterval) }
            self.position = nil
            guard let hold = position.hold else {
                if !ends.isEmpty { return .apply(batches: min(ends.count, settings.batchesPerStep)) }
                return advanceOrWait(applied: applied, flushed: position.flushed, now: now)
            }
            let before = ends.prefix { $0 <= hold }.count
            if before > 0 { return .apply(batches: min(before, settings.batchesPerStep)) }
            // The next batch runs across the hold, or begins after it.
            if !ends.isEmpty { return position.held == hold ? .idle(until: now + settings.pollInterval) : .applyBefore(hold: hold) }
            // Nothing stored after the applied position: the hold is reached once the replicator
            // has confirmed past it (then no transaction before it is still to come).
            guard let flushed = position.flushed, flushed >= hold else { return .idle(until: now + settings.holdPollInterval) }
            return advanceOrWait(applied: applied, flushed: flushed, now: now)
        }
    }

    private func advanceOrWait(applied: LSN, flushed: LSN?, now: Instant) -> Action {
        // `flushed` was read before the listing, and the replicator records it only after the
        // batches up to it are stored: none is missing, the rest were idle heartbeats.
        if let flushed, flushed > applied { return .advanceOverIdle(from: applied, to: flushed) }
        return .idle(until: now + settings.pollInterval)
    }
}
