import Foundation
import Testing
import TributaryCore
import TributaryPostgres

/// The `tributary` executable as an operator meets it: bad input gives one line naming the cause,
/// a non-zero exit, and creates nothing; reruns are refused or harmless.
@Suite struct CommandLineTests {
    /// What must not exist after a refused command: no slot, no publication, no staged object.
    func expectNothingCreated(_ fixture: PipelineFixture, _ context: String) async throws {
        let admin = try await PostgresConnection.connect(
            fixture.clusters.conninfo(port: fixture.clusters.sourcePort, database: "postgres"), name: "admin")
        let slots = try await admin.query("SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1", [fixture.source("qvp").slot])
        #expect(slots.scalar == "0", "\(context): a slot was created")
        let source = try await fixture.connectSource("qvp")
        #expect(try await source.query("SELECT count(*) FROM pg_publication").scalar == "0", "\(context): a publication was created")
        let staged = FileManager.default.enumerator(atPath: fixture.stagingDirectory)?.allObjects
            .compactMap { $0 as? String }.filter { $0.hasSuffix(".gz") || $0.hasSuffix(".json") } ?? []
        #expect(staged.isEmpty, "\(context): objects were staged: \(staged)")
    }

    func expectOneLineFailure(_ outcome: TestProcess.Outcome, mentioning fragments: [String], _ context: String) {
        #expect(outcome.status != 0, "\(context): exit status 0")
        let lines = outcome.standardError.split(separator: "\n", omittingEmptySubsequences: true)
        #expect(lines.count == 1, "\(context): expected one line, got:\n\(outcome.standardError)")
        for fragment in fragments {
            #expect(outcome.standardError.contains(fragment), "\(context): \"\(fragment)\" missing from: \(outcome.standardError)")
        }
        #expect(!outcome.standardError.contains("Fatal error") && !outcome.standardError.contains("Stack"), "\(context): crashed")
        #expect(!outcome.standardError.contains("password=\(TestClusters.password)"), "\(context): leaked the password")
    }

    func fixtureWithTable() async throws -> PipelineFixture {
        let fixture = try await PipelineFixture.make("cli", sources: [("qvp", ["public.items"])])
        let source = try await fixture.connectSource("qvp")
        try await source.execute("CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'a'), (2, NULL)")
        return fixture
    }

    @Test func unreadableYAML() async throws {
        let fixture = try await fixtureWithTable()
        try fixture.writeConfiguration()
        try "source: qvp\ntables: [unclosed\n".write(toFile: fixture.configurationDirectory + "/qvp.yaml", atomically: true, encoding: .utf8)
        let outcome = try await TestProcess.run(Paths.tributary, ["snapshot", "--config", fixture.configurationDirectory])
        expectOneLineFailure(outcome, mentioning: ["qvp.yaml", "not valid YAML"], "unreadable YAML")
        #expect(outcome.status == 2)
        try await expectNothingCreated(fixture, "unreadable YAML")
    }

    @Test func unknownKey() async throws {
        var fixture = try await fixtureWithTable()
        fixture.sources[0].extraYAML = "publicaton: typo\n"
        let outcome = try await fixture.tributary(["snapshot"])
        expectOneLineFailure(outcome, mentioning: ["qvp.yaml:", "publicaton", "unknown key", "did you mean \"publication\""], "unknown key")
        try await expectNothingCreated(fixture, "unknown key")
    }

    @Test func missingEnvironmentVariable() async throws {
        var fixture = try await fixtureWithTable()
        let real = fixture.sources[0].conninfo
        fixture.sources[0].conninfo += " password=${TRIBUTARY_TEST_UNSET_PASSWORD}"
        let outcome = try await fixture.tributary(["snapshot"])
        expectOneLineFailure(outcome, mentioning: ["qvp.yaml:", "connection", "TRIBUTARY_TEST_UNSET_PASSWORD is not set"], "missing env var")
        #expect(outcome.status == 2)
        fixture.sources[0].conninfo = real
        try await expectNothingCreated(fixture, "missing env var")
    }

    @Test func unreachableSource() async throws {
        var fixture = try await fixtureWithTable()
        let closedPort = try TestClusters.freePort()
        let real = fixture.sources[0].conninfo
        fixture.sources[0].conninfo = real.replacingOccurrences(of: "port=\(fixture.clusters.sourcePort)", with: "port=\(closedPort)")
        let outcome = try await fixture.tributary(["snapshot"])
        expectOneLineFailure(outcome, mentioning: ["qvp (127.0.0.1:\(closedPort)", "Connection refused"], "unreachable source")
        fixture.sources[0].conninfo = real
        try await expectNothingCreated(fixture, "unreachable source")
    }

