import Foundation
import Testing
@testable import TributaryCore

/// Which waiting batches the applier merges together, and what each table's merge then covers.
@Suite struct BatchGroupTests {
    static func relation(_ table: String, columns: [String] = ["id", "note"]) -> RelationSchema {
        RelationSchema(table: QualifiedName(schema: "public", name: table),
                       columns: columns.map { .init(name: $0, sourceType: "text", stagingType: "text", typeOid: 25, notNull: $0 == "id") },
                       key: ["id"])
    }

    static func file(_ table: String, rows: Int, end: UInt64, truncates: Int = 0, deletes: Int = 0, columns: [String] = ["id", "note"]) -> BatchFile {
        BatchFile(relation: relation(table, columns: columns), stagingTable: "qvp_\(table)", segment: 0,
                  file: StagedFile(key: "qvp/cdc/\(end)/\(table).csv.gz", rows: rows, bytes: rows * 10, uncompressedBytes: rows * 40, sha256: "00"),
                  inserts: rows - deletes - truncates, updates: 0, deletes: deletes, truncates: truncates, distinctKeys: true)
    }

    static func batch(_ end: UInt64, _ files: [BatchFile]) -> BatchManifest {
        BatchManifest(source: "qvp", slot: "tributary_qvp", firstCommitLSN: LSN(end - 8), endLSN: LSN(end), firstCommitTime: Date(),
                      lastCommitTime: Date(), transactions: 1, rows: files.reduce(0) { $0 + $1.file.rows }, files: files)
    }

    @Test func consecutiveBatchesGroupWithEachTablesFilesTogether() throws {
        let batches = [
            Self.batch(0x10, [Self.file("a", rows: 3, end: 0x10), Self.file("b", rows: 2, end: 0x10)]),
            Self.batch(0x20, [Self.file("b", rows: 5, end: 0x20, deletes: 1)]),
            Self.batch(0x30, []),
            Self.batch(0x40, [Self.file("c", rows: 1, end: 0x40), Self.file("a", rows: 4, end: 0x40)]),
        ]
        let group = try #require(BatchGroup.leading(batches))
        #expect(group.manifests == batches)
        #expect(group.rows == 15)
        #expect(group.tables.map(\.merged.stagingTable) == ["qvp_a", "qvp_b", "qvp_c"], "in the order each table first appears")
        #expect(group.tables.map { $0.files.map(\.file.key) } == [
            ["qvp/cdc/16/a.csv.gz", "qvp/cdc/64/a.csv.gz"], ["qvp/cdc/16/b.csv.gz", "qvp/cdc/32/b.csv.gz"], ["qvp/cdc/64/c.csv.gz"],
        ], "a table's files in batch order")
        let b = group.tables[1].merged
        #expect(b.file.rows == 7 && b.deletes == 1 && b.inserts == 6 && b.file.bytes == 70 && b.file.uncompressedBytes == 280)
        #expect(group.tables.map(\.merged.distinctKeys) == [nil, nil, true], "keys may repeat across batches: the merge sorts; one file keeps what it knew")
        #expect(group.tables[0].merged.relation == Self.relation("a"))
    }

    @Test func aBatchAloneIsNoGroup() {
        #expect(BatchGroup.leading([]) == nil)
        #expect(BatchGroup.leading([Self.batch(0x10, [Self.file("a", rows: 1, end: 0x10)])]) == nil)
    }

    /// A TRUNCATE's merge picks the changes after it by sequence; a table with two files in one
    /// batch changed its shape inside it; two shapes of a table across batches cannot share a
    /// load table. Each ends the group before its batch (which then applies on its own).
    @Test func whatNeedsMoreThanAPlainMergeEndsTheGroup() throws {
        let first = Self.batch(0x10, [Self.file("a", rows: 1, end: 0x10)])
        let second = Self.batch(0x20, [Self.file("b", rows: 1, end: 0x20)])
        let enders = [
            "a truncate": Self.batch(0x30, [Self.file("b", rows: 2, end: 0x30, truncates: 1)]),
            "two files of a table": Self.batch(0x30, [Self.file("c", rows: 1, end: 0x30), Self.file("c", rows: 1, end: 0x31, columns: ["id", "x"])]),
            "a table's new shape": Self.batch(0x30, [Self.file("a", rows: 1, end: 0x30, columns: ["id", "note", "added"])]),
        ]
        for (what, ender) in enders {
            let group = try #require(BatchGroup.leading([first, second, ender, Self.batch(0x40, [])]), "\(what)")
            #expect(group.manifests == [first, second], "\(what)")
            #expect(BatchGroup.leading([first, ender]) == nil, "\(what)")
            #expect(BatchGroup.leading([ender, first]) == nil, "\(what) starts no group")
        }
        // Another table of the same shape is no shape change.
        #expect(BatchGroup.leading([first, second, Self.batch(0x30, [Self.file("c", rows: 1, end: 0x30)])])?.manifests.count == 3)
    }

    @Test func aGroupStaysWithinItsLimits() throws {
        let batches = (1...30).map { Self.batch(UInt64($0) * 0x10, [Self.file("a", rows: 10, end: UInt64($0) * 0x10)]) }
        #expect(BatchGroup.leading(batches)?.manifests.count == BatchGroup.Limits().batches)
        var limits = BatchGroup.Limits()
        limits.rows = 35
        let group = try #require(BatchGroup.leading(batches, limits: limits))
        #expect(group.manifests.count == 3 && group.rows == 30)
        limits.rows = 15
        #expect(BatchGroup.leading(batches, limits: limits) == nil, "two batches would pass the rows")
        limits.rows = 1_000
        limits.batches = 2
        #expect(BatchGroup.leading(batches, limits: limits)?.manifests.count == 2)
        // A large batch goes alone (loaded ahead, merged unsorted where its keys all differ).
        let large = Self.batch(0x1000, [Self.file("a", rows: BatchGroup.Limits().batchRows, end: 0x1000)])
        #expect(BatchGroup.leading([batches[0], batches[1], large])?.manifests.count == 2)
        #expect(BatchGroup.leading([large] + batches) == nil)
    }
}
