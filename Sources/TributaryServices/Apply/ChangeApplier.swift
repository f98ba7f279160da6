import Foundation
import Logging
import TributaryCore
import TributaryPostgres
import TributaryStorage

/// `tributary apply`: turns the OCI layer into STG for every source. Per source, a pending snapshot
/// first, then every batch after the source's applied LSN, in LSN order. Continuous mode sleeps on
/// LISTEN (the replicator NOTIFYs after each manifest) with a slow listing poll as the fallback.
public struct ChangeApplier: Sendable {
    public static let channel = "tributary_batches"

    public struct Settings: Sendable {
        public var jobs: Int
        /// How often the store is listed when no notification arrives.
        public var pollSeconds: Double = 5
        /// Consecutive small batches applied per wake-up before other sources get a turn.
        public var batchesPerRound = 200
        /// How a snapshot is loaded (key builds, frozen runs).
        public var snapshot = SnapshotSettings()
        public init(jobs: Int) { self.jobs = jobs }
        public init(_ snapshot: SnapshotSettings, jobs: Int? = nil) {
            self.jobs = jobs ?? snapshot.jobs
            self.snapshot = snapshot
        }
    }

    public struct Report: Sendable {
        public var snapshots: [SnapshotLoader.Report] = []
        public var batches = 0
        public var rows = 0
    }

    public let target: String
    public let sources: [SourceConfiguration]
    public let store: any StagingStore
    public let settings: Settings
    public let logger: Logger
    public let stop: StopSignal

    public init(target: String, sources: [SourceConfiguration], store: any StagingStore, settings: Settings,
                logger: Logger, stop: StopSignal = StopSignal()) {
        self.target = target
        self.sources = sources
        self.store = store
        self.settings = settings
        self.logger = logger
        self.stop = stop
    }

    /// Applies everything there is now, then returns.
    public func applyOnce(onSnapshotStart: @Sendable (TransferProgress) async -> Void = { _ in }) async throws -> Report {
        let connection = try await TargetSession.connect(target)
        try await ControlSchema.migrate(on: connection)
        guard try await Self.claimApplierLock(on: connection) else {
            await connection.close()
            throw OperatorError("another tributary apply (or run, or drain) is applying to this target: let it finish, or stop it first", kind: .applierBusy)
        }
        var report = Report()
        for source in sources {
            try await applyPending(source, on: connection, into: &report, limit: nil, onSnapshotStart: onSnapshotStart)
        }
        await connection.close()
        return report
    }

    /// Applies until stopped. A source whose batch fails permanently is stopped and reported; the
    /// others go on. Returns the failures when every source has failed or a stop was requested.
    public func run() async throws -> [String: Error] {
        var failures: [String: Error] = [:]
        var connection = try await connectAndListen()
        var backoff = 0.5
        while !stop.isRequested && failures.count < sources.count {
            var report = Report()
            do {
                for source in sources where failures[source.name] == nil {
                    do {
                        try await applyPending(source, on: connection, into: &report, limit: settings.batchesPerRound)
                    } catch let error as PostgresError where error.isTransient {
                        throw error
                    } catch {
                        logger.with(source: source.name).error("source stopped: \(error)")
                        PipelineMetrics.error(source: source.name, part: "apply")
                        failures[source.name] = error
                    }
                }
                backoff = 0.5
                // Another round at once while there is work; otherwise sleep until NOTIFY or the poll.
                if report.batches == 0 {
                    _ = try await connection.run { connection in try connection.waitForNotifications(timeout: settings.pollSeconds) }
                }
            } catch let error as PostgresError where error.isTransient {
                logger.warning("target connection trouble, retrying in \(backoff) s: \(error)")
                try await Task.sleep(for: .seconds(backoff))
                backoff = min(backoff * 2, 30)
                if let fresh = try? await connectAndListen() { connection = fresh }
            }
        }
        await connection.close()
        return failures
    }

    /// One applier per target: two would race to record the same batch. Held for the session, so a
    /// killed applier releases it with its connection.
    static let applierLock: Int64 = 0x7472_6962_0002

    public static func claimApplierLock(on connection: PostgresConnection) async throws -> Bool {
        try await connection.query("SELECT pg_try_advisory_lock($1)", [String(applierLock)]).scalar == "t"
    }

    private func connectAndListen() async throws -> PostgresConnection {
        let connection = try await TargetSession.connect(target)
        try await ControlSchema.migrate(on: connection)
        guard try await Self.claimApplierLock(on: connection) else {
            await connection.close()
            throw OperatorError("another tributary apply (or run, or drain) is applying to this target: stop it first", kind: .applierBusy)
        }
        // Batches written wake it, and so do pause and resume.
        try await connection.execute("LISTEN \(Self.channel); LISTEN \(SourceControl.channel)")
        return connection
    }

    private func applyPending(_ source: SourceConfiguration, on connection: PostgresConnection, into report: inout Report,
                              limit: Int?, onSnapshotStart: @Sendable (TransferProgress) async -> Void = { _ in }) async throws {
        let log = logger.with(source: source.name)
        let snapshots = SnapshotLoader(target: target, store: store, jobs: settings.jobs, settings: settings.snapshot, logger: logger)
        // A cheap look first: the load itself opens its own connections.
        if try await snapshots.pendingSnapshot(source: source.name, on: connection) != nil,
           let snapshot = try await snapshots.load(source: source.name, onStart: onSnapshotStart) {
            report.snapshots.append(snapshot)
        }
        let state = try await connection.query("SELECT applied_lsn, apply_paused FROM tributary.sources WHERE source = $1", [source.name])
        if state.value(0, "apply_paused") == "t" { return }
        guard let applied = state.value(0, "applied_lsn").flatMap(LSN.init) else {
            // No snapshot applied yet: changes have nothing to apply to.
            return
        }
        let applier = BatchApplier(source: source, store: store, logger: log)
        var after = applied
        var count = 0
        while limit.map({ count < $0 }) ?? true, !stop.isRequested {
            let next = try await nextManifests(source: source.name, after: after)
            if next.isEmpty { break }
            for key in next {
                let started = ContinuousClock.now
                let manifest = try await store.manifest(BatchManifest.self, at: key)
                let outcome = try await applier.apply(manifest, on: connection)
                after = max(after, manifest.endLSN)
                count += 1
                guard outcome.applied else { continue }
                report.batches += 1
                report.rows += outcome.rows
                PipelineMetrics.batchApplied(source: source.name, rows: outcome.rows)
                log.info("batch applied", metadata: [
                    LogKey.batch: .string(manifest.endLSN.paddedHex),
                    LogKey.lsn: .string("\(manifest.firstCommitLSN)..\(manifest.endLSN)"),
                    "inserts": .stringConvertible(outcome.inserts), "updates": .stringConvertible(outcome.updates),
                    "deletes": .stringConvertible(outcome.deletes), "truncates": .stringConvertible(outcome.truncates),
                    LogKey.seconds: .string(String(format: "%.3f", (ContinuousClock.now - started).seconds)),
                ])
                if let limit, count >= limit { break }
            }
        }
    }

    /// Manifests of batches ending after `lsn`, in LSN order, from a start key: never a full rescan.
    private func nextManifests(source: String, after lsn: LSN) async throws -> [String] {
        // "~" sorts after every key inside the applied batch's directory and before the next one.
        try await store.list(prefix: ObjectNaming.cdcPrefix(source: source), startAfter: ObjectNaming.cdcDirectory(source: source, endLSN: lsn) + "~")
            .map(\.key).filter { $0.hasSuffix("/" + ObjectNaming.manifestName) }
    }
}
