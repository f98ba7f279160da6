import Testing
@testable import TributaryCore

/// Golden strings for the LSN-guarded merge.
@Suite struct MergeSQLTests {
    let sql = MergeSQL(
        relation: RelationSchema(table: QualifiedName(schema: "public", name: "items"),
                                 columns: [.init(name: "id", sourceType: "integer", stagingType: "integer", typeOid: 23, notNull: true),
                                           .init(name: "doc", sourceType: "text", stagingType: "text", typeOid: 25, notNull: false)],
                                 key: ["id"]),
        stagingTable: "qvp_items", temporaryName: "tributary_changes_0")

    @Test func aShapeNamesItsChangesTableWhateverTheTable() {
        let name = MergeSQL.shapeName(of: sql.relation)
        #expect(name.count == 16 && name.allSatisfy(\.isHexDigit))
        var other = sql.relation
        other.table = QualifiedName(schema: "svp", name: "notes")
        #expect(MergeSQL.shapeName(of: other) == name, "another table of the same columns shares the shape")
        other.columns[1].stagingType = "jsonb"
        #expect(MergeSQL.shapeName(of: other) != name)
        var renamed = sql.relation
        renamed.columns[1].name = "body"
        #expect(MergeSQL.shapeName(of: renamed) != name)
        #expect(StableHash.hex("") == "cbf29ce484222325", "FNV-1a's offset basis: the same in every process")
    }

    @Test func temporaryTableAndCopy() {
        #expect(sql.createTemporary == #"CREATE TEMPORARY TABLE IF NOT EXISTS "tributary_changes_0" (_op text, _lsn pg_lsn, _seq bigint, _unchanged text[], "id" integer, "doc" text) ON COMMIT DELETE ROWS; DELETE FROM "tributary_changes_0""#)
        // Every column has a binary form: the batch goes in binary format, else in text format.
        #expect(sql.copyIn == #"COPY "tributary_changes_0" ("_op", "_lsn", "_seq", "_unchanged", "id", "doc") FROM STDIN (FORMAT binary)"#)
        var intervals = sql.relation
        intervals.columns[1].stagingType = "interval"
        #expect(MergeSQL(relation: intervals, stagingTable: "qvp_items", temporaryName: "tributary_changes_1").copyIn
                == #"COPY "tributary_changes_1" ("_op", "_lsn", "_seq", "_unchanged", "id", "doc") FROM STDIN (FORMAT text, HEADER match)"#)
        #expect(sql.tombstoneOlderThan(LSN(0x30)) == #"UPDATE "stg"."qvp_items" SET "_deleted" = true, "_lsn" = '0/2F'::pg_lsn WHERE "_lsn" < '0/30'::pg_lsn"#)
        // A file can claim any LSN: one at 0/0 gives no tombstone below it, and no crash.
        #expect(sql.tombstoneOlderThan(LSN(0)).contains(#""_lsn" = '0/0'::pg_lsn WHERE"#))
    }

    /// A verify's point splits a file: what committed at the point or later stays for the next apply.
    @Test func theChangesFromAHoldPointOnAreLeftOut() {
        #expect(sql.dropChanges(from: LSN(0x1_0000_0040)) == #"DELETE FROM "tributary_changes_0" WHERE _lsn >= '1/40'::pg_lsn"#)
    }

    @Test func aBatchLoadedAheadGoesThroughAnUnloggedLoadTable() {
        let loaded = MergeSQL(relation: sql.relation, stagingTable: "qvp_items", loadTable: QualifiedName(schema: "tributary_load", name: "qvp-0000000000000030-0"))
        #expect(loaded.createLoadTable() == #"CREATE UNLOGGED TABLE IF NOT EXISTS "tributary_load"."qvp-0000000000000030-0" (_op text, _lsn pg_lsn, _seq bigint, _unchanged text[], "id" integer, "doc" text) WITH (autovacuum_enabled = false); TRUNCATE "tributary_load"."qvp-0000000000000030-0""#)
        #expect(loaded.copyIn == #"COPY "tributary_load"."qvp-0000000000000030-0" ("_op", "_lsn", "_seq", "_unchanged", "id", "doc") FROM STDIN (FORMAT binary, FREEZE)"#)
        #expect(loaded.changeSummary == #"SELECT count(*), coalesce(bool_or(_unchanged IS NOT NULL), false) FROM "tributary_load"."qvp-0000000000000030-0""#)
        #expect(loaded.merge(afterSequence: nil, truncatedAt: nil, folding: false).contains(#"USING (SELECT DISTINCT ON ("id") * FROM "tributary_load"."qvp-0000000000000030-0" WHERE _op <> 'T' ORDER BY "id", _lsn DESC, _seq DESC)"#))
        #expect(sql.changeSummary == #"SELECT count(*), coalesce(bool_or(_unchanged IS NOT NULL), false) FROM "tributary_changes_0""#)
    }

