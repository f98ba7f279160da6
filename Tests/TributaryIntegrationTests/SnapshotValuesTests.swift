import Foundation
import Testing
import TributaryCore
import TributaryPostgres
@testable import TributaryServices

/// Values that break naive pipelines survive snapshot → staging → STG unchanged, row for row.
@Suite(.clusterLoad) struct SnapshotValuesTests {
    static let awkwardSchema = """
        CREATE TYPE mood AS ENUM ('sad', 'ok', 'très "bien"', 'with,comma');
        CREATE DOMAIN positive_amount AS numeric(10,3) CHECK (VALUE > 0);
        CREATE SCHEMA "Sales Data";
        CREATE TABLE "Sales Data"."Order Lines" (
            "Order Id" bigint NOT NULL,
            line integer NOT NULL,
            "we""ird" text,
            vc varchar(50), ch char(5), b bytea, n numeric, f8 double precision, f4 real,
            d date, ts timestamp, tstz timestamptz, ints integer[], texts text[], grid integer[][],
            j jsonb, js json, iv interval, m mood, moods mood[], amount positive_amount,
            r int4range, tr tstzrange, u uuid, flag boolean, bits bit varying(10), addr inet, p point, big text,
            PRIMARY KEY ("Order Id", line)
        );
        INSERT INTO "Sales Data"."Order Lines" ("Order Id", line) VALUES (1, 1);  -- NULL everywhere else
        INSERT INTO "Sales Data"."Order Lines" VALUES
          (1, 2, '', '', '', '', 0, 0, 0, '2000-01-01', '2000-01-01 00:00', '2000-01-01 00:00+00', '{}', '{}', '{}',
           '{}', '""', '0', 'ok', '{}', 1, 'empty', 'empty', '00000000-0000-0000-0000-000000000000', false, '', '0.0.0.0', '(0,0)', ''),
          (2, 1, E'a "quoted", value\\nsecond line\\r\\nthird', 'comma,comma', 'x,"y', '\\x00ff0001', 'NaN', '-0', 'Infinity',
           'infinity', 'infinity', '-infinity', '{1,NULL,3}', '{"a",NULL,"NULL","","with,comma","quote\\"","back\\\\slash"}', '{{1,2},{3,NULL}}',
           '{"a": [1, null, "x\\\\ny"], "ü": {}, "k": "\\\\N"}', '{ "b" :  1,  "b": 2 }', '1 year 2 mons -3 days 04:05:06.789', 'très "bien"',
           '{sad,"très \\"bien\\"","with,comma",NULL}', 1234567.125, '[1,10)', '[2020-01-01 00:00+00,)', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true,
           B'1010', '2001:db8::1/64', '(1.5,-2.25)', 'small'),
          (2, 2, E'back\\\\slash \\\\N \\\\\\\\ end', '\\N', 'NULL', '\\x', 'Infinity', '-Infinity', '-Infinity',
           '-infinity', '4713-01-01 00:00 BC', '0044-03-15 12:00:00.000001+00 BC', '{-2147483648,2147483647}', '{"\\\\N", "NULL", " spaced "}', NULL,
           '"just a string"', '[1, 2.50, 3e2]', '-178000000 years', 'sad', '{"with,comma"}', 0.001, '(,5]', '(,)', NULL, NULL,
           B'1', '10.0.0.1', '(-0,0)', 'NULL'),
          (3, 1, 'Grüße 😀 日本語 ‍ zero-width joiner', 'ñ', 'é', '\\x5c4e', '-1.5e-20', 1.7976931348623157e308, 1.17549435e-38,
           '1999-12-31', '1999-12-31 23:59:59.999999', '1999-12-31 23:59:59.999999+14', NULL, '{"日本"}', NULL,
           'null', 'null', '-00:00:00.000001', NULL, NULL, 99.999, '[-5,-1]', NULL, NULL, NULL, NULL, NULL, NULL,
           (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 30000) AS i)),
          (3, 2, 'tab	and null-ish \\0', NULL, NULL, NULL, 0.1 + 0.2, 0.1::float8 + 0.2::float8, 'NaN', NULL, NULL,
           '2026-11-25 10:00:00.5+05:30', '{NULL}', '{NULL,NULL}', NULL, '[]', '[]', '1 day', 'with,comma', '{}', NULL,
           NULL, NULL, NULL, NULL, NULL, NULL, NULL, repeat('x', 5000));

        CREATE TABLE identity_indexed (code text NOT NULL, region text NOT NULL, payload text);
        CREATE UNIQUE INDEX identity_indexed_key ON identity_indexed (region, code);
        ALTER TABLE identity_indexed REPLICA IDENTITY USING INDEX identity_indexed_key;
        INSERT INTO identity_indexed SELECT 'c' || i, 'r' || (i % 3), CASE WHEN i % 2 = 0 THEN NULL ELSE 'p' || i END FROM generate_series(1, 50) i;

        -- Every column has a binary form (CSVToBinaryTranscoder): loaded in COPY's binary format.
        CREATE TABLE plain_kinds (id bigint PRIMARY KEY, small smallint, n integer, flag boolean, ref uuid,
                                  note text, code varchar(8), pad char(4), "Mixed, Case" text);
        INSERT INTO plain_kinds VALUES
          (-9223372036854775808, -32768, -2147483648, false, '00000000-0000-0000-0000-000000000000', '', '', '', ''),
          (9223372036854775807, 32767, 2147483647, true, 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
           E'a "quoted", value\\nsecond line\\r\\nthird\\ttab \\\\N', 'x,"y', 'ab', 'Grüße 😀'),
          (0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
          (1, 0, -1, true, 'ffffffff-ffff-ffff-ffff-ffffffffffff', '\\N', 'NULL', ' ', repeat('long ', 4000));

        CREATE TABLE measurements (taken date NOT NULL, sensor int NOT NULL, value float8, PRIMARY KEY (taken, sensor))
            PARTITION BY RANGE (taken);
        CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
        CREATE TABLE measurements_2026 PARTITION OF measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
        INSERT INTO measurements SELECT date '2025-06-01' + i, i % 4, i / 7.0 FROM generate_series(0, 400) i;
        """

