import Foundation
import Testing
import TributaryCore
import TributaryPostgres

/// Drift on a source is never silent: a dropped column shows in status, STG keeps it, and verify
/// names the columns it does not compare. (A dropped table stops the source: `SchemaChangeTests`.)
@Suite(.clusterLoad) struct SchemaDriftTests {
    @Test func droppedColumnsAndGeneratedColumnsAreSaid() async throws {
        let fixture = try await PipelineFixture.make("drift", sources: [("qvp", ["public.items"])])
        let source = try await fixture.connectSource("qvp")
        try await source.execute("""
            CREATE TABLE items (id int PRIMARY KEY, name text, note text, doubled int GENERATED ALWAYS AS (id * 2) STORED);
            INSERT INTO items (id, name, note) VALUES (1, 'a', 'n')
            """)
        let snapshot = try await fixture.tributary(["snapshot", "--apply"])
        #expect(snapshot.status == 0, "\(snapshot.standardError)")

        // Generated columns are not replicated: verify says so instead of a bare "identical".
        let verified = try await fixture.tributary(["verify"])
        #expect(verified.status == 0, "\(verified.standardOutput)\(verified.standardError)")
        #expect(verified.standardOutput.contains("not compared (generated or excluded, not replicated): doubled"), "\(verified.standardOutput)")
        #expect(verified.standardOutput.contains("in every replicated column (1 generated or excluded columns not compared)"),
                "\(verified.standardOutput)")

        // A column dropped between two changes of one replicator run.
        try await source.execute("INSERT INTO items (id, name, note) VALUES (2, 'b', 'm')")
        try await source.execute("ALTER TABLE items DROP COLUMN note")
        try await source.execute("INSERT INTO items (id, name) VALUES (3, 'c')")
        let end = try await source.query("SELECT pg_current_wal_insert_lsn()").scalar!
        let replicated = try await fixture.tributary(["replicate", "--source", "qvp", "--end-lsn", end])
        #expect(replicated.status == 0, "\(replicated.standardError)")
        let applied = try await fixture.tributary(["apply", "--once"])
        #expect(applied.status == 0 && applied.standardError.contains("column note dropped; STG keeps it"), "\(applied.standardError)")

        let status = try await fixture.tributary(["status", "--source", "qvp"])
        #expect(status.standardOutput.contains("public.items on qvp dropped note: stg.qvp_items keeps it and new rows get NULL there"),
                "\(status.standardOutput)")
        let items = try await fixture.tributary(["verify", "--table", "public.items"])
        #expect(items.status == 0 && items.standardOutput.contains("dropped on the source, kept in STG: note"), "\(items.standardOutput)")
        let target = try await fixture.connectTarget()
        #expect(try await target.query("SELECT count(*) FROM stg.qvp_items WHERE id = 3 AND note IS NULL").scalar == "1")
    }
}

/// A partitioned table is configured by its root: its partitions' changes are its own, never
/// "skipped", whether the publication sends them under the root's name (tributary creates it so)
/// or under each partition's (an administrator's publication without publish_via_partition_root).
@Suite(.clusterLoad) struct PartitionedTableTests {
    @Test(arguments: [true, false])
    func changesOfPartitionsArriveAsTheRootsWithoutAWarning(viaRoot: Bool) async throws {
        var fixture = try await PipelineFixture.make("partitions", sources: [("qvp", ["public.measurements"])])
        let source = try await fixture.connectSource("qvp")
        try await source.execute("""
            CREATE TABLE measurements (taken date NOT NULL, sensor int NOT NULL, value float8, PRIMARY KEY (taken, sensor))
                PARTITION BY RANGE (taken);
            CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
            CREATE TABLE measurements_2026 PARTITION OF measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
            INSERT INTO measurements SELECT date '2025-06-01' + i, i % 4, i FROM generate_series(0, 99) i;
            """)
        if !viaRoot {
            try await source.execute("CREATE PUBLICATION tributary_qvp FOR TABLE measurements")
            fixture.sources[0].extraYAML = "create_publication: false\n"
        }
        let snapshot = try await fixture.tributary(["snapshot", "--apply"])
        #expect(snapshot.status == 0, "\(snapshot.standardError)")
        try await source.execute("""
            INSERT INTO measurements VALUES ('2025-02-01', 9, 1), ('2026-02-01', 9, 2);
            INSERT INTO measurements_2026 VALUES ('2026-03-01', 9, 3);
            UPDATE measurements SET value = -1 WHERE sensor = 1;
            UPDATE measurements SET taken = taken + 365 WHERE taken = '2025-06-01';
            DELETE FROM measurements_2025 WHERE sensor = 2;
            """)
        if !viaRoot {
            // Published as its own, a partition's truncate reaches the replicator, which cannot apply
            // it exactly to the root's one STG table: it says so and names the resync.
            try await source.execute("INSERT INTO measurements_2026 VALUES ('2026-04-01', 8, 4); TRUNCATE measurements_2026")
        }
        let end = try await source.query("SELECT pg_current_wal_insert_lsn()").scalar!
        let replicated = try await fixture.tributary(["replicate", "--source", "qvp", "--end-lsn", end])
        #expect(replicated.status == 0, "\(replicated.standardError)")
        #expect(!replicated.standardError.contains("skipping its changes"), "\(replicated.standardError)")
        if !viaRoot {
            #expect(replicated.standardError.contains("TRUNCATE of partition public.measurements_2026 is not applied"), "\(replicated.standardError)")
            // As an operator follows the message, with the stream's batches applied: the resync's
            // copy makes the truncated rows tombstones.
            #expect(try await fixture.tributary(["apply", "--once"]).status == 0)
            let resync = try await fixture.tributary(["snapshot", "--source", "qvp", "--table", "public.measurements"])
            #expect(resync.status == 0, "\(resync.standardOutput)\(resync.standardError.suffix(3000))")
        }
        #expect(try await fixture.tributary(["apply", "--once"]).status == 0)
        let verified = try await fixture.tributary(["verify"])
        #expect(verified.status == 0 && verified.standardOutput.contains("identical"), "\(verified.standardOutput)\(verified.standardError)")
        let target = try await fixture.connectTarget()
        // 100 + 3 inserted − 25 deleted; without the root, the truncate took the 2026 partition's 3 (2 inserted, 1 moved there).
        #expect(try await target.query("SELECT count(*) FROM stg.qvp_measurements WHERE NOT _deleted").scalar == (viaRoot ? "78" : "75"))
    }
}
