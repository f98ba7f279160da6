import Foundation
import Testing
import TributaryCore
import TributaryPostgres
@testable import TributaryServices

/// The BL layer on the demo model, against real clusters: what incremental runs make always
/// equals a full reload, whatever the workload, failures and kills.
@Suite(.clusterLoad) struct TransformIntegrationTests {

    /// Whether the server has lz4 is asked once per session, not in each model run: what the
    /// session remembers answers from then on (flipped, the answer flips), and a new session asks.
    @Test func aSessionAsksItsServerForLZ4Once() async throws {
        let clusters = try await TestClusters.shared()
        let conninfo = "host=127.0.0.1 port=\(clusters.targetPort) dbname=postgres user=postgres password=\(TestClusters.password)"
        let connection = try await PostgresConnection.connect(conninfo, name: "target")
        let asked = try await connection.run { try TargetCatalog.hasLZ4(on: $0) }
        try await connection.run { $0.serverFacts["lz4"] = !asked }
        #expect(try await connection.run { try TargetCatalog.hasLZ4(on: $0) } == !asked)
        let fresh = try await PostgresConnection.connect(conninfo, name: "target")
        #expect(try await fresh.run { try TargetCatalog.hasLZ4(on: $0) } == asked)
        await connection.close()
        await fresh.close()
    }

    func modelStatuses(_ fixture: PipelineFixture) async throws -> [ModelStatus] {
        let configuration = try fixture.configuration()
        return try await StatusReader(endpoints: try fixture.endpoints(), store: try fixture.store(), models: configuration.models)
            .report(configuration.sources).models ?? []
    }

    func eventually(_ what: String, seconds: Double = 60, _ condition: () async throws -> Bool) async throws {
        try await TributaryIntegrationTests.eventually(what, seconds: seconds, condition)
    }


