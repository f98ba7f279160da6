import Foundation
import Testing
import TributaryCore
import TributaryPostgres
import TributaryServices

/// A DBA restarting a source for maintenance must never find it hung by the migration: a fast
/// shutdown completes while `tributary run` holds an open batch or is busy, and `run` picks up
/// again by itself once the source is back, losing nothing.
@Suite(.clusterLoad) struct SourceRestartTests {
    @Test func fastShutdownCompletesWhileRunHasABatchOpenOrIsBusyAndRunReconnects() async throws {
        let cluster = try await PrivateCluster.start("restart")
        var fixture = try await PipelineFixture.make("restart", sources: [("qvp", ["public.events"])], sourceCluster: cluster)
        // Batches stay open for seconds: a shutdown always meets one.
        fixture.snapshotYAML = "  jobs: 1\nbatch:\n  max_age: 5s\n  heartbeat: 300ms\n"
        let conninfo = fixture.source("qvp").conninfo
        try await fixture.connectSource("qvp").execute("CREATE TABLE events (id bigserial PRIMARY KEY, note text)")
        _ = try await fixture.snapshot("qvp")
        try fixture.writeConfiguration()
        let run = TestProcess(Paths.tributary, ["run", "--config", fixture.configurationDirectory, "--shutdown-timeout", "20"])
        try run.start()
        do {
            try await eventually("run consumes the slot") { try await slotActive(conninfo, fixture.source("qvp").slot) }

            // An open batch: one insert, then the DBA's fast shutdown at once.
            try await insert(conninfo, note: "single")
            let single = await cluster.shutdown(mode: "fast", seconds: 10)
            #expect(single.stopped, "a fast shutdown with a batch open did not complete within 10 s")
            if !single.stopped { _ = await cluster.shutdown(mode: "immediate", seconds: 30) }
            try await cluster.startAgain()

            // Busy: a writer commits as fast as it can while the server shuts down.
            try await eventually("run reconnects after the restart", seconds: 60) {
                try await slotActive(conninfo, fixture.source("qvp").slot)
            }
            let writer = BackgroundWriter()
            writer.start {
                let connection = try await PostgresConnection.connect(conninfo, name: "writer")
                var committed = 0
                while !writer.stopped {
                    // The shutdown ends this session: what committed before it counts.
                    guard (try? await connection.query("INSERT INTO events (note) VALUES ('busy')")) != nil else { break }
                    committed += 1
                }
                return committed
            }
            try await Task.sleep(for: .seconds(1))
            let busy = await cluster.shutdown(mode: "fast", seconds: 10)
            let committed = try await writer.stop()
            #expect(busy.stopped, "a fast shutdown under load did not complete within 10 s")
            #expect(committed > 0)
            if !busy.stopped { _ = await cluster.shutdown(mode: "immediate", seconds: 30) }
            try await cluster.startAgain()

            try await eventually("run reconnects after the second restart", seconds: 60) {
                try await slotActive(conninfo, fixture.source("qvp").slot)
            }
            try await insert(conninfo, note: "after")
            try await fixture.waitUntilApplied(["qvp"])
        } catch {
            run.kill()
            let outcome = await run.wait()
            await cluster.destroy()
            throw TestFailure("\(error); run said: \(outcome.standardError.suffix(3000))")
        }
        // Still the same process: it never gave up.
        run.kill(signal: SIGTERM)
        let outcome = await run.wait()
        #expect(outcome.status == 0, "\(outcome.standardError.suffix(3000))")
        for comparison in try await fixture.verify("qvp") {
            #expect(comparison.matches, "\(comparison)")
        }
        await cluster.destroy()
    }

    func insert(_ conninfo: String, note: String) async throws {
        let connection = try await PostgresConnection.connect(conninfo, name: "qvp")
        try await connection.query("INSERT INTO events (note) VALUES ($1)", [note])
        await connection.close()
    }

    func slotActive(_ conninfo: String, _ slot: String) async throws -> Bool {
        guard let connection = try? await PostgresConnection.connect(conninfo, name: "qvp") else { return false }
        defer { Task { await connection.close() } }
        return try await connection.query("SELECT active FROM pg_replication_slots WHERE slot_name = $1", [slot]).scalar == "t"
    }

    func eventually(_ what: String, seconds: Double = 30, _ condition: () async throws -> Bool) async throws {
        try await TributaryIntegrationTests.eventually(what, seconds: seconds, poll: 100, condition)
    }
}
