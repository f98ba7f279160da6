import Foundation
import Testing
import TributaryCore
import TributaryPostgres

/// What suites share to drive `tributary run` and wait for the pipeline, instead of borrowing
/// another suite's helpers.
extension PipelineFixture {
    /// `tributary run` on this fixture's configuration (written first), started.
    func startRun(_ extra: [String] = [], environment: [String: String] = [:]) throws -> TestProcess {
        try writeConfiguration()
        let process = TestProcess(Paths.tributary, ["run", "--config", configurationDirectory, "--shutdown-timeout", "20"] + extra,
                                  environment: environment)
        try process.start()
        return process
    }

    /// Runs `body` while `tributary run` runs on this fixture; then stops the run with SIGTERM and
    /// returns how it ended. When `body` throws, the run is killed and the error says what it said.
    @discardableResult
    func withRun(_ extra: [String] = [], environment: [String: String] = [:],
                 _ body: (TestProcess) async throws -> Void) async throws -> TestProcess.Outcome {
        let run = try startRun(extra, environment: environment)
        do {
            try await body(run)
        } catch {
            run.kill()
            throw TestFailure("\(error); run said: \((await run.wait()).standardError.suffix(2000))")
        }
        run.kill(signal: SIGTERM)
        return await run.wait()
    }

    /// Waits until the target has applied each source up to its WAL insert position now.
    func waitUntilApplied(_ sources: [String], seconds: Double = 60) async throws {
        let target = try await connectTarget()
        for source in sources {
            let connection = try await connectSource(source)
            let end = LSN(try await connection.query("SELECT pg_current_wal_insert_lsn()").scalar!)!
            await connection.close()
            let deadline = ContinuousClock.now + .seconds(seconds)
            while true {
                // Before the pipeline has started, the control schema may not be there yet.
                let applied = (try? await target.query("SELECT applied_lsn FROM tributary.sources WHERE source = $1", [source]))?
                    .scalar.flatMap(LSN.init)
                if let applied, applied >= end { break }
                guard ContinuousClock.now < deadline else {
                    throw TestFailure("\(source) not applied up to \(end) in \(seconds) s (at \(applied.map(\.description) ?? "-"))")
                }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        await target.close()
    }

    /// Two sources, qvp and svp, each with the random workload's tables, snapshotted (not yet
    /// applied), and small, quick batches.
    static func twoSources(_ label: String, batchRows: Int? = nil, configure: (inout PipelineFixture) -> Void = { _ in },
                           seed: String? = nil) async throws -> PipelineFixture {
        var fixture = try await PipelineFixture.make(label, sources: [("qvp", RandomWorkload.tables), ("svp", RandomWorkload.tables)])
        configure(&fixture)
        fixture.snapshotYAML = "  jobs: 2\nbatch:\n  max_age: 200ms\n" + (batchRows.map { "  max_rows: \($0)\n" } ?? "") + "  heartbeat: 300ms\n"
        for source in ["qvp", "svp"] {
            try await fixture.connectSource(source).execute(RandomWorkload.schema)
            if let seed { try await fixture.connectSource(source).execute(seed) }
            _ = try await fixture.snapshot(source)
        }
        return fixture
    }
}
