import Testing
@testable import TributaryCore

/// Which files of a batch go straight into STG (`DirectInsert`): only those whose merge could not
/// have done anything but insert every row as it is.
@Suite struct DirectInsertRuleTests {
    static func file(_ table: String, rows: Int = 2_000, updates: Int = 0, deletes: Int = 0, truncates: Int = 0, distinct: Bool? = true,
                     type: String = "text") -> BatchFile {
        var file = BatchGroupTests.file(table, rows: rows, end: 0x10, truncates: truncates, deletes: deletes)
        file.inserts -= updates
        file.updates = updates
        file.distinctKeys = distinct
        file.relation = RelationSchema(table: file.relation.table,
                                       columns: file.relation.columns.map { ColumnSchema(name: $0.name, sourceType: type, stagingType: type, typeOid: 0, notNull: $0.notNull) },
                                       key: file.relation.key)
        return file
    }

    @Test func onlyLargeFilesOfInsertsWithDistinctKeysAndBinaryColumnsQualify() {
        #expect(DirectInsert.mayApply(to: Self.file("a")))
        #expect(DirectInsert.mayApply(to: Self.file("a", rows: DirectInsert.fromRows)))
        #expect(!DirectInsert.mayApply(to: Self.file("a", rows: DirectInsert.fromRows - 1)), "a savepoint's round trips cost more than a small file saves")
        #expect(!DirectInsert.mayApply(to: Self.file("a", updates: 1)))
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
        func applies(recorded: RelationSchema? = file.relation, truncatedAt: LSN? = nil, logged: Bool = false, awaiting: Bool = false) -> Bool {
            DirectInsert.applies(to: file, firstCommit: first, recorded: recorded, truncatedAt: truncatedAt, logged: logged, awaiting: awaiting)
        }
        #expect(applies())
        #expect(applies(truncatedAt: LSN(0xFFF)), "a TRUNCATE before every change of the batch voids none")
        #expect(!applies(truncatedAt: first), "a change at the TRUNCATE's LSN is void")
        #expect(!applies(truncatedAt: LSN(0x2000)))
        #expect(!applies(recorded: nil), "STG does not follow a shape yet")
        #expect(!applies(recorded: Self.file("a", type: "bigint").relation), "STG follows another shape")
        #expect(!applies(logged: true), "a BL model's log takes its keys from the changes table")
        #expect(!applies(awaiting: true), "the table waits for its copy")
        #expect(!DirectInsert.applies(to: Self.file("a", updates: 5), firstCommit: first, recorded: file.relation, truncatedAt: nil, logged: false, awaiting: false))
    }

    @Test func theCopyNamesTheLSNAndTheColumnsAndLeavesDeletedToItsDefault() {
        let file = Self.file("a")
        #expect(DirectInsert.copy(into: QualifiedName(schema: "stg", name: "qvp_a"), relation: file.relation)
                == #"COPY "stg"."qvp_a" ("_lsn", "id", "note") FROM STDIN (FORMAT binary)"#)
    }
}