    static let tables = ["\"Sales Data\".\"Order Lines\"", "public.identity_indexed", "public.plain_kinds", "public.measurements"]

    @Test func awkwardValuesArriveInSTGRowForRow() async throws {
        let fixture = try await PipelineFixture.make("values", sources: [("qvp", Self.tables)])
        let source = try await fixture.connectSource("qvp")
        try await source.execute(Self.awkwardSchema)

        let manifest = try await fixture.snapshot("qvp")
        #expect(manifest.tables.map(\.rows) == [6, 50, 4, 401])
        // Tables whose every column has a binary form (here integers, booleans, uuids, text, dates
        // and floats) load in binary format; one with intervals, arrays, enums… in text.
        #expect(manifest.tables.map { $0.relation.binaryKinds != nil } == [false, true, true, true])
        let report = try #require(try await fixture.load("qvp"))
        #expect(report.rows == 461)

        let target = try await fixture.connectTarget()
        for table in manifest.tables {
            try await expectSTGEqualsSource(table.relation, stagingTable: table.stagingTable, source: source, target: target)
        }
        // The large value really was stored out of line on the source, so TOAST was exercised.
        let toasted = try await source.query("""
            SELECT pg_relation_size(reltoastrelid) > 0 FROM pg_class WHERE oid = '"Sales Data"."Order Lines"'::regclass
            """).scalar
        #expect(toasted == "t")
        // STG keys and types: composite key kept, enum as text, domain as its base type.
        let columns = try await target.query("""
            SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
            WHERE a.attrelid = 'stg.qvp_sales_data_order_lines'::regclass AND a.attname IN ('m', 'moods', 'amount', 'Order Id')
            ORDER BY a.attnum
            """).rows.map { "\($0[0]!): \($0[1]!)" }
        #expect(columns == ["Order Id: bigint", "m: text", "moods: text[]", "amount: numeric(10,3)"])
        let key = try await target.query("""
            SELECT string_agg(a.attname, ',' ORDER BY k.ord) FROM pg_index i
            CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE i.indrelid = 'stg.qvp_identity_indexed'::regclass AND i.indisprimary
            """).scalar
        #expect(key == "region,code")

        let comparisons = try await fixture.verify("qvp")
        #expect(comparisons.count == 4)
        #expect(comparisons.allSatisfy { $0.matches })
    }

