/// When each BL model runs under `tributary run` (DESIGN.md §4b): after STG commits, the models
/// whose inputs changed, in dependency order, coalesced to at most one run per model per
/// `minInterval`, so a burst of batches makes one run, not one per batch. A model that fails is
/// tried again after `retryInterval`; it and the models reading it wait meanwhile, the others go
/// on. While the applier works through a backlog (`catchUpBacklog`), runs are held back (up to `catchUpDeferral`
/// after a model has work): STG catches up first, at full speed, and BL then takes the whole
/// backlog in one run, where running beside the applier would have halved its rate (on a small
/// target) and evaluated keys that were about to change again. Pure: events and the time in, the
/// next model to run out.
public struct TransformScheduler: Sendable {
    public typealias Instant = ContinuousClock.Instant

    public enum Decision: Sendable, Equatable {
        case run(String)
        /// Nothing is due before this time (or before a new event, if nil).
        case wait(until: Instant?)
    }

    public enum Outcome: Sendable, Equatable {
        /// The run wrote rows: the models reading this one have work.
        case changed
        /// The run found nothing to do, or its writes changed no row.
        case unchanged
        case failed
        /// An input is not there yet (its source not snapshotted): like nothing to do, tried again later.
        case waiting
    }

    struct ModelState: Sendable {
        var dirty = true
        /// When it last became dirty: deferral during a catch-up counts from here.
        var dirtySince: Instant?
        var lastRun: Instant?
        var failedUntil: Instant?
    }

    public let minInterval: Duration
    public let retryInterval: Duration
    /// How long a model's work may wait while the applier catches up.
    public let catchUpDeferral: Duration
    /// A backlog is taken as gone once the applier has said nothing for this long.
    static let backlogHoldover: Duration = .seconds(5)
    /// Batches still to apply from which the applier is catching up (after a pause, a restart, a
    /// snapshot's load) rather than following: at the default `max_age`, ten seconds of changes.
    /// A few batches in hand is how the applier follows a busy source (the next batch is staged,
    /// and loaded ahead, while one merges); holding the models back then held BL a whole
    /// `catchUpDeferral` behind STG for as long as the load lasted (bench-breadth: commit → BL p99
    /// 37 s with STG's at 10 s).
    public static let catchUpBacklog = 20
    /// Per source, until when the applier is known to have a backlog of its batches (it applies
    /// one source's batches, then the next's: one source done is not the catch-up done).
    var catchingUp: [String: Instant] = [:]
    /// Models in running order.
    let models: [TransformModel]
    /// STG table → the models reading it.
    let readers: [String: [String]]
    /// Model → the models reading it.
    let dependants: [String: [String]]
    /// Model → the models it reads.
    let upstream: [String: [String]]
    var states: [String: ModelState]

    public init(models: [TransformModel], minInterval: Duration, retryInterval: Duration, catchUpDeferral: Duration = .zero) {
        self.models = models
        self.minInterval = minInterval
        self.retryInterval = retryInterval
        self.catchUpDeferral = catchUpDeferral
        let byTable = Dictionary(uniqueKeysWithValues: models.map { ($0.table, $0.name) })
        var readers: [String: [String]] = [:], dependants: [String: [String]] = [:], upstream: [String: [String]] = [:]
        for model in models {
            for input in model.inputs {
                if let writer = byTable[input.table] {
                    dependants[writer, default: []].append(model.name)
                    upstream[model.name, default: []].append(writer)
                } else {
                    readers[input.table.name, default: []].append(model.name)
                }
            }
        }
        self.readers = readers
        self.dependants = dependants
        self.upstream = upstream
        states = Dictionary(uniqueKeysWithValues: models.map { ($0.name, ModelState()) })
    }

    /// STG tables changed (an applied batch, a loaded snapshot): the models reading them have work.
    /// `backlog`: batches the applier still has in hand after this one.
    public mutating func changed(source: String, stagingTables: some Sequence<String>, backlog: Int = 0, now: Instant) {
        let catchUp = backlog >= Self.catchUpBacklog
        catchingUp[source] = catchUp ? now + Self.backlogHoldover : nil
        if catchUp {
            // Work from before the catch-up began (at start, every model) counts from now.
            for name in states.keys where states[name]?.dirty == true && states[name]?.dirtySince == nil { states[name]?.dirtySince = now }
        }
        for table in stagingTables {
            for model in readers[table] ?? [] { markDirty(model, now: now) }
        }
    }

    /// The applier has a backlog it has not begun to report (found at start-up, before its first
    /// batch): models wait as they would after a notification saying so.
    public mutating func applierBehind(sources: [String], now: Instant) {
        for source in sources { changed(source: source, stagingTables: [], backlog: Self.catchUpBacklog, now: now) }
    }

    /// Every model looks at its inputs again (a safety net for a missed notification).
    public mutating func changedEverything(now: Instant) {
        for name in states.keys { markDirty(name, now: now) }
    }

    private mutating func markDirty(_ model: String, now: Instant) {
        if states[model]?.dirty == false || states[model]?.dirtySince == nil { states[model]?.dirtySince = now }
        states[model]?.dirty = true
    }

    /// - Parameter started: when the run began: runs of a busy model start `minInterval` apart,
    ///   whatever each takes.
    public mutating func finished(_ model: String, _ outcome: Outcome, startedAt started: Instant, now: Instant) {
        states[model]?.lastRun = started
        switch outcome {
        case .changed:
            states[model]?.dirty = false
            states[model]?.failedUntil = nil
            for dependant in dependants[model] ?? [] { markDirty(dependant, now: now) }
        case .unchanged, .waiting:
            states[model]?.dirty = false
            states[model]?.failedUntil = nil
        case .failed:
            // Still dirty: its work is not done. Tried again once the retry interval has passed.
            let retryAt = now + retryInterval
            states[model]?.failedUntil = retryAt
        }
    }

    /// Whether `model` or a model it reads (at any depth) is failed and not yet due for a retry.
    func blocked(_ model: String, now: Instant) -> Bool {
        if let until = states[model]?.failedUntil, until > now { return true }
        return (upstream[model] ?? []).contains { blocked($0, now: now) }
    }

    /// Whether a model it reads still has work: it runs first.
    func waitsForUpstream(_ model: String) -> Bool {
        (upstream[model] ?? []).contains { states[$0]?.dirty == true || waitsForUpstream($0) }
    }

    public func next(now: Instant) -> Decision {
        var earliest: Instant?
        for model in models {
            guard let state = states[model.name], state.dirty else { continue }
            if blocked(model.name, now: now) {
                if let until = state.failedUntil { earliest = min(earliest ?? until, until) }
                continue
            }
            if waitsForUpstream(model.name) { continue }
            var due = state.lastRun.map { $0 + minInterval } ?? now
            if let until = catchingUp.values.filter({ $0 > now }).min() {
                let deferred = (state.dirtySince ?? now) + catchUpDeferral
                if deferred > due {
                    // Held back: due at the deferral's end, or as soon as the backlog is gone.
                    due = deferred
                    earliest = min(earliest ?? until, until)
                }
            }
            if due <= now { return .run(model.name) }
            earliest = min(earliest ?? due, due)
        }
        return .wait(until: earliest)
    }
}
