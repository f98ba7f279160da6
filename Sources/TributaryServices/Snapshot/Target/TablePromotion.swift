import Foundation
import Logging
import TributaryCore
import TributaryPostgres
import TributaryStorage

/// Turns fully loaded load tables into STG tables: the key and statistics are built on the load
/// table (while other tables still load), then one short transaction per table checks the rows
/// against the recorded parts and swaps the catalogs. Also clears away the load tables of
/// snapshots that can never be applied.
struct TablePromotion: Sendable {
    let target: TargetEndpoint
    /// Bytes of `maintenance_work_mem` while a key is built.
    let maintenanceWorkMem: Int
    let logger: Logger
    /// Where the files that waited for a table's copy are fetched from, and the sources they
    /// belong to (how STG follows their shape).
    var store: (any StagingStore)?
    var sources: [SourceConfiguration] = []

    /// `tributary_load.<source>_<lsn>_<hash of the STG table>`: unique per snapshot and table, and
    /// short. Named for the table, not its place in a manifest: a resumed snapshot's manifest lists
    /// fewer tables than the killed run did, and a load table must never be taken for another's.
    static func loadTable(source: String, lsn: LSN, stagingTable: String) -> QualifiedName {
        QualifiedName(schema: StagingColumns.loadSchema, name: loadPrefix(source: source, lsn: lsn) + StableHash.hex(stagingTable))
    }

    /// What the names of one snapshot's load tables begin with.
    static func loadPrefix(source: String, lsn: LSN) -> String { "\(SQL.truncated(source, bytes: 28))_\(lsn.paddedHex)_" }

    /// Drops the load tables of `source`'s snapshot at `lsn` still there: after its promotion, the
    /// leftovers of a killed run's tables that a resume copied again elsewhere; or all of them, for
    /// a snapshot that can never be applied.
    static func dropLoadTables(source: String, lsn: LSN, on connection: isolated PostgresConnection) throws -> Int {
        try dropLoadTables(startingWith: loadPrefix(source: source, lsn: lsn), on: connection)
    }

    /// Drops the load tables whose names begin with `prefix`; returns how many.
    static func dropLoadTables(startingWith prefix: String, on connection: isolated PostgresConnection) throws -> Int {
        let names = try connection.query("""
            SELECT tablename FROM pg_tables WHERE schemaname = $1 AND starts_with(tablename, $2)
            """, [StagingColumns.loadSchema, prefix]).column(String.self)
        for name in names { try connection.execute("DROP TABLE IF EXISTS \(QualifiedName(schema: StagingColumns.loadSchema, name: name).sql)") }
        return names.count
    }

    /// Builds a fully loaded table's key and statistics on its load table, before promotion, so
    /// that this can overlap the load of other tables (`PartLoadSchedule` hands every table to it
    /// before promotion). Nothing of it is visible in STG. Safe to repeat.
    func buildKey(_ table: SnapshotTable, loadTable: QualifiedName, on connection: PostgresConnection) async throws {
        let stagingTable = QualifiedName(schema: StagingColumns.schema, name: table.stagingTable)
        let started = ContinuousClock.now
        let built = try await connection.run { [maintenanceWorkMem] connection -> Int? in
            try connection.transaction { connection -> Int? in
                guard try connection.query(SnapshotSQL.hasKey, [loadTable.sql]).isEmpty else { return nil }
                // The sort behind the index stays in memory instead of spilling to disk, and so
                // does the grouping by key of a resumed table (at the default 4MB it spilled).
                let memory = "'\(max(1, maintenanceWorkMem >> 10))kB'"
                try connection.execute("SET LOCAL maintenance_work_mem = \(memory)")
                var removed = 0
                if table.keysMayRepeat == true {
                    try connection.execute("SET LOCAL work_mem = \(memory)")
                    removed = try connection.query(SnapshotSQL.keepOneRowPerKey(loadTable, key: table.relation.key)).affectedRows
                }
                try connection.execute(SnapshotSQL.addKey(loadTable, stagingTable: stagingTable, relation: table.relation))
                // Statistics now, so the first merges and BL queries get good plans; they move with the table.
                try connection.execute("ANALYZE \(loadTable.sql)")
                return removed
            }
        }
        guard let removed = built else { return }
        logger.debug("key built", metadata: [LogKey.table: .string(stagingTable.description),
                                             LogKey.seconds: .string(String(format: "%.1f", (ContinuousClock.now - started).seconds))])
        if removed > 0 {
            logger.info("kept one row of each key copied twice by a resumed snapshot", metadata: [
                LogKey.table: .string(stagingTable.description), LogKey.rows: .stringConvertible(removed)])
        }
    }

