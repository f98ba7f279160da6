import Foundation
import Testing
import TributaryCore
import TributaryPostgres
import TributaryServices

/// What the replicator writes, read back from the staging store: every kind of change, with the
/// metadata the applier needs, in commit order.
@Suite(.clusterLoad) struct ReplicatorChangeTests {
    @Test func everyKindOfChangeArrivesInCommitOrder() async throws {
        var fixture = try await PipelineFixture.make("changes", sources: [("qvp", ["public.items", "public.notes"])])
        fixture.sources[0].extraYAML = ""
        let source = try await fixture.connectSource("qvp")
        try await source.execute("""
            CREATE TABLE items (id int PRIMARY KEY, name text, doc text, qty int);
            ALTER TABLE items ALTER COLUMN doc SET STORAGE EXTERNAL;
            CREATE TABLE notes (id int PRIMARY KEY, body text);
            CREATE TABLE unconfigured (id int PRIMARY KEY);
            INSERT INTO items VALUES (1, 'one', repeat('d', 5000), 1);
            """)
        _ = try await fixture.snapshot("qvp")
        // The publication must cover the unconfigured table for its skipping to be exercised.
        try await source.execute("ALTER PUBLICATION tributary_qvp ADD TABLE unconfigured")

        try await source.execute("INSERT INTO items VALUES (2, 'two', NULL, 2), (3, '', 'small', 3)")
        try await source.execute("UPDATE items SET qty = 10 WHERE id = 1")                   // doc untouched: unchanged TOAST
        try await source.execute("UPDATE items SET id = 20 WHERE id = 2")                    // key change
        try await source.execute("DELETE FROM items WHERE id = 3")
        try await source.execute("BEGIN; INSERT INTO items VALUES (4, 'rolled back', NULL, 0); ROLLBACK")
        try await source.execute("""
            BEGIN; INSERT INTO items VALUES (5, 'kept', NULL, 5); SAVEPOINT s; INSERT INTO items VALUES (6, 'undone', NULL, 6);
            ROLLBACK TO SAVEPOINT s; INSERT INTO unconfigured VALUES (1); COMMIT
            """)
        // Interleaved transactions: a opens first, b commits first.
        let a = try await fixture.connectSource("qvp"), b = try await fixture.connectSource("qvp")
        try await a.execute("BEGIN; INSERT INTO notes VALUES (1, 'from a')")
        try await b.execute("BEGIN; INSERT INTO notes VALUES (2, 'from b')")
        try await b.execute("COMMIT")
        try await a.execute("COMMIT")
        try await source.execute("ALTER TABLE notes ADD COLUMN tag text")
        try await source.execute("INSERT INTO notes VALUES (3, 'with tag', 'red')")
        try await source.execute("TRUNCATE notes")

        // Small batches, so the run spans several.
        var limits = BatchLimits()
        limits.rowsMax = 3
        let summary = try await fixture.replicateUntilCaughtUp("qvp", limits: limits)
        #expect(summary.batches >= 3)
        let staged = try await fixture.stagedChanges("qvp")
        let rows = staged.rows

        let items = rows.filter { $0.table == "qvp_items" }
        #expect(items.map { "\($0.operation)\($0["id"] ?? "-")" } == ["I2", "I3", "U1", "D2", "U20", "D3", "I5"])
        #expect(items.first { $0["id"] == "3" }?.values["name"] == .some(""), "empty string must stay empty, not NULL")
        #expect(items.first { $0["id"] == "2" }?.values["doc"] == .some(nil), "NULL must stay NULL")
        let toast = try #require(items.first { $0.operation == "U" && $0["id"] == "1" })
        #expect(toast.unchanged == "{\"doc\"}" && toast["doc"] == nil && toast["qty"] == "10")
        #expect(!rows.contains { $0["name"] == "rolled back" || $0["name"] == "undone" })
        #expect(!rows.contains { $0.table.contains("unconfigured") })

        let notes = rows.filter { $0.table == "qvp_notes" }
        #expect(notes.map { "\($0.operation)\($0["id"] ?? "-")" } == ["I2", "I1", "I3", "T-"])
        #expect(notes.first { $0["id"] == "3" }?["tag"] == "red")
        // The added column reaches the manifest of the batch that first carries it.
        let withTag = staged.manifests.flatMap(\.files).filter { $0.stagingTable == "qvp_notes" }.last!
        #expect(withTag.relation.columnNames == ["id", "body", "tag"])
        #expect(withTag.relation.columns.last?.stagingType == "text")

        // Commit order: LSNs never go back, across batches (listed in name order) and within them.
        let lsns = rows.map(\.lsn)
        #expect(lsns == lsns.sorted())
        #expect(staged.manifests.map(\.endLSN) == staged.manifests.map(\.endLSN).sorted())
        for (manifest, batch) in zip(staged.manifests, staged.batches) {
            #expect(batch.allSatisfy { $0.lsn >= manifest.firstCommitLSN && $0.lsn < manifest.endLSN })
        }
        // The slot was confirmed exactly as far as the store holds.
        let confirmed = try await source.query("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1",
                                               [fixture.source("qvp").slot]).scalar.flatMap(LSN.init)
        #expect(confirmed == summary.durableLSN)
        #expect(confirmed! >= staged.manifests.last!.endLSN)
    }