    /// `verify` hashes most columns by their type (not their text), and is no less strict for it: a
    /// value changed by a microsecond or a trailing blank differs, and so does a value equal to the
    /// source's whose text is not (`0.0` for `0`, `-0`, `24 hours` for `1 day`, an array's bounds).
    @Test func verifyFindsEveryChangeOfValueOrOfText() async throws {
        let fixture = try await PipelineFixture.make("verify-strict", sources: [("qvp", Self.tables)])
        try await fixture.connectSource("qvp").execute(Self.awkwardSchema)
        _ = try await fixture.snapshot("qvp")
        _ = try await fixture.load("qvp")
        #expect(try await fixture.verify("qvp").allSatisfy { $0.matches })
        let lines = #"stg.qvp_sales_data_order_lines"#
        let cases: [(table: String, change: String, back: String)] = [
            (lines, #"tstz = tstz + interval '1 microsecond' WHERE "Order Id" = 3 AND line = 1"#, #"tstz = tstz - interval '1 microsecond' WHERE "Order Id" = 3 AND line = 1"#),
            (lines, #"vc = 'comma,comma ' WHERE "Order Id" = 2 AND line = 1"#, #"vc = 'comma,comma' WHERE "Order Id" = 2 AND line = 1"#),
            (lines, #"m = 'sad' WHERE "Order Id" = 1 AND line = 2"#, #"m = 'ok' WHERE "Order Id" = 1 AND line = 2"#),
            (lines, #"n = 0.0 WHERE "Order Id" = 1 AND line = 2"#, #"n = 0 WHERE "Order Id" = 1 AND line = 2"#),
            (lines, #"f8 = 0 WHERE "Order Id" = 2 AND line = 1"#, #"f8 = '-0' WHERE "Order Id" = 2 AND line = 1"#),
            (lines, #"iv = '24 hours' WHERE "Order Id" = 3 AND line = 2"#, #"iv = '1 day' WHERE "Order Id" = 3 AND line = 2"#),
            (lines, #"ints = '[0:2]={1,NULL,3}' WHERE "Order Id" = 2 AND line = 1"#, #"ints = '{1,NULL,3}' WHERE "Order Id" = 2 AND line = 1"#),
            ("stg.qvp_plain_kinds", "ref = 'ffffffff-ffff-ffff-ffff-fffffffffffe' WHERE id = 1", "ref = 'ffffffff-ffff-ffff-ffff-ffffffffffff' WHERE id = 1"),
        ]
        let target = try await fixture.connectTarget()
        for (table, change, back) in cases {
            try await target.execute("UPDATE \(table) SET \(change)")
            let differing = try await fixture.verify("qvp").filter { !$0.matches }.map(\.stagingTable)
            #expect(differing == [table], "\(change)")
            try await target.execute("UPDATE \(table) SET \(back)")
        }
        #expect(try await fixture.verify("qvp").allSatisfy { $0.matches })
    }

    @Test func largeTablesSplitIntoRangesAndPartsLoadTheSameRows() async throws {
        var fixture = try await PipelineFixture.make("ranges", sources: [("qvp", ["public.wide"])])
        // Tiny ranges and parts: one table becomes many ranges and each range several parts.
        fixture.snapshotYAML = "  jobs: 3\n  range_size: 256KiB\n  part_size: 64KiB\n"
        let source = try await fixture.connectSource("qvp")
        try await source.execute("""
            CREATE TABLE wide (id int PRIMARY KEY, a text, b numeric, c timestamptz);
            INSERT INTO wide SELECT i, md5(i::text) || repeat('z', i % 50), i / 3.0, '2020-01-01'::timestamptz + i * interval '1 minute'
            FROM generate_series(1, 30000) i;
            ANALYZE wide;
            """)
        let manifest = try await fixture.snapshot("qvp")
        let parts = manifest.tables[0].parts
        let ranges = Set(parts.map { $0.key.split(separator: "/").last!.prefix(5) })
        #expect(ranges.count > 3, "expected several ctid ranges, got \(ranges.count)")
        #expect(parts.count > ranges.count, "expected ranges to rotate into several parts")
        #expect(parts.allSatisfy { $0.uncompressedBytes < 64 * 1024 + 4096 })
        #expect(manifest.tables[0].rows == 30000)
        _ = try await fixture.load("qvp")
        let comparisons = try await fixture.verify("qvp")
        #expect(comparisons.allSatisfy { $0.matches })
        let target = try await fixture.connectTarget()
        #expect(try await target.query("SELECT count(DISTINCT id) FROM stg.qvp_wide").scalar == "30000")
    }

    /// qvp with one table `wide` (id, md5 text) of `rows` rows, snapshotted in many small parts.
    func wideFixture(_ label: String, rows: Int) async throws -> PipelineFixture {
        var fixture = try await PipelineFixture.make(label, sources: [("qvp", ["public.wide"])])
        fixture.snapshotYAML = "  jobs: 2\n  range_size: 256KiB\n  part_size: 64KiB\n"
        let source = try await fixture.connectSource("qvp")
        try await source.execute("""
            CREATE TABLE wide (id int PRIMARY KEY, a text);
            INSERT INTO wide SELECT i, md5(i::text) FROM generate_series(1, \(rows)) i;
            ANALYZE wide;
            """)
        return fixture
    }

    @Test func aTableLoadedByOneWorkerLandsFrozenInOneRun() async throws {
        let fixture = try await wideFixture("frozen", rows: 20000)
        let manifest = try await fixture.snapshot("qvp")
        #expect(manifest.tables[0].parts.count > 3)
        let loader = SnapshotLoader(target: try fixture.endpoints().target, store: try fixture.store(), jobs: 1, sources: [], logger: PipelineFixture.logger)
        _ = try #require(try await loader.load(source: "qvp"))
        #expect(try await fixture.verify("qvp").allSatisfy { $0.matches })
        // COPY FREEZE marks every page all-visible (and frozen); ANALYZE at the key build counts them.
        // Without FREEZE no page is, until a vacuum rewrites them all.
        let target = try await fixture.connectTarget()
        let pages = try await target.query("SELECT relpages, relallvisible FROM pg_class WHERE oid = 'stg.qvp_wide'::regclass").rows[0]
        #expect(Int(pages[0]!)! > 10)
        #expect(pages[0] == pages[1], "pages, all-visible pages: \(pages)")
        try await target.execute("CREATE EXTENSION IF NOT EXISTS pg_visibility")
        let frozen = try await target.query("SELECT all_frozen FROM pg_visibility_map_summary('stg.qvp_wide')").scalar
        #expect(frozen == pages[0], "every page frozen: no vacuum has to rewrite them")
    }

    /// A target whose defaults would cancel a long COPY or key build, or a frozen run waiting for
    /// its next part, does not stop the load: its sessions lift those timeouts.
    @Test func loadSessionsLiftTheTargetsTimeouts() async throws {
        let fixture = try await PipelineFixture.make("timeouts", sources: [("qvp", [])])
        let target = try await fixture.connectTarget()
        let database = try #require(try await target.query("SELECT current_database()").scalar)
        try await target.execute("""
            ALTER DATABASE \(SQL.identifier(database)) SET statement_timeout = '100ms';
            ALTER DATABASE \(SQL.identifier(database)) SET idle_in_transaction_session_timeout = '100ms'
            """)
        let session = try await fixture.targetEndpoint.connect(.apply)
        #expect(try await session.query("SELECT current_setting('statement_timeout'), current_setting('idle_in_transaction_session_timeout')").rows[0].values
                == ["0", "0"])
        let plain = try await fixture.connectTarget()
        #expect(try await plain.query("SELECT current_setting('statement_timeout')").scalar == "100ms", "the database default applies elsewhere")
        await session.close()
        await plain.close()
    }

    @Test func partsAreLoadedWhileTheSnapshotRuns() async throws {
        let fixture = try await wideFixture("eager", rows: 40000)
        let configuration = try fixture.configuration()
        let loader = SnapshotLoader(target: try fixture.endpoints().target, store: try fixture.store(), jobs: 2, sources: [], logger: PipelineFixture.logger)
        let eager = EagerSnapshotLoad(loader: loader, jobs: 2)
        let manifest = try await Snapshotter(source: configuration.sources[0], endpoints: try fixture.endpoints(), settings: configuration.target.snapshot,
                                             store: try fixture.store(), workDirectory: configuration.target.workDirectory,
                                             logger: PipelineFixture.logger).run(options: .init(), observer: eager).manifest
        try await eager.finish()
        let report = try #require(try await loader.load(source: "qvp"))
        // Every part was loaded before the manifest existed; the ordinary load only promoted.
        #expect(report.partsAlreadyLoaded == manifest.tables[0].parts.count)
        #expect(report.partsLoaded == 0)
        #expect(try await fixture.verify("qvp").allSatisfy { $0.matches })
    }
}

/// STG's live rows of `stagingTable` equal the source table's, row for row in key order (the
/// first differing rows shown) and by a digest of all of them.
func expectSTGEqualsSource(_ relation: RelationSchema, stagingTable: String, source: PostgresConnection, target: PostgresConnection,
                           sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let columns = SQL.identifierList(relation.columnNames)
    let order = SQL.identifierList(relation.key)
    let staging = "stg.\(SQL.identifier(stagingTable)) WHERE NOT \(SQL.identifier(StagingColumns.deleted))"
    let sourceRows = try await source.query("SELECT ROW(\(columns))::text FROM \(relation.table.sql) ORDER BY \(order)").rows.map { $0[0]! }
    let stagingRows = try await target.query("SELECT ROW(\(columns))::text FROM \(staging) ORDER BY \(order)").rows.map { $0[0]! }
    #expect(sourceRows.count == stagingRows.count && !sourceRows.isEmpty, "\(relation.table)", sourceLocation: sourceLocation)
    for (sourceRow, stagingRow) in zip(sourceRows, stagingRows) where sourceRow != stagingRow {
        Issue.record("\(relation.table) differs:\n  source: \(sourceRow.prefix(400))\n  stg:    \(stagingRow.prefix(400))",
                     sourceLocation: sourceLocation)
    }
    let digest = "md5(string_agg(ROW(\(columns))::text, '|' ORDER BY \(order)))"
    let sourceDigest = try await source.query("SELECT \(digest) FROM \(relation.table.sql)").scalar
    let stagingDigest = try await target.query("SELECT \(digest) FROM \(staging)").scalar
    #expect(sourceDigest == stagingDigest, "\(relation.table)", sourceLocation: sourceLocation)
}
