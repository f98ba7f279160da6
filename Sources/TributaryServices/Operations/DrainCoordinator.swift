import Foundation
import Logging
import TributaryCore
import TributaryPostgres
import TributaryStorage

/// `tributary drain`: fixes each source's end at its current WAL insert position, waits until every
/// change up to it is in the staging store and applied to STG, then marks the source drained.
/// Whatever part is not running elsewhere (no replicator on the slot, no applier on the target),
/// the drain runs itself, so it completes with or without `tributary run`.
public struct DrainCoordinator: Sendable {
    public struct Progress: Sendable {
        public var source: String
        public var endLSN: LSN
        public var flushedLSN: LSN?
        public var appliedLSN: LSN?
        public var stagedBatches: Int
        public var done: Bool
    }

    /// What the drain reports: each source's end and what was applied, and the models as they are.
    public struct Report: Sendable {
        public var sources: [SourceReport]
        public var models: [ModelStatus]
        /// The final object-sync pass of each mapping.
        public var objects: [ObjectSyncReport]
    }

    public struct SourceReport: Sendable {
        public var source: String
        public var endLSN: LSN
        public var batches: Int
        public var rows: Int
    }

    public let configuration: Configuration
    public let sources: [SourceConfiguration]
    public let store: any StagingStore
    public let replicatorSettings: Replicator.Settings
    public let logger: Logger

    public init(configuration: Configuration, sources: [SourceConfiguration], store: any StagingStore,
                replicatorSettings: Replicator.Settings, logger: Logger) {
        self.configuration = configuration
        self.sources = sources
        self.store = store
        self.replicatorSettings = replicatorSettings
        self.logger = logger
    }

    /// - Parameter requireReadOnly: refuse when a source still has write transactions open.
    public func run(timeoutSeconds: Double?, requireReadOnly: Bool,
                    onProgress: @Sendable ([Progress]) async -> Void) async throws -> Report {
        let control = try await ControlStore.open(configuration.target.connection, applicationName: "tributary drain", migrate: true)
        defer { Task { await control.close() } }
        var ends: [String: LSN] = [:]
        for source in sources {
            ends[source.name] = try await fixEnd(of: source, requireReadOnly: requireReadOnly, control: control)
        }
        let deadline = timeoutSeconds.map { ContinuousClock.now + .seconds($0) }
        let reader = StatusReader(target: configuration.target.connection, store: store)
        let helpers = DrainHelpers(coordinator: self)
        while true {
            let statuses = try await reader.read(sources)
            let progress = statuses.map { status in
                Progress(source: status.source, endLSN: ends[status.source]!, flushedLSN: status.flushedLSN, appliedLSN: status.appliedLSN,
                         stagedBatches: status.stagedBatches,
                         // Applied at all first: a source whose snapshot is not in STG yet has nothing staged to wait for.
                         done: status.appliedLSN != nil && (status.flushedLSN.map { $0 >= ends[status.source]! } ?? false)
                             && status.stagedBatches == 0 && status.pendingTableSnapshots == 0)
            }
            await onProgress(progress)
            if progress.allSatisfy(\.done), try await modelsCaughtUp() { break }
            if let deadline, ContinuousClock.now > deadline {
                await helpers.cancel()
                let behind = progress.filter { !$0.done }.map {
                    "\($0.source) (end \($0.endLSN), flushed \($0.flushedLSN?.description ?? "-"), \($0.stagedBatches) batches unapplied)"
                }
                throw OperatorError("drain timed out: \(behind.joined(separator: ", ")); the sources stay draining: run tributary drain again to wait longer")
            }
            try await helpers.replicateOrphans(statuses, progress: progress, ends: ends)
            try await applyIfNobodyDoes()
            try await Task.sleep(for: .milliseconds(500))
        }
        // The files last: the sources are read-only now, so this pass leaves the target bucket complete.
        let objects = try await ObjectSyncService(configuration: configuration, logger: logger).runOnce(sources, dryRun: false)
        if let failed = objects.first(where: { !$0.succeeded }) {
            throw OperatorError("drain: the final object sync of \(failed.mapping.id) failed (\(failed.error ?? failed.failures.first ?? "")); "
                                + "the sources stay draining: fix it and run tributary drain again")
        }
        var reports: [SourceReport] = []
        for source in sources {
            try await control.set(source, to: .drained, drainLSN: ends[source.name]!)
            let applied = try await control.appliedSinceDrainBegan(source.name)
            reports.append(SourceReport(source: source.name, endLSN: ends[source.name]!, batches: applied.batches, rows: applied.rows))
        }
        let models = configuration.models.isEmpty ? []
            : try await StatusReader(target: configuration.target.connection, store: store, models: configuration.models).report(sources).models ?? []
        return Report(sources: reports, models: models, objects: objects)
    }