    /// Promotes every table of `snapshot` not in `except`, `jobs` at a time. Keys are built by then,
    /// so each promotion only swaps catalogs. A table snapshot's table is merged into its STG table
    /// instead, when that exists (`merge`).
    func promoteAll(_ snapshot: SnapshotManifest, loadTables: [QualifiedName], except finished: Set<String>, jobs: Int,
                    logger: Logger) async throws {
        let queue = WorkQueue(snapshot.tables.indices.filter { !finished.contains(snapshot.tables[$0].stagingTable) })
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<max(1, jobs) {
                group.addTask {
                    try await target.withConnection(.apply, for: "promote") { connection in
                        while let index = await queue.take() {
                            let stagingTable = QualifiedName(schema: StagingColumns.schema, name: snapshot.tables[index].stagingTable)
                            let exists = try await connection.run { try TargetCatalog.exists(stagingTable, on: $0) }
                            if snapshot.isFull || !exists {
                                try await promote(snapshot, table: index, loadTable: loadTables[index], on: connection, logger: logger)
                            } else {
                                try await merge(snapshot, table: index, loadTable: loadTables[index], on: connection, logger: logger)
                            }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    private func promote(_ snapshot: SnapshotManifest, table index: Int, loadTable: QualifiedName, on connection: PostgresConnection,
                         logger: Logger) async throws {
        let table = snapshot.tables[index]
        let stagingTable = QualifiedName(schema: StagingColumns.schema, name: table.stagingTable)
        let started = ContinuousClock.now
        let waited = deferredFilesSource(snapshot.source)
        try await connection.runAsync { connection in
            try await connection.transaction { connection in
                // Each part's row count was checked and recorded with it; their sum must be the table's.
                let rows = try ControlStore.rowsOfParts(snapshot.source, snapshot: snapshot.consistentPoint, keys: table.parts.map(\.key),
                                                        on: connection)
                guard rows == table.rows else {
                    throw TributaryError(.corrupt, "\(loadTable) holds \(rows) rows of recorded parts but the snapshot of \(table.relation.table) has \(table.rows): run apply again")
                }
                for statement in SnapshotSQL.promote(loadTable, to: stagingTable, relation: table.relation,
                                                     consistentPoint: snapshot.consistentPoint) {
                    try connection.execute(statement)
                }
                // The models reading the table reload it whole (a new snapshot); its change log,
                // typed for the old table, is made anew and seeded by their next run.
                try connection.execute("DROP TABLE IF EXISTS \(StagingChangeLog.name(of: stagingTable).sql)")
                try ControlStore.recordPromotion(snapshot.source, snapshot: snapshot.consistentPoint, table: table, rows: rows, on: connection)
                // The shape STG follows from the snapshot's point on: what tells a rename from a drop.
                try ControlStore.recordStagingRelation(table.relation, stagingTable: table.stagingTable, source: snapshot.source,
                                                       at: snapshot.consistentPoint, on: connection)
                // Changes that waited for a copy of the table (it got an STG table of its own before
                // this one was swapped in) are merged over it.
                _ = try await Self.replayDeferredFiles(of: table.stagingTable, over: snapshot.consistentPoint, waited: waited,
                                                       logger: logger, on: connection)
            }
        }
        logger.info("STG table ready", metadata: [LogKey.table: .string(stagingTable.description), LogKey.rows: .stringConvertible(table.rows),
                                                  LogKey.seconds: .string(String(format: "%.1f", (ContinuousClock.now - started).seconds))])
    }

    /// Merges a table snapshot's fully loaded table into the existing STG table by LSN, in one
    /// transaction (`SnapshotSQL.mergeTableSnapshot`): the stream goes on meanwhile, and whatever
    /// the applier wrote at or after the table snapshot's consistent point stays. Columns the copy
    /// has and STG lacks are added first. BL models reading the table take in the merged rows.
    private func merge(_ snapshot: SnapshotManifest, table index: Int, loadTable: QualifiedName, on connection: PostgresConnection,
                       logger: Logger) async throws {
        let table = snapshot.tables[index]
        let stagingTable = QualifiedName(schema: StagingColumns.schema, name: table.stagingTable)
        let started = ContinuousClock.now
        let waited = deferredFilesSource(snapshot.source)
        let changed = try await connection.runAsync { connection -> Int in
            try await connection.transaction { connection -> Int in
                // Waits for the BL runs reading the table and holds new ones back until it commits
                // (they lock it ROW SHARE, see `ModelRun.beginWithInputsLocked`): the keys it logs
                // at its consistent point, behind later batches, then reach every run, and the
                // rewind below sees every watermark a run set. Readers of STG are not held up;
                // the applier's next batch of this table waits for the merge.
                try connection.execute("LOCK TABLE \(stagingTable.sql) IN EXCLUSIVE MODE")
                let rows = try ControlStore.rowsOfParts(snapshot.source, snapshot: snapshot.consistentPoint, keys: table.parts.map(\.key),
                                                        on: connection)
                guard rows == table.rows else {
                    throw TributaryError(.corrupt, "\(loadTable) holds \(rows) rows of recorded parts but the snapshot of \(table.relation.table) has \(table.rows): run apply again")
                }
                try SchemaFollowing.followCopy(table.relation, stagingTable: table.stagingTable, source: snapshot.source,
                                               at: snapshot.consistentPoint, logger: logger, on: connection)
                // Rows the merge writes are logged for the models reading the table, like a batch's.
                let log = try BatchApplier.changeLog(of: stagingTable, key: table.relation.key, on: connection)
                var changed = 0
                for statement in SnapshotSQL.mergeTableSnapshot(loadTable, into: stagingTable, columns: table.relation.columnNames,
                                                                key: table.relation.key, consistentPoint: snapshot.consistentPoint,
                                                                truncatedAt: try ControlStore.truncatedAt(table.stagingTable, on: connection)) {
                    if let log {
                        changed += try connection.query(log.logging(statement, at: snapshot.consistentPoint)).scalar(Int.self)
                    } else {
                        changed += try connection.query(statement).affectedRows
                    }
                }
                try connection.execute("DROP TABLE \(loadTable.sql)")
                changed += try await Self.replayDeferredFiles(of: table.stagingTable, over: snapshot.consistentPoint, waited: waited,
                                                              logger: logger, on: connection)
                try ControlStore.recordPromotion(snapshot.source, snapshot: snapshot.consistentPoint, table: table, rows: rows, merged: true,
                                                 on: connection)
                try ControlStore.rewindWatermarks(of: table.stagingTable, before: snapshot.consistentPoint, on: connection)
                return changed
            }
        }
        logger.info("STG table merged with a table snapshot", metadata: [
            LogKey.table: .string(stagingTable.description), LogKey.rows: .stringConvertible(table.rows),
            LogKey.changed: .stringConvertible(changed), LogKey.seconds: .string(String(format: "%.1f", (ContinuousClock.now - started).seconds)),
        ])
    }

    /// The store and configuration a table that waited for its copy replays its files from.
    private func deferredFilesSource(_ source: String) -> CopyWaitReplay? {
        guard let store, let configuration = sources.first(where: { $0.name == source }) else { return nil }
        return CopyWaitReplay(store: store, source: configuration)
    }

    struct CopyWaitReplay: Sendable {
        let store: any StagingStore
        let source: SourceConfiguration
    }

    /// A table whose STG table was created empty (it joined after the snapshot) kept the files the
    /// stream brought for it until this copy: they are merged over it now, in the order they were
    /// staged, each with only its changes at or after the copy's point (the copy holds the others). On
    /// the copy's rows, an update that left a large value out as unchanged TOAST finds it.
    /// Waits for a batch deferring files to the table to commit first (`tablesAwaitingCopy`).
    /// Returns the changes merged.
    static func replayDeferredFiles(of stagingTable: String, over point: LSN, waited: CopyWaitReplay?, logger: Logger,
                                    on connection: isolated PostgresConnection) async throws -> Int {
        guard try ControlStore.endCopyWait(stagingTable, on: connection) else { return 0 }
        let deferred = try ControlStore.deferredFiles(of: stagingTable, after: point, on: connection)
        var merged = 0
        if !deferred.isEmpty {
            guard let waited else {
                throw TributaryError(.requirement, "stg.\(stagingTable) has changes waiting for its copy, and this load cannot merge them: run tributary apply")
            }
            for (position, (batchEnd, file)) in deferred.enumerated() {
                let local: LocalObject
                do {
                    local = try await waited.store.fetch(key: file.file.key)
                } catch let error as StorageError {
                    throw TributaryError(.corrupt, """
                        a file of stg.\(stagingTable) that waited for its copy is gone from the store (\(error)): take the table's \
                        snapshot again, tributary snapshot --source \(waited.source.name) --table \(file.relation.table)
                        """)
                }
                defer { local.release() }
                var none = Set<String>()
                merged += try BatchApplier.apply(file, position: position, path: local.path, loaded: nil, copiedAt: point,
                                                 schema: SchemaFollowing(source: waited.source, batchEnd: batchEnd, logger: logger),
                                                 awaiting: &none, on: connection)
            }
        }
        try ControlStore.forgetCopyWait(stagingTable, on: connection)
        logger.info("changes that waited for the copy merged over it", metadata: [
            LogKey.table: .string("stg.\(stagingTable)"), LogKey.files: .stringConvertible(deferred.count), LogKey.rows: .stringConvertible(merged)])
        return merged
    }

    /// Columns of `relation` that STG does not have yet (added on the source before the copy).
    static func addMissingColumns(_ relation: RelationSchema, to stagingTable: QualifiedName, on connection: isolated PostgresConnection) throws {
        let existing = Dictionary(uniqueKeysWithValues: try TargetCatalog.columns(of: stagingTable, on: connection).map { ($0.name, $0.type) })
        for column in relation.columns {
            if let type = existing[column.name] {
                guard type == column.stagingType else {
                    throw TributaryError(.schemaChange, """
                        column \(column.name) of \(stagingTable) is \(type) but the source's \(relation.table) now has \(column.stagingType): \
                        ALTER TABLE \(stagingTable.sql) ALTER COLUMN \(SQL.identifier(column.name)) TYPE \(column.stagingType), then apply again
                        """)
                }
                continue
            }
            try connection.execute("ALTER TABLE \(stagingTable.sql) ADD COLUMN \(SQL.identifier(column.name)) \(column.stagingType)")
        }
    }

    /// Older snapshots of `source` that were being loaded when a newer one was applied (a failed
    /// `snapshot --apply`, or one replaced by `--restart` before its load finished) can never be
    /// applied now: their load tables, which may hold much of a table, go with their records.
    func dropAbandoned(source: String, applied: LSN, control: ControlStore, logger: Logger) async throws {
        for (lsn, tables) in try await control.abandonedSnapshots(source, olderThan: applied) {
            try await control.connection.run { connection in
                try connection.transaction { connection in
                    _ = try Self.dropLoadTables(source: source, lsn: lsn, on: connection)
                    try ControlStore.forgetSnapshot(source, snapshot: lsn, on: connection)
                }
            }
            logger.notice("dropped the load tables of a superseded snapshot", metadata: [
                LogKey.supersededLSN: .string(lsn.description), LogKey.tables: .stringConvertible(tables),
            ])
        }
    }
}
