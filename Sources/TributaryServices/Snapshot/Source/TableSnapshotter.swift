import Foundation
import Logging
import TributaryCore
import TributaryPostgres
import TributaryStorage

/// Copies some tables of a source consistently with its stream, at any time after its snapshot
/// (DESIGN.md §1, per-table snapshot): under a snapshot exported by a temporary logical slot made
/// for the copy, whose consistent point S_t every copied row is as of. The source's own slot, its
/// replicator and the applier go on undisturbed; the temporary slot goes when the copy is done.
/// The table snapshot is written under `<source>/tables/<S_t>/`, manifest last, and merged into
/// STG by the loader.
public struct TableSnapshotter: Sendable {
    let snapshotter: Snapshotter

    /// Copies with `snapshotter`'s source, settings and store, and stops on its `stop`.
    init(snapshotter: Snapshotter) { self.snapshotter = snapshotter }

    var source: SourceConfiguration { snapshotter.source }
    var endpoint: SourceEndpoint { snapshotter.endpoint }

    /// Copies the named tables (each must be in the source's configuration), adding any that is not
    /// yet in the publication; the source must have its slot (a snapshot taken).
    public func run(tables names: [QualifiedName], jobs: Int? = nil,
                    onStart: @Sendable (TransferProgress) async -> Void = { _ in }) async throws -> SnapshotManifest {
        let configured = try names.map { name in
            guard let table = source.tables.first(where: { $0.table == name }) else {
                throw TributaryError(.requirement, "table \(name) is not in \(source.file): add it under tables: first, then snapshot it")
            }
            return table
        }
        return try await endpoint.withConnection(for: "snapshot") { control in
            try await run(configured, jobs: jobs, control: control, onStart: onStart)
        }
    }

    private func run(_ configured: [TableConfiguration], jobs: Int?, control: PostgresConnection,
                     onStart: @Sendable (TransferProgress) async -> Void) async throws -> SnapshotManifest {
        try await SourceChecks.requireLogicalDecoding(on: control, source: source)
        guard try await ReplicationSlot.find(source.slot, on: control) != nil else {
            throw TributaryError(.slotMissing, "\(source.name) has no replication slot \"\(source.slot)\" yet: run tributary snapshot --source \(source.name) first")
        }
        let tables = try await SourceCatalog.describe(configured, source: source, on: control)
        // In the publication before the temporary slot exists: its consistent point is then past the
        // change, so every transaction the stream leaves out of a new table is in the copy.
        try await PublicationSetup(source: source, logger: snapshotter.logger).prepare(on: control, tables: tables, restart: false)
        return try await copy(tables, jobs: jobs ?? snapshotter.settings.jobs, onStart: onStart)
    }

    /// `snapshot --source S --resync`: recovers a source whose slot was lost (invalidated, dropped,
    /// or recreated by someone else) without starting over. The slot is made anew at P, then every
    /// table is copied under a temporary slot at S_t > P and merged into STG by LSN. The stream
    /// from P brings every change after P; each copy holds every commit up to S_t, so whatever the
    /// lost stretch of stream held is in the copies; STG rows the copies lack (deleted meanwhile)
    /// become tombstones. STG stays readable throughout, and BL follows the merged rows.
    /// - Returns: the new slot's consistent point and the table snapshot.
    public func resyncAll(jobs: Int? = nil, onStart: @Sendable (TransferProgress) async -> Void = { _ in })
        async throws -> (slotPoint: LSN, manifest: SnapshotManifest) {
        try await endpoint.withConnection(for: "snapshot") { control in try await resyncAll(jobs: jobs, control: control, onStart: onStart) }
    }

    private func resyncAll(jobs: Int?, control: PostgresConnection, onStart: @Sendable (TransferProgress) async -> Void)
        async throws -> (slotPoint: LSN, manifest: SnapshotManifest) {
        try await SourceChecks.requireLogicalDecoding(on: control, source: source)
        let snapshots = try await snapshotter.store.list(prefix: ObjectNaming.snapshotPrefix(source: source.name), startAfter: nil)
        guard snapshots.contains(where: { $0.key.hasSuffix("/" + ObjectNaming.manifestName) }) else {
            throw TributaryError(.slotMissing, "\(source.name) has no snapshot to resync: run tributary snapshot --source \(source.name)")
        }
        if let existing = try await ReplicationSlot.find(source.slot, on: control) {
            if let pid = existing.activePID {
                throw TributaryError(.slotInUse, """
                    replication slot "\(source.slot)" on \(source.name) is in use by process \(pid), so it is not lost: \
                    tributary pause \(source.name) first to resync anyway
                    """)
            }
            try await ReplicationSlot.drop(source.slot, on: control)
            snapshotter.logger.notice("dropped the replication slot to make it anew", metadata: [
                LogKey.slot: .string(source.slot), LogKey.walStatus: .string(existing.walStatus ?? "?"),
                LogKey.lsn: .string(existing.confirmedFlushLSN?.description ?? "?")])
        }
        let tables = try await SourceCatalog.describe(source.tables, source: source, on: control)
        try await PublicationSetup(source: source, logger: snapshotter.logger).prepare(on: control, tables: tables, restart: false)
        let created = try await endpoint.withConnection(.replication, for: "snapshot") { replication in
            try await replication.simpleQuery("CREATE_REPLICATION_SLOT \(SQL.identifier(source.slot)) LOGICAL pgoutput (SNAPSHOT 'nothing')")
        }
        guard let point = try created.first?.decodeIfPresent("consistent_point", as: LSN.self) else {
            throw TributaryError(.corrupt, "\(source.name): CREATE_REPLICATION_SLOT returned no consistent point")
        }
        snapshotter.logger.notice("replication slot made anew; every table is copied again", metadata: [
            LogKey.slot: .string(source.slot), LogKey.lsn: .string(point.description)])
        // After the slot: every copy's S_t is past P, so the stream and the copies overlap.
        return (point, try await copy(tables, jobs: jobs ?? snapshotter.settings.jobs, onStart: onStart))
    }

