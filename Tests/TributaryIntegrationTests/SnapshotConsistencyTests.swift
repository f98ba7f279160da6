import Foundation
import Synchronization
import Testing
import TributaryCore
import TributaryPostgres
@testable import TributaryServices

/// The snapshot is exactly the slot's starting point: what committed before it is in the
/// snapshot and not in the stream, what committed after it is in the stream and not in the snapshot.
@Suite(.clusterLoad) struct SnapshotConsistencyTests {
    @Test func rowsCommittedDuringTheSnapshotAreInTheStreamNotTheSnapshot() async throws {
        let fixture = try await PipelineFixture.make("consistency", sources: [("qvp", ["public.events", "public.bulk"])])
        let source = try await fixture.connectSource("qvp")
        try await source.execute("""
            CREATE TABLE events (id bigserial PRIMARY KEY, marker text NOT NULL);
            INSERT INTO events (marker) SELECT 'before-' || i FROM generate_series(1, 500) i;
            -- Enough data that the copy takes a while, so the writer below runs during it.
            CREATE TABLE bulk (id int PRIMARY KEY, payload text);
            INSERT INTO bulk SELECT i, repeat(md5(i::text), 8) FROM generate_series(1, 200000) i;
            """)
        let writerConninfo = fixture.source("qvp").conninfo
        let writer = BackgroundWriter()

        let manifest = try await fixture.snapshot("qvp") { _ in
            // The slot exists and its snapshot is exported; nothing is copied yet. These commits are
            // after the consistent point for sure.
            let connection = try! await PostgresConnection.connect(writerConninfo, name: "writer")
            for i in 1...20 { try! await connection.query("INSERT INTO events (marker) VALUES ($1)", ["after-\(i)"]) }
            writer.start {
                var count = 0
                while !writer.stopped {
                    count += 1
                    try await connection.query("INSERT INTO events (marker) VALUES ($1)", ["during-\(count)"])
                }
                return count
            }
        }
        let during = try await writer.stop()
        #expect(during > 0)

        // The manifest's LSN is the slot's consistent point (nothing has consumed the slot yet).
        let slot = try await source.query(
            "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1", [fixture.source("qvp").slot])
        #expect(slot.scalar.flatMap(LSN.init) == manifest.consistentPoint)

        _ = try await fixture.load("qvp")
        let target = try await fixture.connectTarget()
        let snapshotMarkers = Set(try await target.query("SELECT marker FROM stg.qvp_events").rows.map { $0[0]! })
        let streamMarkers = Set(try await source.query("""
            SELECT (regexp_matches(encode(data, 'escape'), '((?:before|after|during)-[0-9]+)'))[1]
            FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL, 'proto_version', '1', 'publication_names', $2)
            WHERE get_byte(data, 0) = ascii('I')
            """, [fixture.source("qvp").slot, "tributary_qvp"]).rows.map { $0[0]! })
        let all = Set(try await source.query("SELECT marker FROM events").rows.map { $0[0]! })

        #expect(all.count == 500 + 20 + during)
        #expect(snapshotMarkers.intersection(streamMarkers).isEmpty, "a row is in both the snapshot and the stream")
        #expect(snapshotMarkers.union(streamMarkers) == all, "a row is in neither the snapshot nor the stream")
        #expect((1...500).allSatisfy { snapshotMarkers.contains("before-\($0)") })
        #expect((1...20).allSatisfy { streamMarkers.contains("after-\($0)") && !snapshotMarkers.contains("after-\($0)") })
    }

    /// How the table gets its copy in `aCommitStartingAtTheConsistentPointLands`.
    enum CopyKind: String, CustomStringConvertible, CaseIterable {
        /// The source's full snapshot.
        case full
        /// A table snapshot merged into an STG table that differs from it (a resync).
        case resync
        /// A table snapshot of a table added to the configuration: the applier met its changes
        /// first, created its STG table empty and kept them until the copy (`deferred_files`).
        case added

        var description: String { rawValue }
    }

