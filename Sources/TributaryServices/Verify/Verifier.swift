import Foundation
import Logging
import TributaryCore
import TributaryPostgres
import TributaryStorage

/// `tributary verify` (and the end of a drain): every source table against its STG table, then the
/// key-indicator checks, the relationships of the BL models and the object files.
///
/// Each source is compared at one exact point S, while it stays live: a temporary logical slot
/// with an exported snapshot gives S and a snapshot that sees exactly the transactions committed
/// before it; the source's applier (`run`'s, or this process's when nobody applies) is asked to
/// hold STG at S (`SourceApplyMachine`), and once it says it does, the source under the snapshot
/// and STG are compared, and the hold is lifted. The other sources go on meanwhile (and are
/// compared at the same time, each at its own point). A drained
/// source is compared as it is (read-only since its drain); `hold: false` compares now-with-now,
/// again up to `rechecks` times while rows may be in flight.
public struct Verifier: Sendable {
    public struct Options: Sendable {
        /// Compare each source at one point, holding its STG there meanwhile.
        public var hold = true
        /// Without a hold: a differing table is compared again up to this many times, a second apart.
        public var rechecks = 3
        /// The longest the applier may take to reach the point.
        public var holdTimeout: Duration = .seconds(600)
        /// Only these tables (names or STG names); all when empty.
        public var tables: [String] = []

        public init() {}
    }

    public struct Outcome: Sendable {
        public var tables: [TableComparer.Comparison]
        public var checks: [IndicatorChecker.Outcome]
        /// Per object-sync mapping: what a pass would still copy or delete (nothing: all in place).
        public var objects: [ObjectSyncReport] = []
        /// Per source: the point it was compared at and what holding there cost.
        public var points: [PointReport] = []
        /// The BL models' relationships: rows that point at nothing.
        public var references: [ReferenceCheck.Outcome] = []
        /// The sequences cutover carries over, the target's against the source's.
        public var sequences: [SequenceHandover.Outcome] = []

        public init(tables: [TableComparer.Comparison], checks: [IndicatorChecker.Outcome]) {
            self.tables = tables
            self.checks = checks
        }

        public var matches: Bool {
            tables.allSatisfy(\.matches) && checks.allSatisfy(\.matches) && objects.allSatisfy(\.inPlace)
                && references.allSatisfy(\.passes)
        }
    }

    /// Where a source was compared.
    public struct PointReport: Sendable, Equatable {
        public var source: String
        /// The consistent point both sides were compared at; nil when compared without one.
        public var point: LSN?
        /// From asking the applier to hold until the hold was lifted.
        public var heldSeconds: Double?
        /// What the source's replicator staged past the point while STG was held there.
        public var lagBytes: Int?
        /// Why there is no point (drained, paused, not holding).
        public var note: String?
    }

    public let endpoints: Endpoints
    /// For the object files and the hold (its store and parts): the whole configuration; nil
    /// leaves the object files out and compares without a hold.
    public let configuration: Configuration?
    public let store: (any StagingStore)?
    public let logger: Logger

    public init(endpoints: Endpoints, configuration: Configuration? = nil, store: (any StagingStore)? = nil, logger: Logger? = nil) {
        self.endpoints = endpoints
        self.configuration = configuration
        self.store = store
        self.logger = logger ?? Logger(label: "tributary")
    }

    public func verify(_ sources: [SourceConfiguration], options: Options = Options()) async throws -> Outcome {
        var outcome = Outcome(tables: [], checks: [])
        // The sources at once, each on its own servers: the target compares one source's STG while
        // it waits for the other's hold, or for that source's side. Reported in their order.
        let compared = try await withThrowingTaskGroup(of: (Int, SourceComparison).self) { group in
            for (index, source) in sources.enumerated() {
                group.addTask { (index, try await compare(source, options: options)) }
            }
            var compared = [SourceComparison?](repeating: nil, count: sources.count)
            for try await (index, comparison) in group { compared[index] = comparison }
            return compared.compactMap { $0 }
        }
        for source in compared {
            outcome.tables += source.tables
            outcome.checks += source.checks
            outcome.points.append(source.point)
        }
        if let configuration, options.tables.isEmpty {
            outcome.references = try await ReferenceCheck(endpoints: endpoints).run(configuration.models)
            outcome.sequences = try await SequenceHandover(endpoints: endpoints).compare(sources)
            if !sources.flatMap(\.objects).isEmpty {
                // The plan's "all files are in place": every mapping's listings compared, name by name.
                outcome.objects = try await ObjectSyncService(configuration: configuration, endpoints: endpoints, logger: logger).verify(sources)
            }
        }
        await record(outcome)
        return outcome
    }