    @Test(arguments: 1...3)
    func aRandomWorkloadThroughRunAndDrainEqualsAFullReload(round: Int) async throws {
        let fixture = try await DemoSources.fixture("bl-e2e-\(round)")
        let run = try fixture.startRun()
        var demo = DemoWorkload(seed: UInt64.random(in: 1...UInt64.max / 2))
        do {
            try await fixture.demoWorkload(&demo, steps: 300)
            let drained = try await fixture.tributary(["drain", "--timeout", "120"])
            #expect(drained.status == 0, "seed \(demo.seed): \(drained.standardOutput)\(drained.standardError)")
            // The drain waits for BL and reports it.
            #expect(drained.standardOutput.contains("model contract") && drained.standardOutput.contains("current"), "\(drained.standardOutput)")
        } catch {
            run.kill()
            _ = await run.wait()
            throw error
        }
        run.kill(signal: SIGTERM)
        let stopped = await run.wait()
        #expect(stopped.status == 0, "\(stopped.standardError.suffix(3000))")
        let differences = try await fixture.blCheck()
        for difference in differences { #expect(difference.matches, "seed \(demo.seed): \(difference)") }
        #expect(differences.map(\.reloadRows).reduce(0, +) > 0)
        for status in try await modelStatuses(fixture) { #expect(status.state == .current, "\(status)") }
    }

    @Test func deletesJoinsAndDependencyOrderAndFlaggedDeletes() async throws {
        let fixture = try await DemoSources.fixture("bl-rules")
        // A model that flags its deletes, beside the demo's.
        try "key: [id]\ndeletes: flag\nfull_refresh: false\ninputs:\n  - table: stg.qvp_claims\n    keys: [id]\n"
            .write(toFile: fixture.configurationDirectory + "/bl/claim_flags.yaml", atomically: true, encoding: .utf8)
        try "SELECT id, amount FROM stg.qvp_claims WHERE NOT _deleted".write(toFile: fixture.configurationDirectory + "/bl/claim_flags.sql",
                                                                             atomically: true, encoding: .utf8)
        // And one reading a column of another model's that is not a key or surrogate.
        try "key: [source_system, source_id]\ninputs:\n  - table: bl.contract\n    keys: [source_system, source_id]\n"
            .write(toFile: fixture.configurationDirectory + "/bl/contract_status.yaml", atomically: true, encoding: .utf8)
        try "SELECT source_system, source_id, status FROM bl.contract".write(toFile: fixture.configurationDirectory + "/bl/contract_status.sql",
                                                                           atomically: true, encoding: .utf8)
        // And one whose input maps by a column that is not the input's key: it needs a key map
        // (a claim moved to another policy changes both policies' counts); the demo's, mapping by
        // their inputs' keys, need none.
        try "key: [policy_id]\ninputs:\n  - table: stg.qvp_claims\n    keys: [policy_id]\n"
            .write(toFile: fixture.configurationDirectory + "/bl/claims_per_policy.yaml", atomically: true, encoding: .utf8)
        try "SELECT policy_id, count(*) AS claims FROM stg.qvp_claims WHERE NOT _deleted GROUP BY policy_id"
            .write(toFile: fixture.configurationDirectory + "/bl/claims_per_policy.sql", atomically: true, encoding: .utf8)
        #expect(try await fixture.tributary(["apply", "--once"]).status == 0)
        let first = try await fixture.tributary(["transform"])
        #expect(first.status == 0 && first.standardOutput.contains("contract             full reload"), "\(first.standardOutput)\(first.standardError)")
        let again = try await fixture.tributary(["transform"])
        #expect(again.standardOutput.components(separatedBy: "nothing to do").count - 1 == 9, "a re-run with nothing new does nothing: \(again.standardOutput)")
        let maps = try await fixture.connectTarget().query("""
            SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'tributary_bl' AND tablename LIKE '%\\_\\_map\\_%'
            """).scalar
        #expect(maps == "claims_per_policy__map_0", "key maps: \(maps ?? "none")")

        let qvp = try await fixture.connectSource("qvp")
        let moved = try await qvp.query("SELECT id, policy_id FROM claims WHERE id <> 5 ORDER BY id LIMIT 1").rows[0]
        let (claim, from) = (moved[0]!, moved[1]!)
        try await qvp.execute("""
            UPDATE claims SET policy_id = (SELECT min(id) FROM policies WHERE id <> \(from)) WHERE id = \(claim);
            DELETE FROM claims WHERE id = 5;
            UPDATE policy_coverages SET limit_amount = 12345 WHERE policy_id = 7 AND coverage_code = 'LIAB';
            INSERT INTO customers (id, first_name, last_name) VALUES (900001, 'Order', 'Test');
            INSERT INTO policies (id, policy_no, customer_id, status) VALUES (900001, 'ORDER-1', 900001, 'active');
            """)
        let dry = try await fixture.tributaryAfterCatchingUp(["transform", "--dry-run", "--model", "claim_flags"])
        #expect(dry.standardOutput.contains("WITH removed AS") && dry.standardOutput.contains("updated 0, removed 1"), "\(dry.standardOutput)")
        // A reload's dry run counts what it would change the same way, over every key.
        let fullDry = try await fixture.tributary(["transform", "--dry-run", "--full", "--model", "claim"])
        #expect(fullDry.status == 0 && fullDry.standardOutput.contains("removed 1"), "\(fullDry.standardOutput)\(fullDry.standardError)")
        #expect(try await fixture.tributary(["transform"]).status == 0)
        let target = try await fixture.connectTarget()
        // A delete removes the BL row; the flagging model keeps it, flagged.
        #expect(try await target.query("SELECT count(*) FROM bl.claim WHERE source_system = 'qvp' AND source_id = '5'").scalar == "0")
        #expect(try await target.query("SELECT _deleted FROM bl.claim_flags WHERE id = 5").scalar == "t")
        // The moved claim counts for its new policy, and no longer for its old one.
        for policy in [from, try await qvp.query("SELECT policy_id FROM claims WHERE id = \(claim)").scalar!] {
            let expected = try await qvp.query("SELECT count(*) FROM claims WHERE policy_id = \(policy)").scalar!
            let stored = try await target.query("SELECT claims FROM bl.claims_per_policy WHERE policy_id = \(policy)").scalar ?? "0"
            #expect(stored == expected, "policy \(policy): \(stored) claims in BL, \(expected) on the source")
        }
        // A change to a joined input (a coverage) updates the contract it belongs to.
        #expect(try await target.query("""
            SELECT total_limit >= 12345 AND coverages::text LIKE '%12345%' FROM bl.contract WHERE source_system = 'qvp' AND source_id = '7'
            """).scalar == "t")
        // contract reads party: party ran first, so the new contract has its new party's id.
        #expect(try await target.query("""
            SELECT c.party_id = p.party_id FROM bl.contract c JOIN bl.party p ON p.source_system = 'qvp' AND p.source_id = '900001'
            WHERE c.source_system = 'qvp' AND c.source_id = '900001'
            """).scalar == "t")
        // A change no reading model can see (a premium: claim and document read only a contract's
        // key and surrogate) updates the contract and wakes none of its readers.
        try await qvp.execute("UPDATE policies SET premium = premium + 1 WHERE id = 7")
        let unseen = try await fixture.tributaryAfterCatchingUp(["transform"])
        #expect(unseen.standardOutput.contains("contract             incremental: inserted 0, updated 1, removed 0")
                && unseen.standardOutput.contains("claim                nothing to do")
                && unseen.standardOutput.contains("document             nothing to do")
                && unseen.standardOutput.contains("contract_status      nothing to do"), "\(unseen.standardOutput)")
        // A change one of them can see (a status) reaches it.
        try await qvp.execute("UPDATE policies SET status = CASE WHEN status = 'lapsed' THEN 'cancelled' ELSE 'lapsed' END::policy_status WHERE id = 7")
        let status = try await qvp.query("SELECT status FROM policies WHERE id = 7").scalar
        let seen = try await fixture.tributaryAfterCatchingUp(["transform"])
        #expect(seen.standardOutput.contains("contract_status      incremental: inserted 0, updated 1, removed 0"), "\(seen.standardOutput)")
        #expect(try await target.query("SELECT status FROM bl.contract_status WHERE source_system = 'qvp' AND source_id = '7'").scalar == status)
        let refused = try await fixture.tributary(["transform", "--model", "claim_flags", "--full"])
        #expect(refused.status == 1 && refused.standardOutput.contains("full_refresh: false"), "\(refused.standardOutput)")
        // A reload keeps every surrogate: they come from the key map, never a sequence reset.
        let before = try await target.query("SELECT string_agg(contract_id::text, ',' ORDER BY source_system, source_id) FROM bl.contract").scalar
        #expect(try await fixture.tributary(["transform", "--model", "contract", "--full"]).status == 0)
        #expect(try await target.query("SELECT string_agg(contract_id::text, ',' ORDER BY source_system, source_id) FROM bl.contract").scalar == before)
        // The reloaded table leaves room on its pages for in-place (HOT) updates, and the reload
        // vacuumed it, its surrogate map and its key maps before the next run could read them.
        #expect(try await target.query("SELECT 'fillfactor=90' = ANY (reloptions) FROM pg_class WHERE oid = 'bl.contract'::regclass").scalar == "t")
        try await eventually("the reload's tables vacuumed", seconds: 10) {
            try await target.query("""
                SELECT count(*) FROM pg_stat_user_tables WHERE last_vacuum IS NOT NULL AND last_analyze IS NOT NULL
                AND (schemaname, relname) IN (('bl', 'contract'), ('tributary_bl', 'contract__keys'))
                """).scalar == "2"
        }
        let checked = try await fixture.tributary(["transform", "--check"])
        #expect(checked.status == 0, "\(checked.standardOutput)\n\(checked.standardError)")
    }

    @Test func aBrokenModelStopsOnlyItselfAndItsReadersAndCatchesUpOnceFixed() async throws {
        var fixture = try await DemoSources.fixture("bl-broken")
        fixture.extraTargetYAML = "bl:\n  min_interval: 200ms\n  retry: 1s\n"
        let bl = fixture.configurationDirectory + "/bl"
        try "key: [id]\ninputs:\n  - table: stg.qvp_claims\n    keys: [id]\n".write(toFile: bl + "/broken.yaml", atomically: true, encoding: .utf8)
        try "SELECT id, no_such_column FROM stg.qvp_claims WHERE NOT _deleted".write(toFile: bl + "/broken.sql", atomically: true, encoding: .utf8)
        try "key: [id]\ninputs:\n  - table: bl.broken\n    keys: [id]\n".write(toFile: bl + "/reads_broken.yaml", atomically: true, encoding: .utf8)
        try "SELECT id FROM bl.broken".write(toFile: bl + "/reads_broken.sql", atomically: true, encoding: .utf8)
        let run = try fixture.startRun()
        do {
            var demo = DemoWorkload(seed: UInt64.random(in: 1...UInt64.max / 2))
            try await fixture.demoWorkload(&demo, steps: 60)
            try await fixture.waitUntilApplied(["qvp", "svp"])
            // STG is current; the broken model says why it stopped; the others are current.
            try await eventually("the other models catch up while one is broken") {
                let statuses = try await modelStatuses(fixture)
                return statuses.filter { !["broken", "reads_broken"].contains($0.model) }.allSatisfy { $0.state == .current }
                    && statuses.first { $0.model == "broken" }?.state == .failed
            }
            let screen = try await fixture.tributary(["status"])
            #expect(screen.standardOutput.contains("model broken") && screen.standardOutput.contains("no_such_column"), "\(screen.standardOutput)")
            #expect(try await modelStatuses(fixture).first { $0.model == "reads_broken" }?.state == .notBuilt)
            // Fixed: the next retry catches up, and its reader follows.
            try "SELECT id, amount FROM stg.qvp_claims WHERE NOT _deleted".write(toFile: bl + "/broken.sql", atomically: true, encoding: .utf8)
            try await fixture.demoWorkload(&demo, steps: 20)
            try await fixture.waitUntilApplied(["qvp", "svp"])
            try await eventually("the fixed model and its reader catch up") {
                try await modelStatuses(fixture).allSatisfy { $0.state == .current }
            }
        } catch {
            run.kill()
            let outcome = await run.wait()
            throw TestFailure("\(error); statuses \((try? await modelStatuses(fixture)) ?? []); run said \(outcome.standardError.suffix(3000))")
        }
        run.kill(signal: SIGTERM)
        _ = await run.wait()
        for difference in try await fixture.blCheck() { #expect(difference.matches, "\(difference)") }
    }

    /// Runs find their changes in a log the applier writes, not by an index on `_lsn`: updates of
    /// STG rows stay HOT, the log is pruned behind the models, and a log made after the fact (a
    /// table read through the `_lsn` index of earlier versions) is seeded with what the models
    /// have not taken in yet.
    @Test func changesAreFoundThroughTheApplierLogAndUpdatesStayHOT() async throws {
        let fixture = try await DemoSources.fixture("bl-log")
        #expect(try await fixture.tributary(["apply", "--once"]).status == 0)
        #expect(try await fixture.tributary(["transform"]).status == 0)
        let target = try await fixture.connectTarget(), qvp = try await fixture.connectSource("qvp")
        let log = #""tributary_bl"."stg_qvp_policies__changes""#
        #expect(try await target.query("SELECT to_regclass('\(log)') IS NOT NULL").scalar == "t")
        // Its key arrays are stored uncompressed (pglz costs the applier far more than it saves);
        // a log made before that is switched over by the next run.
        let storage = "SELECT attstorage FROM pg_attribute WHERE attrelid = '\(log)'::regclass AND attname = 'id'"
        #expect(try await target.query(storage).scalar == "e")
        try await target.execute("ALTER TABLE \(log) ALTER COLUMN id SET STORAGE EXTENDED")
        #expect(try await fixture.tributary(["transform"]).status == 0)
        #expect(try await target.query(storage).scalar == "e")
        #expect(try await target.query("SELECT count(*) FROM pg_indexes WHERE schemaname = 'stg' AND indexdef LIKE '%(_lsn)%'").scalar == "0")
        #expect(try await target.query("SELECT 'fillfactor=90' = ANY (reloptions) FROM pg_class WHERE oid = 'stg.qvp_policies'::regclass").scalar == "t")
        let hotBefore = Int(try await target.query("SELECT n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'stg.qvp_policies'::regclass").scalar ?? "") ?? -1

        // A premium (no index reads it) changes: the update is HOT, the batch is logged, the run sees it.
        try await qvp.execute("UPDATE policies SET premium = premium + 1 WHERE id = 7")
        let first = try await fixture.tributaryAfterCatchingUp(["transform", "--model", "contract"])
        #expect(first.standardOutput.contains("contract             incremental: inserted 0, updated 1, removed 0"), "\(first.standardOutput)")
        #expect(try await target.query("SELECT count(*) FROM \(log) WHERE 7 = ANY (id)").scalar == "1")
        try await eventually("the STG update counted as HOT", seconds: 10) {
            let hot = Int(try await target.query("SELECT n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'stg.qvp_policies'::regclass").scalar ?? "") ?? -1
            return hot > hotBefore
        }
        // Every model reading the table takes the change in; the next batch prunes what they all hold.
        #expect(try await fixture.tributary(["transform"]).status == 0)
        try await qvp.execute("UPDATE policies SET premium = premium + 1 WHERE id = 8")
        #expect(try await fixture.tributaryAfterCatchingUp(["transform", "--model", "party"]).status == 0)
        #expect(try await target.query("SELECT string_agg(array_to_string(id, ','), ';') FROM \(log)").scalar == "8")

        // The log and the models' watermarks as an earlier version left them: an `_lsn` index, no
        // log. Changes land meanwhile; the next run makes the log, seeds it, drops the index.
        try await target.execute("DROP TABLE \(log); CREATE INDEX qvp_policies_lsn ON stg.qvp_policies (_lsn)")
        try await qvp.execute("UPDATE policies SET status = CASE WHEN status = 'lapsed' THEN 'cancelled' ELSE 'lapsed' END::policy_status WHERE id = 9")
        let status = try await qvp.query("SELECT status FROM policies WHERE id = 9").scalar
        let seeded = try await fixture.tributaryAfterCatchingUp(["transform"])
        #expect(seeded.status == 0, "\(seeded.standardOutput)\(seeded.standardError)")
        #expect(try await target.query("SELECT status FROM bl.contract WHERE source_system = 'qvp' AND source_id = '9'").scalar == status)
        #expect(try await target.query("SELECT to_regclass('stg.qvp_policies_lsn') IS NULL AND to_regclass('\(log)') IS NOT NULL").scalar == "t")
        for difference in try await fixture.blCheck() { #expect(difference.matches, "\(difference)") }
    }

    @Test func killingRunDuringTransformsLosesAndDuplicatesNothing() async throws {
        var fixture = try await DemoSources.fixture("bl-kill")
        fixture.extraTargetYAML = "bl:\n  min_interval: 100ms\n"
        var demo = DemoWorkload(seed: UInt64.random(in: 1...UInt64.max / 2))
        var kills = 0
        for _ in 0..<3 {
            let run = try fixture.startRun()
            try await fixture.demoWorkload(&demo, steps: 80)
            try await Task.sleep(for: .milliseconds(Int.random(in: 200...1200)))
            run.kill()
            if await run.wait().signalled { kills += 1 }
        }
        #expect(kills == 3)
        let run = try fixture.startRun()
        let drained = try await fixture.tributary(["drain", "--timeout", "120"])
        run.kill(signal: SIGTERM)
        _ = await run.wait()
        #expect(drained.status == 0, "seed \(demo.seed): \(drained.standardOutput)\(drained.standardError)")
        for difference in try await fixture.blCheck() { #expect(difference.matches, "seed \(demo.seed): \(difference)") }
    }
}

extension PipelineFixture {
    /// Replicates both sources up to now and applies, then runs `arguments`.
    func tributaryAfterCatchingUp(_ arguments: [String]) async throws -> TestProcess.Outcome {
        for source in sources.map(\.name) { _ = try await replicateUntilCaughtUp(source) }
        _ = try await tributary(["apply", "--once"])
        return try await tributary(arguments)
    }
}
