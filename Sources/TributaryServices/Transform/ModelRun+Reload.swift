import Foundation
import TributaryCore
import TributaryPostgres

extension ModelRun {
    /// Builds the model whole beside its table and swaps it in. Readers keep seeing the old table
    /// (MVCC) until the commit; the swap's lock is taken last, so they wait only for the swap.
    mutating func reload(shapes: [TransformSQL.InputShape], on connection: isolated PostgresConnection) throws -> Outcome {
        var outcome = Outcome(model: model.name, kind: .full)
        let marks = try newestPositions(shapes: shapes, on: connection)
        let columns = try evaluateWhole(on: connection)
        let existed = try TargetCatalog.exists(model.table, on: connection)
        if existed && recording {
            // A dry run says what the reload would change, as an incremental run over every key would.
            try execute("CREATE TEMPORARY TABLE \(TransformSQL.affected) ON COMMIT DROP AS SELECT \(SQL.identifierList(model.key)) FROM \(model.table.sql) "
                        + "UNION SELECT \(SQL.identifierList(model.key)) FROM \(TransformSQL.fresh)", on: connection)
            try execute(sql.findCurrentRows, on: connection)
            let counts = try connection.query(sql.merge(selectColumns: columns, logged: false)).rows[0]
            (outcome.removed, outcome.inserted, outcome.updated) = (try counts.decode("removed"), try counts.decode("inserted"), try counts.decode("updated"))
        } else {
            outcome.inserted = try connection.query("SELECT count(*) FROM \(TransformSQL.fresh)").scalar(Int.self)
        }
        try execute(sql.createReloadTable(sql.reloadTable, selectColumns: columns), on: connection)
        if existed && model.deletes == .flag {
            let before = try TargetCatalog.columns(of: model.table, on: connection).map(\.name)
            if before == sql.tableColumns(selectColumns: columns) {
                try execute(sql.carryFlaggedKeys(selectColumns: columns), on: connection)
            } else {
                logger.notice("the model's columns changed: the rows of keys it no longer makes are not carried over",
                              metadata: [LogKey.model: .string(model.name)])
            }
        }
        for shape in shapes {
            guard let map = shape.keyMap else { continue }
            try execute("DROP TABLE IF EXISTS \(map.sql)", on: connection)
            try execute(sql.createKeyMap(shape, map: map).map { $0.replacingOccurrences(of: model.table.sql, with: sql.reloadTable.sql) }, on: connection)
            try execute(sql.rebuildKeyMap(shape, map: map), on: connection)
        }
        try execute("LOCK TABLE \(SQL.identifier(model.table.schema)).\(SQL.identifier(model.table.name)) IN ACCESS EXCLUSIVE MODE", on: connection,
                    ifExists: existed)
        try execute(sql.swap, on: connection)
        if !dependants.isEmpty {
            // The models reading this one cannot tell what a reload changed: they rebuild too.
            try execute("DROP TABLE IF EXISTS \(sql.changeLog.sql)", on: connection)
            try execute(sql.createChangeLog, on: connection)
            try ControlStore.requireFullReload(of: dependants.map(\.name), on: connection)
        }
        try ControlStore.recordRun(of: model.name, watermarks: marks, full: true, asOf: try asOf(on: connection), on: connection)
        return outcome
    }

    /// The SELECT's rows, whole, into `_tributary_new`, checked, with surrogates assigned; returns
    /// its columns.
    mutating func evaluateWhole(on connection: isolated PostgresConnection) throws -> [String] {
        try execute(sql.evaluateAll, on: connection)
        try Self.checkKeys(model, sql: sql, on: connection)
        if let surrogate = model.surrogate {
            try execute(sql.createSurrogateMap(surrogate: surrogate), on: connection)
            try execute(sql.assignSurrogates, on: connection)
        }
        return try TargetCatalog.temporaryColumns(of: TransformSQL.fresh, on: connection).map(\.name)
    }

    /// Every input's newest change now: the watermarks a full reload leaves, with the snapshot
    /// each STG input was loaded from.
    private func newestPositions(shapes: [TransformSQL.InputShape], on connection: isolated PostgresConnection) throws -> [ControlStore.Watermark] {
        try shapes.map { shape in
            let name = shape.input.table.description
            let newest = try connection.query(sql.newestRow(shape)).optionalScalar(String.self)
            if shape.upstream != nil { return ControlStore.Watermark(input: name, seq: newest.flatMap { Int64($0) } ?? 0) }
            return ControlStore.Watermark(input: name, lsn: newest.flatMap { LSN($0) },
                                          epoch: try ControlStore.loadedSnapshot(of: shape.input.table.name, on: connection))
        }
    }

    private mutating func execute(_ statement: String, on connection: isolated PostgresConnection, ifExists: Bool) throws {
        if ifExists { try execute(statement, on: connection) }
    }

    /// The whole model into `scratch` (a schema of the caller's), beside the live table, for a
    /// comparison: nothing else changes but surrogates assigned to new keys.
    mutating func reload(into scratch: String, on connection: isolated PostgresConnection) throws -> Int {
        try beginWithInputsLocked(on: connection)
        do {
            try connection.execute("CREATE SCHEMA IF NOT EXISTS \(SQL.identifier(scratch))")
            let columns = try evaluateWhole(on: connection)
            try execute(sql.createReloadTable(QualifiedName(schema: scratch, name: model.table.name), selectColumns: columns), on: connection)
            let rows = try connection.query("SELECT count(*) FROM \(TransformSQL.fresh)").scalar(Int.self)
            try connection.execute("COMMIT")
            return rows
        } catch {
            try? connection.execute("ROLLBACK")
            throw error
        }
    }
}