    /// The result where the status page reads it. Best effort: a verify's answer is its output.
    private func record(_ outcome: Outcome) async {
        var differing = outcome.tables.filter { !$0.matches }.map { "\($0.source): \($0.table)" }
        differing += outcome.checks.filter { !$0.matches }.map { "check \($0.name)" }
        differing += outcome.references.filter { !$0.passes }.map { "\($0.model): \($0.reference)" }
        differing += outcome.objects.filter { !$0.inPlace }.map { "objects \($0.mapping.id)" }
        let record = ControlStore.VerificationRecord(
            finishedAt: Date(), matches: outcome.matches, tables: outcome.tables.count, differing: differing,
            points: outcome.points.map { .init(source: $0.source, point: $0.point?.description, heldSeconds: $0.heldSeconds) })
        do {
            try await endpoints.target.withControl(migrate: true) { try await $0.recordVerification(record) }
        } catch {
            logger.debug("the verify's result could not be recorded for the status page", metadata: [LogKey.error: .string("\(error)")])
        }
    }

    typealias SourceComparison = (tables: [TableComparer.Comparison], checks: [IndicatorChecker.Outcome], point: PointReport)

    private func compare(_ source: SourceConfiguration, options: Options) async throws -> SourceComparison {
        if options.hold, let configuration, let store {
            return try await compareAtAPoint(source, configuration: configuration, store: store, options: options)
        }
        let tables = try await compareNow(source, comparer: TableComparer(endpoints: endpoints), options: options)
        let checks = try await IndicatorChecker(endpoints: endpoints).run(source: source)
        return (tables, checks, PointReport(source: source.name, note: "compared as it is now, rows in flight compared again"))
    }

    /// Now on the source against now in STG; a differing table again while rows may be in flight.
    private func compareNow(_ source: SourceConfiguration, comparer: TableComparer, options: Options) async throws -> [TableComparer.Comparison] {
        var results = try await comparer.compare(source: source, tables: options.tables)
        var attempt = 0
        while attempt < options.rechecks, results.contains(where: { !$0.matches && $0.problem == nil }) {
            attempt += 1
            try await Task.sleep(for: .seconds(1))
            let again = try await comparer.compare(source: source, tables: results.filter { !$0.matches && $0.problem == nil }.map(\.table))
            for fresh in again {
                if let index = results.firstIndex(where: { $0.table == fresh.table }) { results[index] = fresh }
            }
        }
        return results
    }

    /// The source and STG compared at one point S, STG held there meanwhile.
    private func compareAtAPoint(_ source: SourceConfiguration, configuration: Configuration, store: any StagingStore, options: Options)
        async throws -> SourceComparison {
        let comparer = TableComparer(endpoints: endpoints)
        let state = try await endpoints.target.withControl(migrate: true, for: "verify") { control in try await control.state(of: source.name) }
        if let reason = Self.cannotHold(state) {
            let tables = try await comparer.compare(source: source, tables: options.tables)
            let checks = try await IndicatorChecker(endpoints: endpoints).run(source: source)
            return (tables, checks, PointReport(source: source.name, note: reason))
        }
        // STG must never pass the point before the applier knows of it, and the point is known only
        // once the slot exists: a hold at the source's position now stops STG there (or where it
        // already is) first; the point, made after it, is past everything applied by then.
        let started = ContinuousClock.now
        let now = try await endpoints.source(source).withConnection(for: "verify") { connection in
            try await connection.query("SELECT pg_current_wal_insert_lsn()").scalar(LSN.self)
        }
        // Lapses on its own after the verify's longest (a verify killed never holds a source for good).
        let lasting = options.holdTimeout + .seconds(600)
        try await endpoints.target.withControl(migrate: false, for: "verify") { try await $0.hold(source.name, at: now, lasting: lasting) }
        // The exported snapshot lives as long as this connection stays open and idle.
        return try await endpoints.source(source).withConnection(.replication, for: "verify") { replication in
            let slot = "\(SQL.truncated(source.slot, bytes: 48))_v\(UInt32.random(in: 0...UInt32.max))"
            let point: LSN, snapshot: String
            do {
                (point, snapshot) = try await Snapshotter.createSlot(slot, temporary: true, on: replication, source: source)
            } catch {
                try? await endpoints.target.withControl(migrate: false, for: "verify") { try await $0.releaseHold(source.name) }
                throw error
            }
            let log = logger.with(source: source.name).with(LogKey.lsn, point.description)
            log.notice("verify: holding STG at the point")
            try await endpoints.target.withControl(migrate: false, for: "verify") { try await $0.hold(source.name, at: point, lasting: lasting) }
            do {
                try await waitUntilHeld(source, at: point, configuration: configuration, store: store, timeout: options.holdTimeout)
                // A check may read BL: the models take in STG as it stands at the point first.
                if !configuration.models.isEmpty, source.checks.contains(where: { $0.targetSQL.contains(TransformModel.schema + ".") }) {
                    _ = try await TransformRunner(configuration: configuration, endpoints: endpoints, logger: logger).run(wait: true)
                }
                let tables = try await comparer.compare(source: source, tables: options.tables, snapshot: snapshot)
                let checks = try await IndicatorChecker(endpoints: endpoints).run(source: source, snapshot: snapshot)
                let report = try await release(source, point: point, started: started)
                log.notice("verify: hold lifted", metadata: [LogKey.seconds: .stringConvertible(report.heldSeconds ?? 0)])
                return (tables, checks, report)
            } catch {
                _ = try? await release(source, point: point, started: started)
                throw error
            }
        }
    }