    /// A transaction whose commit record starts exactly at a slot's consistent point S is not in
    /// the slot's exported snapshot and is the first the slot streams, with commit LSN S. Copy
    /// rows were tagged S, so under the merge's strict guard its update and delete of copied rows
    /// were turned away (a full snapshot, a resync), and the changes a copy holds were taken to
    /// be those at or before S (an added table's kept files). On a busy source this happens to
    /// about one slot in 150 (`pg_create_logical_replication_slot` against a pgbench of single-row
    /// updates: 1 of 150). `ConsistentPointCommit` makes it happen every time.
    @Test(arguments: CopyKind.allCases)
    func aCommitStartingAtTheConsistentPointLands(copy: CopyKind) async throws {
        // A cluster of its own, without autovacuum: no other transaction, and no other WAL between
        // the record that makes the slot consistent and the commit that follows it.
        let cluster = try await PrivateCluster.start("at-point-\(copy)", settings: ["autovacuum=off"])
        var fixture = try await PipelineFixture.make("at-point-\(copy)", sources: [("qvp", copy == .added ? ["public.other"] : ["public.accounts"])],
                                                     sourceCluster: cluster)
        let source = try await fixture.connectSource("qvp")
        try await source.execute("""
            CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL, note text);
            INSERT INTO accounts SELECT i, i * 10, 'copied' FROM generate_series(1, 100) i;
            CREATE TABLE other (id int PRIMARY KEY);
            """)
        let atThePoint = """
            UPDATE accounts SET balance = -1, note = 'updated at the point' WHERE id = 1;
            DELETE FROM accounts WHERE id = 2;
            INSERT INTO accounts VALUES (1000, 0, 'inserted at the point')
            """
        let commit = ConsistentPointCommit(conninfo: fixture.source("qvp").conninfo)
        let applyOnce: @Sendable (PipelineFixture) async throws -> Void = { fixture in
            _ = try await ChangeApplier(endpoints: try fixture.endpoints(), sources: try fixture.configuration().sources, store: try fixture.store(),
                                        settings: .init(jobs: 1), logger: PipelineFixture.logger).applyOnce()
        }
        let tableSnapshot: @Sendable (PipelineFixture, Bool, @escaping @Sendable () async throws -> Void) async throws -> LSN = { fixture, apply, onStart in
            let configuration = try fixture.configuration()
            let copied = Mutex<LSN?>(nil), failed = Mutex<(any Error)?>(nil)
            try await SnapshotService(configuration: configuration, endpoints: try fixture.endpoints(), store: try fixture.store(), logger: PipelineFixture.logger)
                .runTables([QualifiedName(schema: "public", name: "accounts")], of: try configuration.sources(named: ["qvp"])[0], jobs: 1, apply: apply,
                           onProgress: { _ in do { try await onStart() } catch { failed.withLock { $0 = error } } },
                           onEvent: { if case .tablesCopied(let manifest, _) = $0 { copied.withLock { $0 = manifest.consistentPoint } } })
            if let error = failed.withLock({ $0 }) { throw error }
            return try #require(copied.withLock { $0 })
        }
        let point: LSN
        switch copy {
        case .full:
            let current = fixture
            point = try await commit.run(atThePoint) { try await current.snapshot("qvp").consistentPoint }
            _ = try await fixture.load("qvp")
        case .resync:
            _ = try await fixture.snapshot("qvp")
            _ = try await fixture.load("qvp")
            let target = try await fixture.connectTarget()
            try await target.execute("UPDATE stg.qvp_accounts SET note = 'tampered' WHERE id <= 3")
            let current = fixture
            // Copied and merged into STG at once, before the stream's batch holding the commit at S_t.
            point = try await commit.run(atThePoint) { try await tableSnapshot(current, true, {}) }
        case .added:
            _ = try await fixture.snapshot("qvp")
            _ = try await fixture.load("qvp")
            fixture.sources[0].tables.append("public.accounts")
            try fixture.writeConfiguration()
            let current = fixture
            point = try await commit.run(atThePoint) {
                try await tableSnapshot(current, false) {
                    // While the copy runs, the stream's batch holding the commit at S_t is applied:
                    // accounts gets an empty STG table, and the file waits for the copy.
                    let watcher = try await current.connectSource("qvp")
                    try await eventually("the transaction at the point commits", seconds: 60, poll: 10) {
                        try await watcher.query("SELECT note FROM accounts WHERE id = 1").scalar == "updated at the point"
                    }
                    _ = try await current.replicateUntilCaughtUp("qvp")
                    try await applyOnce(current)
                    let target = try await current.connectTarget()
                    #expect(try await target.query("SELECT count(*) FROM tributary.deferred_files").scalar == "1")
                }
            }
        }
        _ = try await fixture.replicateUntilCaughtUp("qvp")
        let streamed = try await fixture.stagedChanges("qvp").rows.filter { $0["note"] == "updated at the point" || $0["id"] == "2" && $0.operation == "D" }
        #expect(streamed.count == 2 && streamed.allSatisfy { $0.lsn == point },
                "the transaction commits at the consistent point \(point): \(streamed.map(\.lsn))")
        try await applyOnce(fixture)
        try await applyOnce(fixture)
        let target = try await fixture.connectTarget()
        let rows = try await target.query("""
            SELECT string_agg(id || ' ' || balance || ' ' || note, ', ' ORDER BY id) FROM stg.qvp_accounts WHERE NOT _deleted AND (id <= 3 OR id = 1000)
            """).scalar
        #expect(rows == "1 -1 updated at the point, 3 30 copied, 1000 0 inserted at the point")
        for comparison in try await fixture.verify("qvp") { #expect(comparison.matches, "\(comparison)") }
    }
}

