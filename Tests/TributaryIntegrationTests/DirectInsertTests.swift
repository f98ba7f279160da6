import Foundation
import Testing
import TributaryCore
import TributaryPostgres
@testable import TributaryServices

/// Files of inserts and updates, each of its own key, COPYed straight into STG (`DirectInsert`): STG
/// ends as the merge would have left it, whichever connection loaded the batch, and where STG holds
/// a key already (as new as its change, for an update), an update keeps a stored value, STG has a
/// column of its own, or a BL model logs the table, the file is merged as any other.
@Suite(.clusterLoad) struct DirectInsertTests {
    static let schema = """
        CREATE TABLE events (id bigint PRIMARY KEY, amount numeric(12,2), at timestamptz, doc jsonb, note text);
        INSERT INTO events VALUES (0, 1.5, '2026-01-01 00:00:00+00', '{"from": "snapshot"}', 'snapshot');
        """

    /// Inserts `count` events from `first` on in one transaction; returns the WAL insert position
    /// after its commit (its commit LSN is below it).
    static func insertEvents(_ first: Int, _ count: Int, on source: PostgresConnection) async throws -> LSN {
        try await source.execute("""
            INSERT INTO events SELECT i, i * 1.25, '2026-01-01 00:00:00+00'::timestamptz + i * interval '1 second',
                jsonb_build_object('i', i, 'tags', jsonb_build_array(md5(i::text))), CASE WHEN i % 7 = 0 THEN NULL ELSE 'event, "' || i || '"' END
            FROM generate_series(\(first), \(first + count - 1)) i
            """)
        return LSN(try await source.query("SELECT pg_current_wal_insert_lsn()").scalar!)!
    }

    func fixture(_ label: String) async throws -> PipelineFixture {
        var fixture = try await PipelineFixture.make(label, sources: [("qvp", ["public.events"])])
        fixture.snapshotYAML = "  jobs: 1\nbatch:\n  max_age: 10s\n"
        let source = try await fixture.connectSource("qvp")
        try await source.execute(Self.schema)
        _ = try await fixture.snapshot("qvp")
        _ = try await fixture.load("qvp")
        return fixture
    }

    func applier(_ fixture: PipelineFixture, rowsHeld: Int = DirectInsert.rowsHeldBytes) throws -> SourceApplier {
        var settings = ChangeApplier.Settings(jobs: 1)
        settings.grouping = nil
        settings.directRowsHeldBytes = rowsHeld
        return SourceApplier(source: try fixture.configuration().sources[0], endpoints: try fixture.endpoints(), store: try fixture.store(),
                             settings: settings, logger: PipelineFixture.logger)
    }

    /// One step of the applier over what is staged: the batches it applied, and how.
    func step(_ applier: inout SourceApplier) async throws -> ChangeApplier.Report {
        var report = ChangeApplier.Report()
        _ = try await applier.step(lockHeld: true, stop: StopSignal(), into: &report)
        return report
    }

    var relation: RelationSchema {
        RelationSchema(table: QualifiedName(schema: "public", name: "events"),
                       columns: ["id", "amount", "at", "doc", "note"].map { ColumnSchema(name: $0, sourceType: "", stagingType: "", typeOid: 0, notNull: false) },
                       key: ["id"])
    }

    /// One batch applied alone (the merging connection's own), then a backlog batch by batch (each
    /// next one loaded ahead, its inserts left to the merging transaction): every insert goes
    /// straight in, at its transaction's commit LSN, and STG matches the source row for row.
    @Test func insertsGoStraightInAtTheirCommitLSNWhoeverLoadsTheBatch() async throws {
        let fixture = try await fixture("direct")
        let source = try await fixture.connectSource("qvp"), target = try await fixture.connectTarget()
        var applier = try applier(fixture)
        var bounds = [LSN(try await source.query("SELECT pg_current_wal_insert_lsn()").scalar!)!]
        bounds.append(try await Self.insertEvents(1, 1500, on: source))
        bounds.append(try await Self.insertEvents(1501, 1200, on: source))
        _ = try await fixture.replicateUntilCaughtUp("qvp")
        var report = try await step(&applier)
        #expect(report.batches == 1 && report.loadedAhead == 0 && report.insertedDirectly == 2700, "\(report)")

        for (first, count) in [(2701, 1000), (3701, 1100), (4801, 1300)] {
            bounds.append(try await Self.insertEvents(first, count, on: source))
            _ = try await fixture.replicateUntilCaughtUp("qvp")
        }
        report = try await step(&applier)
        #expect(report.batches == 3 && report.loadedAhead == 2 && report.insertedDirectly == 3400, "\(report)")

        // Each transaction's rows carry one LSN, its commit's: between the positions around it.
        let ranges = [(1, 1500), (1501, 2700), (2701, 3700), (3701, 4800), (4801, 6100)]
        for (number, range) in ranges.enumerated() {
            let lsns = try await target.query("SELECT DISTINCT _lsn FROM stg.qvp_events WHERE id BETWEEN \(range.0) AND \(range.1)").column(String.self)
            let lsn = try #require(lsns.count == 1 ? LSN(lsns[0]) : nil, "transaction \(number): \(lsns)")
            #expect(bounds[number] < lsn && lsn < bounds[number + 1], "transaction \(number) at \(lsn)")
        }
        #expect(try await target.query("SELECT count(*) FROM stg.qvp_events WHERE _deleted").scalar == "0")
        await applier.close()
        try await expectSTGEqualsSource(relation, stagingTable: "qvp_events", source: source, target: target)
        #expect(try await fixture.verify("qvp").allSatisfy { $0.matches })
    }

