import Foundation
import Testing
import TributaryCore
import TributaryPostgres
import TributaryServices
import TributaryStorage

/// The commit protocol under failure: kill -9 anywhere loses nothing, SIGTERM finishes cleanly,
/// and an idle source's slot keeps advancing.
@Suite(.clusterLoad) struct ReplicatorDurabilityTests {
    func eventsFixture(_ label: String) async throws -> PipelineFixture {
        var fixture = try await PipelineFixture.make(label, sources: [("qvp", ["public.events"])])
        fixture.snapshotYAML = "  jobs: 1\nbatch:\n  max_rows: 200\n  max_age: 200ms\n  heartbeat: 300ms\n"
        let source = try await fixture.connectSource("qvp")
        try await source.execute("CREATE TABLE events (txn int, n int, payload text, PRIMARY KEY (txn, n))")
        _ = try await fixture.snapshot("qvp")
        return fixture
    }

    /// Commits transactions 1, 2, 3 … each inserting `txn % 7 + 1` rows, until stopped.
    func startWorkload(_ fixture: PipelineFixture) -> BackgroundWriter {
        let writer = BackgroundWriter()
        let conninfo = fixture.source("qvp").conninfo
        writer.start {
            let connection = try await PostgresConnection.connect(conninfo, name: "workload")
            var transaction = 0
            while !writer.stopped {
                transaction += 1
                try await connection.query("""
                    INSERT INTO events SELECT $1::int, n, md5(n::text) FROM generate_series(1, $1::int % 7 + 1) n
                    """, [String(transaction)])
            }
            return transaction
        }
        return writer
    }

    @Test func killedReplicatorLosesNothing() async throws {
        let fixture = try await eventsFixture("killrep")
        let workload = startWorkload(fixture)
        var kills = 0
        for _ in 0..<6 {
            try fixture.writeConfiguration()
            let replicator = TestProcess(Paths.tributary, ["replicate", "--source", "qvp", "--config", fixture.configurationDirectory])
            try replicator.start()
            try await Task.sleep(for: .milliseconds(Int.random(in: 300...1500)))
            replicator.kill()
            if (await replicator.wait()).signalled { kills += 1 }
        }
        let transactions = try await workload.stop()
        #expect(kills == 6)
        #expect(transactions > 20)
        // One last run to the end of the WAL.
        _ = try await fixture.replicateUntilCaughtUp("qvp")

        let staged = try await fixture.stagedChanges("qvp")
        // Every committed transaction is there, whole, in some batch (replays may repeat it).
        var seen: [Int: Set<Int>] = [:]
        for row in staged.rows { seen[Int(row["txn"]!)!, default: []].insert(Int(row["n"]!)!) }
        let missing = (1...transactions).filter { seen[$0] != Set(1...($0 % 7 + 1)) }
        #expect(missing.isEmpty, "transactions missing or incomplete: \(missing.prefix(10))")
        // In commit order: within each batch rows follow commit LSN, and transactions appear in the
        // order they committed.
        for batch in staged.batches {
            #expect(batch.map(\.lsn) == batch.map(\.lsn).sorted())
            let order = batch.map { Int($0["txn"]!)! }
            #expect(order == order.sorted())
        }
    }

    /// The server ends a replication connection that has not answered for `wal_sender_timeout`
    /// (60 s by default), and the replicator then takes up the stream again from its last
    /// acknowledged position: a step that outlasts the timeout each time starts over for ever. A
    /// million-row transaction's replay on a loaded machine did (the connection was closed mid-
    /// replay, "during standby status update"; `millionRowTransaction` covers the replay), and so
    /// would a large batch going to a slow store. Here the timeout is 2 s and the store takes 5 s
    /// for each batch's files: one run replicates it all, on one connection.
    @Test func aLongReplayAndASlowStoreKeepTheConnection() async throws {
        let cluster = try await PrivateCluster.start("busy", settings: ["wal_sender_timeout=2s"])
        let fixture = try await PipelineFixture.make("busy", sources: [("qvp", ["public.big"])], sourceCluster: cluster)
        let source = try await fixture.connectSource("qvp")
        try await source.execute("CREATE TABLE big (id int PRIMARY KEY, label text)")
        _ = try await fixture.snapshot("qvp")
        try await source.execute("INSERT INTO big SELECT i, 'row ' || i FROM generate_series(1, 30000) i")
        let summary = try await fixture.replicateUntilCaughtUp("qvp", store: SlowStagingStore(base: try fixture.store(), filesDelay: .seconds(5)))
        #expect(summary.rows == 30_000)
        #expect(try await fixture.stagedChanges("qvp").rows.count == 30_000)
        let log = try String(contentsOfFile: cluster.directory + "/postgres.log", encoding: .utf8)
        #expect(!log.contains("terminating walsender process due to replication timeout"))
    }

