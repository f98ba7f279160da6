import Testing
import TributaryCore

/// Golden strings: the SQL the pipeline sends, exactly.
@Suite struct SQLGenerationTests {
    let table = QualifiedName(schema: "Sales", name: "order lines")
    let relation = RelationSchema(
        table: QualifiedName(schema: "Sales", name: "order lines"),
        columns: [.init(name: "id", sourceType: "bigint", stagingType: "bigint", typeOid: 20, notNull: true),
                  .init(name: "mood", sourceType: "public.mood", stagingType: "text", typeOid: 5000, notNull: false)],
        key: ["id"])

    /// Every quote doubled, and nothing else touched: multi-byte characters, empty names.
    @Test func quoting() {
        #expect(SQL.identifier("id") == #""id""#)
        #expect(SQL.identifier(#"a"b""#) == #""a""b""""#)
        #expect(SQL.identifier("") == #""""#)
        #expect(SQL.identifier("Größe \"ä\"") == #""Größe ""ä""""#)
        #expect(SQL.literal("it's") == "'it''s'")
        #expect(SQL.literal("''") == "''''''")
        #expect(SQL.literal(#"say "x""#) == #"'say "x"'"#)
        #expect(SQL.literal("日本'語") == "'日本''語'")
    }

    @Test func copyOut() {
        #expect(SnapshotSQL.copyOut(table: table, columns: ["id", "mood"], item: .init(tableIndex: 0, rangeIndex: 0, firstPage: nil, endPage: nil))
                == #"COPY "Sales"."order lines" ("id", "mood") TO STDOUT (FORMAT csv, HEADER true)"#)
        #expect(SnapshotSQL.copyOut(table: table, columns: ["id"], item: .init(tableIndex: 0, rangeIndex: 1, firstPage: 128, endPage: 256))
                == #"COPY (SELECT "id" FROM ONLY "Sales"."order lines" WHERE ctid >= '(128,0)'::tid AND ctid < '(256,0)'::tid) TO STDOUT (FORMAT csv, HEADER true)"#)
        #expect(SnapshotSQL.copyOut(table: table, columns: ["id"], item: .init(tableIndex: 0, rangeIndex: 2, firstPage: 256, endPage: nil))
                == #"COPY (SELECT "id" FROM ONLY "Sales"."order lines" WHERE ctid >= '(256,0)'::tid) TO STDOUT (FORMAT csv, HEADER true)"#)
        #expect(SnapshotSQL.copyOut(table: table, columns: ["id"], item: .init(tableIndex: 0, rangeIndex: 0, firstPage: nil, endPage: nil), partitioned: true)
                == #"COPY (SELECT "id" FROM "Sales"."order lines") TO STDOUT (FORMAT csv, HEADER true)"#)
        // The rows of a kept range written since: the xid8 is taken modulo 2^32, as xmin is.
        #expect(SnapshotSQL.copyOut(table: table, columns: ["id"], item: .init(tableIndex: 0, rangeIndex: 5, firstPage: nil, endPage: 128,
                                                                               changedSince: (3 << 32) + 900))
                == #"COPY (SELECT "id" FROM ONLY "Sales"."order lines" WHERE ctid < '(128,0)'::tid AND age(xmin) <= age('900'::xid)) TO STDOUT (FORMAT csv, HEADER true)"#)
        #expect(SnapshotSQL.keepOneRowPerKey(QualifiedName(schema: "tributary_load", name: "l"), key: ["id", "line"])
                == #"DELETE FROM "tributary_load"."l" AS l USING (SELECT "id", "line", max(ctid) AS "_tributary_kept" FROM "tributary_load"."l" GROUP BY "id", "line" HAVING count(*) > 1) AS d WHERE l."id" = d."id" AND l."line" = d."line" AND l.ctid <> d."_tributary_kept""#)
    }

    @Test func loadTableAndPromotion() {
        let load = QualifiedName(schema: "tributary_load", name: "qvp_00000000016B3748_0")
        #expect(SnapshotSQL.createLoadTable(load, relation: relation)
                == #"CREATE TABLE IF NOT EXISTS "tributary_load"."qvp_00000000016B3748_0" ("id" bigint NOT NULL, "mood" text) WITH (autovacuum_enabled = false, fillfactor = 90)"#)
        #expect(SnapshotSQL.copyIn(load, relation: relation)
                == #"COPY "tributary_load"."qvp_00000000016B3748_0" ("id", "mood") FROM STDIN (FORMAT text, HEADER match)"#)
        #expect(SnapshotSQL.addKey(load, stagingTable: QualifiedName(schema: "stg", name: "qvp_lines"), relation: relation)
                == #"ALTER TABLE "tributary_load"."qvp_00000000016B3748_0" ADD CONSTRAINT "qvp_lines_pkey" PRIMARY KEY ("id")"#)
        #expect(SnapshotSQL.promote(load, to: QualifiedName(schema: "stg", name: "qvp_lines"), relation: relation, consistentPoint: LSN(0x16B3748)) == [
            #"ALTER TABLE "tributary_load"."qvp_00000000016B3748_0" ADD COLUMN "_lsn" pg_lsn NOT NULL DEFAULT '0/16B3747', ADD COLUMN "_deleted" boolean NOT NULL DEFAULT false"#,
            #"ALTER TABLE "tributary_load"."qvp_00000000016B3748_0" ALTER COLUMN "_lsn" DROP DEFAULT, RESET (autovacuum_enabled)"#,
            #"DROP TABLE IF EXISTS "stg"."qvp_lines""#,
            #"ALTER TABLE "tributary_load"."qvp_00000000016B3748_0" SET SCHEMA "stg""#,
            #"ALTER TABLE "stg"."qvp_00000000016B3748_0" RENAME TO "qvp_lines""#,
        ])
    }

    @Test func stagingTableForChangesWithoutASnapshot() {
        #expect(SnapshotSQL.createStagingTable(QualifiedName(schema: "stg", name: "qvp_lines"), relation: relation)
                == #"CREATE TABLE IF NOT EXISTS "stg"."qvp_lines" ("id" bigint NOT NULL, "mood" text, "_lsn" pg_lsn NOT NULL, "_deleted" boolean NOT NULL DEFAULT false, PRIMARY KEY ("id")) WITH (fillfactor = 90)"#)
    }

    /// By type where STG has the source's type (the enum STG keeps as text: by its text form, on both
    /// sides); before PostgreSQL 14, the whole row's text form.
    @Test func checksum() {
        let stg = QualifiedName(schema: "stg", name: "qvp_lines")
        #expect(ChecksumSQL.checksum(table: stg, columns: ["id", "mood"], hash: RowHash(columns: relation.columns, byRecord: true), excludeTombstones: true)
                == #"SELECT count(*) AS rows, coalesce(sum(hash_record_extended(ROW("id", "mood"::text), 0)), 0) AS checksum FROM "stg"."qvp_lines" WHERE NOT "_deleted""#)
        #expect(ChecksumSQL.checksum(table: stg, columns: ["id", "mood"], hash: RowHash(columns: relation.columns, byRecord: false), excludeTombstones: true)
                == #"SELECT count(*) AS rows, coalesce(sum(hashtextextended(ROW("id", "mood")::text, 0)), 0) AS checksum FROM "stg"."qvp_lines" WHERE NOT "_deleted""#)
    }

    /// Only types whose equal values have one text form are hashed by type; text-like ones in "C".
    @Test func rowHashTakesATypesOwnHashOnlyWhereItIsAsStrictAsText() {
        func column(_ type: String, staging: String? = nil) -> ColumnSchema {
            ColumnSchema(name: "c", sourceType: type, stagingType: staging ?? type, typeOid: 0, notNull: false)
        }
        let byType = ["integer", "bigint", "text", "character varying", "character varying(20)", "character(3)", "numeric(12,2)",
                      "timestamp with time zone", "timestamp(3) without time zone", "time(3) without time zone", "date", "uuid", "bytea", "boolean"]
        let byText = ["numeric", "interval", "double precision", "real", "jsonb", "json", "integer[]", "text[]", "numeric(12,2)[]", "character varying(20)[]", "character(3)[]", "time with time zone",
                      "time(3) with time zone", "public.mood", "point", "xml"]
        for type in byType { #expect(RowHash(columns: [column(type)], byRecord: true).byType == [true], "\(type)") }
        for type in byText { #expect(RowHash(columns: [column(type)], byRecord: true).byType == [false], "\(type)") }
        #expect(RowHash(columns: [column("integer", staging: "bigint")], byRecord: true).byType == [false], "a type STG does not share")
        #expect(RowHash(columns: [column("character varying(20)"), column("integer")], byRecord: true).expression(["a", "b"])
                == #"hash_record_extended(ROW("a" COLLATE "C", "b"), 0)"#)
    }

    /// The per-table snapshot's merge: copy rows win only over older, differing STG rows; older
    /// rows the copy lacks become tombstones; nothing at all when STG saw a TRUNCATE at or after
    /// the copy's point. What it writes is tagged just before the point, so that the commit at
    /// the point itself, streamed and not in the copy, wins over it.
    @Test func tableSnapshotMerge() {
        let load = QualifiedName(schema: "tributary_load", name: "l"), stg = QualifiedName(schema: "stg", name: "qvp_t")
        let point = LSN("0/5000")!
        let statements = SnapshotSQL.mergeTableSnapshot(load, into: stg, columns: ["id", "v"], key: ["id"], consistentPoint: point, truncatedAt: nil)
        #expect(statements == [
            #"INSERT INTO "stg"."qvp_t" AS s ("id", "v", "_lsn", "_deleted") SELECT "id", "v", '0/4FFF'::pg_lsn, false FROM "tributary_load"."l" "#
                + #"ON CONFLICT ("id") DO UPDATE SET "v" = excluded."v", "_lsn" = excluded."_lsn", "_deleted" = false "#
                + #"WHERE s."_lsn" < excluded."_lsn" AND (s."_deleted" OR ROW(s."v")::text IS DISTINCT FROM ROW(excluded."v")::text)"#,
            #"UPDATE "stg"."qvp_t" AS s SET "_deleted" = true, "_lsn" = '0/4FFF'::pg_lsn WHERE s."_lsn" < '0/4FFF'::pg_lsn AND NOT s."_deleted" "#
                + #"AND NOT EXISTS (SELECT 1 FROM "tributary_load"."l" AS l WHERE l."id" = s."id")"#,
        ])
        #expect(SnapshotSQL.mergeTableSnapshot(load, into: stg, columns: ["id"], key: ["id"], consistentPoint: point, truncatedAt: LSN("0/6000")).isEmpty)
        #expect(SnapshotSQL.mergeTableSnapshot(load, into: stg, columns: ["id"], key: ["id"], consistentPoint: point, truncatedAt: point).isEmpty)
        #expect(SnapshotSQL.mergeTableSnapshot(load, into: stg, columns: ["id"], key: ["id"], consistentPoint: point, truncatedAt: LSN("0/4000")).count == 2)
    }
}