    /// A key deleted and inserted again: STG holds its tombstone, the COPY straight in is refused
    /// and rolled back to its savepoint, the file is merged (the tombstone comes back to life) and
    /// the table's later files go through load tables too. Files under `DirectInsert.fromRows`
    /// were never tried.
    @Test func aKeySTGHoldsSendsTheFileThroughTheMerge() async throws {
        let fixture = try await fixture("direct-conflict")
        let source = try await fixture.connectSource("qvp"), target = try await fixture.connectTarget()
        var applier = try applier(fixture)
        func step() async throws -> ChangeApplier.Report {
            _ = try await fixture.replicateUntilCaughtUp("qvp")
            return try await self.step(&applier)
        }
        _ = try await Self.insertEvents(1, 1500, on: source)
        #expect(try await step().insertedDirectly == 1500)
        try await source.execute("DELETE FROM events WHERE id BETWEEN 1 AND 10")
        #expect(try await step().batches == 1)
        #expect(try await target.query("SELECT count(*) FROM stg.qvp_events WHERE _deleted").scalar == "10")
        _ = try await Self.insertEvents(1501, DirectInsert.fromRows - 1, on: source)
        #expect(try await step().insertedDirectly == 0, "a file of fewer rows is merged")

        // Keys 1-10 again, with new ones, in one transaction: inserts only, each key once.
        try await source.execute("BEGIN; INSERT INTO events SELECT i, -i, now(), '[]', 'again' FROM generate_series(1, 10) i")
        _ = try await Self.insertEvents(3000, 1490, on: source)
        try await source.execute("COMMIT")
        _ = try await fixture.replicateUntilCaughtUp("qvp")
        let staged = try await fixture.stagedChanges("qvp").manifests.last!.files[0]
        #expect(staged.inserts == 1500 && staged.distinctKeys == true && DirectInsert.mayApply(to: staged))
        #expect(try await step().insertedDirectly == 0, "STG held tombstones of keys 1-10")
        #expect(try await target.query("SELECT count(*) FROM stg.qvp_events WHERE _deleted").scalar == "0")
        #expect(try await target.query("SELECT string_agg(DISTINCT note, ',') FROM stg.qvp_events WHERE id BETWEEN 1 AND 10").scalar == "again")

        _ = try await Self.insertEvents(5000, 1500, on: source)
        #expect(try await step().insertedDirectly == 0, "the table goes through load tables from then on")
        await applier.close()
        try await expectSTGEqualsSource(relation, stagingTable: "qvp_events", source: source, target: target)
        #expect(try await fixture.verify("qvp").allSatisfy { $0.matches })
    }