    /// One transaction of a million rows: pgoutput streams it before it commits, the replicator
    /// spills it to disk, and the whole of it lands in one batch at its commit. Its replay takes
    /// seconds (over a minute on a loaded machine), and the server, here waiting 3 s for a reply
    /// (`wal_sender_timeout`; the replicator answers each second, and under the whole suite on two
    /// cores a 2 s wait was once missed), is answered meanwhile: the connection stays.
    @Test func millionRowTransaction() async throws {
        let cluster = try await PrivateCluster.start("million", settings: ["wal_sender_timeout=3s"])
        let fixture = try await PipelineFixture.make("million", sources: [("qvp", ["public.big"])], sourceCluster: cluster)
        let source = try await fixture.connectSource("qvp")
        try await source.execute("CREATE TABLE big (id int PRIMARY KEY, label text)")
        _ = try await fixture.snapshot("qvp")
        try await source.execute("INSERT INTO big SELECT i, 'row ' || i FROM generate_series(1, 1000000) i")
        try await source.execute("BEGIN; INSERT INTO big SELECT i, 'never' FROM generate_series(2000001, 2300000) i; ROLLBACK")
        let summary = try await fixture.replicateUntilCaughtUp("qvp")
        #expect(summary.rows == 1_000_000)
        let staged = try await fixture.stagedChanges("qvp")
        let batch = try #require(staged.manifests.firstIndex { $0.rows > 0 })
        #expect(staged.manifests[batch].rows == 1_000_000 && staged.manifests[batch].transactions == 1)
        let rows = staged.batches[batch]
        #expect(rows.count == 1_000_000)
        #expect(Set(rows.map(\.lsn)).count == 1)
        #expect(rows.first?["id"] == "1" && rows.last?["id"] == "1000000")
        #expect(rows.allSatisfy { $0.operation == "I" })
        #expect(rows.reduce(0) { $0 + Int($1["id"]!)! } == 500_000_500_000)
        let log = try String(contentsOfFile: cluster.directory + "/postgres.log", encoding: .utf8)
        #expect(!log.contains("terminating walsender process due to replication timeout"))
    }

    /// A transaction streamed in several chunks, with a column added between its rows: each row is
    /// written under the schema it was made with.
    @Test func schemaChangeInsideAStreamedTransaction() async throws {
        var fixture = try await PipelineFixture.make("streamddl", sources: [("qvp", ["public.notes"])])
        fixture.snapshotYAML = "  jobs: 1\nbatch:\n  memory_max: 64KiB\n"
        let source = try await fixture.connectSource("qvp")
        try await source.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        _ = try await fixture.snapshot("qvp")
        try await source.execute("""
            BEGIN;
            INSERT INTO notes SELECT i, 'before ' || i FROM generate_series(1, 3000) i;
            ALTER TABLE notes ADD COLUMN tag text;
            INSERT INTO notes SELECT i, 'after ' || i, 'tag ' || i FROM generate_series(3001, 6000) i;
            COMMIT
            """)
        let summary = try await fixture.replicateUntilCaughtUp("qvp")
        #expect(summary.rows == 6000)
        let staged = try await fixture.stagedChanges("qvp")
        let files = staged.manifests.flatMap(\.files)
        #expect(files.map(\.relation.columnNames) == [["id", "body"], ["id", "body", "tag"]])
        #expect(files.map(\.file.rows) == [3000, 3000])
        let rows = staged.rows
        #expect(rows.filter { $0["tag"] != nil }.count == 3000)
        #expect(rows.first { $0["id"] == "6000" }?["tag"] == "tag 6000")
    }
}
