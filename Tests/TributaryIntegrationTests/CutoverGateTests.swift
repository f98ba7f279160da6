import Foundation
import Testing
import TributaryCore
import TributaryPostgres

/// The cutover gate: verify at one consistent point while the sources take writes, the BL models'
/// relationships, the sequences carried over at drain, and the go/no-go report.
@Suite(.clusterLoad) struct CutoverGateTests {
    /// `verify --json`'s result.
    struct Verified {
        var status: Int32
        var json: [String: Any]
        var output: String

        var tables: [[String: Any]] { json["tables"] as? [[String: Any]] ?? [] }
        var differing: [[String: Any]] { tables.filter { $0["match"] as? Bool != true } }
        var points: [[String: Any]] { json["points"] as? [[String: Any]] ?? [] }
        var references: [[String: Any]] { json["references"] as? [[String: Any]] ?? [] }
    }

    func verify(_ fixture: PipelineFixture, _ extra: [String] = []) async throws -> Verified {
        let outcome = try await fixture.tributary(["verify", "--json"] + extra)
        let json = (try? JSONSerialization.jsonObject(with: Data(outcome.standardOutput.utf8))) as? [String: Any]
        guard let json else { throw TestFailure("verify said no JSON (status \(outcome.status)): \(outcome.standardOutput)\(outcome.standardError)") }
        return Verified(status: outcome.status, json: json, output: outcome.standardOutput + outcome.standardError)
    }

    func eventually(_ what: String, seconds: Double = 60, _ condition: () async throws -> Bool) async throws {
        try await TributaryIntegrationTests.eventually(what, seconds: seconds, condition)
    }

