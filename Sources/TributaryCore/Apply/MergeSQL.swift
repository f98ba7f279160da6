/// SQL that applies one CDC file to its STG table (DESIGN.md §4), generated from the relation
/// schema. Run in the batch's transaction, in this order: `createTemporary`, `copyIn`, then per
/// truncate `truncatePoint` / `tombstoneOlderThan`, then `merge`. Or, for a batch loaded ahead
/// on another connection (`createLoadTable` and `copyIn` there, committed): the same from
/// `truncatePoint` on, on the load table, after `changeSummary` has vouched for its rows.
public struct MergeSQL: Sendable {
    public let relation: RelationSchema
    public let target: QualifiedName
    /// The file's changes: a temporary table, or an unlogged load table loaded ahead.
    public let temporary: QualifiedName

    public init(relation: RelationSchema, stagingTable: String, temporaryName: String) {
        self.relation = relation
        target = QualifiedName(schema: StagingColumns.schema, name: stagingTable)
        temporary = QualifiedName(schema: "pg_temp", name: temporaryName)
    }

    public init(relation: RelationSchema, stagingTable: String, loadTable: QualifiedName) {
        self.relation = relation
        target = QualifiedName(schema: StagingColumns.schema, name: stagingTable)
        temporary = loadTable
    }

    /// A batch file's merge, from the load table it was loaded into ahead, or else from the
    /// session's temporary table of its shape; unsorted when `mergesUnsorted` says so.
    public init(_ file: BatchFile, loadTable: QualifiedName?) {
        if let loadTable {
            self.init(relation: file.relation, stagingTable: file.stagingTable, loadTable: loadTable)
        } else {
            self.init(relation: file.relation, stagingTable: file.stagingTable,
                      temporaryName: "tributary_changes_\(Self.shapeName(of: file.relation))")
        }
        keysDistinct = Self.mergesUnsorted(file)
    }

    /// How statements name the changes table (a temporary one unqualified, as before load tables).
    public var changes: String {
        temporary.schema == "pg_temp" ? SQL.identifier(temporary.name) : temporary.sql
    }
    private var isLoadTable: Bool { temporary.schema != "pg_temp" }

    private var keys: [String] { relation.key }
    private var values: [ColumnSchema] { relation.columns.filter { !relation.key.contains($0.name) } }
    private var lsn: String { SQL.identifier(StagingColumns.lsn) }
    private var deleted: String { SQL.identifier(StagingColumns.deleted) }

    /// A changes table's columns: the change's own, then the relation's in their STG types.
    private var changeColumns: String { Self.changeColumns(of: relation) }

    private static func changeColumns(of relation: RelationSchema) -> String {
        (["_op text", "_lsn pg_lsn", "_seq bigint", "_unchanged text[]"]
            + relation.columns.map { "\(SQL.identifier($0.name)) \($0.stagingType)" }).joined(separator: ", ")
    }

    /// What names a changes table of this shape (its columns and their types), so a session
    /// reuses one table per shape for every batch instead of creating one per file: each CREATE
    /// and DROP inserts and deletes rows of pg_class, pg_attribute, pg_type and pg_depend, which
    /// over hundreds of tables and weeks of batches bloats the target's catalog.
    public static func shapeName(of relation: RelationSchema) -> String { StableHash.hex(changeColumns(of: relation)) }

    /// The temporary changes table of this shape, for the session's life: created when the
    /// session first needs it, emptied in place at each commit (ON COMMIT DELETE ROWS writes no
    /// catalog row), and emptied here too, for a second file of the same shape in one batch.
    public var createTemporary: String {
        let name = SQL.identifier(temporary.name)
        return "CREATE TEMPORARY TABLE IF NOT EXISTS \(name) (\(changeColumns)) ON COMMIT DELETE ROWS; DELETE FROM \(name)"
    }

    /// The changes table of a batch loaded ahead: committed by the loading connection so the
    /// merging one can read it, hence not temporary; unlogged, as nothing of it must survive a
    /// crash (the batch is loaded again). Reused batch after batch (the preloader alternates two
    /// per shape), emptied as `LoadTableReuse` decides: TRUNCATE (no new catalog rows, and COPY
    /// then loads it frozen: `copyIn` with `loadsFrozen`) or DELETE. Autovacuum is kept off it:
    /// its lock would hold the TRUNCATE up.
    public func createLoadTable(emptying: LoadTableReuse.Emptying = .create) -> String {
        switch emptying {
        case .create:
            "CREATE UNLOGGED TABLE IF NOT EXISTS \(temporary.sql) (\(changeColumns)) WITH (autovacuum_enabled = false); TRUNCATE \(temporary.sql)"
        case .truncate: "TRUNCATE \(temporary.sql)"
        case .delete: "DELETE FROM \(temporary.sql)"
        }
    }

