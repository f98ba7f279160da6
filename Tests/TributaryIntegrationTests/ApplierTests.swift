import Foundation
import Testing
import TributaryCore
import TributaryPostgres
@testable import TributaryServices

/// The applier: STG follows the sources exactly, whatever the workload, order or failure.
@Suite(.clusterLoad) struct ApplierTests {
    static let tables = ["public.accounts", "public.ledger"]

    func twoSourceFixture(_ label: String, configure: (inout PipelineFixture) -> Void = { _ in },
                          seed: String? = nil) async throws -> PipelineFixture {
        var fixture = try await PipelineFixture.make(label, sources: [("qvp", Self.tables), ("svp", Self.tables)])
        configure(&fixture)
        // Small batches: the workload spans many, whatever the machine's speed.
        fixture.snapshotYAML = "  jobs: 2\nbatch:\n  max_age: 200ms\n  max_rows: 100\n  heartbeat: 300ms\n"
        for source in ["qvp", "svp"] {
            try await fixture.connectSource(source).execute(RandomWorkload.schema)
            if let seed { try await fixture.connectSource(source).execute(seed) }
            _ = try await fixture.snapshot(source)
        }
        return fixture
    }

    func replicator(_ fixture: PipelineFixture, _ source: String, stop: StopSignal) throws -> Replicator {
        let configuration = try fixture.configuration()
        var settings = Replicator.Settings(limits: configuration.target.batch, heartbeatInterval: .milliseconds(300))
        settings.statusInterval = .seconds(1)
        let notifier = TargetNotifier(target: try fixture.endpoints().target, purpose: "replicate \(source)", logger: PipelineFixture.logger)
        return Replicator(source: try configuration.sources(named: [source])[0], endpoints: try fixture.endpoints(), settings: settings,
                          store: try fixture.store(),
                          workDirectory: configuration.target.workDirectory, logger: PipelineFixture.logger, stop: stop,
                          notifier: notifier)
    }

    /// The applier of `run`, in this process, until `stop`.
    func runApplier(_ fixture: PipelineFixture, stop: StopSignal) async throws {
        let configuration = try fixture.configuration()
        var pipeline = Pipeline(configuration: configuration, endpoints: try fixture.endpoints(), store: try fixture.store(),
                                configurationDirectory: nil, logger: PipelineFixture.logger)
        pipeline.applySettings = ChangeApplier.Settings(jobs: 2)
        pipeline.applySettings.schedule.pollInterval = .seconds(2)
        var selection = Pipeline.Selection(sources: configuration.sources)
        selection.replicate = false
        selection.collect = false
        selection.transform = false
        selection.sync = false
        try await pipeline.run(pipeline.parts(selection), shutdownTimeout: .seconds(30), signals: false, stop: stop)
    }

    /// Waits until the target has applied each source up to its WAL insert position now.
    func waitUntilApplied(_ fixture: PipelineFixture, sources: [String], seconds: Double = 60) async throws {
        let target = try await fixture.connectTarget()
        for source in sources {
            let connection = try await fixture.connectSource(source)
            let end = LSN(try await connection.query("SELECT pg_current_wal_insert_lsn()").scalar!)!
            let deadline = ContinuousClock.now + .seconds(seconds)
            while true {
                // Before the pipeline has started, the control schema may not be there yet.
                let applied = (try? await target.query("SELECT applied_lsn FROM tributary.sources WHERE source = $1", [source]))?
                    .scalar.flatMap(LSN.init)
                if let applied, applied >= end { break }
                guard ContinuousClock.now < deadline else { throw TestFailure("\(source) not applied up to \(end) in \(seconds) s (at \(applied.map(\.description) ?? "-"))") }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    @Test func randomWorkloadOnBothSourcesEndsEqualInSTG() async throws {
        try await runRandomWorkloadEndsEqual(try await twoSourceFixture("e2e"), steps: 250)
    }

    /// Replicators for both sources and the applier run while a seeded random workload (with a
    /// column added mid-stream on qvp) runs; afterwards every table equals its STG table.
    func runRandomWorkloadEndsEqual(_ fixture: PipelineFixture, steps: Int) async throws {
        let stop = StopSignal()
        let replicators = try ["qvp", "svp"].map { source in
            let replicator = try replicator(fixture, source, stop: stop)
            return Task { try await replicator.run() }
        }
        let applying = Task { try await runApplier(fixture, stop: stop) }

        do {
            for (index, source) in ["qvp", "svp"].enumerated() {
                var workload = RandomWorkload(seed: UInt64.random(in: 1...UInt64.max))
                let one = try await fixture.connectSource(source), two = try await fixture.connectSource(source)
                for step in 0..<steps {
                    try await workload.step(one, two, addColumnAt: index == 0 ? steps / 2 : nil, step: step)
                }
            }
            try await waitUntilApplied(fixture, sources: ["qvp", "svp"])
        } catch {
            // Background work must end before the test does, whatever happened.
            stop.request()
            for replicator in replicators { _ = try? await replicator.value }
            _ = try? await applying.value
            throw error
        }
        stop.request()
        for replicator in replicators { _ = try await replicator.value }
        try await applying.value

        for source in ["qvp", "svp"] {
            let comparisons = try await fixture.verify(source)
            #expect(comparisons.count == 2)
            for comparison in comparisons {
                #expect(comparison.matches, "\(source) \(comparison.table): \(comparison.sourceRows) rows vs \(comparison.stagingRows ?? -1), differs where \(comparison.differingRanges)")
            }
        }
        let target = try await fixture.connectTarget()
        // The column added mid-stream is in STG with the values the source has.
        #expect(try await target.query("SELECT count(*) FROM stg.qvp_accounts WHERE region = 'eu' AND NOT _deleted").scalar
                == (try await fixture.connectSource("qvp").query("SELECT count(*) FROM accounts").scalar))
        #expect(try await target.query("SELECT count(*) FROM tributary.applied_batches").scalar.map { Int($0)! }! > 4)
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