    /// A load table of a few rows is emptied by a DELETE, and its rows then cannot go in frozen.
    /// The plain merges of a batch vouch for their load tables in one query, a row per file.
    @Test func theSummariesOfSeveralFilesAreOneQueryARowEach() {
        let first = MergeSQL(relation: sql.relation, stagingTable: "qvp_items", loadTable: QualifiedName(schema: "tributary_load", name: "a"))
        let second = MergeSQL(relation: sql.relation, stagingTable: "qvp_other", loadTable: QualifiedName(schema: "tributary_load", name: "b"))
        #expect(MergeSQL.changeSummaries([first, second]) == """
            SELECT 0 AS file, count(*), coalesce(bool_or(_unchanged IS NOT NULL), false) FROM "tributary_load"."a" \
            UNION ALL SELECT 1 AS file, count(*), coalesce(bool_or(_unchanged IS NOT NULL), false) FROM "tributary_load"."b"
            """)
    }

    @Test func aLoadTableEmptiedByADeleteLoadsItsRowsUnfrozen() {
        var loaded = MergeSQL(relation: sql.relation, stagingTable: "qvp_items", loadTable: QualifiedName(schema: "tributary_load", name: "qvp-0000000000000030-0"))
        loaded.loadsFrozen = false
        #expect(loaded.createLoadTable(emptying: .delete) == #"DELETE FROM "tributary_load"."qvp-0000000000000030-0""#)
        #expect(loaded.copyIn == #"COPY "tributary_load"."qvp-0000000000000030-0" ("_op", "_lsn", "_seq", "_unchanged", "id", "doc") FROM STDIN (FORMAT binary)"#)
    }

    /// DELETE while the rows it leaves dead stay few; TRUNCATE for a large load, and once the dead
    /// rows would pass the limit; CREATE (if it does not exist) and TRUNCATE for a table this
    /// process has not loaded: only then is its definition sent.
    @Test func loadTablesAreTruncatedOnlyWhenTheirDeadRowsOrTheLoadGrowLarge() {
        var reuse = LoadTableReuse()
        let limit = LoadTableReuse.deadRowLimit
        #expect(reuse.emptying("a", incomingRows: 3) == .create, "whether the table exists and what it holds is unknown until this process loaded it")
        reuse.loaded("a", rows: 3, emptiedBy: .create)
        #expect(reuse.emptying("a", incomingRows: 5) == .delete)
        #expect(reuse.emptying("a", incomingRows: limit) == .truncate, "a large load goes in frozen")
        #expect(reuse.emptying("b", incomingRows: 5) == .create, "tables are told apart")
        let table = MergeSQL(relation: sql.relation, stagingTable: "qvp_items", loadTable: QualifiedName(schema: "tributary_load", name: "t"))
        #expect(table.createLoadTable(emptying: .create).hasPrefix(#"CREATE UNLOGGED TABLE IF NOT EXISTS "tributary_load"."t" ("#))
        #expect(table.createLoadTable(emptying: .create).hasSuffix(#"; TRUNCATE "tributary_load"."t""#))
        #expect(table.createLoadTable(emptying: .truncate) == #"TRUNCATE "tributary_load"."t""#)
        #expect(LoadTableReuse.Emptying.create.truncates && LoadTableReuse.Emptying.truncate.truncates && !LoadTableReuse.Emptying.delete.truncates)
        var deadRows = 3
        reuse.loaded("a", rows: 400, emptiedBy: .delete)
        while reuse.emptying("a", incomingRows: 400) == .delete {
            reuse.loaded("a", rows: 400, emptiedBy: .delete)
            deadRows += 400
            #expect(deadRows <= limit)
        }
        #expect(deadRows + 400 > limit, "truncated once the dead rows would pass the limit, not before")
        reuse.loaded("a", rows: 400, emptiedBy: .truncate)
        #expect(reuse.emptying("a", incomingRows: 400) == .delete, "a TRUNCATE leaves no dead rows")
    }

    @Test func newestChangeMerge() {
        #expect(sql.mergeStatement(afterSequence: 7, truncatedAt: LSN(0x30), folding: false) == """
            MERGE INTO "stg"."qvp_items" AS t USING (SELECT DISTINCT ON ("id") * FROM "tributary_changes_0" WHERE _op <> 'T' AND _seq > 7 AND _lsn > '0/30'::pg_lsn ORDER BY "id", _lsn DESC, _seq DESC) AS s ON t."id" = s."id" \
            WHEN MATCHED AND s._lsn > t."_lsn" AND s._op = 'D' THEN UPDATE SET "_deleted" = true, "_lsn" = s._lsn \
            WHEN MATCHED AND s._lsn > t."_lsn" THEN UPDATE SET "doc" = s."doc", "_deleted" = false, "_lsn" = s._lsn \
            WHEN NOT MATCHED AND s._op = 'D' THEN INSERT ("id", "_lsn", "_deleted") VALUES (s."id", s._lsn, true) \
            WHEN NOT MATCHED THEN INSERT ("id", "doc", "_lsn", "_deleted") VALUES (s."id", s."doc", s._lsn, false)
            """)
    }

    @Test func foldingMergeKeepsStoredValueWhenNothingCarriedIt() {
        let merge = sql.merge(afterSequence: nil, truncatedAt: nil, folding: true)
        #expect(merge.contains(#"first_value("doc") OVER (PARTITION BY "id" ORDER BY (_op IN ('I', 'U') AND NOT coalesce('doc' = ANY (_unchanged), false)) DESC, _lsn DESC, _seq DESC) AS "doc""#))
        #expect(merge.contains(#"bool_or((_op IN ('I', 'U') AND NOT coalesce('doc' = ANY (_unchanged), false))) OVER (PARTITION BY "id") AS _carried_0"#))
        #expect(merge.contains(#""doc" = CASE WHEN s._carried_0 THEN s."doc" ELSE t."doc" END"#))
        #expect(merge.contains("WHERE _newest = 1"))
    }

    @Test func unsortedMergesLookEachKeyUpWithoutJITAndAreSetBackAfter() {
        #expect(!sql.merge(afterSequence: nil, truncatedAt: nil, folding: false).contains("SET LOCAL"), "sorted merges choose the lookups themselves")
        var distinct = sql
        distinct.keysDistinct = true
        let merge = distinct.merge(afterSequence: nil, truncatedAt: nil, folding: false)
        #expect(merge.hasPrefix("SET LOCAL jit = off; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; SET LOCAL enable_seqscan = off; MERGE INTO"))
        #expect(merge.hasSuffix("; SET LOCAL jit TO DEFAULT; SET LOCAL enable_hashjoin TO DEFAULT; SET LOCAL enable_mergejoin TO DEFAULT; SET LOCAL enable_seqscan TO DEFAULT"))
        let two = MergeSQL.planned(["MERGE 1", "MERGE 2"])
        #expect(two.components(separatedBy: "SET LOCAL jit = off").count == 2, "the settings are set once for several merges")
        #expect(two.contains("enable_seqscan = off; MERGE 1; MERGE 2; SET LOCAL jit TO DEFAULT"))
    }

    @Test func changesWithDistinctKeysMergeUnsortedByALookupOfEachKey() {
        var distinct = sql
        distinct.keysDistinct = true
        let merge = distinct.mergeStatement(afterSequence: 3, truncatedAt: nil, folding: false)
        #expect(merge.contains(#"USING (SELECT * FROM "tributary_changes_0" WHERE _op <> 'T' AND _seq > 3) AS s ON t."id" = s."id""#))
        #expect(!merge.contains("DISTINCT ON") && !merge.contains("ORDER BY"))
        let folded = distinct.mergeStatement(afterSequence: nil, truncatedAt: nil, folding: true)
        #expect(folded.contains(#"USING (SELECT "id", _op, _lsn, "doc", (_op IN ('I', 'U') AND NOT coalesce('doc' = ANY (_unchanged), false)) AS _carried_0 FROM "tributary_changes_0" WHERE _op <> 'T') AS s"#))
        #expect(folded.contains(#""doc" = CASE WHEN s._carried_0 THEN s."doc" ELSE t."doc" END"#))
    }

    @Test func onlyFilesOfAThousandChangesOrMoreWithKeysAllDifferentMergeUnsorted() {
        var file = BatchFile(relation: sql.relation, stagingTable: "qvp_items", segment: 0,
                             file: StagedFile(key: "k", rows: 1_000, bytes: 1, uncompressedBytes: 1, sha256: ""),
                             inserts: 1_000, updates: 0, deletes: 0, truncates: 0, distinctKeys: true)
        #expect(MergeSQL.mergesUnsorted(file))
        file.file.rows = 999
        #expect(!MergeSQL.mergesUnsorted(file), "a few rows sort in memory for less than the settings cost")
        file.file.rows = 50_000
        file.distinctKeys = false
        #expect(!MergeSQL.mergesUnsorted(file))
        file.distinctKeys = nil
        #expect(!MergeSQL.mergesUnsorted(file), "unknown, as in manifests written before the check")
    }
}
