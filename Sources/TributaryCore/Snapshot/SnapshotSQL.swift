/// SQL text for the snapshot and its load. Every identifier passes through `SQL`.
public enum SnapshotSQL {
    /// The COPY that reads one work item on a source under the exported snapshot.
    /// A partitioned table cannot be COPYed directly, only through a query.
    public static func copyOut(table: QualifiedName, columns: [String], item: SnapshotWorkItem, partitioned: Bool = false) -> String {
        let options = "(FORMAT csv, HEADER true)"
        if item.isWholeTable && partitioned {
            return "COPY (SELECT \(SQL.identifierList(columns)) FROM \(table.sql)) TO STDOUT \(options)"
        }
        if item.isWholeTable {
            return "COPY \(table.sql) (\(SQL.identifierList(columns))) TO STDOUT \(options)"
        }
        var conditions: [String] = []
        // TID range scans (PostgreSQL 14+) read just these pages.
        if let first = item.firstPage { conditions.append("ctid >= '(\(first),0)'::tid") }
        if let end = item.endPage { conditions.append("ctid < '(\(end),0)'::tid") }
        if let since = item.changedSince {
            // Both ages count back from the same transaction, so this is xmin ≥ since, modulo
            // wraparound. xmin keeps its value when a row is frozen (9.4+), so a frozen row written
            // after `since` still counts.
            conditions.append("age(xmin) <= age('\(UInt32(truncatingIfNeeded: since))'::xid)")
        }
        return "COPY (SELECT \(SQL.identifierList(columns)) FROM ONLY \(table.sql) WHERE \(conditions.joined(separator: " AND "))) TO STDOUT \(options)"
    }

    /// The table a snapshot's rows are loaded into before it replaces the STG table: only the
    /// source's columns. The metadata columns are added at promotion as constant defaults, which
    /// PostgreSQL (11+) records in the catalog without touching a row: every snapshot row gets
    /// `_lsn` = the consistent point for free, where filling them during COPY cost a third more.
    public static func createLoadTable(_ loadTable: QualifiedName, relation: RelationSchema) -> String {
        let columns = relation.columns.map { column in
            "\(SQL.identifier(column.name)) \(column.stagingType)" + (relation.key.contains(column.name) ? " NOT NULL" : "")
        }
        // Autovacuum would analyze and vacuum the table again and again while parts stream in,
        // competing with the load for CPU; promotion turns it back on and analyzes once.
        return "CREATE TABLE IF NOT EXISTS \(loadTable.sql) (\(columns.joined(separator: ", "))) WITH (autovacuum_enabled = false, \(stagingFillFactor))"
    }

    /// STG tables take CDC updates for weeks: pages loaded a tenth empty let an update stay on its
    /// page (HOT) and skip every index, the models' `indexes:` included, from the first update on.
    public static let stagingFillFactor = "fillfactor = 90"

    /// An empty STG table, for a table whose changes arrive before any snapshot filled it: the same
    /// shape promotion gives a loaded table (source columns, `_lsn`, `_deleted`, the key).
    public static func createStagingTable(_ table: QualifiedName, relation: RelationSchema) -> String {
        let columns = relation.columns.map { column in
            "\(SQL.identifier(column.name)) \(column.stagingType)" + (relation.key.contains(column.name) ? " NOT NULL" : "")
        } + [
            "\(SQL.identifier(StagingColumns.lsn)) pg_lsn NOT NULL",
            "\(SQL.identifier(StagingColumns.deleted)) boolean NOT NULL DEFAULT false",
            "PRIMARY KEY (\(SQL.identifierList(relation.key)))",
        ]
        return "CREATE TABLE IF NOT EXISTS \(table.sql) (\(columns.joined(separator: ", "))) WITH (\(stagingFillFactor))"
    }

    /// COPY of one snapshot part into the load table, in text format: the loader sends the staged
    /// CSV through `CSVToTextTranscoder`, which the server parses faster. `HEADER MATCH` makes the
    /// server check that the file's columns are the ones expected. `binary`: in COPY's binary
    /// format instead, which the server parses faster still (`CSVToBinaryTranscoder`, which checks
    /// the header itself). `freeze` only in a transaction that created or emptied the table (a
    /// frozen run).
    public static func copyIn(_ loadTable: QualifiedName, relation: RelationSchema, freeze: Bool = false, binary: Bool = false) -> String {
        let format = binary ? "FORMAT binary" : "FORMAT text, HEADER match"
        return "COPY \(loadTable.sql) (\(SQL.identifierList(relation.columnNames))) FROM STDIN (\(format)\(freeze ? ", FREEZE" : ""))"
    }

    /// The STG table's primary key, built on the fully loaded load table (named for the STG table,
    /// because the index moves with the table at promotion).
    public static func addKey(_ loadTable: QualifiedName, stagingTable: QualifiedName, relation: RelationSchema) -> String {
        let keyName = SQL.identifier(SQL.truncated(stagingTable.name, bytes: 58) + "_pkey")
        return "ALTER TABLE \(loadTable.sql) ADD CONSTRAINT \(keyName) PRIMARY KEY (\(SQL.identifierList(relation.key)))"
    }