    @Test func sigtermFinishesTheBatchAndAcknowledgesIt() async throws {
        let fixture = try await eventsFixture("sigterm")
        let workload = startWorkload(fixture)
        try fixture.writeConfiguration()
        let replicator = TestProcess(Paths.tributary, ["replicate", "--source", "qvp", "--config", fixture.configurationDirectory])
        try replicator.start()
        // Stop it mid-stream: once batches are being written.
        try await waitFor("a first batch") { try await !fixture.stagedChanges("qvp").manifests.isEmpty }
        replicator.kill(signal: SIGTERM)
        let outcome = await replicator.wait()
        _ = try await workload.stop()
        #expect(outcome.status == 0, "\(outcome.standardError)")
        #expect(outcome.standardOutput.contains("durable and acknowledged up to"))
        let staged = try await fixture.stagedChanges("qvp")
        try #require(!staged.manifests.isEmpty)
        let source = try await fixture.connectSource("qvp")
        let confirmed = LSN(try await source.query("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1",
                                                   [fixture.source("qvp").slot]).scalar!)!
        // Acknowledged exactly what is stored, no more: the last manifest's end (or a later idle position).
        #expect(confirmed >= staged.manifests.last!.endLSN)
        let acknowledged = outcome.standardOutput.split(separator: " ").last.map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) }
        #expect(acknowledged.flatMap(LSN.init) == confirmed)
    }

    @Test func heartbeatsAdvanceAnIdleSlot() async throws {
        let fixture = try await eventsFixture("heartbeat")
        _ = try await fixture.load("qvp")
        let source = try await fixture.connectSource("qvp")
        let slot = fixture.source("qvp").slot
        let before = LSN(try await source.query("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1", [slot]).scalar!)!
        // The rest of the cluster is busy: WAL grows in another database, while this source stays idle.
        let busy = try await fixture.clusters.makeDatabase("busy", onSource: true)
        let other = try await PostgresConnection.connect(busy, name: "busy")
        try await other.execute("CREATE TABLE churn (x int)")

        try fixture.writeConfiguration()
        let replicator = TestProcess(Paths.tributary, ["replicate", "--source", "qvp", "--config", fixture.configurationDirectory])
        try replicator.start()
        var confirmed: [LSN] = []
        try await waitFor("the idle slot to advance three times") {
            try await other.execute("INSERT INTO churn SELECT generate_series(1, 1000)")
            confirmed.append(LSN(try await source.query(
                "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1", [slot]).scalar!)!)
            return Set(confirmed).subtracting([before]).count >= 3
        }
        // Heartbeats keep the lag clock fresh in the control state, without writing any object.
        let target = try await fixture.connectTarget()
        try await waitFor("a fresh heartbeat time") {
            try await target.query("SELECT coalesce(now() - flushed_commit_time < interval '5 seconds', false) FROM tributary.sources WHERE source = 'qvp'")
                .scalar == "t"
        }
        replicator.kill(signal: SIGTERM)
        #expect((await replicator.wait()).status == 0)
        #expect(confirmed.last! > before)
        let staged = try await fixture.stagedChanges("qvp")
        #expect(staged.manifests.isEmpty, "an idle source writes no object: \(staged.manifests.count) batches")
    }

    func waitFor(_ what: String, seconds: Double = 60, _ condition: () async throws -> Bool) async throws {
        try await eventually(what, seconds: seconds, condition)
    }
}

/// A store whose `put(files:)` takes `filesDelay` longer: a batch's data going over a slow link.
struct SlowStagingStore: StagingStore {
    let base: any StagingStore
    let filesDelay: Duration

    var description: String { "slow \(base)" }

    func put(files: [(key: String, file: String)]) async throws {
        try await Task.sleep(for: filesDelay)
        try await base.put(files: files)
    }

    func put(key: String, file: String) async throws { try await base.put(key: key, file: file) }
    func put(key: String, bytes: [UInt8]) async throws { try await base.put(key: key, bytes: bytes) }
    func get(key: String) async throws -> [UInt8] { try await base.get(key: key) }
    func fetch(key: String) async throws -> LocalObject { try await base.fetch(key: key) }
    func fetch(keys: [String]) async throws -> [LocalObject] { try await base.fetch(keys: keys) }
    func head(key: String) async throws -> StoredObject? { try await base.head(key: key) }
    func list(prefix: String, startAfter: String?, endBefore: String?) async throws -> [StoredObject] {
        try await base.list(prefix: prefix, startAfter: startAfter, endBefore: endBefore)
    }
    func delete(key: String) async throws { try await base.delete(key: key) }
}
