/// When each BL model runs under `tributary run` (DESIGN.md §4b): after STG commits, the models
/// whose inputs changed, in dependency order, coalesced to at most one run per model per
/// `minInterval`, so a burst of batches makes one run, not one per batch. A model that fails is
/// tried again after `retryInterval`; it and the models reading it wait meanwhile, the others go
/// on. Pure: events and the time in, the next model to run out.
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
        var lastRun: Instant?
        var failedUntil: Instant?
    }

    public let minInterval: Duration
    public let retryInterval: Duration
    /// Models in running order.
    let models: [TransformModel]
    /// STG table → the models reading it.
    let readers: [String: [String]]
    /// Model → the models reading it.
    let dependants: [String: [String]]
    /// Model → the models it reads.
    let upstream: [String: [String]]
    var states: [String: ModelState]

    public init(models: [TransformModel], minInterval: Duration, retryInterval: Duration) {
        self.models = models
        self.minInterval = minInterval
        self.retryInterval = retryInterval
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
    public mutating func changed(stagingTables: some Sequence<String>) {
        for table in stagingTables {
            for model in readers[table] ?? [] { states[model]?.dirty = true }
        }
    }

    /// Every model looks at its inputs again (a safety net for a missed notification).
    public mutating func changedEverything() {
        for name in states.keys { states[name]?.dirty = true }
    }

    /// - Parameter started: when the run began: runs of a busy model start `minInterval` apart,
    ///   whatever each takes.
    public mutating func finished(_ model: String, _ outcome: Outcome, startedAt started: Instant, now: Instant) {
        states[model]?.lastRun = started
        switch outcome {
        case .changed:
            states[model]?.dirty = false
            states[model]?.failedUntil = nil
            for dependant in dependants[model] ?? [] { states[dependant]?.dirty = true }
        case .unchanged, .waiting:
            states[model]?.dirty = false
            states[model]?.failedUntil = nil
        case .failed:
            // Still dirty: its work is not done. Tried again once the retry interval has passed.
            states[model]?.failedUntil = now + retryInterval
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
            let due = state.lastRun.map { $0 + minInterval } ?? now
            if due <= now { return .run(model.name) }
            earliest = min(earliest ?? due, due)
        }
        return .wait(until: earliest)
    }
}
