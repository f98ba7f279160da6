import Foundation
import Logging
import TributaryCore
import TributaryPostgres

/// Turns fully loaded load tables into STG tables: the key and statistics are built on the load
/// table (while other tables still load), then one short transaction per table checks the rows
/// against the recorded parts and swaps the catalogs. Also clears away the load tables of
/// snapshots that can never be applied.
struct TablePromotion: Sendable {
    let target: String
    /// Bytes of `maintenance_work_mem` while a key is built.
    let maintenanceWorkMem: Int
    let logger: Logger

    /// `tributary_load.<source>_<lsn>_<n>`: unique per snapshot and table, and short.
    static func loadTable(source: String, lsn: LSN, index: Int) -> QualifiedName {
        QualifiedName(schema: StagingColumns.loadSchema, name: "\(source)_\(lsn.paddedHex)_\(index)")
    }

    /// Builds a fully loaded table's key and statistics on its load table, before promotion, so
    /// that this can overlap the load of other tables (`PartLoadSchedule` hands every table to it
    /// before promotion). Nothing of it is visible in STG. Safe to repeat.
    func buildKey(_ table: SnapshotTable, loadTable: QualifiedName, on connection: PostgresConnection) async throws {
        let stagingTable = QualifiedName(schema: StagingColumns.schema, name: table.stagingTable)
        let started = ContinuousClock.now
        let built = try await connection.run { [maintenanceWorkMem] connection in
            try connection.transaction { connection -> Bool in
                guard try connection.query(SnapshotSQL.hasKey, [loadTable.sql]).isEmpty else { return false }
                // The sort behind the index stays in memory instead of spilling to disk.
                try connection.execute("SET LOCAL maintenance_work_mem = '\(max(1, maintenanceWorkMem >> 10))kB'")
                try connection.execute(SnapshotSQL.addKey(loadTable, stagingTable: stagingTable, relation: table.relation))
                // Statistics now, so the first merges and BL queries get good plans; they move with the table.
                try connection.execute("ANALYZE \(loadTable.sql)")
                return true
            }
        }
        guard built else { return }
        logger.debug("key built", metadata: [LogKey.table: .string(stagingTable.description),
                                             LogKey.seconds: .string(String(format: "%.1f", (ContinuousClock.now - started).seconds))])
    }

    /// Promotes every table of `snapshot` not in `except`, `jobs` at a time. Keys are built by then,
    /// so each promotion only swaps catalogs.
    func promoteAll(_ snapshot: SnapshotManifest, loadTables: [QualifiedName], except finished: Set<String>, jobs: Int,
                    logger: Logger) async throws {
        let queue = WorkQueue(snapshot.tables.indices.filter { !finished.contains(snapshot.tables[$0].stagingTable) })
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<max(1, jobs) {
                group.addTask {
                    let connection = try await TargetSession.connect(target)
                    while let index = await queue.take() {
                        try await promote(snapshot, table: index, loadTable: loadTables[index], on: connection, logger: logger)
                    }
                    await connection.close()
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
        try await connection.run { connection in
            try connection.transaction { connection in
                // Each part's row count was checked and recorded with it; their sum must be the table's.
                let rows = try ControlStore.rowsOfParts(snapshot.source, snapshot: snapshot.consistentPoint, keys: table.parts.map(\.key),
                                                        on: connection)
                guard rows == table.rows else {
                    throw OperatorError("\(loadTable) holds \(rows) rows of recorded parts but the snapshot of \(table.relation.table) has \(table.rows): run apply again")
                }
                for statement in SnapshotSQL.promote(loadTable, to: stagingTable, relation: table.relation,
                                                     consistentPoint: snapshot.consistentPoint) {
                    try connection.execute(statement)
                }
                try ControlStore.recordPromotion(snapshot.source, snapshot: snapshot.consistentPoint, table: table, rows: rows, on: connection)
            }
        }
        logger.info("STG table ready", metadata: [LogKey.table: .string(stagingTable.description), LogKey.rows: .stringConvertible(table.rows),
                                                  LogKey.seconds: .string(String(format: "%.1f", (ContinuousClock.now - started).seconds))])
    }

    /// Older snapshots of `source` that were being loaded when a newer one was applied (a failed
    /// `snapshot --apply`, or one replaced by `--restart` before its load finished) can never be
    /// applied now: their load tables, which may hold much of a table, go with their records.
    func dropAbandoned(source: String, applied: LSN, control: ControlStore, logger: Logger) async throws {
        for (lsn, tables) in try await control.abandonedSnapshots(source, olderThan: applied) {
            try await control.connection.run { connection in
                try connection.transaction { connection in
                    for index in 0..<tables {
                        try connection.execute("DROP TABLE IF EXISTS \(Self.loadTable(source: source, lsn: lsn, index: index).sql)")
                    }
                    try ControlStore.forgetSnapshot(source, snapshot: lsn, on: connection)
                }
            }
            logger.notice("dropped the load tables of a superseded snapshot", metadata: [
                "superseded_lsn": .string(lsn.description), "tables": .stringConvertible(tables),
            ])
        }
    }
}
