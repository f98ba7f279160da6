import Testing
@testable import TributaryCore

/// Which files of a batch go straight into STG (`DirectInsert`): only those whose merge could not
/// have done anything but insert every row as it is, or replace an older row of its key whole.
@Suite struct DirectInsertRuleTests {
    static func file(_ table: String, rows: Int = 2_000, updates: Int = 0, deletes: Int = 0, truncates: Int = 0, distinct: Bool? = true,
                     unchanged: Int? = 0, type: String = "text") -> BatchFile {
        var file = BatchGroupTests.file(table, rows: rows, end: 0x10, truncates: truncates, deletes: deletes)
        file.inserts -= updates
        file.updates = updates
        file.distinctKeys = distinct
        file.unchangedRows = unchanged
        file.relation = RelationSchema(table: file.relation.table,
                                       columns: file.relation.columns.map { ColumnSchema(name: $0.name, sourceType: type, stagingType: type, typeOid: 0, notNull: $0.notNull) },
                                       key: file.relation.key)
        return file
    }

    @Test func onlyLargeFilesOfInsertsWithDistinctKeysAndBinaryColumnsQualify() {
        #expect(DirectInsert.mayApply(to: Self.file("a")))
        #expect(DirectInsert.mayApply(to: Self.file("a", rows: DirectInsert.fromRows)))
        #expect(!DirectInsert.mayApply(to: Self.file("a", rows: DirectInsert.fromRows - 1)), "a savepoint's round trips cost more than a small file saves")
        #expect(DirectInsert.mayApply(to: Self.file("a", unchanged: nil)), "inserts have no unchanged values, counted or not")
        #expect(DirectInsert.mayApply(to: Self.file("a", updates: 1)))
        #expect(DirectInsert.mayApply(to: Self.file("a", updates: 2_000)))
        #expect(!DirectInsert.mayApply(to: Self.file("a", updates: 1, unchanged: 1)), "an update keeps a stored TOAST value")
        #expect(!DirectInsert.mayApply(to: Self.file("a", updates: 1, unchanged: nil)), "unknown (an older manifest)")
        #expect(!DirectInsert.mayApply(to: Self.file("a", deletes: 1)))
        #expect(!DirectInsert.mayApply(to: Self.file("a", truncates: 1)))
        #expect(!DirectInsert.mayApply(to: Self.file("a", distinct: false)), "a key inserted twice: the merge keeps the newest")
        #expect(!DirectInsert.mayApply(to: Self.file("a", distinct: nil)), "unknown (an older manifest)")
        #expect(!DirectInsert.mayApply(to: Self.file("a", type: "interval")), "no binary form: it loads in text format")
    }

    @Test func aTableWithTwoFilesInTheBatchMergesThemInOrder() {
        let files = [Self.file("a"), Self.file("b"), Self.file("a"), Self.file("c", rows: 10), Self.file("d")]
        #expect(DirectInsert.candidates(in: files) == [1, 4])
        #expect(DirectInsert.candidates(in: files, excluding: { $0 == "qvp_d" }) == [1])
        let many = (0..<40).map { Self.file("t\($0)") }
        #expect(DirectInsert.candidates(in: many) == Array(0..<DirectInsert.perBatch), "at most perBatch savepoints a transaction")
    }

    @Test func whatTheTablesStateMakesTheMergeDecideRulesAFileOut() {
        let file = Self.file("a")
        let first = LSN(0x1000)
        func applies(_ file: BatchFile = file, recorded: RelationSchema? = file.relation, truncatedAt: LSN? = nil, logged: Bool = false,
                     awaiting: Bool = false, extraColumns: Int = 0) -> Bool {
            DirectInsert.applies(to: file, firstCommit: first, recorded: recorded, truncatedAt: truncatedAt, logged: logged, awaiting: awaiting,
                                 stagingColumns: file.relation.columns.count + 2 + extraColumns)
        }
        #expect(applies())
        #expect(applies(truncatedAt: LSN(0xFFF)), "a TRUNCATE before every change of the batch voids none")
        #expect(!applies(truncatedAt: first), "a change at the TRUNCATE's LSN is void")
        #expect(!applies(truncatedAt: LSN(0x2000)))
        #expect(!applies(recorded: nil), "STG does not follow a shape yet")
        #expect(!applies(recorded: Self.file("a", type: "bigint").relation), "STG follows another shape")
        #expect(!applies(logged: true), "a BL model's log takes its keys from the changes table")
        #expect(!applies(awaiting: true), "the table waits for its copy")
        #expect(applies(extraColumns: 1), "an inserted row gets a kept column's default, as the merge's insert gives it")
        let updates = Self.file("a", updates: 5)
        #expect(applies(updates))
        #expect(!applies(updates, extraColumns: 1), "the merge's update leaves a kept column (dropped on the source) as it is")
        #expect(!applies(updates, truncatedAt: first))
        #expect(!applies(Self.file("a", deletes: 5)))
    }

    @Test func theCopyNamesTheLSNAndTheColumnsAndLeavesDeletedToItsDefault() {
        let file = Self.file("a")
        #expect(DirectInsert.copy(into: QualifiedName(schema: "stg", name: "qvp_a"), relation: file.relation)
                == #"COPY "stg"."qvp_a" ("_lsn", "id", "note") FROM STDIN (FORMAT binary)"#)
    }

    @Test func updatesDeleteTheOlderRowsOfTheirKeysFirstByTheKeysIndex() {
        #expect(!DirectInsert.deletesFirst(Self.file("a")) && DirectInsert.deletesFirst(Self.file("a", updates: 1)))
        var large = Self.file("a", updates: 1)
        #expect(DirectInsert.holdsRows(large) && !DirectInsert.holdsRows(Self.file("a")), "inserts are read once anyway")
        large.file.uncompressedBytes = DirectInsert.rowsHeldBytes + 1
        #expect(!DirectInsert.holdsRows(large), "a file of a huge transaction is read twice, not held")
        let relation = RelationSchema(table: QualifiedName(schema: "public", name: "t"),
                                      columns: ["x", "b", "note", "a"].map { ColumnSchema(name: $0, sourceType: "text", stagingType: "text", typeOid: 25, notNull: false) },
                                      key: ["a", "b"])
        #expect(DirectInsert.keyColumns(of: relation) == ["b", "a"], "in the order the transcoder writes them: the relation's")
        let stg = QualifiedName(schema: "stg", name: "qvp_t")
        #expect(DirectInsert.createKeys(like: stg, relation: relation) == #"DROP TABLE IF EXISTS "pg_temp"."tributary_direct_keys"; "#
                + #"CREATE TEMPORARY TABLE tributary_direct_keys ON COMMIT DROP AS SELECT "_lsn", "b", "a" FROM "stg"."qvp_t" WITH NO DATA"#)
        let delete = DirectInsert.deleteOlder(from: stg, relation: relation)
        #expect(delete.contains(#"DELETE FROM "stg"."qvp_t" AS t USING "pg_temp"."tributary_direct_keys" AS k WHERE t."a" = k."a" AND t."b" = k."b" AND t."_lsn" < k."_lsn""#), "\(delete)")
        #expect(delete.hasPrefix("SET LOCAL jit = off; ") && delete.contains("SET LOCAL enable_hashjoin = off"), "a hash join would read all of STG")
    }
}