    /// Every change in the file has a key of its own (`BatchFile.distinctKeys`): `merge` takes the
    /// rows as they are instead of sorting them to find each key's newest.
    public var keysDistinct = false

    /// Whether `file` merges unsorted (`keysDistinct`): its keys all differ, and it is large
    /// enough for the sort to cost more than the planner settings that unsorted merges carry.
    /// At 600 tables most files hold a few changes, and their settings took the target's
    /// statements per batch from 1,616 to 3,008, for sorts of a few rows in memory.
    public static func mergesUnsorted(_ file: BatchFile) -> Bool {
        file.distinctKeys == true && file.file.rows >= unsortedFromRows
    }
    public static let unsortedFromRows = 1_000

    /// Whether `copyIn` loads a load table's rows frozen, which needs a TRUNCATE (or its
    /// creation) earlier in the COPY's transaction.
    public var loadsFrozen = true

    /// How many changes the table holds, and whether any left a TOASTed column out (then the
    /// folding merge is needed). A load table written before a crash of the target is empty
    /// after it: the count is what proves the rows are all there.
    public var changeSummary: String {
        "SELECT count(*), coalesce(bool_or(_unchanged IS NOT NULL), false) FROM \(changes)"
    }

    /// `changeSummary` of several files in one query, a row each: its place in `merges`, then the
    /// same two columns.
    public static func changeSummaries(_ merges: [MergeSQL]) -> String {
        merges.enumerated().map { index, sql in
            "SELECT \(index) AS file, count(*), coalesce(bool_or(_unchanged IS NOT NULL), false) FROM \(sql.changes)"
        }.joined(separator: " UNION ALL ")
    }

    /// In binary format when every column has a binary form (`CSVToBinaryTranscoder(changesOf:)`),
    /// else in text format (`CSVToTextTranscoder`): the target, the applier's bottleneck, parses
    /// either faster than CSV, binary most. A load table truncated in the COPY's transaction has
    /// its rows go in frozen: the merge that reads them sets no hint bits, so dirties no page of it.
    public var copyIn: String {
        let columns = SQL.identifierList(ChangeColumns.all + relation.columnNames)
        let freeze = isLoadTable && loadsFrozen ? ", FREEZE" : ""
        return loadsBinary ? "COPY \(changes) (\(columns)) FROM STDIN (FORMAT binary\(freeze))"
            : "COPY \(changes) (\(columns)) FROM STDIN (FORMAT text, HEADER match\(freeze))"
    }

    /// Whether `copyIn` reads COPY's binary format: every column of the relation has a binary form.
    public var loadsBinary: Bool { relation.binaryKinds != nil }

    /// Leaves out the changes that committed at or after `lsn` (a verify's point the file runs across).
    public func dropChanges(from lsn: LSN) -> String {
        "DELETE FROM \(changes) WHERE _lsn >= \(SQL.literal(lsn.description))::pg_lsn"
    }

    /// Leaves out the changes that committed before `lsn`: a copy at the consistent point `lsn`
    /// holds them. A commit whose record starts at the point itself is not in the copy (its
    /// exported snapshot sees only commits before the point) and is streamed: it stays.
    public func dropChanges(before lsn: LSN) -> String {
        "DELETE FROM \(changes) WHERE _lsn < \(SQL.literal(lsn.description))::pg_lsn"
    }

    /// The last TRUNCATE in the file: its sequence and LSN, or no row.
    public var truncatePoint: String {
        "SELECT _seq, _lsn FROM \(changes) WHERE _op = 'T' ORDER BY _seq DESC LIMIT 1"
    }

    /// A TRUNCATE at `lsn` makes every older row a tombstone. Tombstones take the LSN just below
    /// the truncate's: no older change can bring a row back (every other commit record starts
    /// bytes before it), while the changes its own transaction made after it, which share its
    /// LSN, win over them under the merge's strict guard. At the truncate's own LSN, a key the
    /// transaction inserted again after the TRUNCATE was turned away.
    public func tombstoneOlderThan(_ lsn: LSN) -> String {
        "UPDATE \(target.sql) SET \(deleted) = true, \(self.lsn) = \(SQL.literal(lsn.justBefore.description))::pg_lsn "
            + "WHERE \(self.lsn) < \(SQL.literal(lsn.description))::pg_lsn"
    }

