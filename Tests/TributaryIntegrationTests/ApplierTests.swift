import Foundation
import Testing
import TributaryCore
import TributaryPostgres
@testable import TributaryServices

/// The applier: STG follows the sources exactly, whatever the workload, order or failure.
@Suite(.clusterLoad) struct ApplierTests {
    func twoSourceFixture(_ label: String, configure: (inout PipelineFixture) -> Void = { _ in },
                          seed: String? = nil) async throws -> PipelineFixture {
        // Small batches: the workload spans many, whatever the machine's speed.
        try await PipelineFixture.twoSources(label, batchRows: 100, configure: configure, seed: seed)
    }

    @Test func randomWorkloadOnBothSourcesEndsEqualInSTG() async throws {
        try await twoSourceFixture("e2e").randomWorkloadEndsEqual(steps: 250)
    }

    @Test func largeValueSurvivesAnUpdateInTheSameTransactionAndInTheSameBatch() async throws {
        var fixture = try await PipelineFixture.make("toast", sources: [("qvp", ["public.accounts", "public.ledger"])])
        fixture.snapshotYAML = "  jobs: 1\nbatch:\n  max_age: 10s\n"
        let source = try await fixture.connectSource("qvp")
        try await source.execute(RandomWorkload.schema)
        _ = try await fixture.snapshot("qvp")
        try await source.execute("""
            BEGIN; INSERT INTO accounts (id, owner, doc) VALUES (5001, 'same transaction', repeat(md5('a'), 200));
            UPDATE accounts SET owner = 'updated in the same transaction' WHERE id = 5001; COMMIT
            """)
        try await source.execute("INSERT INTO accounts (id, owner, doc) VALUES (5002, 'two transactions', repeat(md5('b'), 200))")
        try await source.execute("UPDATE accounts SET owner = 'updated in the next transaction' WHERE id = 5002")
        // An existing row's large value, untouched by an update, must stay what STG has.
        try await source.execute("UPDATE accounts SET owner = 'only owner changed' WHERE id = 5")
        // Key changes leave the value under the old key: once, and twice in a chain.
        try await source.execute("UPDATE accounts SET id = 7001 WHERE id = 10")
        try await source.execute("UPDATE accounts SET id = 7002 WHERE id = 15")
        try await source.execute("UPDATE accounts SET id = 7003, owner = 'moved twice' WHERE id = 7002")
        _ = try await fixture.replicateUntilCaughtUp("qvp", limits: fixture.configuration().target.batch)
        let staged = try await fixture.stagedChanges("qvp")
        #expect(staged.manifests.filter { $0.rows > 0 }.count == 1, "all four transactions in one batch")
        #expect(staged.rows.filter { $0.unchanged == "{\"doc\"}" }.count == 6, "the six updates left doc out")

        _ = try await ChangeApplier(endpoints: try fixture.endpoints(), sources: try fixture.configuration().sources, store: try fixture.store(),
                                    settings: .init(jobs: 1), logger: PipelineFixture.logger).applyOnce()
        let target = try await fixture.connectTarget()
        #expect(try await fixture.verify("qvp").allSatisfy { $0.matches })
        for id in ["5001", "5002", "5", "7001", "7003"] {
            let stored = try await target.query("SELECT md5(doc), owner FROM stg.qvp_accounts WHERE id = $1", [id]).rows.first?.values
            let expected = try await source.query("SELECT md5(doc), owner FROM accounts WHERE id = $1", [id]).rows.first?.values
            #expect(stored != nil && stored == expected, "id \(id): STG \(String(describing: stored)) source \(String(describing: expected))")
            #expect(stored?[0] != nil, "id \(id) lost its large value")
        }
    }

