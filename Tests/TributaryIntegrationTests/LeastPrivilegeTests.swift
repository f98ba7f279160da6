import Foundation
import Testing
import TributaryCore
import TributaryPostgres

/// The least-privilege setup the README documents: on the source a role with REPLICATION, SELECT
/// on the tables and the heartbeat function, the publication made by an administrator; on the
/// target a role owning only the schemas tributary writes, without CREATE on the database.
@Suite(.clusterLoad) struct LeastPrivilegeTests {
    @Test func snapshotReplicateApplyAndVerifyRunWithLeastPrivilege() async throws {
        var fixture = try await PipelineFixture.make("leastpriv", sources: [("qvp", ["public.items"])])
        let suffix = UInt32.random(in: 0...UInt32.max)
        let sourceRole = "tsrc_\(suffix)", targetRole = "ttgt_\(suffix)"
        let admin = try await fixture.connectSource("qvp")
        try await admin.execute("""
            CREATE TABLE items (id int PRIMARY KEY, note text); INSERT INTO items VALUES (1, 'a');
            CREATE ROLE \(sourceRole) LOGIN REPLICATION PASSWORD 'least';
            GRANT SELECT ON items TO \(sourceRole);
            GRANT EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) TO \(sourceRole);
            CREATE PUBLICATION tributary_qvp FOR TABLE items
            """)
        let targetAdmin = try await fixture.connectTarget()
        let database = try await targetAdmin.query("SELECT current_database()").scalar!
        try await targetAdmin.execute("""
            CREATE ROLE \(targetRole) LOGIN PASSWORD 'least';
            REVOKE CREATE ON DATABASE \(database) FROM PUBLIC; REVOKE CREATE ON SCHEMA public FROM PUBLIC;
            CREATE SCHEMA stg AUTHORIZATION \(targetRole); CREATE SCHEMA tributary AUTHORIZATION \(targetRole);
            CREATE SCHEMA tributary_load AUTHORIZATION \(targetRole); CREATE SCHEMA bl AUTHORIZATION \(targetRole);
            CREATE SCHEMA tributary_bl AUTHORIZATION \(targetRole)
            """)
        fixture.sources[0].conninfo = fixture.sources[0].conninfo.replacingOccurrences(of: "user=postgres", with: "user=\(sourceRole)")
            .replacingOccurrences(of: "password=\(TestClusters.password)", with: "password=least")
        fixture.sources[0].extraYAML = "create_publication: false\n"
        var least = fixture
        least.targetOverride = fixture.target.replacingOccurrences(of: "user=postgres", with: "user=\(targetRole)")
            .replacingOccurrences(of: "password=\(TestClusters.password)", with: "password=least")
        try least.writeConfiguration()

        let check = try await least.tributary(["check"])
        #expect(check.status == 0, "\(check.standardOutput)\(check.standardError)")
        let snapshot = try await least.tributary(["snapshot", "--apply"])
        #expect(snapshot.status == 0, "\(snapshot.standardOutput)\(snapshot.standardError)")
        try await admin.execute("INSERT INTO items VALUES (2, 'b'); UPDATE items SET note = 'c' WHERE id = 1")
        let end = try await admin.query("SELECT pg_current_wal_insert_lsn()").scalar!
        let replicated = try await least.tributary(["replicate", "--source", "qvp", "--end-lsn", end])
        #expect(replicated.status == 0, "\(replicated.standardError)")
        let applied = try await least.tributary(["apply", "--once"])
        #expect(applied.status == 0, "\(applied.standardError)")
        let verified = try await least.tributary(["verify"])
        #expect(verified.status == 0, "\(verified.standardOutput)\(verified.standardError)")
        let status = try await least.tributary(["status"])
        #expect(status.status == 0, "\(status.standardOutput)\(status.standardError)")
        #expect(try await targetAdmin.query("SELECT count(*) FROM pg_namespace WHERE nspowner <> (SELECT oid FROM pg_roles WHERE rolname = $1) AND nspname IN ('stg', 'tributary', 'tributary_load', 'bl', 'tributary_bl')", [targetRole]).scalar == "0")
    }
}