/// Runs a slot's creation (`creating`) so that `statements`, in one transaction, commit exactly
/// at its consistent point S. The slot's snapshot builder moves through its phases at running-
/// transactions records, each after the transactions the last one listed have ended, and the
/// walsender shows which it waits for (`pg_locks`). Three transactions walk it through:
/// - the first, open when the slot is created, holds the builder before its full snapshot;
/// - the second takes its id then, so the builder's full snapshot waits for it;
/// - the third takes its id after that, runs `statements`, and is still open at the record that
///   makes the slot consistent: it is not in the exported snapshot, and is decoded whole. It
///   commits as soon as the slot shows its confirmed position, as the record that follows.
/// Returns what `creating` returned (the consistent point, for the caller to check the commit).
struct ConsistentPointCommit {
    let conninfo: String

    func run(_ statements: String, creating: @escaping @Sendable () async throws -> LSN) async throws -> LSN {
        let first = try await PostgresConnection.connect(conninfo, name: "first"), second = try await PostgresConnection.connect(conninfo, name: "second")
        let third = try await PostgresConnection.connect(conninfo, name: "third"), watcher = try await PostgresConnection.connect(conninfo, name: "watcher")
        let slots = try await watcher.query("SELECT count(*) FROM pg_replication_slots").scalar.flatMap { Int($0) } ?? 0
        let waitsFor = { (xid: String) in
            try await eventually("the walsender waits for transaction \(xid)", seconds: 60, poll: 10) {
                try await watcher.query("""
                    SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                    WHERE a.backend_type = 'walsender' AND l.locktype = 'transactionid' AND l.transactionid::text = $1 AND NOT l.granted
                    """, [xid]).rows.count == 1
            }
        }
        try await first.execute("BEGIN")
        let holding = try await first.query("SELECT txid_current()::text").scalar!
        let created = Task { try await creating() }
        do {
            try await waitsFor(holding)
            try await second.execute("BEGIN")
            let next = try await second.query("SELECT txid_current()::text").scalar!
            try await first.execute("COMMIT")
            try await waitsFor(next)
            try await third.execute("BEGIN")
            try await third.execute(statements)
            try await second.execute("COMMIT")
            try await eventually("the new slot is consistent", seconds: 60, poll: 5) {
                try await watcher.query("SELECT count(*) FROM pg_replication_slots WHERE confirmed_flush_lsn IS NOT NULL").scalar.flatMap { Int($0) } == slots + 1
            }
            try await third.execute("COMMIT")
        } catch {
            created.cancel()
            throw error
        }
        return try await created.value
    }
}

/// A loop of writes in the background, stopped on request; reports how many it made.
final class BackgroundWriter: Sendable {
    private let stopFlag = Atomic<Bool>(false)
    private let task = Mutex<Task<Int, any Error>?>(nil)

    var stopped: Bool { stopFlag.load(ordering: .relaxed) }

    func start(_ body: @escaping @Sendable () async throws -> Int) {
        task.withLock { $0 = Task { try await body() } }
    }

    func stop() async throws -> Int {
        stopFlag.store(true, ordering: .relaxed)
        return try await task.withLock { $0 }!.value
    }
}
