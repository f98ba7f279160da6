import Foundation
import Testing
import TributaryCore

/// Catch-up groups: consecutive batches, bounded, never across a table's schema change.
@Suite struct ApplyGroupPlannerTests {
    func relation(_ columns: [String]) -> RelationSchema {
        RelationSchema(table: QualifiedName(schema: "public", name: "t"),
                       columns: columns.map { ColumnSchema(name: $0, sourceType: "integer", stagingType: "integer", typeOid: 23, notNull: false) },
                       key: ["id"])
    }

    func batch(_ end: UInt64, rows: Int = 10, tables: [(String, [String])] = [("qvp_t", ["id", "v"])]) -> BatchManifest {
        let files = tables.enumerated().map { index, table in
            BatchFile(relation: relation(table.1), stagingTable: table.0, segment: 0,
                      file: StagedFile(key: "qvp/cdc/\(end)/\(index)", rows: rows, bytes: rows * 10, uncompressedBytes: rows * 100, sha256: ""),
                      inserts: rows, updates: 0, deletes: 0, truncates: 0)
        }
        return BatchManifest(source: "qvp", slot: "s", firstCommitLSN: LSN(end - 1), endLSN: LSN(end), firstCommitTime: Date(),
                             lastCommitTime: Date(), transactions: 1, rows: rows * tables.count, files: files)
    }

    @Test func caughtUpMeansOneBatchPerTransaction() {
        #expect(ApplyGroupPlanner.groupSize([batch(1), batch(2), batch(3)], limits: .single) == 1)
        #expect(ApplyGroupPlanner.groupSize([], limits: .init()) == 0)
    }

    @Test func aBacklogGroupsUpToTheBounds() {
        let waiting = (1...10).map { batch(UInt64($0)) }
        #expect(ApplyGroupPlanner.groupSize(waiting, limits: .init(batches: 64)) == 10)
        #expect(ApplyGroupPlanner.groupSize(waiting, limits: .init(batches: 4)) == 4)
        #expect(ApplyGroupPlanner.groupSize(waiting, limits: .init(rows: 35)) == 3)
        #expect(ApplyGroupPlanner.groupSize(waiting, limits: .init(bytes: 2_500)) == 2)
        // One batch larger than every bound still applies, alone.
        #expect(ApplyGroupPlanner.groupSize([batch(1, rows: 1_000), batch(2)], limits: .init(rows: 5)) == 1)
    }

    @Test func aSchemaChangeEndsTheGroup() {
        let waiting = [batch(1), batch(2, tables: [("qvp_other", ["id"])]), batch(3, tables: [("qvp_t", ["id", "v", "added"])]), batch(4)]
        // Another table in batch 2 is fine; qvp_t's new column in batch 3 starts a new group.
        #expect(ApplyGroupPlanner.groupSize(waiting, limits: .init()) == 2)
        #expect(ApplyGroupPlanner.groupSize(Array(waiting.dropFirst(2)), limits: .init()) == 1)
    }

    @Test func aBatchWithSegmentsAppliesAlone() {
        let segmented = batch(2, tables: [("qvp_t", ["id", "v"]), ("qvp_t", ["id", "v", "added"])])
        #expect(ApplyGroupPlanner.groupSize([batch(1), segmented, batch(3)], limits: .init()) == 1)
        #expect(ApplyGroupPlanner.groupSize([segmented, batch(3)], limits: .init()) == 1)
    }

    @Test func laterBatchesSequencesSortAfterEarlierOnes() {
        let lastOfFirst = ApplyGroupPlanner.sequenceOffset(batchIndex: 0) + 4_000_000_000
        #expect(lastOfFirst < ApplyGroupPlanner.sequenceOffset(batchIndex: 1))
        #expect(ApplyGroupPlanner.sequenceOffset(batchIndex: 63) + Int(UInt32.max) < Int.max)
    }
}