    /// Updates replace their keys' rows straight: the older rows deleted, the new ones COPYed in,
    /// inserts with them. Where the merge would keep something of the row (a TOAST value pgoutput
    /// did not send, a column only STG has) the file is merged instead, and where STG's row is as
    /// new as the change (a copy's), the COPY fails on the key and the merge's LSN guard keeps it.
    /// Each file read once, its rows held while its keys go first, and (`rowsHeld` 0) read twice.
    @Test(arguments: [DirectInsert.rowsHeldBytes, 0])
    func updatesReplaceOlderRowsStraightAndWhatTheMergeWouldKeepIsKept(rowsHeld: Int) async throws {
        let fixture = try await fixture(rowsHeld == 0 ? "direct-updates-twice" : "direct-updates-once")
        let source = try await fixture.connectSource("qvp"), target = try await fixture.connectTarget()
        var applier = try applier(fixture, rowsHeld: rowsHeld)
        func step() async throws -> ChangeApplier.Report {
            _ = try await fixture.replicateUntilCaughtUp("qvp")
            return try await self.step(&applier)
        }
        func lastFile() async throws -> BatchFile { try await fixture.stagedChanges("qvp").manifests.last!.files[0] }
        _ = try await Self.insertEvents(1, 1500, on: source)
        #expect(try await step().insertedDirectly == 1500)

        // 1,200 updates with a note TOAST keeps out of line, and 300 inserts, in one transaction.
        let before = LSN(try await source.query("SELECT pg_current_wal_insert_lsn()").scalar!)!
        try await source.execute("""
            BEGIN;
            UPDATE events SET amount = amount + 1, note = (SELECT string_agg(md5((id * 1000 + k)::text), '') FROM generate_series(1, 200) k)
                WHERE id BETWEEN 1 AND 1200;
            INSERT INTO events SELECT i, i, now(), '{}', 'new' FROM generate_series(1501, 1800) i;
            COMMIT
            """)
        let after = LSN(try await source.query("SELECT pg_current_wal_insert_lsn()").scalar!)!
        var report = try await step()
        #expect(try await lastFile().unchangedRows == 0 && report.insertedDirectly == 1500, "\(report)")
        let lsns = try await target.query("SELECT DISTINCT _lsn FROM stg.qvp_events WHERE id BETWEEN 1 AND 1200 OR id > 1500").column(String.self)
        let lsn = try #require(lsns.count == 1 ? LSN(lsns[0]) : nil, "\(lsns)")
        #expect(before < lsn && lsn < after)
        #expect(try await target.query("SELECT count(*) FROM stg.qvp_events WHERE _deleted OR length(note) = 6400").scalar == "1200")
        try await expectSTGEqualsSource(relation, stagingTable: "qvp_events", source: source, target: target)

        // The note unchanged: pgoutput does not send it, and the merge keeps STG's.
        try await source.execute("UPDATE events SET amount = amount + 1 WHERE id BETWEEN 1 AND 1100")
        report = try await step()
        #expect(try await lastFile().unchangedRows == 1100 && report.batches == 1 && report.insertedDirectly == 0, "\(report)")
        try await expectSTGEqualsSource(relation, stagingTable: "qvp_events", source: source, target: target)

        // A column only STG has keeps its values through the merge's update.
        try await target.execute("ALTER TABLE stg.qvp_events ADD COLUMN kept text; UPDATE stg.qvp_events SET kept = 'was ' || id")
        try await source.execute("UPDATE events SET note = 'short' WHERE id BETWEEN 1 AND 1100")
        report = try await step()
        #expect(try await lastFile().unchangedRows == 0 && report.batches == 1 && report.insertedDirectly == 0, "\(report)")
        #expect(try await target.query("SELECT count(*) FROM stg.qvp_events WHERE kept = 'was ' || id").scalar == "1801")
        _ = try await Self.insertEvents(2001, 1000, on: source)
        #expect(try await step().insertedDirectly == 1000, "an insert gets the column's default, as the merge's would")
        try await target.execute("ALTER TABLE stg.qvp_events DROP COLUMN kept")

        // A row as new as the change (as a table copy's would be) is not deleted: the COPY fails on
        // its key, the savepoint is rolled back, and the merge leaves that row alone.
        try await target.execute("UPDATE stg.qvp_events SET _lsn = 'FFFFFFFF/0' WHERE id = 5")
        try await source.execute("UPDATE events SET amount = amount + 100 WHERE id BETWEEN 1 AND 1100")
        report = try await step()
        #expect(report.batches == 1 && report.insertedDirectly == 0, "\(report)")
        let amounts = try await target.query("SELECT string_agg(amount::text, ',' ORDER BY id) FROM stg.qvp_events WHERE id IN (5, 6)").scalar
        #expect(amounts == "8.25,109.50", "row 5 kept its amount before both updates; row 6 took them")
        try await target.execute("UPDATE stg.qvp_events SET _lsn = '0/1' WHERE id = 5")
        try await source.execute("UPDATE events SET note = note WHERE id = 5")
        #expect(try await step().batches == 1)
        await applier.close()
        try await expectSTGEqualsSource(relation, stagingTable: "qvp_events", source: source, target: target)
        #expect(try await fixture.verify("qvp").allSatisfy { $0.matches })
    }

    /// A table a BL model reads has its changes logged from the changes table: its inserts are
    /// merged, and the log holds every key.
    @Test func aTableBLModelsReadIsMergedAndItsInsertsLogged() async throws {
        let fixture = try await fixture("direct-logged")
        let source = try await fixture.connectSource("qvp"), target = try await fixture.connectTarget()
        let log = StagingChangeLog(stagingTable: QualifiedName(schema: "stg", name: "qvp_events"), key: ["id"])
        for statement in log.create { try await target.execute(statement) }
        var applier = try applier(fixture)
        _ = try await Self.insertEvents(1, 1500, on: source)
        _ = try await fixture.replicateUntilCaughtUp("qvp")
        let report = try await step(&applier)
        #expect(report.batches == 1 && report.insertedDirectly == 0, "\(report)")
        #expect(try await target.query("SELECT count(DISTINCT k) FROM \(log.log.sql), unnest(id) k").scalar == "1500")
        await applier.close()
        try await expectSTGEqualsSource(relation, stagingTable: "qvp_events", source: source, target: target)
    }
}
