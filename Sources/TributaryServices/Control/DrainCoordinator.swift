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
                    onProgress: @Sendable ([Progress]) async -> Void) async throws -> [SourceReport] {
        let target = try await PostgresConnection.connect(configuration.target.connection, name: "target", applicationName: "tributary drain")
        defer { Task { await target.close() } }
        try await ControlSchema.migrate(on: target)
        var ends: [String: LSN] = [:]
        for source in sources {
            let connection = try await PostgresConnection.connect(source.connection, name: source.name, applicationName: "tributary drain")
            if requireReadOnly {
                let writers = try await connection.query("""
                    SELECT count(*) FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() AND datname = current_database()
                    """).scalar ?? "0"
                if writers != "0" {
                    await connection.close()
                    throw OperatorError("\(source.name) has \(writers) write transactions open: make it read-only first "
                                        + "(ALTER DATABASE … SET default_transaction_read_only = on, then end the sessions), or drain without --require-read-only")
                }
            }
            // The insert position, not pg_current_wal_lsn(): under synchronous_commit = off the write
            // position can trail commits that have already returned to their clients.
            let end = LSN(try await connection.query("SELECT pg_current_wal_insert_lsn()").scalar!)!
            await connection.close()
            ends[source.name] = end
            try await SourceControl.set(source, to: .draining, drainLSN: end, on: target)
            logger.notice("drain begun", metadata: [LogKey.source: .string(source.name), LogKey.lsn: .string(end.description)])
        }
        let began = try await target.query("SELECT drain_started_at FROM tributary.sources WHERE source = $1", [sources[0].name]).scalar!

        let deadline = timeoutSeconds.map { ContinuousClock.now + .seconds($0) }
        let reader = StatusReader(target: configuration.target.connection, store: store)
        var ownReplicators: [String: Task<Void, Never>] = [:]
        let outcomes = ReplicatorOutcomes()
        // A running `tributary run` restarts its replicator with the drain's end LSN: a slot idle for a
        // moment is that, not an orphan. Only a slot idle for two seconds is taken over.
        var idleSince: [String: ContinuousClock.Instant] = [:]
        while true {
            let statuses = try await reader.read(sources)
            var progress: [Progress] = []
            for status in statuses {
                let end = ends[status.source]!
                let flushed = status.flushedLSN.flatMap(LSN.init)
                progress.append(Progress(source: status.source, endLSN: end, flushedLSN: flushed, appliedLSN: status.appliedLSN.flatMap(LSN.init),
                                         stagedBatches: status.stagedBatches, done: (flushed.map { $0 >= end } ?? false) && status.stagedBatches == 0))
            }
            await onProgress(progress)
            if progress.allSatisfy(\.done) { break }
            if let deadline, ContinuousClock.now > deadline {
                for task in ownReplicators.values { task.cancel() }
                let behind = progress.filter { !$0.done }.map { "\($0.source) (end \($0.endLSN), flushed \($0.flushedLSN?.description ?? "-"), \($0.stagedBatches) batches unapplied)" }
                throw OperatorError("drain timed out: \(behind.joined(separator: ", ")); the sources stay draining: run tributary drain again to wait longer")
            }
            // Replicate what nobody replicates.
            for (source, status) in zip(sources, statuses) where !(progress.first { $0.source == source.name }!.done) {
                let flushed = status.flushedLSN.flatMap(LSN.init)
                let end = ends[source.name]!
                if status.replicatorActive == true { idleSince[source.name] = nil } else if idleSince[source.name] == nil { idleSince[source.name] = .now }
                let orphaned = idleSince[source.name].map { ContinuousClock.now - $0 >= .seconds(2) } ?? false
                if orphaned, flushed.map({ $0 < end }) ?? true, ownReplicators[source.name] == nil {
                    ownReplicators[source.name] = Task {
                        do {
                            await outcomes.record(source.name, .success(try await replicate(source, until: end, target: target)))
                        } catch {
                            await outcomes.record(source.name, .failure(error))
                        }
                    }
                }
            }
            for name in ownReplicators.keys {
                // A finished or failed own replicator is looked at again next round.
                if let result = await outcomes.take(name) {
                    ownReplicators[name] = nil
                    if case .failure(let error) = result {
                        guard (error as? OperatorError)?.kind == .slotInUse else { throw error }
                    }
                }
            }
            // Apply what nobody applies.
            do {
                _ = try await ChangeApplier(target: configuration.target.connection, sources: sources, store: store,
                                            settings: .init(configuration.target.snapshot), logger: logger).applyOnce()
            } catch let error as OperatorError where error.kind == .applierBusy {
                // tributary run or apply is applying: wait for it.
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        var reports: [SourceReport] = []
        for source in sources {
            try await SourceControl.set(source, to: .drained, drainLSN: ends[source.name]!, on: target)
            let applied = try await target.query("""
                SELECT count(*) AS batches, coalesce(sum(rows), 0) AS rows FROM tributary.applied_batches WHERE source = $1 AND applied_at >= $2
                """, [source.name, began])
            reports.append(SourceReport(source: source.name, endLSN: ends[source.name]!,
                                        batches: Int(applied.value(0, "batches")!)!, rows: Int(applied.value(0, "rows")!)!))
        }
        return reports
    }

    private func replicate(_ source: SourceConfiguration, until end: LSN, target: PostgresConnection) async throws -> LSN {
        var settings = replicatorSettings
        settings.endLSN = end
        let notifier = TargetNotifier(target: configuration.target.connection, logger: logger)
        let summary = try await Replicator(source: source, settings: settings, store: store, workDirectory: configuration.target.workDirectory,
                                           logger: logger, stop: StopSignal(), onBatch: { await notifier.batchWritten($0) }).run()
        try await SourceControl.recordFlushed(source.name, at: summary.durableLSN, on: target)
        return summary.durableLSN
    }
}

private actor ReplicatorOutcomes {
    private var results: [String: Result<LSN, Error>] = [:]

    func record(_ source: String, _ result: Result<LSN, Error>) { results[source] = result }

    func take(_ source: String) -> Result<LSN, Error>? { results.removeValue(forKey: source) }
}
