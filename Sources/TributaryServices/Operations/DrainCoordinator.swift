import Foundation
import Logging
import Synchronization
import TributaryCore
import TributaryPostgres
import TributaryStorage

/// `tributary drain`: fixes each source's end at its current WAL insert position (`begin`); the
/// pipeline then runs as under `run` (`Pipeline.parts` with the ends), beside `watch`, which ends
/// it gracefully once every change up to each end is staged, applied to STG and held by the BL
/// models; `finish` makes a last object-sync pass and marks the sources drained. Whatever part
/// another process runs (`tributary run` beside the drain), the drain's own waits for: a slot or
/// the applier lock held elsewhere is that process doing the same work.
public struct DrainCoordinator: Sendable {
    /// A drain under way: each source's end, and when the drain began on the target's clock.
    public struct Begun: Sendable {
        public let ends: [String: LSN]
        public let began: Date
        /// Set by the watch once everything holds the ends.
        let completion = DrainCompletion()
        public var isComplete: Bool { completion.isComplete }
    }

    /// What the drain reports: each source's end and what was applied, and the models as they are.
    public struct Report: Sendable {
        public var sources: [SourceReport]
        public var models: [ModelStatus]
        /// The final object-sync pass of each mapping.
        public var objects: [ObjectSyncReport]
        /// The models' relationships; an orphan of a `fail` reference fails the drain.
        public var references: [ReferenceCheck.Outcome] = []
        /// The sequences carried over, and the surrogate columns given a default.
        public var sequences: [SequenceHandover.Outcome] = []
        public var surrogates: [SequenceHandover.SurrogateOutcome] = []
        /// The drain completed: the sources are drained. False when a relationship failed it
        /// (the sources stay draining).
        public var drained = true
        /// Each model against a full reload of it, when asked for.
        public var reload: [TransformCheck.Difference]?
    }

    public struct SourceReport: Sendable {
        public var source: String
        public var endLSN: LSN
        public var batches: Int
        public var rows: Int
    }

    public let configuration: Configuration
    public let endpoints: Endpoints
    public let sources: [SourceConfiguration]
    public let store: any StagingStore
    public let logger: Logger

    public init(configuration: Configuration, endpoints: Endpoints, sources: [SourceConfiguration], store: any StagingStore, logger: Logger) {
        self.configuration = configuration
        self.endpoints = endpoints
        self.sources = sources
        self.store = store
        self.logger = logger
    }

    /// Fixes every source's end and marks it draining (running parts follow within a second).
    /// - Parameter requireReadOnly: refuse when a source still has write transactions open.
    public func begin(requireReadOnly: Bool) async throws -> Begun {
        try await endpoints.target.withControl(migrate: true, for: "drain") { control in
            var ends: [String: LSN] = [:]
            for source in sources {
                ends[source.name] = try await fixEnd(of: source, requireReadOnly: requireReadOnly, control: control)
            }
            return Begun(ends: ends, began: try await control.drainBegan(sources.map(\.name)) ?? Date())
        }
    }

    /// The part that watches the drain: it ends the pipeline once the drain is complete, and fails
    /// it when a model fails or `timeout` passes (the sources stay draining either way).
    public func watch(_ begun: Begun, timeout: Duration?, onProgress: @escaping @Sendable ([DrainProgress.SourceProgress]) async -> Void)
        -> some Part {
        DrainWatchPart(progress: DrainProgress(ends: begun.ends, began: begun.began, deadline: timeout.map { .now + $0 }),
                       sources: sources, models: configuration.models, endpoints: endpoints, store: store,
                       completion: begun.completion, onProgress: onProgress)
    }

