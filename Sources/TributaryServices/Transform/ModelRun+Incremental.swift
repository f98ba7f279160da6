import Foundation
import TributaryCore
import TributaryPostgres

extension ModelRun {
    /// An input's changes waiting beyond its watermark: the new watermark (its newest change now).
    struct Pending {
        var shape: TransformSQL.InputShape
        var from: ControlStore.Watermark?
        var to: ControlStore.Watermark
    }

    /// Re-evaluates the SELECT for the keys the inputs' changes since the watermarks affect, and
    /// merges: new and changed rows written, keys no longer produced removed (or flagged).
    mutating func incremental(shapes: [TransformSQL.InputShape], watermarks: [String: ControlStore.Watermark],
                              on connection: isolated PostgresConnection) throws -> Outcome {
        var outcome = Outcome(model: model.name, kind: .incremental)
        let pending = try self.pending(shapes: shapes, watermarks: watermarks, on: connection)
        guard !pending.isEmpty else { return Outcome(model: model.name, kind: .nothingToDo) }
        try execute(sql.createAffected, on: connection)
        for input in pending { try collectAffected(input, on: connection) }
        outcome.affectedKeys = try connection.query("SELECT count(*) FROM (SELECT DISTINCT * FROM \(TransformSQL.affected)) AS k").scalar(Int.self)
        if outcome.affectedKeys > 0 {
            let counts = try evaluateAndMerge(affected: outcome.affectedKeys, on: connection)
            (outcome.removed, outcome.inserted, outcome.updated) = counts
        }
        var marks = Array(watermarks.values)
        for input in pending {
            marks.removeAll { $0.input == input.to.input }
            marks.append(input.to)
        }
        try ControlStore.recordRun(of: model.name, watermarks: marks, full: false, asOf: try asOf(on: connection), on: connection)
        try pruneOwnLog(on: connection)
        return outcome
    }

    /// The inputs with changes after their watermark, each with the position it is taken up to.
    private func pending(shapes: [TransformSQL.InputShape], watermarks: [String: ControlStore.Watermark],
                         on connection: isolated PostgresConnection) throws -> [Pending] {
        var pending: [Pending] = []
        for shape in shapes {
            let name = shape.input.table.description
            let from = watermarks[name]
            guard let newest = try connection.query(sql.newestChange(shape)).optionalScalar(String.self) else { continue }
            if shape.upstream != nil {
                guard let seq = Int64(newest), seq > (from?.seq ?? 0) else { continue }
                pending.append(Pending(shape: shape, from: from, to: ControlStore.Watermark(input: name, seq: seq)))
            } else {
                guard let lsn = LSN(newest), from?.lsn.map({ lsn > $0 }) ?? true else { continue }
                pending.append(Pending(shape: shape, from: from, to: ControlStore.Watermark(input: name, lsn: lsn, epoch: from?.epoch)))
            }
        }
        return pending
    }

    /// The model keys one input's changes affect: what its changed rows map to now, and what they
    /// mapped to at the last run (a row moved from one key to another affects both).
    private mutating func collectAffected(_ input: Pending, on connection: isolated PostgresConnection) throws {
        let logged = input.shape.upstream == nil
        let rowsRead = !input.shape.mapsLoggedKeys
        if logged {
            try execute(TransformSQL.stagingLog(input.shape).changedKeys(into: TransformSQL.changedKeys, from: input.from?.lsn, to: input.to.lsn ?? .zero),
                        on: connection)
            if rowsRead { try execute("ANALYZE \(TransformSQL.changedKeys)", on: connection) }
        }
        if rowsRead {
            try execute(sql.changedRows(input.shape, fromLSN: input.from?.lsn, toLSN: input.to.lsn ?? .zero,
                                        fromSeq: input.from?.seq, toSeq: input.to.seq ?? 0), on: connection)
            try execute("ANALYZE \(TransformSQL.changed)", on: connection)
        }
        try execute(sql.affectedNow(input.shape), on: connection)
        if let map = input.shape.keyMap {
            try execute(sql.createKeyMap(input.shape, map: map), on: connection)
            try execute(sql.affectedBefore(input.shape, map: map), on: connection)
            try execute(sql.refreshKeyMap(input.shape, map: map), on: connection)
        }
        if rowsRead { try execute("DROP TABLE \(TransformSQL.changed)", on: connection) }
        if logged { try execute("DROP TABLE \(TransformSQL.changedKeys)", on: connection) }
    }