    /// Why `state` cannot be held at a point; nil when it can. Only a running source is: a paused
    /// one's changes do not come, and a draining or drained one is read-only (its drain's contract)
    /// and stops at its end.
    static func cannotHold(_ state: SourceControlState?) -> String? {
        guard let state, state.appliedLSN != nil else { return "not applied yet: compared as it is now" }
        switch state.state {
        case .running:
            return state.applyPaused ? "its applier is paused: compared as it is now (tributary resume first to compare at a point)" : nil
        case .draining, .drained:
            return "\(state.state.rawValue): compared as it is (read-only since its drain at \(state.drainLSN?.description ?? "-"))"
        case .paused:
            return "paused: compared as it is now (tributary resume first to compare at a point)"
        }
    }

    /// Lifts the hold; says how long it lasted and what was staged past the point meanwhile.
    private func release(_ source: SourceConfiguration, point: LSN, started: ContinuousClock.Instant) async throws -> PointReport {
        try await endpoints.target.withControl(migrate: false, for: "verify") { control in
            let flushed = try await control.state(of: source.name)?.flushedLSN
            try await control.releaseHold(source.name)
            return PointReport(source: source.name, point: point, heldSeconds: (ContinuousClock.now - started).seconds,
                               lagBytes: flushed.map { $0 > point ? Int($0.value - point.value) : 0 })
        }
    }

    /// Until the source's applier says STG holds exactly `point`. The replicator and the applier of
    /// the source run here meanwhile, as under `run`; another process running them (`tributary
    /// run` beside the verify) does the work instead, and they wait for it.
    private func waitUntilHeld(_ source: SourceConfiguration, at point: LSN, configuration: Configuration, store: any StagingStore,
                               timeout: Duration) async throws {
        let pipeline = Pipeline(configuration: configuration, endpoints: endpoints, store: store, configurationDirectory: nil, logger: logger)
        var selection = Pipeline.Selection(sources: [source])
        selection.collect = false
        selection.transform = false
        selection.sync = false
        let watch = HoldWatchPart(source: source.name, point: point, endpoints: endpoints, deadline: .now + timeout)
        let reached = watch.reached
        try await pipeline.run(pipeline.parts(selection, cooperative: true) + [pipeline.service(watch)], shutdownTimeout: .seconds(60))
        guard reached.isComplete else {
            throw TributaryError(.stopped, "verify of \(source.name) interrupted before STG held its point \(point); the hold is lifted")
        }
    }
}

/// Watches a verify's hold: finishes (ending the verify's pipeline) once the source's applier
/// says STG holds exactly the point; fails when that takes past the deadline.
struct HoldWatchPart: Part {
    let kind = "verify"
    var source: String? { sourceName }
    let sourceName: String
    let point: LSN
    let endpoints: Endpoints
    let deadline: ContinuousClock.Instant
    let reached = DrainCompletion()
    private var control: ControlStore?

    init(source: String, point: LSN, endpoints: Endpoints, deadline: ContinuousClock.Instant) {
        sourceName = source
        self.point = point
        self.endpoints = endpoints
        self.deadline = deadline
    }

    mutating func step(_ context: PartContext) async throws -> PartStep {
        if control == nil { control = try await endpoints.target.openControl(migrate: false, for: "verify") }
        let state = try await control!.holdState(of: sourceName)
        if state.held == point {
            reached.set()
            return .finished
        }
        guard state.hold == point else {
            throw TributaryError(.stopped, "the hold of \(sourceName) at \(point) was lifted by someone else (another verify?): run verify again")
        }
        guard ContinuousClock.now < deadline else {
            throw TributaryError(.timedOut, """
                \(sourceName)'s STG did not reach the point \(point) in time (is its replicator stopped, or its applier stuck?); \
                the hold is lifted: run verify again, or verify --no-hold
                """)
        }
        context.ready("waiting for STG to hold \(point)")
        return .idle(until: .now + .milliseconds(200))
    }

    mutating func reset() async {
        await control?.close()
        control = nil
    }
}
