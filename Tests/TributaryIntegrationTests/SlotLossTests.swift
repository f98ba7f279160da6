import Foundation
import Testing
import TributaryCore
import TributaryPostgres
@testable import TributaryServices

/// A slot the source invalidated (max_slot_wal_keep_size) is never silent: check fails, status says
/// `slot lost` with the recovery, run stops that source only, and `snapshot --resync` brings it back
/// under a new slot, every table merged into STG by LSN: what the lost WAL held included.
@Suite(.clusterLoad) struct SlotLossTests {
    func walStatus(_ fixture: PipelineFixture) async throws -> String? {
        try await fixture.connectSource("qvp").query("SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1",
                                                     [fixture.source("qvp").slot]).scalar
    }

    @Test func aLostSlotFailsCheckShowsInStatusStopsOnlyItsSourceAndAResyncRecovers() async throws {
        // A source that keeps at most 1 MB of WAL for a slot: a paused replicator loses it quickly.
        let cluster = try await PrivateCluster.start("slotloss", settings: ["max_slot_wal_keep_size=1MB", "max_wal_size=32MB"])
        defer { Task { await cluster.destroy() } }
        let qvp = try await PipelineFixture.make("slotloss", sources: [("qvp", ["public.items"])], sourceCluster: cluster)
        let svp = try await PipelineFixture.make("slotloss", sources: [("svp", ["public.items"])])
        var fixture = qvp
        fixture.sources += svp.sources
        fixture.snapshotYAML = "  jobs: 1\nbatch:\n  max_age: 100ms\n  heartbeat: 300ms\n"
        for source in ["qvp", "svp"] {
            try await fixture.connectSource(source).execute("CREATE TABLE items (id int PRIMARY KEY, note text); INSERT INTO items VALUES (1, 'a')")
            _ = try await fixture.snapshot(source)
        }
        let outcome = try await fixture.withRun { run in
            try await fixture.connectSource("qvp").execute("INSERT INTO items VALUES (2, 'b')")
            try await fixture.waitUntilApplied(["qvp", "svp"])

            // Paused, the slot falls behind; the source writes and checkpoints past 1 MB of WAL.
            #expect(try await fixture.tributary(["pause", "qvp"]).status == 0)
            let source = try await fixture.connectSource("qvp")
            try await source.execute("INSERT INTO items VALUES (3, 'lost with the WAL'); DELETE FROM items WHERE id = 1")
            try await eventually("the source invalidated the slot", seconds: 60) {
                try await source.execute("CREATE TABLE IF NOT EXISTS filler (x text); INSERT INTO filler SELECT repeat(md5(i::text), 30) FROM generate_series(1, 20000) i; SELECT pg_switch_wal(); CHECKPOINT")
                return try await walStatus(fixture) == "lost"
            }

            let check = try await fixture.tributary(["check"])
            #expect(check.status == 1, "check fails on a lost slot")
            #expect(check.standardOutput.contains("is lost") && check.standardOutput.contains("tributary snapshot --source qvp --resync"),
                    "\(check.standardOutput)")
            let status = try await fixture.tributary(["status", "--json"])
            let json = try JSONSerialization.jsonObject(with: Data(status.standardOutput.utf8)) as? [String: Any]
            let lost = try #require((json?["sources"] as? [[String: Any]])?.first { $0["source"] as? String == "qvp" }, "\(status.standardOutput)")
            let warnings = lost["warnings"] as? [String] ?? []
            #expect(lost["state"] as? String == "slot lost", "\(lost)")
            #expect(!warnings.contains { $0.hasPrefix("paused") }, "\(warnings)")
            #expect(warnings.contains { $0.contains("tributary snapshot --source qvp --resync") }, "\(warnings)")

            // Resumed, the replicator finds the slot lost: that source stops, the process and svp go on.
            #expect(try await fixture.tributary(["resume", "qvp"]).status == 0)
            try await eventually("run stops the source", seconds: 30) { run.errorSoFar().contains("slot lost, replication of this source stopped") }
            #expect(waitpid(run.pid, nil, WNOHANG) == 0, "run is still running")
            try await fixture.connectSource("svp").execute("INSERT INTO items VALUES (2, 'svp goes on')")
            try await fixture.waitUntilApplied(["svp"])

            // The recovery while run runs: a new slot and every table copied again; run's replicator
            // and applier pick both up. STG keeps serving meanwhile (no table is swapped).
            let resynced = try await fixture.tributary(["snapshot", "--source", "qvp", "--resync"])
            #expect(resynced.status == 0, "\(resynced.standardOutput)\(resynced.standardError)")
            #expect(resynced.standardOutput.contains("resync qvp: replication slot made anew at") && resynced.standardOutput.contains("1 tables, 2 rows"),
                    "\(resynced.standardOutput)")
            try await source.execute("INSERT INTO items VALUES (4, 'after the recovery')")
            try await fixture.waitUntilApplied(["qvp"], seconds: 90)
        }
        #expect(outcome.status == 0, "\(outcome.standardError.suffix(2000))")
        #expect(outcome.standardError.contains("slot lost, replication of this source stopped"), "\(outcome.standardError.suffix(3000))")
        for source in ["qvp", "svp"] { #expect(try await fixture.verify(source).allSatisfy(\.matches), "\(source) equals its STG") }
        // The row whose insert was in the lost WAL came with the copy; the row deleted there is a tombstone.
        let target = try await fixture.connectTarget()
        #expect(try await target.query("SELECT string_agg(id || ':' || _deleted, ',' ORDER BY id) FROM stg.qvp_items").scalar == "1:true,2:false,3:false,4:false")
    }

    /// Someone drops the slot and makes one of the same name: the new slot starts at its creation, so
    /// the changes in between would be missing from STG without a word. check, status and run see
    /// the slot confirmed past anything tributary stored or confirmed; the resync recovers.
    @Test func aSlotRecreatedBySomeoneElseIsLostNotFollowed() async throws {
        var fixture = try await PipelineFixture.make("slotidentity", sources: [("qvp", ["public.items"])])
        fixture.snapshotYAML = "  jobs: 1\nbatch:\n  max_age: 100ms\n  heartbeat: 300ms\n"
        let source = try await fixture.connectSource("qvp")
        try await source.execute("CREATE TABLE items (id int PRIMARY KEY, note text); INSERT INTO items VALUES (1, 'a')")
        _ = try await fixture.snapshot("qvp")
        let first = try await fixture.withRun { _ in
            try await source.execute("INSERT INTO items VALUES (2, 'b')")
            try await fixture.waitUntilApplied(["qvp"])
        }
        #expect(first.status == 0)
        #expect(try await fixture.tributary(["check"]).status == 0, "the slot tributary left is its own")

        // A replicator in another process (`run`, beside a `verify` or `drain`) records a position
        // and then confirms it: the check reads what is recorded after the slot, so a slot moved
        // on that way is not lost (read before it, it looked recreated). Confirmed past anything
        // recorded, it is.
        let slot = fixture.source("qvp").slot
        let sessions = ReplicationSessions(endpoints: try fixture.endpoints(), source: try fixture.configuration().sources[0])
        let control = ControlStore(try await fixture.connectTarget())
        // Decoding reads flushed WAL only: each change flushed at its commit.
        try await source.execute("SET synchronous_commit = on")
        for recordedFirst in [true, false] {
            let before = try #require(try await control.state(of: "qvp")?.flushedLSN)
            try await source.execute("INSERT INTO items VALUES (\(recordedFirst ? 100 : 101), 'moved on')")
            let next = try #require(LSN(try await source.query("SELECT pg_current_wal_insert_lsn()").scalar ?? ""))
            if recordedFirst { try await control.recordFlushed("qvp", at: next) }
            try await source.query("SELECT count(*) FROM pg_logical_slot_get_binary_changes($1, $2::pg_lsn, NULL, 'proto_version', '1', 'publication_names', 'tributary_qvp')",
                                   [slot, next.description])
            let confirmed = try #require(LSN(try await source.query("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1", [slot]).scalar ?? ""))
            #expect(confirmed > before && confirmed <= next, "the slot moved on: \(before) \(confirmed) \(next)")
            let problem = await sessions.lostSlot(replicatedBefore: true, recorded: true, store: try fixture.store())
            #expect((problem == nil) == recordedFirst, "\(problem ?? "not lost")")
        }
        await sessions.close()

        // Dropped and made anew by hand, with a change in between that no slot ever decoded.
        try await source.query("SELECT pg_drop_replication_slot($1)", [slot])
        try await source.execute("INSERT INTO items VALUES (3, 'in no stream'); UPDATE items SET note = 'changed unseen' WHERE id = 1")
        try await source.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot])

        let check = try await fixture.tributary(["check"])
        #expect(check.status == 1 && check.standardOutput.contains("it was recreated, or another client consumed it")
                && check.standardOutput.contains("tributary snapshot --source qvp --resync"), "\(check.standardOutput)")
        let status = try await fixture.tributary(["status", "--source", "qvp"])
        #expect(status.standardOutput.contains("slot lost") && status.standardOutput.contains("it was recreated"), "\(status.standardOutput)")

        let outcome = try await fixture.withRun { run in
            try await eventually("run stops the source", seconds: 30) { run.errorSoFar().contains("slot lost, replication of this source stopped") }
            #expect(try await fixture.tributary(["snapshot", "--source", "qvp", "--resync"]).status == 0)
            try await source.execute("INSERT INTO items VALUES (4, 'after the recovery')")
            try await fixture.waitUntilApplied(["qvp"], seconds: 90)
        }
        #expect(outcome.status == 0, "\(outcome.standardError.suffix(2000))")
        #expect(try await fixture.verify("qvp").allSatisfy(\.matches), "STG equals the source after the resync")
        #expect(try await fixture.tributary(["check"]).status == 0, "the resync's slot is tributary's own again")
    }
}