    /// What a transaction writes after its own TRUNCATE lands: those changes share the truncate's
    /// LSN, and were left out by the merge's LSN filter and turned away by the tombstones the
    /// truncate wrote at that LSN. A key the truncate removed comes back, a new one goes in and is
    /// updated, all in the truncating transaction; a second truncating transaction in the same
    /// batch voids all of it but what came after it.
    @Test func whatATransactionWritesAfterItsOwnTruncateLands() async throws {
        var fixture = try await PipelineFixture.make("truncate-then", sources: [("qvp", ["public.accounts", "public.ledger"])])
        fixture.snapshotYAML = "  jobs: 1\nbatch:\n  max_age: 10s\n"
        let source = try await fixture.connectSource("qvp")
        try await source.execute(RandomWorkload.schema)
        _ = try await fixture.snapshot("qvp")
        let apply = {
            _ = try await fixture.replicateUntilCaughtUp("qvp", limits: fixture.configuration().target.batch)
            _ = try await ChangeApplier(endpoints: try fixture.endpoints(), sources: try fixture.configuration().sources, store: try fixture.store(),
                                        settings: .init(jobs: 1), logger: PipelineFixture.logger).applyOnce()
        }
        try await source.execute("""
            BEGIN; TRUNCATE ledger; INSERT INTO ledger VALUES (1, 1, 'back after the truncate'), (500, 2, 'new after the truncate');
            UPDATE ledger SET note = 'updated after the truncate' WHERE a = 500; COMMIT
            """)
        try await source.execute("INSERT INTO ledger VALUES (501, 1, 'next transaction')")
        try await apply()
        let target = try await fixture.connectTarget()
        let live = "SELECT string_agg(a || '/' || b || ' ' || note, ', ' ORDER BY a, b) FROM "
        #expect(try await target.query(live + "stg.qvp_ledger WHERE NOT _deleted").scalar
                == "1/1 back after the truncate, 500/2 updated after the truncate, 501/1 next transaction")
        #expect(try await fixture.verify("qvp").allSatisfy { $0.matches })