    @Test func wrongPassword() async throws {
        var fixture = try await fixtureWithTable()
        let real = fixture.sources[0].conninfo
        fixture.sources[0].conninfo = real.replacingOccurrences(of: "password=\(TestClusters.password)", with: "password=wrong-one")
        let outcome = try await fixture.tributary(["snapshot"])
        expectOneLineFailure(outcome, mentioning: ["qvp (127.0.0.1", "password authentication failed"], "wrong password")
        #expect(!outcome.standardError.contains("wrong-one"))
        fixture.sources[0].conninfo = real
        try await expectNothingCreated(fixture, "wrong password")
    }

    @Test func tableWithoutKey() async throws {
        var fixture = try await fixtureWithTable()
        let source = try await fixture.connectSource("qvp")
        try await source.execute("CREATE TABLE loose (a int, b text)")
        fixture.sources[0].tables.append("public.loose")
        let outcome = try await fixture.tributary(["snapshot"])
        expectOneLineFailure(outcome, mentioning: ["public.loose", "no primary key", "REPLICA IDENTITY"], "table without key")
        try await expectNothingCreated(fixture, "table without key")

        let check = try await fixture.tributary(["check"])
        #expect(check.status == 1)
        #expect(check.standardOutput.contains("FAIL  qvp      table public.loose on qvp has no primary key"))
        #expect(check.standardOutput.contains("ok    qvp      table public.items → stg.qvp_items"))
    }

    @Test func aSecondSnapshotChangesNothingUnlessRestartAndApplyIsIdempotent() async throws {
        let fixture = try await fixtureWithTable()
        let first = try await fixture.tributary(["snapshot"])
        #expect(first.status == 0, "\(first.standardError)")
        #expect(first.standardOutput.contains("snapshot qvp: 1 tables, 2 rows"))

        let again = try await fixture.tributary(["snapshot"])
        #expect(again.status == 0 && again.standardOutput.contains("snapshot qvp: complete already at")
                && again.standardOutput.contains("nothing copied; --restart takes a new one"), "\(again.standardOutput)\(again.standardError)")

        let apply = try await fixture.tributary(["apply", "--once"])
        #expect(apply.status == 0, "\(apply.standardError)")
        #expect(apply.standardOutput.contains("loaded into STG: 1 tables, 2 rows"))
        let applyAgain = try await fixture.tributary(["apply", "--once"])
        #expect(applyAgain.status == 0)
        #expect(applyAgain.standardOutput.contains("nothing to apply"))

        // Once its stream has begun, a rerun is refused: only --restart starts over.
        let source = try await fixture.connectSource("qvp")
        try await source.execute("DELETE FROM items WHERE id = 1; INSERT INTO items VALUES (3, 'c'), (4, 'd')")
        let end = try await source.query("SELECT pg_current_wal_insert_lsn()").scalar!
        #expect(try await fixture.tributary(["replicate", "--source", "qvp", "--end-lsn", end]).status == 0)
        let streamed = try await fixture.tributary(["snapshot"])
        expectOneLineFailure(streamed, mentioning: ["slot \"\(fixture.source("qvp").slot)\" already exists on qvp", "--restart", "--table"],
                             "snapshot after the stream began")

        // A new snapshot with --restart replaces STG with the source as it is now.
        let restart = try await fixture.tributary(["snapshot", "--restart"])
        #expect(restart.status == 0, "\(restart.standardError)")
        #expect(try await fixture.tributary(["apply", "--once"]).status == 0)
        let target = try await fixture.connectTarget()
        #expect(try await target.query("SELECT string_agg(id::text, ',' ORDER BY id) FROM stg.qvp_items").scalar == "2,3,4")

        let verify = try await fixture.tributary(["verify"])
        #expect(verify.status == 0, "\(verify.standardOutput)")
        #expect(verify.standardOutput.contains("all 1 tables match"))
        try await target.execute("UPDATE stg.qvp_items SET name = 'tampered' WHERE id = 3")
        let mismatch = try await fixture.tributary(["verify"])
        #expect(mismatch.status == 1)
        #expect(mismatch.standardOutput.contains("CONTENT DIFFERS"))
    }
}