    /// A key change arrives as a delete of the old key directly followed (same LSN, next sequence) by
    /// an upsert of the new key. When the upsert left TOASTed columns out as unchanged, their values
    /// belong to the old key: take them from its newest earlier change in the file that carried them
    /// all, else from its stored row. Run until it changes no row, so chains of moves resolve in order.
    public var resolveKeyMoves: String {
        let table = changes
        let sameOldKey = { (alias: String) in keys.map { "\(alias).\(SQL.identifier($0)) = d.\(SQL.identifier($0))" }.joined(separator: " AND ") }
        let valueList = values.map { SQL.identifier($0.name) }
        let assignments = values.map { column in
            let name = SQL.identifier(column.name)
            return "\(name) = CASE WHEN \(SQL.literal(column.name)) = ANY (moved._unchanged) THEN fill.\(name) ELSE moved.\(name) END"
        } + ["_unchanged = NULL"]
        return """
            UPDATE \(table) AS moved SET \(assignments.joined(separator: ", ")) FROM (\
            SELECT u._lsn AS _move_lsn, u._seq AS _move, origin.* FROM \(table) AS u \
            JOIN \(table) AS d ON d._op = 'D' AND d._lsn = u._lsn AND d._seq = u._seq - 1 \
            CROSS JOIN LATERAL (SELECT \(valueList.joined(separator: ", ")) FROM (\
            SELECT \(valueList.map { "e.\($0)" }.joined(separator: ", ")), e._lsn AS _order_lsn, e._seq AS _order FROM \(table) AS e \
            WHERE \(sameOldKey("e")) AND (e._lsn, e._seq) < (d._lsn, d._seq) AND e._op IN ('I', 'U') AND NOT coalesce(e._unchanged && u._unchanged, false) \
            UNION ALL SELECT \(valueList.map { "s.\($0)" }.joined(separator: ", ")), '0/0'::pg_lsn, -1 FROM \(target.sql) AS s \
            WHERE \(sameOldKey("s")) AND NOT s.\(deleted)) AS candidates ORDER BY _order_lsn DESC, _order DESC LIMIT 1) AS origin \
            WHERE u._op = 'U' AND u._unchanged IS NOT NULL) AS fill \
            WHERE moved._lsn = fill._move_lsn AND moved._seq = fill._move
            """
    }

    /// Whether any change in the file left a TOASTed column out: then the folding merge is needed.
    public var hasUnchanged: String {
        "SELECT EXISTS (SELECT 1 FROM \(changes) WHERE _unchanged IS NOT NULL)"
    }

    /// Merges the newest change per key, guarded by LSN: a row changes only when the incoming LSN is
    /// newer than the stored one. Deletes become tombstones, also for keys STG never saw.
    /// - Parameters:
    ///   - afterSequence: changes up to this sequence were wiped by a TRUNCATE later in the file.
    ///   - truncatedAt: the table's newest TRUNCATE; changes older than it are void.
    ///   - folding: reduce with unchanged-TOAST folding (see `foldedChanges`).
    public func merge(afterSequence: Int?, truncatedAt: LSN?, folding: Bool) -> String {
        let statement = mergeStatement(afterSequence: afterSequence, truncatedAt: truncatedAt, folding: folding)
        return keysDistinct ? Self.planned([statement]) : statement
    }

    /// The MERGE of `merge`, without its planner settings.
    public func mergeStatement(afterSequence: Int?, truncatedAt: LSN?, folding: Bool) -> String {
        let filter = self.filter(afterSequence) + (truncatedAt.map { " AND _lsn > \(SQL.literal($0.description))::pg_lsn" } ?? "")
        let source = switch (keysDistinct, folding) {
        case (false, false): newestChanges(filter: filter)
        case (false, true): foldedChanges(filter: filter)
        case (true, false): "SELECT * FROM \(changes) WHERE \(filter)"
        case (true, true): carriedChanges(filter: filter)
        }
        let on = keys.map { "t.\(SQL.identifier($0)) = s.\(SQL.identifier($0))" }.joined(separator: " AND ")
        let assignments = values.enumerated().map { index, column in
            let name = SQL.identifier(column.name)
            return folding ? "\(name) = CASE WHEN s.\(carried(index)) THEN s.\(name) ELSE t.\(name) END" : "\(name) = s.\(name)"
        } + ["\(deleted) = false", "\(lsn) = s._lsn"]
        let insertColumns = SQL.identifierList(relation.columnNames) + ", \(lsn), \(deleted)"
        let insertValues = relation.columnNames.map { "s.\(SQL.identifier($0))" }.joined(separator: ", ")
        let keyColumns = SQL.identifierList(keys)
        let keyValues = keys.map { "s.\(SQL.identifier($0))" }.joined(separator: ", ")
        return """
            MERGE INTO \(target.sql) AS t USING (\(source)) AS s ON \(on) \
            WHEN MATCHED AND s._lsn > t.\(lsn) AND s._op = 'D' THEN UPDATE SET \(deleted) = true, \(lsn) = s._lsn \
            WHEN MATCHED AND s._lsn > t.\(lsn) THEN UPDATE SET \(assignments.joined(separator: ", ")) \
            WHEN NOT MATCHED AND s._op = 'D' THEN INSERT (\(keyColumns), \(lsn), \(deleted)) VALUES (\(keyValues), s._lsn, true) \
            WHEN NOT MATCHED THEN INSERT (\(insertColumns)) VALUES (\(insertValues), s._lsn, false)
            """
    }