    /// After the watch ended the pipeline: the last object-sync pass (the sources are read-only
    /// now, so it leaves the target bucket complete), the relationships counted, the sequences
    /// carried over, the sources marked drained, the report.
    /// - Parameter compareWithReload: also build every model whole and compare (the gate's report).
    public func finish(_ begun: Begun, compareWithReload: Bool = false) async throws -> Report {
        guard begun.isComplete else {
            throw TributaryError(.stopped, "drain interrupted before the sources reached their ends; they stay draining: run tributary drain again")
        }
        let objects = try await ObjectSyncService(configuration: configuration, endpoints: endpoints, logger: logger).runOnce(sources, dryRun: false)
        if let failed = objects.first(where: { !$0.succeeded }) {
            throw TributaryError(.stopped, "drain: the final object sync of \(failed.mapping.id) failed (\(failed.error ?? failed.failures.first ?? "")); "
                                 + "the sources stay draining: fix it and run tributary drain again")
        }
        // The relationships at the end: an orphan fails the drain (a reference may only warn).
        let references = try await ReferenceCheck(endpoints: endpoints).run(configuration.models)
        guard references.allSatisfy(\.passes) else {
            let models = try await StatusReader(endpoints: endpoints, store: store, models: configuration.models).report(sources).models ?? []
            return Report(sources: sources.map { SourceReport(source: $0.name, endLSN: begun.ends[$0.name]!, batches: 0, rows: 0) }, models: models,
                          objects: objects, references: references, drained: false)
        }
        // The target takes the application's writes from here: sequences continue the sources'.
        let handover = SequenceHandover(endpoints: endpoints)
        let sequences = try await handover.carryOver(sources)
        let surrogates = try await handover.surrogateDefaults(configuration.models)
        let reports = try await endpoints.target.withControl(migrate: true, for: "drain") { control in
            var reports: [SourceReport] = []
            for source in sources {
                try await control.set(source, to: .drained, drainLSN: begun.ends[source.name]!)
                let applied = try await control.appliedSinceDrainBegan(source.name)
                reports.append(SourceReport(source: source.name, endLSN: begun.ends[source.name]!, batches: applied.batches, rows: applied.rows))
            }
            return reports
        }
        let models = configuration.models.isEmpty ? []
            : try await StatusReader(endpoints: endpoints, store: store, models: configuration.models).report(sources).models ?? []
        var report = Report(sources: reports, models: models, objects: objects, references: references, sequences: sequences, surrogates: surrogates)
        if compareWithReload && !configuration.models.isEmpty {
            report.reload = try await TransformCheck(runner: TransformRunner(configuration: configuration, endpoints: endpoints, logger: logger)).run()
        }
        return report
    }

    /// Before anything is changed: every reference's columns exist (in the models built), every
    /// listed sequence exists on its source.
    public func validate() async throws {
        try await ReferenceCheck(endpoints: endpoints).validate(configuration.models)
        for source in sources { _ = try await SequenceHandover(endpoints: endpoints).sequences(of: source) }
    }

    /// The source's end: its WAL insert position now, recorded as the drain LSN.
    private func fixEnd(of source: SourceConfiguration, requireReadOnly: Bool, control: ControlStore) async throws -> LSN {
        let end = try await endpoints.source(source).withConnection(for: "drain") { connection in
            if requireReadOnly {
                let writers = try await connection.query("""
                    SELECT count(*) FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() AND datname = current_database()
                    """).scalar(Int.self)
                if writers > 0 {
                    throw TributaryError(.state, "\(source.name) has \(writers) write transactions open: make it read-only first "
                                         + "(ALTER DATABASE … SET default_transaction_read_only = on, then end the sessions), or drain without --require-read-only")
                }
            }
            // The insert position, not pg_current_wal_lsn(): under synchronous_commit = off the write
            // position can trail commits that have already returned to their clients.
            return try await connection.query("SELECT pg_current_wal_insert_lsn()").scalar(LSN.self)
        }
        try await control.set(source, to: .draining, drainLSN: end)
        logger.notice("drain begun", metadata: [LogKey.source: .string(source.name), LogKey.lsn: .string(end.description)])
        return end
    }
}

/// Whether a drain's watch saw it complete.
final class DrainCompletion: Sendable {
    private let complete = Atomic<Bool>(false)
    func set() { complete.store(true, ordering: .releasing) }
    var isComplete: Bool { complete.load(ordering: .acquiring) }
}

/// A drain's watch: each tick reads the sources' positions in one statement on a held target
/// session and asks `DrainProgress`; only once the sources are done does it count their table
/// snapshots (a listing) and read the models.
struct DrainWatchPart: Part {
    let kind = "drain"
    let source: String? = nil
    let progress: DrainProgress
    let sources: [SourceConfiguration]
    let models: [TransformModel]
    let endpoints: Endpoints
    let store: any StagingStore
    let completion: DrainCompletion
    let onProgress: @Sendable ([DrainProgress.SourceProgress]) async -> Void
    let tick: Duration = .milliseconds(500)
    private var control: ControlStore?
    /// Per source that reached its end: its table snapshots not yet merged, at the last count.
    private var tableSnapshots: [String: Int] = [:]

