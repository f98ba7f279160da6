/// A batch file of inserts only, each of a key of its own, COPYed straight into its STG table:
/// no load table, no merge. Through a load table, a file's rows are parsed and written twice on
/// the target (COPY into the load table, then MERGE's insert into STG); on the wide-row backlog of
/// bench-apply, 47,000 inserts took 0.74-0.79 s of COPY plus 0.76-0.83 s of MERGE, and 0.90-1.03 s
/// COPYed straight into STG. Half of that backlog is inserts.
///
/// The result is the merge's exactly where the STG table holds none of the file's keys: each key
/// is inserted with its change's LSN, not deleted. Where it holds one (a tombstone of a deleted
/// key inserted again, a row of a copy), STG's primary key refuses the COPY: it runs under a
/// savepoint, rolled back then, and the file goes through a load table as any other (its table,
/// in that process, from then on). Everything else the merge would have to decide rules
/// the file out beforehand: a TRUNCATE that may void its changes, a shape STG does not follow
/// yet, a BL model's change log, a copy the table waits for.
public enum DirectInsert {
    /// The smallest file COPYed straight in: each costs a savepoint and its release, round trips
    /// that at 600 tables (hundreds of files of a few rows a batch) would cost more than they save.
    public static let fromRows = 1_000
    /// Files of one batch COPYed straight in: each savepoint that writes is a subtransaction, and
    /// past 64 in one transaction every other session's snapshots overflow to pg_subtrans.
    public static let perBatch = 16

    /// What the file alone tells: all inserts, keys distinct, large enough, and every column has
    /// a binary form (`CSVToBinaryTranscoder(insertsOf:)`). A preloader leaves such files to the
    /// merging connection, which decides with `applies`.
    public static func mayApply(to file: BatchFile) -> Bool {
        file.inserts == file.file.rows && file.distinctKeys == true && file.file.rows >= fromRows && file.relation.binaryKinds != nil
    }

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
    /// A file of `candidates` only: with another file of its table in the batch (a shape change
    /// inside it), the files merge in order.
    public static func applies(to file: BatchFile, firstCommit: LSN, recorded: RelationSchema?, truncatedAt: LSN?, logged: Bool,
                               awaiting: Bool) -> Bool {
        guard mayApply(to: file), recorded == file.relation, !logged, !awaiting else { return false }
        return truncatedAt.map { $0 < firstCommit } ?? true
    }

    /// The COPY of such a file into `stagingTable`: `_lsn` and the columns, `_deleted` by its
    /// default (false). Binary, from `CSVToBinaryTranscoder(insertsOf:)`.
    public static func copy(into stagingTable: QualifiedName, relation: RelationSchema) -> String {
        "COPY \(stagingTable.sql) (\(SQL.identifierList([StagingColumns.lsn] + relation.columnNames))) FROM STDIN (FORMAT binary)"
    }

    /// SQLSTATE of a unique violation: the STG table held one of the file's keys.
    public static let uniqueViolation = "23505"
}
