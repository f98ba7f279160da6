/// A batch file of inserts and updates, each of a key of its own, COPYed straight into its STG
/// table: no load table, no merge. Through a load table, a file's rows are parsed and written twice
/// on the target (COPY into the load table, then MERGE's insert or update in STG); on the wide-row
/// backlog of bench-apply, 47,000 inserts took 0.74-0.79 s of COPY plus 0.76-0.83 s of MERGE, and
/// 0.90-1.03 s COPYed straight into STG. Half of that backlog is inserts, half updates; 47,000
/// updates took 0.78-0.90 s of COPY plus 1.47-1.63 s of MERGE, and 1.55-1.82 s as the rows of
/// their keys deleted, then COPYed in (`tributary_direct_keys`'s COPY of their keys included).
///
/// The result is the merge's exactly where no STG row of the file's keys is as new as its change:
/// an update replaces the whole row (it keeps no stored value, `unchangedRows` is 0, and STG has
/// no column of its own that the merge would leave alone), so the older row deleted and the new
/// one inserted are what the merge's update writes; each key gets its change's LSN, not deleted.
/// Where a row is as new (a table copy's, a replay), it is not deleted, and STG's primary key
/// refuses the COPY: it all runs under a savepoint, rolled back then, and the file goes through a
/// load table as any other (its table, in that process, from then on). Everything else the merge
/// would have to decide rules the file out beforehand: a TRUNCATE that may void its changes, a
/// shape STG does not follow yet, a BL model's change log, a copy the table waits for.
public enum DirectInsert {
    /// The smallest file COPYed straight in: each costs a savepoint and its release, round trips
    /// that at 600 tables (hundreds of files of a few rows a batch) would cost more than they save.
    public static let fromRows = 1_000
    /// Files of one batch COPYed straight in: each savepoint that writes is a subtransaction, and
    /// past 64 in one transaction every other session's snapshots overflow to pg_subtrans.
    public static let perBatch = 16

    /// What the file alone tells: inserts, and updates that keep no stored value, only; keys
    /// distinct; large enough; and every column has a binary form (`CSVToBinaryTranscoder(upsertsOf:)`).
    /// A preloader leaves such files to the merging connection, which decides with `applies`.
    public static func mayApply(to file: BatchFile) -> Bool {
        guard file.inserts + file.updates == file.file.rows, file.distinctKeys == true, file.file.rows >= fromRows,
              file.relation.binaryKinds != nil else { return false }
        return file.updates == 0 || file.unchangedRows == 0
    }

    /// Whether the file's keys are deleted from STG before its COPY: it has updates.
    public static func deletesFirst(_ file: BatchFile) -> Bool { file.updates > 0 }

    /// The files of a batch (by index) that may go straight in as far as the batch tells: those
    /// `mayApply` takes whose STG table has no other file in it, at most `perBatch`, in order.
    public static func candidates(in files: [BatchFile], excluding excluded: (String) -> Bool = { _ in false }) -> [Int] {
        let filesPerTable = Dictionary(files.map { ($0.stagingTable, 1) }, uniquingKeysWith: +)
        return Array(files.indices.filter { number in
            let file = files[number]
            return filesPerTable[file.stagingTable] == 1 && mayApply(to: file) && !excluded(file.stagingTable)
        }.prefix(perBatch))
    }

    /// Whether the file goes straight into its STG table, from what the batch's transaction read
    /// of the table (`BatchLookups`).
    /// - Parameters:
    ///   - firstCommit: the batch's first commit LSN (no change in it is older).
    ///   - recorded: the shape STG follows; the file's must be it.
    ///   - truncatedAt: the table's newest TRUNCATE: changes at or before it are void.
    ///   - logged: a BL model reads the table, whose log takes keys from the changes table.
    ///   - awaiting: the table waits for its first copy (its files are kept for it).
    ///   - stagingColumns: the STG table's columns, `_lsn` and `_deleted` included. With more than
    ///     the file's and those two (a column the source dropped, kept), a merge's update leaves
    ///     them as they are and a deleted row would not: a file with updates is merged.
    /// A file of `candidates` only: with another file of its table in the batch (a shape change
    /// inside it), the files merge in order.
    public static func applies(to file: BatchFile, firstCommit: LSN, recorded: RelationSchema?, truncatedAt: LSN?, logged: Bool,
                               awaiting: Bool, stagingColumns: Int) -> Bool {
        guard mayApply(to: file), recorded == file.relation, !logged, !awaiting else { return false }
        if deletesFirst(file) && stagingColumns != file.relation.columns.count + 2 { return false }
        return truncatedAt.map { $0 < firstCommit } ?? true
    }