    @Test func underAWriteLoadEveryVerifyFindsEveryTableIdenticalAtItsPoint() async throws {
        let fixture = try await DemoSources.fixture("gate-load")
        let stopped = try await fixture.withRun { _ in
            try await fixture.waitUntilApplied(["qvp", "svp"], seconds: 120)
            let load = try await BackgroundLoad.start(fixture)
            do {
                for round in 1...3 {
                    let before = load.transactions
                    let verified = try await verify(fixture)
                    #expect(verified.status == 0, "round \(round): \(verified.differing) \(verified.output.suffix(2000))")
                    #expect(verified.differing.isEmpty, "round \(round): \(verified.differing)")
                    #expect(verified.tables.count == 12)
                    // Each source compared at a point of its own, STG held there meanwhile.
                    #expect(verified.points.count == 2 && verified.points.allSatisfy { $0["point"] is String && $0["held_seconds"] is Double },
                            "round \(round): \(verified.points)")
                    #expect(load.transactions > before, "round \(round): the sources took writes during the verify")
                }
            } catch {
                _ = try? await load.stop()
                throw error
            }
            let transactions = try await load.stop()
            #expect(transactions > 100)
            // The holds are lifted: the pipeline catches up with the load.
            try await fixture.waitUntilApplied(["qvp", "svp"], seconds: 120)
        }
        #expect(stopped.status == 0, "\(stopped.standardError.suffix(2000))")
        let target = try await fixture.connectTarget()
        #expect(try await target.query("SELECT count(*) FROM tributary.sources WHERE hold_lsn IS NOT NULL").scalar == "0")
    }

    @Test func aRowChangedMissingOrExtraInSTGIsFoundAtThePointAndNoOtherTableIs() async throws {
        let fixture = try await DemoSources.fixture("gate-diff")
        try await fixture.withRun { _ in
            try await fixture.waitUntilApplied(["qvp", "svp"], seconds: 120)
            let load = try await BackgroundLoad.start(fixture)
            let target = try await fixture.connectTarget()
            do {
                // The load never touches customers below 1000: these stay as altered by hand.
                let cases = [
                    ("changed", "UPDATE stg.qvp_customers SET first_name = 'tampered' WHERE id = 505", 505),
                    ("missing", "DELETE FROM stg.qvp_customers WHERE id = 606", 606),
                    ("extra", "INSERT INTO stg.qvp_customers SELECT (jsonb_populate_record(c, '{\"id\": 707070}')).* FROM stg.qvp_customers c WHERE id = 707", 707070),
                ]
                for (kind, damage, key) in cases {
                    let saved = try #require(try await target.query("SELECT to_jsonb(c)::text FROM stg.qvp_customers c WHERE id = $1", [String(key % 1000 == key ? key : 707)]).scalar)
                    try await target.execute(damage)
                    for round in 1...2 {
                        let verified = try await verify(fixture)
                        #expect(verified.status == 1, "\(kind) round \(round)")
                        #expect(verified.differing.map { $0["table"] as? String } == ["public.customers"], "\(kind) round \(round): \(verified.differing)")
                        let ranges = verified.differing.first?["differing_ranges"] as? [String] ?? []
                        #expect(ranges.count == 1 && Self.range(ranges[0], contains: key), "\(kind) round \(round): \(ranges)")
                    }
                    // Put back as it was.
                    try await target.execute("DELETE FROM stg.qvp_customers WHERE id = \(key)")
                    if key < 1000 {
                        try await target.query("INSERT INTO stg.qvp_customers SELECT (jsonb_populate_record(NULL::stg.qvp_customers, $1::jsonb)).*", [saved])
                    }
                }
                #expect(try await verify(fixture).status == 0, "all put back")
            } catch {
                _ = try? await load.stop()
                throw error
            }
            try await load.stop()
        }
    }

    /// `(a) <= id < (b)`, `id >= (a)`, `id < (b)`, in the key's own (numeric) order.
    static func range(_ text: String, contains key: Int) -> Bool {
        let numbers = text.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        if text.contains("<=") && text.contains(" < ") { return numbers.count == 2 && numbers[0] <= key && key < numbers[1] }
        if text.contains(">=") { return numbers.first.map { key >= $0 } ?? false }
        if text.contains("<") { return numbers.first.map { key < $0 } ?? false }
        return text == "all keys"
    }

    @Test func withNothingRunningVerifyReplicatesAndAppliesToThePointItself() async throws {
        let fixture = try await DemoSources.fixture("gate-alone")
        #expect(try await fixture.tributary(["apply", "--once"]).status == 0)
        let qvp = try await fixture.connectSource("qvp")
        try await qvp.execute("UPDATE customers SET phone = 'after the snapshot' WHERE id BETWEEN 1 AND 50")
        try await qvp.execute("INSERT INTO claims (policy_id, reported_at, amount) SELECT id, now(), 1 FROM policies LIMIT 20")
        let verified = try await verify(fixture)
        #expect(verified.status == 0, "\(verified.differing) \(verified.output.suffix(2000))")
        #expect(verified.points.allSatisfy { $0["point"] is String }, "\(verified.points)")
        let target = try await fixture.connectTarget()
        #expect(try await target.query("SELECT count(*) FROM stg.qvp_customers WHERE phone = 'after the snapshot'").scalar == "50")
        #expect(try await target.query("SELECT count(*) FROM tributary.sources WHERE hold_lsn IS NOT NULL").scalar == "0", "holds lifted")
        // Without a hold, the same compares now with now.
        let now = try await fixture.tributary(["verify", "--no-hold"])
        #expect(now.status == 0 && now.standardOutput.contains("compared as it is now"), "\(now.standardOutput)")
    }

    @Test func anOrphanIsReportedCountedAndFailsTheDrain() async throws {
        let fixture = try await DemoSources.fixture("gate-orphans")
        #expect(try await fixture.tributary(["apply", "--once"]).status == 0)
        #expect(try await fixture.tributary(["transform"]).status == 0)
        let clean = try await verify(fixture)
        #expect(clean.status == 0, "\(clean.output.suffix(2000))")
        #expect(clean.references.count == 6 && clean.references.allSatisfy { $0["orphans"] as? Int == 0 }, "\(clean.references)")

        // By hand in BL: a claim on a contract that is not there.
        let target = try await fixture.connectTarget()
        let claim = try #require(try await target.query("SELECT claim_id FROM bl.claim ORDER BY claim_id LIMIT 1").scalar)
        try await target.execute("UPDATE bl.claim SET contract_id = -42 WHERE claim_id = \(claim)")
        let verified = try await verify(fixture)
        #expect(verified.status == 1)
        let orphans = verified.references.filter { ($0["orphans"] as? Int ?? 0) > 0 }
        #expect(orphans.count == 1 && orphans[0]["model"] as? String == "claim" && orphans[0]["reference"] as? String == "contract_id → bl.contract(contract_id)",
                "\(orphans)")
        #expect((orphans.first?["sample"] as? [String])?.first?.contains("-42") == true, "the orphan is named: \(orphans)")
        let check = try await fixture.tributary(["transform", "--check"])
        #expect(check.status == 1 && check.standardOutput.contains("1 ORPHANS"), "\(check.standardOutput)")
        let status = try await fixture.tributary(["status", "--json"])
        let models = ((try JSONSerialization.jsonObject(with: Data(status.standardOutput.utf8))) as? [String: Any])?["models"] as? [[String: Any]] ?? []
        #expect(models.first { $0["model"] as? String == "claim" }?["orphans"] as? Int == 1, "\(models)")

        // A parent deleted on the source (no foreign key there) while its child stays: the
        // contract's party is gone, and party_id may not be NULL.
        let qvp = try await fixture.connectSource("qvp")
        try await qvp.execute("""
            ALTER TABLE policies DROP CONSTRAINT policies_customer_id_fkey;
            ALTER TABLE vehicles DROP CONSTRAINT vehicles_customer_id_fkey;
            DELETE FROM customers WHERE id = (SELECT customer_id FROM policies ORDER BY id LIMIT 1)
            """)
        try await fixture.withRun { _ in
            try await fixture.waitUntilApplied(["qvp"])
            try await eventually("the contracts lost their party") {
                try await target.query("SELECT count(*) FROM bl.contract WHERE party_id IS NULL").scalar != "0"
            }
        }
        let parentless = try await verify(fixture)
        #expect(parentless.references.contains { $0["model"] as? String == "contract" && ($0["orphans"] as? Int ?? 0) > 0 },
                "\(parentless.references)")

        // The drain ends with the orphans named, and the sources stay draining.
        let drained = try await fixture.tributary(["drain", "--timeout", "120"])
        #expect(drained.status == 1 && drained.standardOutput.contains("ORPHANS") && drained.standardOutput.contains("stay draining"),
                "\(drained.standardOutput)\(drained.standardError)")
        #expect(try await target.query("SELECT count(*) FROM tributary.sources WHERE state = 'draining'").scalar == "2")
    }

    @Test func drainCarriesTheSequencesOverGivesSurrogatesADefaultAndWritesItsReport() async throws {
        var fixture = try await DemoSources.fixture("gate-sequences")
        let qvp = try await fixture.connectSource("qvp")
        try await qvp.execute("CREATE SEQUENCE invoice_numbers START 1000; SELECT nextval('invoice_numbers') FROM generate_series(1, 7)")
        fixture.sources[0].extraYAML += "sequences:\n  - name: public.invoice_numbers\n    to: stg.qvp_invoices\n"
        try fixture.writeConfiguration()
        #expect(try await fixture.tributary(["apply", "--once"]).status == 0)
        #expect(try await fixture.tributary(["transform"]).status == 0)
        try await qvp.execute("INSERT INTO customers (first_name, last_name) VALUES ('new', 'after the snapshot')")
        let report = fixture.root + "/cutover"
        let drained = try await fixture.tributary(["drain", "--timeout", "120", "--report", report])
        #expect(drained.status == 0, "\(drained.standardOutput)\(drained.standardError)")

        // Every carried-over sequence's next value is past the source's last.
        let target = try await fixture.connectTarget()
        let owned = try await qvp.query("""
            SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public' AND last_value IS NOT NULL
            """).rows.map { ($0.values[0]!, Int($0.values[1]!)!) }
        #expect(owned.count >= 4, "customers, vehicles, policies, claims and the listed one: \(owned)")
        for (name, last) in owned {
            let targetName = name == "invoice_numbers" ? "stg.qvp_invoices" : "stg.qvp_\(name)"
            let next = try #require(Int(try await target.query("SELECT nextval($1)", [targetName]).scalar ?? ""), "\(targetName) exists")
            #expect(next > last, "\(targetName): \(next) after the source's \(last)")
        }
        // The application inserts into a BL table without the surrogate: it gets a new one.
        let highest = Int(try await target.query("SELECT max(contract_id) FROM bl.contract").scalar!)!
        let inserted = try await target.query("""
            INSERT INTO bl.contract (source_system, source_id, status) VALUES ('unipacc', 'new-1', 'active') RETURNING contract_id
            """).scalar.flatMap { Int($0) }
        #expect(inserted.map { $0 > highest } == true, "\(String(describing: inserted)) after \(highest)")

        // The report: Markdown that reads on its own, JSON whose keys are pinned.
        let markdown = try String(contentsOfFile: report + ".md", encoding: .utf8)
        #expect(markdown.hasPrefix("# Cutover drain report: GO"), "\(markdown.prefix(300))")
        #expect(markdown.contains("## Source qvp") && markdown.contains("| public.customers | stg.qvp_customers |") && markdown.contains("## BL models"))
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report + ".json"))) as? [String: Any])
        #expect(Set(json.keys) == ["kind", "generated_at", "verdict", "reasons", "sources", "models", "objects"])
        #expect(json["verdict"] as? String == "go" && (json["reasons"] as? [String])?.isEmpty == true)
        let source = try #require((json["sources"] as? [[String: Any]])?.first)
        #expect(Set(source.keys).isSuperset(of: ["source", "point", "seconds", "batches", "rows", "tables", "checks", "sequences"]))
        let table = try #require((source["tables"] as? [[String: Any]])?.first)
        #expect(Set(table.keys).isSuperset(of: ["table", "stg_table", "source_rows", "stg_rows", "match", "differing_ranges"]))
        let sequence = try #require((source["sequences"] as? [[String: Any]])?.first)
        #expect(Set(sequence.keys).isSuperset(of: ["sequence", "target", "source_value", "target_value", "behind"]))
        let model = try #require((json["models"] as? [[String: Any]])?.first { $0["model"] as? String == "contract" })
        #expect(Set(model.keys).isSuperset(of: ["model", "table", "rows", "state", "equals_full_reload", "references", "surrogate_default"]))
        #expect(model["equals_full_reload"] as? Bool == true)
        let reference = try #require((model["references"] as? [[String: Any]])?.first)
        #expect(Set(reference.keys) == ["reference", "orphans", "sample", "on_orphan", "passes"])
    }

    @Test func badInputIsOneLineAndExit2BeforeAnythingIsHeldOrChanged() async throws {
        var fixture = try await DemoSources.fixture("gate-input")
        #expect(try await fixture.tributary(["apply", "--once"]).status == 0)
        #expect(try await fixture.tributary(["transform"]).status == 0)
        let target = try await fixture.connectTarget()

        // A reference to a column the model does not have.
        let claim = fixture.configurationDirectory + "/bl/claim.yaml"
        let original = try String(contentsOfFile: claim, encoding: .utf8)
        try original.replacingOccurrences(of: "  - columns: contract_id", with: "  - columns: contract_idx").write(toFile: claim, atomically: true, encoding: .utf8)
        let badColumn = try await fixture.tributary(["verify"])
        #expect(badColumn.status == 2 && badColumn.standardError.contains("claim.yaml: references[0].columns: bl.claim has no column contract_idx"),
                "\(badColumn.standardError)")
        try original.write(toFile: claim, atomically: true, encoding: .utf8)

        // A listed sequence the source does not have.
        fixture.sources[0].extraYAML += "sequences:\n  - name: public.no_such_sequence\n"
        try fixture.writeConfiguration()
        let badSequence = try await fixture.tributary(["drain", "--timeout", "60"])
        #expect(badSequence.status == 2 && badSequence.standardError.contains("qvp.yaml: sequences[0].name: public.no_such_sequence is no sequence on qvp"),
                "\(badSequence.standardError)")
        #expect(try await target.query("SELECT count(*) FROM tributary.sources WHERE state <> 'running' OR hold_lsn IS NOT NULL").scalar == "0",
                "nothing was held or changed")
        fixture.sources[0].extraYAML = ""
        try fixture.writeConfiguration()

        // A report that cannot be written.
        let badReport = try await fixture.tributary(["verify", "--report", "/proc/no-such/report"])
        #expect(badReport.status == 2 && badReport.standardError.contains("--report /proc/no-such/report"), "\(badReport.standardError)")
        #expect(try await target.query("SELECT count(*) FROM tributary.sources WHERE hold_lsn IS NOT NULL").scalar == "0")
    }

    /// `verify` reads every table's recorded shape and STG columns with one query per source, not
    /// two queries a table (1,200 round trips at 600 tables before the first checksum): over 20
    /// tables it scans `tributary.staging_relations` once. A dropped column is still named.
    @Test func verifyReadsEveryTablesRecordedShapeInOneQuery() async throws {
        let tables = (1...20).map { "t\($0)" }
        let fixture = try await PipelineFixture.make("verify-once", sources: [("qvp", tables.map { "public." + $0 })])
        let source = try await fixture.connectSource("qvp")
        try await source.execute(tables.map { "CREATE TABLE \($0) (id int PRIMARY KEY, v text, gone text); INSERT INTO \($0) VALUES (1, 'x', 'y');" }.joined())
        _ = try await fixture.snapshot("qvp")
        _ = try await fixture.load("qvp")
        try await source.execute("ALTER TABLE t7 DROP COLUMN gone")
        let target = try await fixture.connectTarget()
        let scans = {
            try await target.execute("SELECT pg_stat_clear_snapshot()")
            return Int(try await target.query("""
                SELECT seq_scan + coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relid = 'tributary.staging_relations'::regclass
                """).scalar!)!
        }
        let before = try await scans()
        let compared = try await fixture.verify("qvp")
        #expect(compared.count == 20)
        #expect(compared.filter { !$0.droppedOnSource.isEmpty }.map { "\($0.table) \($0.droppedOnSource)" } == ["public.t7 [\"gone\"]"])
        // The verify's session has ended: PostgreSQL 15 adds its counts when the backend exits.
        try await eventually("the verify's scans are counted", seconds: 10) { try await scans() > before }
        #expect(try await scans() - before == 1)
    }
}