    init(progress: DrainProgress, sources: [SourceConfiguration], models: [TransformModel], endpoints: Endpoints, store: any StagingStore,
         completion: DrainCompletion, onProgress: @escaping @Sendable ([DrainProgress.SourceProgress]) async -> Void) {
        self.progress = progress
        self.sources = sources
        self.models = models
        self.endpoints = endpoints
        self.store = store
        self.completion = completion
        self.onProgress = onProgress
    }

    mutating func step(_ context: PartContext) async throws -> PartStep {
        if control == nil { control = try await endpoints.target.openControl(migrate: false, for: "drain") }
        let control = control!
        var readings = try await control.drainReadings(sources.map(\.name))
        for index in readings.indices { readings[index].pendingTableSnapshots = tableSnapshots[readings[index].source] }
        var modelReadings: [DrainProgress.ModelReading]?
        while true {
            switch progress.assess(readings, models: modelReadings, now: .now) {
            case .countTableSnapshots(let names):
                for index in readings.indices where names.contains(readings[index].source) {
                    // Those stored and not merged yet, and those the pipeline asked for and has yet to take.
                    let count = try await SnapshotLoader.pendingTableSnapshotPoints(source: readings[index].source, store: store, control: control).count
                        + control.resyncsPending(of: readings[index].source)
                    readings[index].pendingTableSnapshots = count
                    // Counted again next tick while some wait (the applier merges them); never again once none do.
                    if count == 0 { tableSnapshots[readings[index].source] = 0 }
                }
            case .readModels:
                modelReadings = try await readModels(control)
            case .waiting(let sources), .modelsBehind(let sources, _):
                context.ready("waiting for the sources and models to reach their ends")
                await onProgress(sources)
                return .idle(until: .now + tick)
            case .done(let sources):
                await onProgress(sources)
                completion.set()
                return .finished
            case .modelFailed(let model, let error):
                throw TributaryError(.model, "drain: BL model \(model) failed: \(error); the sources stay draining: fix the model and run tributary drain again",
                                     context: [LogKey.model: model])
            case .timedOut(let sources):
                let behind = sources.filter { !$0.done }.map {
                    "\($0.source) (end \($0.end), flushed \($0.flushed?.description ?? "-"), applied \($0.applied?.description ?? "-"))"
                }
                throw TributaryError(.timedOut, "drain timed out: \(behind.isEmpty ? "BL models behind" : behind.joined(separator: ", ")); "
                                     + "the sources stay draining: run tributary drain again to wait longer")
            }
        }
    }

    /// Each model's state; a model reading an STG table of a source this drain leaves alone that is
    /// not there (that source not snapshotted) has nothing to catch up with.
    private func readModels(_ control: ControlStore) async throws -> [DrainProgress.ModelReading] {
        guard !models.isEmpty else { return [] }
        let drained = Set(sources.flatMap { $0.tables.map(\.stagingTable) })
        let states = Dictionary(uniqueKeysWithValues: try await control.modelStates().map { ($0.model, $0) })
        let statuses = try await ModelStatusReader(models: models, sourceOfTable: [:]).read(control: control, sources: [])
        var readings: [DrainProgress.ModelReading] = []
        for (model, status) in zip(models, statuses) {
            var waitsOnUndrained = false
            for input in model.inputs where input.table.schema == StagingColumns.schema && !drained.contains(input.table.name) {
                if try await !control.connection.query("SELECT to_regclass($1) IS NOT NULL", [input.table.sql]).scalar(Bool.self) {
                    waitsOnUndrained = true
                }
            }
            let state: DrainProgress.ModelReading.State = switch status.state {
            case .current: .current
            case .failed: .failed(error: status.error ?? "failed", at: states[model.name]?.failedAt ?? .distantPast)
            case .behind, .notBuilt: .behind
            }
            readings.append(DrainProgress.ModelReading(model: model.name, state: state, waitsOnUndrainedSource: waitsOnUndrained))
        }
        return readings
    }

    mutating func reset() async {
        await control?.close()
        control = nil
    }
}