    /// Copies `tables` (described, in the publication) under a temporary slot's exported snapshot.
    func copy(_ tables: [SourceTable], jobs: Int, onStart: @Sendable (TransferProgress) async -> Void) async throws -> SnapshotManifest {
        let startedAt = Date()
        // Unique among the runs that may overlap; a temporary slot never outlives its connection.
        let slot = "\(SQL.truncated(source.slot, bytes: 50))_t\(UInt32.random(in: 0...UInt32.max))"
        let (consistentPoint, snapshotName, parts) = try await endpoint.withConnection(.replication, for: "table snapshot") { replication in
            // A table snapshot is named by its consistent point. Temporary slots made at once can
            // find the same one (one waits for the running-transactions record the other wrote),
            // and the second's manifest would replace the first's: made one after the other, each
            // starts past the one before.
            let (consistentPoint, snapshotName) = try await endpoint.withConnection(for: "table snapshot") { control in
                try await AdvisoryLock(name: "tributary-table-snapshot:\(source.slot)")
                    .around(on: control, waitingFor: "another table snapshot of \(source.name) to make its slot", logger: snapshotter.logger) {
                        try await Snapshotter.createSlot(slot, temporary: true, on: replication, source: source)
                    }
            }
            let log = snapshotter.logger.with(LogKey.lsn, consistentPoint.description)
            log.info("copying tables under a temporary slot", metadata: [
                LogKey.slot: .string(slot), LogKey.tables: .string(tables.map(\.name.description).joined(separator: ",")),
            ])
            // Each table marked done as soon as it is stored: a resume after a kill keeps those (`salvage`).
            let recorder = TableCompletionRecorder(store: snapshotter.store, inner: nil)
            await recorder.snapshotStarted(SnapshotManifest(
                source: source.name, slot: slot, consistentPoint: consistentPoint, snapshotName: snapshotName, startedAt: startedAt,
                finishedAt: startedAt, tables: Snapshotter.tables(tables, parts: []), scope: .tables))
            let parts = try await snapshotter.copyAll(tables: tables, consistentPoint: consistentPoint, snapshotName: snapshotName,
                                                      scope: .tables, jobs: jobs, observer: recorder, logger: log, onStart: onStart)
            return (consistentPoint, snapshotName, parts)
        }
        let log = snapshotter.logger.with(LogKey.lsn, consistentPoint.description)
        let manifest = SnapshotManifest(source: source.name, slot: slot, consistentPoint: consistentPoint, snapshotName: snapshotName,
                                        startedAt: startedAt, finishedAt: Date(), tables: Snapshotter.tables(tables, parts: parts), scope: .tables)
        let key = ObjectNaming.tableSnapshotManifest(source: source.name, consistentPoint: consistentPoint)
        guard try await snapshotter.store.head(key: key) == nil else {
            throw TributaryError(.state, "another table snapshot of \(source.name) is at \(consistentPoint) already: take this one again")
        }
        try await snapshotter.store.put(key: key, bytes: ManifestCoding.encode(manifest))
        log.info("table snapshot written", metadata: [LogKey.rows: .stringConvertible(manifest.tables.reduce(0) { $0 + $1.rows })])
        return manifest
    }

    /// The tables of `tables` that table snapshots taken after `point` (the full snapshot's) hold
    /// already: complete ones, and killed ones, where each table whose parts were all stored (its
    /// `table.json`) is consistent as of its snapshot's point and gets a manifest of its own, to be
    /// merged like any table snapshot. A resume copies none of these again.
    func salvage(_ tables: [SourceTable], after point: LSN) async throws -> [SnapshotTable] {
        let store = snapshotter.store, prefix = ObjectNaming.tableSnapshotPrefix(source: source.name)
        let keys = try await store.list(prefix: prefix, startAfter: nil).map(\.key)
        var saved: [SnapshotTable] = []
        for lsn in Set(keys.compactMap { ObjectNaming.lsnComponent(of: $0, after: prefix) }).sorted() where lsn > point {
            let manifestKey = ObjectNaming.tableSnapshotManifest(source: source.name, consistentPoint: lsn)
            if keys.contains(manifestKey) {
                let stored = try await store.manifest(SnapshotManifest.self, at: manifestKey)
                saved += stored.tables.filter { table in tables.contains { $0.relation == table.relation } }
                continue
            }
            var done: [SnapshotTable] = []
            for table in tables {
                let key = ObjectNaming.snapshotTableDone(source: source.name, consistentPoint: lsn, table: table.name, scope: .tables)
                guard keys.contains(key), let marked = try? await store.manifest(SnapshotTableDone.self, at: key),
                      marked.table.relation == table.relation, marked.table.stagingTable == table.configuration.stagingTable else { continue }
                done.append(marked.table)
            }
            guard !done.isEmpty else { continue }
            let manifest = SnapshotManifest(source: source.name, slot: "", consistentPoint: lsn, snapshotName: "", startedAt: Date(),
                                            finishedAt: Date(), tables: done, scope: .tables)
            try await store.put(key: ObjectNaming.tableSnapshotManifest(source: source.name, consistentPoint: lsn),
                                bytes: ManifestCoding.encode(manifest))
            snapshotter.logger.notice("kept the finished tables of a table snapshot that was killed", metadata: [
                LogKey.lsn: .string(lsn.description), LogKey.tables: .string(done.map(\.relation.table.description).joined(separator: ",")),
            ])
            saved += done
        }
        return saved
    }
}
