import TributaryCore
import TributaryPostgres

/// A file of a batch whose merge needs nothing looked up or decided on its own: its table has no
/// other file in the batch, follows the file's shape already, waits for no copy, and the file has
/// no TRUNCATE; it was loaded into a load table. Most files of a wide batch are such (at 600
/// tables, hundreds a batch); each cost two round trips on the merging connection, which were
/// most of its time. They are checked in one query and merged in one multi-statement string, with
/// the change logs of the tables BL models read, in the batch's transaction like any other.
struct PlainMerge {
    let sql: MergeSQL
    let file: BatchFile
    let truncatedAt: LSN?
    let changeLog: StagingChangeLog?

    /// nil when the file needs the general path (`BatchApplier.apply(_:position:…)`).
    init?(_ file: BatchFile, loadTable: QualifiedName, lookedUp: BatchLookups.Table, awaiting: Set<String>) {
        guard !awaiting.contains(file.stagingTable), file.truncates == 0,
              lookedUp.recorded?.relation == file.relation else { return nil }
        sql = MergeSQL(file, loadTable: loadTable)
        self.file = file
        truncatedAt = lookedUp.truncatedAt
        changeLog = lookedUp.changeLog
    }

    /// Vouches for every load table's rows (a target restart empties unlogged tables), then merges
    /// them all. A file with unchanged values and deletes (key moves to resolve first) is merged
    /// on its own.
    static func run(_ merges: [PlainMerge], on connection: isolated PostgresConnection) throws {
        guard !merges.isEmpty else { return }
        var folding = Array(repeating: false, count: merges.count)
        for row in try connection.query(MergeSQL.changeSummaries(merges.map(\.sql))).rows {
            let index = try row.decode(at: 0, as: Int.self), count = try row.decode(at: 1, as: Int.self)
            let merge = merges[index]
            guard count == merge.file.file.rows else {
                throw PreloadedBatchLost(table: merge.sql.temporary, rows: count, expected: merge.file.file.rows)
            }
            folding[index] = try row.decode(at: 2, as: Bool.self)
        }
        var statements: [String] = []
        var unsorted = false
        for (index, merge) in merges.enumerated() {
            if folding[index] && merge.file.deletes > 0 {
                try BatchApplier.merge(merge.sql, stagingTable: merge.file.stagingTable, rows: merge.file.file.rows, deletes: merge.file.deletes,
                                       truncates: 0, lookedUp: BatchLookups.Table(truncatedAt: merge.truncatedAt, changeLog: merge.changeLog),
                                       on: connection)
            } else {
                statements.append(merge.sql.mergeStatement(afterSequence: nil, truncatedAt: merge.truncatedAt, folding: folding[index]))
                if let log = merge.changeLog {
                    // As `BatchApplier.merge` logs a file: its keys appended, what every reader took in pruned.
                    statements.append(log.append(fromChanges: merge.sql.changes))
                    statements.append(log.prune(watermarks: ControlStore.watermarkPositions(of: merge.sql.target.description)))
                }
                unsorted = unsorted || merge.sql.keysDistinct
            }
        }
        guard !statements.isEmpty else { return }
        try connection.execute(unsorted ? MergeSQL.planned(statements) : statements.joined(separator: ";\n"))
    }
}