    /// The COPY of such a file into `stagingTable`: `_lsn` and the columns, `_deleted` by its
    /// default (false). Binary, from `CSVToBinaryTranscoder(upsertsOf:)`.
    public static func copy(into stagingTable: QualifiedName, relation: RelationSchema) -> String {
        "COPY \(stagingTable.sql) (\(SQL.identifierList([StagingColumns.lsn] + relation.columnNames))) FROM STDIN (FORMAT binary)"
    }

    /// A file of updates of at most this much CSV is read once: its rows' binary tuples are kept
    /// in memory while its keys are COPYed and their rows deleted, then COPYed from there. A
    /// larger one (a transaction of millions of rows) is read twice: inflated and parsed again,
    /// which on bench-apply's wide rows costs about what its first read does. A batch is 64 MiB
    /// of CSV by default (`batch.max_bytes`); the rows' binary tuples are about the CSV's size.
    public static let rowsHeldBytes = 64 << 20

    /// Whether the file's rows are kept from the pass that reads its keys.
    public static func holdsRows(_ file: BatchFile, upTo limit: Int = rowsHeldBytes) -> Bool {
        deletesFirst(file) && file.file.uncompressedBytes <= limit
    }

    /// The table a file's keys go into before its rows (`deletesFirst`), dropped at the batch's end.
    public static let keysTable = QualifiedName(schema: "pg_temp", name: "tributary_direct_keys")

    /// The key columns in the relation's order: the order `CSVToBinaryTranscoder(keysOf:)` writes them.
    public static func keyColumns(of relation: RelationSchema) -> [String] {
        relation.columnNames.filter(relation.key.contains)
    }

    /// Statements that make `keysTable` for a file and take its keys: `_lsn`, then the key columns,
    /// of STG's types (binary, from `CSVToBinaryTranscoder(keysOf:)`).
    public static func createKeys(like stagingTable: QualifiedName, relation: RelationSchema) -> String {
        "DROP TABLE IF EXISTS \(keysTable.sql); CREATE TEMPORARY TABLE \(keysTable.name) ON COMMIT DROP AS SELECT "
            + SQL.identifierList([StagingColumns.lsn] + keyColumns(of: relation)) + " FROM \(stagingTable.sql) WITH NO DATA"
    }

    /// The COPY of a file's keys into `keysTable` (binary, from `CSVToBinaryTranscoder(keysOf:)`).
    public static let copyKeys = "COPY \(keysTable.sql) FROM STDIN (FORMAT binary)"

    /// Deletes the STG rows of the file's keys that are older than the key's change, by the
    /// primary key's index (`MergeSQL.plannerSettings`: a hash join would read all of STG). A
    /// row as new as its change stays, and the COPY after it then fails on the key.
    public static func deleteOlder(from stagingTable: QualifiedName, relation: RelationSchema) -> String {
        let matches = relation.key.map { "t.\(SQL.identifier($0)) = k.\(SQL.identifier($0))" }.joined(separator: " AND ")
        let lsn = SQL.identifier(StagingColumns.lsn)
        return MergeSQL.planned(["DELETE FROM \(stagingTable.sql) AS t USING \(keysTable.sql) AS k WHERE \(matches) AND t.\(lsn) < k.\(lsn)"])
    }

    /// SQLSTATE of a unique violation: the STG table held one of the file's keys.
    public static let uniqueViolation = "23505"
}