    /// What a merge of unsorted changes (`keysDistinct`) runs without, set for it only (`SET
    /// LOCAL`, then back) in its transaction: every way to STG but a lookup of each change's key
    /// in its primary key. Unsorted, the changes are estimated at their real count, and the
    /// planner then hashed or sorted the whole STG table to meet them: for a batch of thousands
    /// of rows against a table of millions, millions of rows read each batch. And where STG
    /// looked empty (no statistics yet, as after a snapshot of an empty table), it scanned it once
    /// per change, the rows the statement inserts included: minutes for 47,000 changes. (Sorted,
    /// the estimate of 200 keys leads to the lookups by itself.) Without JIT too: the settings'
    /// penalty in the plan's cost puts every such merge above `jit_above_cost`, and compiling a
    /// 30-column row's expressions took 0.3-0.6 s a batch, more than the merge itself (the
    /// applier's sessions have JIT off anyway, `SessionProfile.merging`; other sessions merge too).
    public static let plannerSettings = ["jit", "enable_hashjoin", "enable_mergejoin", "enable_seqscan"]

    /// `statements` (merges, as `mergeStatement` writes them) under `plannerSettings`, as one
    /// string: the settings are set once for them all. Harmless to sorted merges among them,
    /// which look each key up anyway.
    public static func planned(_ statements: [String]) -> String {
        plannerSettings.map { "SET LOCAL \($0) = off; " }.joined() + statements.joined(separator: "; ") + "; "
            + plannerSettings.map { "SET LOCAL \($0) TO DEFAULT" }.joined(separator: "; ")
    }

    private func filter(_ afterSequence: Int?) -> String {
        "_op <> 'T'" + (afterSequence.map { " AND _seq > \($0)" } ?? "")
    }

    /// The newest change of each key. Newest by (`_lsn`, `_seq`): commit order, then order within
    /// the transaction, so also across the batches of a `BatchGroup` (each numbers its own `_seq`).
    func newestChanges(filter: String) -> String {
        let keyList = SQL.identifierList(keys)
        return "SELECT DISTINCT ON (\(keyList)) * FROM \(changes) WHERE \(filter) "
            + "ORDER BY \(keyList), _lsn DESC, _seq DESC"
    }

    /// The newest change of each key, where a column the newest change left out as unchanged TOAST
    /// takes the value of the newest earlier change in the file that carried it; `_carried_<n>` says
    /// whether any did (if none, the stored value stays).
    func foldedChanges(filter: String) -> String {
        let partition = "PARTITION BY \(SQL.identifierList(keys))"
        var columns = keys.map(SQL.identifier) + ["_op", "_lsn"]
        var outer = columns
        for (index, column) in values.enumerated() {
            let name = SQL.identifier(column.name)
            let carries = "(_op IN ('I', 'U') AND NOT coalesce(\(SQL.literal(column.name)) = ANY (_unchanged), false))"
            columns.append("first_value(\(name)) OVER (\(partition) ORDER BY \(carries) DESC, _lsn DESC, _seq DESC) AS \(name)")
            columns.append("bool_or(\(carries)) OVER (\(partition)) AS \(carried(index))")
            outer += [name, carried(index)]
        }
        columns.append("row_number() OVER (\(partition) ORDER BY _lsn DESC, _seq DESC) AS _newest")
        return "SELECT \(outer.joined(separator: ", ")) FROM (SELECT \(columns.joined(separator: ", ")) "
            + "FROM \(self.changes) WHERE \(filter)) AS changes WHERE _newest = 1"
    }

    /// `foldedChanges` for a file whose every change has a key of its own: each row is its key's
    /// newest change, and carries what it did not leave out.
    func carriedChanges(filter: String) -> String {
        var columns = keys.map(SQL.identifier) + ["_op", "_lsn"]
        for (index, column) in values.enumerated() {
            let name = SQL.identifier(column.name)
            columns.append(name)
            columns.append("(_op IN ('I', 'U') AND NOT coalesce(\(SQL.literal(column.name)) = ANY (_unchanged), false)) AS \(carried(index))")
        }
        return "SELECT \(columns.joined(separator: ", ")) FROM \(changes) WHERE \(filter)"
    }

    private func carried(_ index: Int) -> String { "_carried_\(index)" }
}