    /// The source's end: its WAL insert position now, recorded as the drain LSN.
    private func fixEnd(of source: SourceConfiguration, requireReadOnly: Bool, control: ControlStore) async throws -> LSN {
        let connection = try await PostgresConnection.connect(source.connection, name: source.name, applicationName: "tributary drain")
        defer { Task { await connection.close() } }
        if requireReadOnly {
            let writers = try await connection.query("""
                SELECT count(*) FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() AND datname = current_database()
                """).scalar(Int.self)
            if writers > 0 {
                throw OperatorError("\(source.name) has \(writers) write transactions open: make it read-only first "
                                    + "(ALTER DATABASE … SET default_transaction_read_only = on, then end the sessions), or drain without --require-read-only")
            }
        }
        // The insert position, not pg_current_wal_lsn(): under synchronous_commit = off the write
        // position can trail commits that have already returned to their clients.
        let end = try await connection.query("SELECT pg_current_wal_insert_lsn()").scalar(LSN.self)
        try await control.set(source, to: .draining, drainLSN: end)
        logger.notice("drain begun", metadata: [LogKey.source: .string(source.name), LogKey.lsn: .string(end.description)])
        return end
    }

    /// Runs the BL models whose inputs changed (those another process is running are left to it);
    /// true once every model holds every change of STG. A model that fails ends the drain: the
    /// sources stay draining, and the error says what to fix.
    private func modelsCaughtUp() async throws -> Bool {
        guard !configuration.models.isEmpty else { return true }
        let outcomes = try await TransformRunner(configuration: configuration, logger: logger).run(wait: false)
        if let failure = outcomes.first(where: \.isFailure), case .failed(let error) = failure.result {
            throw OperatorError("drain: BL model \(failure.model) failed: \(error); the sources stay draining: fix the model and run tributary drain again")
        }
        // A model reading an STG table of a source this drain leaves alone (not snapshotted yet) has
        // nothing to catch up with; one waiting for a model to be built does.
        let drained = Set(sources.flatMap { $0.tables.map(\.stagingTable) })
        let absent = Set(outcomes.compactMap { outcome -> String? in
            guard case .waiting(let table) = outcome.result, let name = QualifiedName(parsing: table),
                  name.schema == StagingColumns.schema, !drained.contains(name.name) else { return nil }
            return outcome.model
        })
        let report = try await StatusReader(target: configuration.target.connection, store: store, models: configuration.models).report(sources)
        return (report.models ?? []).allSatisfy { $0.state == .current || absent.contains($0.model) }
    }

    /// Applies what is staged, unless `tributary run` or `apply` is applying already.
    private func applyIfNobodyDoes() async throws {
        do {
            _ = try await ChangeApplier(target: configuration.target.connection, sources: sources, store: store,
                                        settings: .init(configuration.target.snapshot), logger: logger).applyOnce()
        } catch let error as OperatorError where error.kind == .applierBusy {
            // tributary run or apply is applying: wait for it.
        }
    }

    /// Replicates `source` up to `end` in this process, for a slot nobody consumes.
    func replicate(_ source: SourceConfiguration, until end: LSN) async throws -> LSN {
        var settings = replicatorSettings
        settings.endLSN = end
        let notifier = TargetNotifier(target: configuration.target.connection, logger: logger)
        let summary = try await Replicator(source: source, settings: settings, store: store, workDirectory: configuration.target.workDirectory,
                                           logger: logger, stop: StopSignal(), notifier: notifier).run()
        let control = try await ControlStore.open(configuration.target.connection, applicationName: "tributary drain", migrate: false)
        try await control.recordFlushed(source.name, at: summary.durableLSN)
        await control.close()
        return summary.durableLSN
    }
}

/// The replicators a drain runs itself, for slots no `tributary run` or `replicate` consumes.
private actor DrainHelpers {
    let coordinator: DrainCoordinator
    private var running: [String: Task<Void, Never>] = [:]
    private var outcomes: [String: Result<LSN, any Error>] = [:]
    /// A running `tributary run` restarts its replicator with the drain's end LSN: a slot idle for a
    /// moment is that, not an orphan. Only a slot idle for two seconds is taken over.
    private var idleSince: [String: ContinuousClock.Instant] = [:]

    init(coordinator: DrainCoordinator) { self.coordinator = coordinator }

    func replicateOrphans(_ statuses: [SourceStatus], progress: [DrainCoordinator.Progress], ends: [String: LSN]) throws {
        for (source, status) in zip(coordinator.sources, statuses) where !(progress.first { $0.source == source.name }!.done) {
            let end = ends[source.name]!
            if status.replicatorActive == true { idleSince[source.name] = nil } else if idleSince[source.name] == nil { idleSince[source.name] = .now }
            let orphaned = idleSince[source.name].map { ContinuousClock.now - $0 >= .seconds(2) } ?? false
            guard orphaned, status.flushedLSN.map({ $0 < end }) ?? true, running[source.name] == nil else { continue }
            running[source.name] = Task { [coordinator] in
                do {
                    self.record(source.name, .success(try await coordinator.replicate(source, until: end)))
                } catch {
                    self.record(source.name, .failure(error))
                }
            }
        }
        // A finished or failed replicator of ours is looked at again next round; another process
        // taking the slot first is no failure.
        for (name, result) in outcomes {
            running[name] = nil
            outcomes[name] = nil
            if case .failure(let error) = result, (error as? OperatorError)?.kind != .slotInUse { throw error }
        }
    }

    private func record(_ source: String, _ result: Result<LSN, any Error>) { outcomes[source] = result }

    func cancel() { for task in running.values { task.cancel() } }
}
