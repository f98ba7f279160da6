import Foundation
import Testing
import TributaryCore
import TributaryPostgres
import TributaryServices

/// `tributary status`: works with nothing running, and `--json` keeps its documented shape.
@Suite(.clusterLoad) struct StatusTests {
    /// The documented shape, as a strict decoder sees it: a renamed key, a changed type or a key
    /// that went missing fails to decode.
    struct Documented: Decodable {
        struct Source: Decodable {
            var source: String
            var slot: String
            var state: String
            var replicator_active: Bool?
            var source_lsn: String?
            var confirmed_lsn: String?
            var source_lag_bytes: Int?
            var retained_wal_bytes: Int?
            var wal_status: String?
            var staged_batches: Int
            var staged_bytes: Int
            var flushed_lsn: String?
            var applied_lsn: String?
            var applied_commit_time: String?
            var lag_seconds: Double?
            var changes_per_second: Double
            var warnings: [String]
            var drain_lsn: String?
        }
        var generated_at: String
        var sources: [Source]
    }

    static let documentedKeys: Set<String> = [
        "source", "slot", "state", "replicator_active", "source_lsn", "confirmed_lsn", "source_lag_bytes", "retained_wal_bytes",
        "wal_status", "staged_batches", "staged_bytes", "flushed_lsn", "applied_lsn", "applied_commit_time", "lag_seconds",
        "changes_per_second", "warnings", "drain_lsn", "pending_table_snapshots", "schema_changes", "schema_stops", "safe_wal_bytes",
        "store_reachable",
    ]

    func statusJSON(_ fixture: PipelineFixture) async throws -> Documented.Source {
        let outcome = try await fixture.tributary(["status", "--json"])
        #expect(outcome.status == 0, "\(outcome.standardError)")
        let data = Data(outcome.standardOutput.utf8)
        let report = try JSONDecoder().decode(Documented.self, from: data)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(Set(object.keys) == ["generated_at", "sources"])
        for source in try #require(object["sources"] as? [[String: Any]]) {
            #expect(Set(source.keys).isSubset(of: Self.documentedKeys), "undocumented keys: \(Set(source.keys).subtracting(Self.documentedKeys))")
        }
        #expect(ManifestCoding.parseTimestamp(report.generated_at) != nil)
        return try #require(report.sources.first)
    }

    @Test func statusBeforeAndAfterThePipelineRuns() async throws {
        let fixture = try await PipelineFixture.make("status", sources: [("qvp", ["public.items"])])
        let source = try await fixture.connectSource("qvp")
        try await source.execute("CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items SELECT i, 'n' FROM generate_series(1, 10) i")

        // Before anything: not snapshotted, and says what to do.
        var status = try await statusJSON(fixture)
        #expect(status.state == "not snapshotted")
        #expect(status.warnings.first?.contains("run tributary snapshot --source qvp") == true)
        #expect(status.warnings.contains { $0.contains("the target has no tributary schema yet") }, "\(status.warnings)")
        // Status only reads: it never sets up the control schema on the target.
        #expect(try await fixture.connectTarget().query("SELECT to_regnamespace('tributary') IS NULL").scalar == "t")

        _ = try await fixture.snapshot("qvp")
        _ = try await fixture.load("qvp")
        try await source.execute("UPDATE items SET name = 'changed'")
        _ = try await fixture.replicateUntilCaughtUp("qvp")

        // Staged, not applied; no replicator running.
        status = try await statusJSON(fixture)
        #expect(status.state == "running")
        #expect(status.replicator_active == false)
        #expect(status.staged_batches >= 1 && status.staged_bytes > 0)
        #expect(status.source_lag_bytes != nil && status.confirmed_lsn != nil)
        #expect(status.warnings.contains { $0.contains("no replicator is consuming the slot") })

        _ = try await ChangeApplier(endpoints: try fixture.endpoints(), sources: try fixture.configuration().sources, store: try fixture.store(),
                                    settings: .init(jobs: 1), logger: PipelineFixture.logger).applyOnce()
        status = try await statusJSON(fixture)
        #expect(status.staged_batches == 0)
        #expect(status.applied_lsn != nil && status.applied_commit_time != nil)
        #expect(status.lag_seconds.map { $0 >= 0 && $0 < 600 } == true)
        #expect(status.changes_per_second > 0)

        let text = try await fixture.tributary(["status"])
        #expect(text.standardOutput.hasPrefix("qvp"))
        #expect(text.standardOutput.contains("replicator DOWN"))
    }
}