    private mutating func evaluateAndMerge(affected: Int, on connection: isolated PostgresConnection) throws -> (Int, Int, Int) {
        let tableColumns = try TargetCatalog.columns(of: model.table, on: connection)
        let types = model.key.map { key in tableColumns.first { $0.name == key }?.type ?? "text" }
        // Statistics of the affected keys, so the planner sizes its joins for them, not for a guess.
        try execute("ANALYZE \(TransformSQL.affected)", on: connection)
        var restriction: String?
        if affected <= Self.pushdownKeysMax {
            let groups = try connection.query(sql.affectedGroups).rows.map(\.values)
            if groups.count <= Self.pushdownGroupsMax {
                restriction = TransformSQL.restriction(key: model.key, types: types, groups: groups)
            }
        }
        try execute(sql.evaluate(restriction: restriction), on: connection)
        try execute("ANALYZE \(TransformSQL.fresh)", on: connection)
        let produced = try TargetCatalog.temporaryColumns(of: TransformSQL.fresh, on: connection)
        try checkDrift(produced: produced, existing: tableColumns)
        try Self.checkKeys(model, sql: sql, on: connection)
        try execute(sql.findCurrentRows, on: connection)
        try execute("ANALYZE \(TransformSQL.current)", on: connection)
        if let surrogate = model.surrogate {
            try execute(sql.createSurrogateMap(surrogate: surrogate), on: connection)
            try execute(sql.assignNewSurrogates, on: connection)
        }
        let logged = !dependants.isEmpty
        var loggedColumns: [String]?
        if logged {
            try execute(sql.createChangeLog, on: connection)
            let compared = sql.tableColumns(selectColumns: produced.map(\.name)).filter { !model.key.contains($0) }
            var readers: [TransformSQL.ReaderColumns?] = []
            for reader in dependants { readers.append(try readerColumns(reader, on: connection)) }
            loggedColumns = TransformSQL.loggedColumns(compared: compared, readers: readers)
        }
        let merge = sql.merge(selectColumns: produced.map(\.name), logged: logged, loggedColumns: loggedColumns)
        if recording { statements.append(merge) }
        let counts = try connection.query(merge).rows[0]
        let (removed, inserted, updated): (Int, Int, Int) = (try counts.decode("removed"), try counts.decode("inserted"), try counts.decode("updated"))
        try Self.checkWritten(model, inserted: inserted, updated: updated, changed: try counts.decode("changed"))
        return (removed, inserted, updated)
    }

    /// Every row the merge meant to write was written: one it missed (its `ctid` no longer the
    /// row's) would be a change lost. The run fails instead, and the next one does it again.
    static func checkWritten(_ model: TransformModel, inserted: Int, updated: Int, changed: Int) throws {
        guard inserted + updated != changed else { return }
        throw TributaryError(.model, "model \(model.name): \(changed) rows were to be written to \(model.table) but \(inserted + updated) were: "
                            + "something else wrote the table during the run; the next run writes them")
    }

    /// What `reader` uses of this model's table, as the catalog records it for views made of its
    /// SELECT and its input mapping (in a savepoint, rolled back); nil when they cannot be made
    /// now (the reader's SQL is broken: it will need every change once fixed).
    private func readerColumns(_ reader: TransformModel, on connection: isolated PostgresConnection) throws -> TransformSQL.ReaderColumns? {
        try connection.execute("SAVEPOINT reader_probe")
        defer { _ = try? connection.execute("ROLLBACK TO SAVEPOINT reader_probe") }
        do {
            for statement in sql.readerProbe(reader) { try connection.execute(statement) }
        } catch {
            logger.debug("cannot tell which columns a reading model uses", metadata: [LogKey.model: .string(model.name), LogKey.reader: .string(reader.name),
                                                                                     LogKey.error: .string("\(error)")])
            return nil
        }
        // A reader's input for this table always has a mapping: both views exist.
        let views = [(TransformSQL.probeSelectView, model.table.sql), (TransformSQL.probeMappingView, "changed")]
        var columns: Set<String> = [], wholeRow = false, selectNamesTable = false
        for (view, table) in views {
            let named = try connection.query(TransformSQL.probeColumns(view: view, table: table)).rows.map { try $0.decode(at: 0, as: String.self) }
            columns.formUnion(named)
            if view == TransformSQL.probeSelectView { selectNamesTable = !named.isEmpty }
            wholeRow = try wholeRow || connection.query(TransformSQL.probeWholeRow(view: view)).scalar(Bool.self)
        }
        return TransformSQL.ReaderColumns(columns: columns, wholeRow: wholeRow, selectNamesTable: selectNamesTable)
    }

    /// The SELECT's columns must be the model table's (but its surrogate and `_deleted`).
    private func checkDrift(produced: [TargetCatalog.Column], existing: [TargetCatalog.Column]) throws {
        let managed = Set([model.surrogate, TransformSQL.deleted].compactMap { $0 })
        let current = existing.filter { !managed.contains($0.name) }
        guard produced != current else { return }
        let describe = { (columns: [TargetCatalog.Column]) in columns.map { "\($0.name) \($0.type)" }.joined(separator: ", ") }
        throw SchemaDrift(message: """
            model \(model.name)'s SELECT now gives (\(describe(produced))) but \(model.table) has (\(describe(current))): \
            rebuild it with tributary transform --model \(model.name) --full, or set schema_drift: rebuild in \(model.file)
            """)
    }

    /// The oldest of the newest commits the model's sources had applied, as this run saw them.
    func asOf(on connection: isolated PostgresConnection) throws -> Date? {
        try ControlStore.appliedCommitTimes(on: connection).filter { sources.contains($0.key) }.values.min()
    }

    /// The entries of this model's change log that every model reading it has taken in. Only the
    /// model itself deletes from its log: readers, which may run beside each other, only read it
    /// (two readers pruning the same entries would fail each other's repeatable-read transaction).
    private mutating func pruneOwnLog(on connection: isolated PostgresConnection) throws {
        let readers = all.filter { $0.upstreamTables.contains(model.table) }.map(\.name)
        guard !readers.isEmpty, let oldest = try ControlStore.oldestPosition(in: model.table.description, of: readers, on: connection) else {
            return
        }
        try execute(sql.pruneChangeLog(below: oldest), on: connection)
    }
}

/// The SELECT's columns differ from the model table's.
struct SchemaDrift: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
