import Foundation
import Testing
import TributaryCore
import TributaryPostgres
@testable import TributaryServices

/// The applier: STG follows the sources exactly, whatever the workload, order or failure.
@Suite(.clusterLoad) struct ApplierTests {
    func twoSourceFixture(_ label: String, configure: (inout PipelineFixture) -> Void = { _ in },
                          seed: String? = nil) async throws -> PipelineFixture {
        // Small batches: the workload spans many, whatever the machine's speed.
        try await PipelineFixture.twoSources(label, batchRows: 100, configure: configure, seed: seed)
    }

    @Test func randomWorkloadOnBothSourcesEndsEqualInSTG() async throws {
        try await twoSourceFixture("e2e").randomWorkloadEndsEqual(steps: 250)
    }

    @Test func largeValueSurvivesAnUpdateInTheSameTransactionAndInTheSameBatch() async throws {
        var fixture = try await PipelineFixture.make("toast", sources: [("qvp", ["public.accounts", "public.ledger"])])
        fixture.snapshotYAML = "  jobs: 1\nbatch:\n  max_age: 10s\n"
        let source = try await fixture.connectSource("qvp")
        try await source.execute(RandomWorkload.schema)
        _ = try await fixture.snapshot("qvp")
        try await source.execute("""
            BEGIN; INSERT INTO accounts (id, owner, doc) VALUES (5001, 'same transaction', repeat(md5('a'), 200));
            UPDATE accounts SET owner = 'updated in the same transaction' WHERE id = 5001; COMMIT
            """)
        try await source.execute("INSERT INTO accounts (id, owner, doc) VALUES (5002, 'two transactions', repeat(md5('b'), 200))")
        try await source.execute("UPDATE accounts SET owner = 'updated in the next transaction' WHERE id = 5002")
        // An existing row's large value, untouched by an update, must stay what STG has.
        try await source.execute("UPDATE accounts SET owner = 'only owner changed' WHERE id = 5")
        // Key changes leave the value under the old key: once, and twice in a chain.
        try await source.execute("UPDATE accounts SET id = 7001 WHERE id = 10")
        try await source.execute("UPDATE accounts SET id = 7002 WHERE id = 15")
        try await source.execute("UPDATE accounts SET id = 7003, owner = 'moved twice' WHERE id = 7002")
        _ = try await fixture.replicateUntilCaughtUp("qvp", limits: fixture.configuration().target.batch)
        let staged = try await fixture.stagedChanges("qvp")
        #expect(staged.manifests.filter { $0.rows > 0 }.count == 1, "all four transactions in one batch")
        #expect(staged.rows.filter { $0.unchanged == "{\"doc\"}" }.count == 6, "the six updates left doc out")

        _ = try await ChangeApplier(endpoints: try fixture.endpoints(), sources: try fixture.configuration().sources, store: try fixture.store(),
                                    settings: .init(jobs: 1), logger: PipelineFixture.logger).applyOnce()
        let target = try await fixture.connectTarget()
        #expect(try await fixture.verify("qvp").allSatisfy { $0.matches })
        for id in ["5001", "5002", "5", "7001", "7003"] {
            let stored = try await target.query("SELECT md5(doc), owner FROM stg.qvp_accounts WHERE id = $1", [id]).rows.first?.values
            let expected = try await source.query("SELECT md5(doc), owner FROM accounts WHERE id = $1", [id]).rows.first?.values
            #expect(stored != nil && stored == expected, "id \(id): STG \(String(describing: stored)) source \(String(describing: expected))")
            #expect(stored?[0] != nil, "id \(id) lost its large value")
        }
    }
}