        try await source.execute("""
            BEGIN; INSERT INTO ledger VALUES (600, 1, 'before the second truncate'); TRUNCATE ledger;
            INSERT INTO ledger VALUES (1, 1, 'after the second truncate'); COMMIT
            """)
        try await apply()
        #expect(try await target.query(live + "stg.qvp_ledger WHERE NOT _deleted").scalar == "1/1 after the second truncate")
        #expect(try await fixture.verify("qvp").allSatisfy { $0.matches })
    }

    /// A file whose changes each have a key of their own is merged unsorted (`DistinctKeyCheck`),
    /// each change's key looked up in STG's primary key whatever the statistics say; a file where a
    /// key comes twice, or whose key's text is not canonical, is merged with the sort. Inserts,
    /// updates leaving a large value out, deletes and repeated updates all end equal to the source.
    @Test func filesWhoseKeysAllDifferMergeUnsortedAndEndEqual() async throws {
        var fixture = try await PipelineFixture.make("distinct", sources: [("qvp", ["public.once", "public.twice", "public.priced"])])
        fixture.snapshotYAML = "  jobs: 1\nbatch:\n  max_age: 10s\n"
        let source = try await fixture.connectSource("qvp")
        try await source.execute("""
            CREATE TABLE once (id bigint PRIMARY KEY, note text, doc text);
            ALTER TABLE once ALTER COLUMN doc SET STORAGE EXTERNAL;
            CREATE TABLE twice (id int PRIMARY KEY, note text);
            CREATE TABLE priced (price numeric PRIMARY KEY, note text);
            INSERT INTO once SELECT i, 'before', repeat(md5(i::text), 100) FROM generate_series(1, 50) i;
            INSERT INTO twice SELECT i, 'before' FROM generate_series(1, 50) i;
            """)
        _ = try await fixture.snapshot("qvp")
        let applier = ChangeApplier(endpoints: try fixture.endpoints(), sources: try fixture.configuration().sources, store: try fixture.store(),
                                    settings: .init(jobs: 1), logger: PipelineFixture.logger)
        _ = try await applier.applyOnce()
        try await source.execute("INSERT INTO once SELECT i, 'new', repeat(md5(i::text), 100) FROM generate_series(51, 1300) i")
        try await source.execute("UPDATE once SET note = 'doc left out' WHERE id <= 20")
        try await source.execute("DELETE FROM once WHERE id BETWEEN 21 AND 30")
        try await source.execute("UPDATE twice SET note = 'first' WHERE id <= 10")
        try await source.execute("UPDATE twice SET note = 'second' WHERE id <= 5")
        try await source.execute("INSERT INTO priced VALUES (1.0, 'one'), (2.50, 'two and a half')")
        _ = try await fixture.replicateUntilCaughtUp("qvp", limits: fixture.configuration().target.batch)
        let staged = try await fixture.stagedChanges("qvp")
        #expect(staged.manifests.filter { $0.rows > 0 }.count == 1, "every change in one batch")
        #expect(staged.rows.filter { $0.unchanged == "{\"doc\"}" }.count == 20, "the updates of once left doc out")
        let files = Dictionary(staged.manifests.flatMap(\.files).map { ($0.relation.table.name, $0) }, uniquingKeysWith: { first, _ in first })
        let once = try #require(files["once"]), twice = try #require(files["twice"]), priced = try #require(files["priced"])
        #expect(once.distinctKeys == true)
        #expect(twice.distinctKeys == false, "ids 1 to 5 were updated twice")
        #expect(priced.distinctKeys == nil, "numeric keys have more than one text")

        // The unsorted merge's plan, against STG as the snapshot's load left it: a lookup by key per change.
        let target = try await fixture.connectTarget()
        var sql = MergeSQL(relation: once.relation, stagingTable: once.stagingTable, temporaryName: "tributary_changes_plan")
        sql.keysDistinct = true
        try await target.execute("BEGIN")
        try await target.execute(sql.createTemporary)
        for setting in MergeSQL.plannerSettings { try await target.execute("SET LOCAL \(setting) = off") }
        let plan = try await target.query("EXPLAIN " + sql.mergeStatement(afterSequence: nil, truncatedAt: nil, folding: true))
            .rows.map { $0.values[0] ?? "" }.joined(separator: "\n")
        try await target.execute("ROLLBACK")
        #expect(plan.contains("Nested Loop Left Join") && plan.contains("Index Scan using qvp_once_pkey on qvp_once t"), "\(plan)")
        #expect(!plan.contains("Hash") && !plan.contains("Seq Scan on qvp_once") && !plan.contains("JIT"), "\(plan)")

        // The applier's own sessions compile no JIT at all, whatever a merge's estimated cost.
        let merging = try await fixture.endpoints().target.connect(.merging, for: "test")
        #expect(try await merging.query("SHOW jit").scalar(String.self) == "off")
        #expect(try await target.query("SHOW jit").scalar(String.self) == "on", "only the applier's sessions")

        _ = try await applier.applyOnce()
        for file in [once, twice, priced] {
            try await expectSTGEqualsSource(file.relation, stagingTable: file.stagingTable, source: source, target: target)
        }
        #expect(try await target.query("SELECT count(*) FROM stg.qvp_once WHERE doc IS NULL AND NOT _deleted").scalar(Int.self) == 0)
        #expect(try await fixture.verify("qvp").allSatisfy { $0.matches })
    }

    /// Change batches of tables whose every column has a binary form load in COPY's binary format
    /// (`CSVToBinaryTranscoder(changesOf:)`): every kind, at its limits, lands in STG as the
    /// source holds it. A wrong byte of any kind's encoding shows here as a differing row.
    @Test func binaryChangeBatchesOfEveryKindArriveRowForRow() async throws {
        var fixture = try await PipelineFixture.make("binary", sources: [("qvp", ["public.every_kind", "public.text_kinds"])])
        fixture.snapshotYAML = "  jobs: 1\nbatch:\n  max_age: 10s\n"
        let source = try await fixture.connectSource("qvp")
        try await source.execute("""
            CREATE TABLE every_kind (id bigint PRIMARY KEY, small smallint, n integer, flag boolean, ref uuid, note text,
                code varchar(8), pad char(3), f4 real, f8 double precision, amount numeric, price numeric(12,2), d date,
                ts timestamp, ts3 timestamp(3), tstz timestamptz, t time, b bytea, j jsonb, js json, at pg_lsn, doc text);
            ALTER TABLE every_kind ALTER COLUMN doc SET STORAGE EXTERNAL;
            CREATE TABLE text_kinds (id int PRIMARY KEY, span interval, tags text[]);
            INSERT INTO every_kind (id, note) VALUES (0, 'from the snapshot');
            """)
        _ = try await fixture.snapshot("qvp")
        try await source.execute("""
            INSERT INTO every_kind VALUES
              (1, -32768, -2147483648, false, '00000000-0000-0000-0000-000000000000', '', '', '', '-0', '-0', 0, 0,
               '4713-01-01 BC', '4713-01-01 00:00 BC', '2000-01-01 00:00:00.0005', '-infinity', '00:00', '\\x', 'null', '""', '0/0', ''),
              (2, 32767, 2147483647, true, 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', E'a "quoted", value\\nline\\r\\n\\\\N', 'x,"y', 'ab',
               3.4028235e38, 1.7976931348623157e308, 'NaN', 9999999999.99, '5874897-12-31', '294276-12-31 23:59:59.999999', 'infinity',
               '294276-12-31 23:59:59.999999+00', '24:00:00', '\\x00ff0001', '{"a": [1, null, "x\\\\ny"], "ü": {}, "k": "\\\\N"}',
               '{ "b" :  1,  "b": 2 }', 'FFFFFFFF/FFFFFFFF', repeat(md5('doc'), 300)),
              (3, 0, 0, NULL, NULL, 'Grüße 😀', NULL, NULL, 'NaN', 5e-324, 'Infinity', -0.005, '2000-02-29', '1999-12-31 23:59:59.999999',
               '2026-12-06 12:34:56.7891', '1999-12-31 23:59:59.999999+14', '23:59:59.999999', '\\x5c4e', '[]', '[1, 2.50, 3e2]', '16/B374D848',
               repeat(md5('other'), 300)),
              (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '-Infinity', 0.1 + 0.2, '-Infinity', NULL, 'infinity', '-infinity', NULL,
               '0044-03-15 12:00:00.000001+00 BC', NULL, NULL, NULL, NULL, NULL, NULL),
              (5, 1, 1, true, 'ffffffff-ffff-ffff-ffff-ffffffffffff', 'x', 'x', 'x', 1.17549435e-38, -2.2250738585072014e-308,
               '-12345678901234567890.123456789012345678901234567890', 0.01, '0001-01-01', '0001-01-01 00:00', '1900-01-01 00:00:00.999',
               '2026-11-25 10:00:00.5+05:30', '12:00:00.000001', decode(repeat('ff00', 4000), 'hex'), '{"deep": {"deeper": [[[]]]}}', 'null', '0/1',
               repeat(md5('third'), 300));
            INSERT INTO text_kinds VALUES (1, '1 year 2 mons -3 days 04:05:06.789', '{a,NULL,"b c"}');
            """)
        // Updates that leave the large doc out (`_unchanged`), a key change, a delete.
        try await source.execute("UPDATE every_kind SET note = 'doc untouched', amount = amount * 2 WHERE id IN (2, 3)")
        try await source.execute("UPDATE every_kind SET id = 6, f8 = -f8 WHERE id = 5")
        try await source.execute("DELETE FROM every_kind WHERE id = 0")
        try await source.execute("UPDATE text_kinds SET span = span * 2")
        _ = try await fixture.replicateUntilCaughtUp("qvp", limits: fixture.configuration().target.batch)

        let staged = try await fixture.stagedChanges("qvp")
        #expect(staged.rows.contains { $0.unchanged == "{\"doc\"}" }, "an update left doc out, so _unchanged went binary too")
        let files = staged.manifests.flatMap(\.files)
        let everyKind = try #require(files.first { $0.relation.table.name == "every_kind" })
        let textKinds = try #require(files.first { $0.relation.table.name == "text_kinds" })
        #expect(MergeSQL(relation: everyKind.relation, stagingTable: everyKind.stagingTable, temporaryName: "x").loadsBinary)
        #expect(!MergeSQL(relation: textKinds.relation, stagingTable: textKinds.stagingTable, temporaryName: "x").loadsBinary,
                "interval and text[] have no binary form here: that table's batches load in text format")

        _ = try await ChangeApplier(endpoints: try fixture.endpoints(), sources: try fixture.configuration().sources, store: try fixture.store(),
                                    settings: .init(jobs: 1), logger: PipelineFixture.logger).applyOnce()
        let target = try await fixture.connectTarget()
        for file in [everyKind, textKinds] {
            try await expectSTGEqualsSource(file.relation, stagingTable: file.stagingTable, source: source, target: target)
        }
        #expect(try await fixture.verify("qvp").allSatisfy { $0.matches })
    }
}