    /// Keeps one row of each key in a load table whose parts come from two copies (a resumed
    /// snapshot, `SnapshotTable.keysMayRepeat`): a row that moved between a kept range and one
    /// copied again is in both. Either version is a state of the row at or after the slot's
    /// consistent point, and the stream from there brings every later change, so which one stays
    /// does not matter; the later-loaded one (the newer copy, mostly) is kept.
    public static func keepOneRowPerKey(_ loadTable: QualifiedName, key: [String]) -> String {
        let kept = SQL.identifier("_tributary_kept")
        let match = key.map { "l.\(SQL.identifier($0)) = d.\(SQL.identifier($0))" }.joined(separator: " AND ")
        return "DELETE FROM \(loadTable.sql) AS l USING (SELECT \(SQL.identifierList(key)), max(ctid) AS \(kept) FROM \(loadTable.sql) "
            + "GROUP BY \(SQL.identifierList(key)) HAVING count(*) > 1) AS d WHERE \(match) AND l.ctid <> d.\(kept)"
    }

    /// Whether the load table (`$1`, its qualified name) has its key already.
    public static let hasKey = "SELECT 1 FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'p'"

    /// Turns a fully loaded load table with its key (`addKey`) into the STG table, in one
    /// transaction: metadata columns, then the swap. Catalog changes only, so it is quick. The
    /// copy's rows are tagged just before the consistent point (`StagingColumns.lsn`).
    public static func promote(_ loadTable: QualifiedName, to stagingTable: QualifiedName, relation: RelationSchema,
                               consistentPoint: LSN) -> [String] {
        let lsn = SQL.identifier(StagingColumns.lsn)
        return [
            "ALTER TABLE \(loadTable.sql) ADD COLUMN \(lsn) pg_lsn NOT NULL DEFAULT \(SQL.literal(consistentPoint.justBefore.description)), "
                + "ADD COLUMN \(SQL.identifier(StagingColumns.deleted)) boolean NOT NULL DEFAULT false",
            // Rows written later must say their LSN; the snapshot rows keep theirs.
            "ALTER TABLE \(loadTable.sql) ALTER COLUMN \(lsn) DROP DEFAULT, RESET (autovacuum_enabled)",
            "DROP TABLE IF EXISTS \(stagingTable.sql)",
            "ALTER TABLE \(loadTable.sql) SET SCHEMA \(SQL.identifier(stagingTable.schema))",
            "ALTER TABLE \(SQL.identifier(stagingTable.schema)).\(SQL.identifier(loadTable.name)) RENAME TO \(SQL.identifier(stagingTable.name))",
        ]
    }
}

extension SnapshotSQL {
    /// Merges a table snapshot's load table (keyed, every row as of `consistentPoint`, S_t) into
    /// the existing STG table by LSN (DESIGN.md §1, per-table snapshot), in the caller's
    /// transaction: a copy row replaces an STG row older than S_t that differs from it (a row equal
    /// to it keeps its older LSN: nothing changed); an STG row older than S_t that the copy lacks
    /// was deleted before S_t and becomes a tombstone; an STG row at or after S_t is newer than
    /// the copy and stays. What it writes is tagged just before S_t (`StagingColumns.lsn`), so a
    /// commit at S_t itself, which the copy does not hold, still applies over it. `columns` are the
    /// copy's, all present in STG. When STG recorded a TRUNCATE at or after S_t, every row of the
    /// copy is older than it: nothing to merge.
    public static func mergeTableSnapshot(_ loadTable: QualifiedName, into stagingTable: QualifiedName, columns: [String], key: [String],
                                          consistentPoint: LSN, truncatedAt: LSN?) -> [String] {
        if let truncatedAt, truncatedAt >= consistentPoint { return [] }
        let lsn = SQL.identifier(StagingColumns.lsn), deleted = SQL.identifier(StagingColumns.deleted)
        let point = "\(SQL.literal(consistentPoint.justBefore.description))::pg_lsn"
        let others = columns.filter { !key.contains($0) }
        let differs = others.isEmpty ? "false" : "ROW(\(others.map { "s.\(SQL.identifier($0))" }.joined(separator: ", ")))::text IS DISTINCT FROM "
            + "ROW(\(others.map { "excluded.\(SQL.identifier($0))" }.joined(separator: ", ")))::text"
        let assignments = (others.map { "\(SQL.identifier($0)) = excluded.\(SQL.identifier($0))" } + ["\(lsn) = excluded.\(lsn)", "\(deleted) = false"])
        let keyMatch = key.map { "l.\(SQL.identifier($0)) = s.\(SQL.identifier($0))" }.joined(separator: " AND ")
        return [
            "INSERT INTO \(stagingTable.sql) AS s (\(SQL.identifierList(columns)), \(lsn), \(deleted)) "
                + "SELECT \(SQL.identifierList(columns)), \(point), false FROM \(loadTable.sql) "
                + "ON CONFLICT (\(SQL.identifierList(key))) DO UPDATE SET \(assignments.joined(separator: ", ")) "
                + "WHERE s.\(lsn) < excluded.\(lsn) AND (s.\(deleted) OR \(differs))",
            "UPDATE \(stagingTable.sql) AS s SET \(deleted) = true, \(lsn) = \(point) WHERE s.\(lsn) < \(point) AND NOT s.\(deleted) "
                + "AND NOT EXISTS (SELECT 1 FROM \(loadTable.sql) AS l WHERE \(keyMatch))",
        ]
    }
}

/// Metadata columns of every STG table (DESIGN.md §4).
public enum StagingColumns {
    /// Commit LSN of the change that wrote the row. A copy's rows take the position just before
    /// its slot's consistent point (`LSN.justBefore`): the copy holds every commit that started
    /// before the point, and the stream brings every commit from the point on, including one whose
    /// record starts exactly there (about one slot in 150 on a busy source), which must win.
    public static let lsn = "_lsn"
    /// A tombstone: the row was deleted at `_lsn`; kept so an older change can never resurrect it.
    public static let deleted = "_deleted"
    public static let schema = "stg"
    public static let loadSchema = "tributary_load"
}
