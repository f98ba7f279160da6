import Foundation
import Testing
import TributaryCore
import TributaryPostgres

/// Drift on a source is never silent: a dropped table or column shows in status and the log, and
/// verify names the columns it does not compare.
@Suite(.clusterLoad) struct SchemaDriftTests {
    @Test func droppedTablesAndColumnsAndGeneratedColumnsAreSaid() async throws {
        let fixture = try await PipelineFixture.make("drift", sources: [("qvp", ["public.items", "public.gone"])])
        let source = try await fixture.connectSource("qvp")
        try await source.execute("""
            CREATE TABLE items (id int PRIMARY KEY, name text, note text, doubled int GENERATED ALWAYS AS (id * 2) STORED);
            CREATE TABLE gone (id int PRIMARY KEY);
            INSERT INTO items (id, name, note) VALUES (1, 'a', 'n'); INSERT INTO gone VALUES (1)
            """)
        let snapshot = try await fixture.tributary(["snapshot", "--apply"])
        #expect(snapshot.status == 0, "\(snapshot.standardError)")

        // Generated columns are not replicated: verify says so instead of a bare "identical".
        let verified = try await fixture.tributary(["verify"])
        #expect(verified.status == 0, "\(verified.standardOutput)\(verified.standardError)")
        #expect(verified.standardOutput.contains("not compared (generated or excluded, not replicated): doubled"), "\(verified.standardOutput)")
        #expect(verified.standardOutput.contains("in every replicated column (1 generated or excluded columns not compared)"),
                "\(verified.standardOutput)")

        // A column dropped between two changes of one replicator run, and a table dropped.
        try await source.execute("INSERT INTO items (id, name, note) VALUES (2, 'b', 'm')")
        try await source.execute("ALTER TABLE items DROP COLUMN note")
        try await source.execute("INSERT INTO items (id, name) VALUES (3, 'c')")
        try await source.execute("DROP TABLE gone")
        let end = try await source.query("SELECT pg_current_wal_insert_lsn()").scalar!
        let replicated = try await fixture.tributary(["replicate", "--source", "qvp", "--end-lsn", end])
        #expect(replicated.status == 0, "\(replicated.standardError)")
        #expect(replicated.standardError.contains("columns dropped on the source"), "\(replicated.standardError)")
        #expect(try await fixture.tributary(["apply", "--once"]).status == 0)

        let status = try await fixture.tributary(["status", "--source", "qvp"])
        #expect(status.standardOutput.contains("public.items on qvp dropped note: stg.qvp_items keeps it and new rows get NULL there"),
                "\(status.standardOutput)")
        #expect(status.standardOutput.contains("table public.gone was dropped on qvp"), "\(status.standardOutput)")
        let items = try await fixture.tributary(["verify", "--table", "public.items"])
        #expect(items.status == 0 && items.standardOutput.contains("dropped on the source, kept in STG: note"), "\(items.standardOutput)")
        let target = try await fixture.connectTarget()
        #expect(try await target.query("SELECT count(*) FROM stg.qvp_items WHERE id = 3 AND note IS NULL").scalar == "1")
    }
}
