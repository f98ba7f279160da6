import Foundation
import Testing
import TributaryCore
import TributaryPostgres
import TributaryServices

/// `tributary run`, pause, resume, drain and verify, driven as an operator would, as processes.
@Suite(.clusterLoad) struct OperatingTests {
    func fixture(_ label: String) async throws -> PipelineFixture {
        try await PipelineFixture.twoSources(label)
    }


    /// Nil also before `run` has created the control schema (a slow start on a loaded machine).
    func state(_ fixture: PipelineFixture, _ source: String) async throws -> SourceControlState? {
        let control = ControlStore(try await fixture.connectTarget())
        guard try await control.isMigrated() else { return nil }
        return try await control.state(of: source)
    }

    func slotActive(_ fixture: PipelineFixture, _ source: String) async throws -> Bool {
        try await fixture.connectSource(source).query("SELECT active FROM pg_replication_slots WHERE slot_name = $1", [fixture.source(source).slot]).scalar == "t"
    }

    func bothActive(_ fixture: PipelineFixture) async throws -> Bool {
        let qvp = try await slotActive(fixture, "qvp"), svp = try await slotActive(fixture, "svp")
        return qvp && svp
    }

    func eventually(_ what: String, seconds: Double = 30, _ condition: () async throws -> Bool) async throws {
        try await TributaryIntegrationTests.eventually(what, seconds: seconds, poll: 100, condition)
    }

    func statusOf(_ fixture: PipelineFixture, _ source: String) async throws -> SourceStatus {
        let configuration = try fixture.configuration()
        return try await StatusReader(endpoints: try fixture.endpoints(), store: try fixture.store())
            .report(try configuration.sources(named: [source])).sources[0]
    }

    @Test func pauseResumeAndDrainUnderAWorkloadLoseNothing() async throws {
        let fixture = try await fixture("operate")
        let run = try fixture.startRun()
        do {
            var workloads = PipelineFixture.randomWorkloads()
            try await fixture.randomWorkload(steps: 0..<40, &workloads)
            // The run loads the snapshots too: until then a source has no control state.
            try await eventually("both slots consumed and the snapshots applied") {
                let applied = try await state(fixture, "qvp") != nil
                return try await bothActive(fixture) && applied
            }
            let running = try await statusOf(fixture, "qvp")
            #expect(running.state == .running && running.replicatorActive == true, "\(running)")

            // Pause qvp: its slot is released within a second or so, and the WAL it retains grows.
            let paused = try await fixture.tributary(["pause", "qvp"])
            #expect(paused.status == 0 && paused.standardOutput.contains("qvp: running → paused"), "\(paused.standardOutput)\(paused.standardError)")
            try await eventually("qvp's slot released", seconds: 10) { try await !slotActive(fixture, "qvp") }
            let before = try await statusOf(fixture, "qvp")
            #expect(before.state == .paused && before.replicatorActive == false)
            #expect(before.warnings.contains { $0.hasPrefix("paused: the source retains WAL") }, "\(before.warnings)")
            let screen = try await fixture.tributary(["status", "--source", "qvp"])
            #expect(screen.standardOutput.contains("paused") && screen.standardOutput.contains("replicator stopped"), "\(screen.standardOutput)")
            try await fixture.randomWorkload(steps: 40..<120, &workloads)
            let after = try await statusOf(fixture, "qvp")
            #expect(after.retainedWALBytes! > before.retainedWALBytes!, "retained WAL grows while paused")
            #expect(try await slotActive(fixture, "svp"), "svp keeps replicating")

            // Resume; pause and resume again while the workload runs.
            #expect(try await fixture.tributary(["resume", "qvp"]).status == 0)
            try await eventually("qvp's slot consumed again", seconds: 10) { try await slotActive(fixture, "qvp") }
            let toggling = Task {
                var statuses: [Int32] = []
                for _ in 0..<3 {
                    statuses.append(try await fixture.tributary(["pause", "--all"]).status)
                    try await Task.sleep(for: .milliseconds(700))
                    statuses.append(try await fixture.tributary(["resume", "--all"]).status)
                    try await Task.sleep(for: .milliseconds(700))
                }
                return statuses
            }
            try await fixture.randomWorkload(steps: 120..<220, &workloads)
            #expect(try await toggling.value == [0, 0, 0, 0, 0, 0])

            // Switchover: the workload has stopped; drain brings STG up to date and verifies it.
            let drained = try await fixture.tributary(["drain", "--timeout", "60"])
            #expect(drained.status == 0, "\(drained.standardOutput)\(drained.standardError)")
            #expect(drained.standardOutput.contains("drain: complete"))
            #expect(drained.standardOutput.contains("verify: all 4 tables match"), "\(drained.standardOutput)")
            for source in ["qvp", "svp"] {
                let state = try #require(try await state(fixture, source))
                #expect(state.state == .drained)
                #expect(state.flushedLSN! >= state.drainLSN!)
                let status = try await statusOf(fixture, source)
                #expect(status.drainLSN == state.drainLSN)
                #expect(status.lagSeconds == 0, "a drained source is not behind, however old its last change")
            }
            try await eventually("replication stopped after the drain", seconds: 10) {
                let qvp = try await slotActive(fixture, "qvp"), svp = try await slotActive(fixture, "svp")
                return !qvp && !svp
            }
        } catch {
            run.kill()
            _ = await run.wait()
            throw error
        }
        run.kill(signal: SIGTERM)
        let outcome = await run.wait()
        #expect(outcome.status == 0, "\(outcome.standardError.suffix(2000))")
        for source in ["qvp", "svp"] { #expect(try await fixture.verify(source).allSatisfy(\.matches)) }

        // After cutover, the slots go only when asked, and only for drained sources.
        let dropped = try await fixture.tributary(["drop-slot", "--all"])
        #expect(dropped.status == 0 && dropped.standardOutput.contains("qvp: dropped replication slot"), "\(dropped.standardOutput)\(dropped.standardError)")
        #expect(try await fixture.connectSource("qvp").query("SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1",
                                                             [fixture.source("qvp").slot]).scalar == "0")
    }

    @Test func sigtermMidWorkloadThenRestartLosesNothing() async throws {
        let fixture = try await fixture("sigterm")
        var workloads = PipelineFixture.randomWorkloads()
        let first = try fixture.startRun()
        let stopping = Task {
            // Mid-workload, but only once the run is up: a SIGTERM before its handlers exist
            // would test the kernel's default action (a loaded CI machine can take seconds to start it).
            try await eventually("the run consumes both slots") { try await bothActive(fixture) }
            try await Task.sleep(for: .seconds(1))
            first.kill(signal: SIGTERM)
            return await first.wait()
        }
        try await fixture.randomWorkload(steps: 0..<150, &workloads)
        let stopped = try await stopping.value
        #expect(stopped.status == 0 && !stopped.signalled, "graceful stop: \(stopped.standardError.suffix(2000))")
        #expect(stopped.standardOutput.contains("stopped cleanly"))

        // A second process while one runs is refused: two replicators for one slot never run.
        let metricsPort = try TestClusters.freePort()
        let second = try fixture.startRun(["--metrics-port", String(metricsPort)])
        do {
            try await eventually("the restarted run consumes both slots") { try await bothActive(fixture) }
        } catch {
            second.kill()
            throw TestFailure("\(error); the run said: \((await second.wait()).standardError.suffix(1500))")
        }
        let duplicate = try await fixture.tributary(["run", "--no-apply", "--source", "qvp"])
        #expect(duplicate.status == 1 && duplicate.standardError.contains("in use by process"), "\(duplicate.standardError)")

        // A few changes for the second run itself: an idle source's heartbeats store no batch.
        try await fixture.randomWorkload(steps: 150..<160, &workloads)
        try await fixture.waitUntilApplied(["qvp", "svp"])
        // Metrics: the stages' counters and the lag gauges, in Prometheus text.
        let scraped = try await TestProcess.run("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(metricsPort)/metrics"])
        for line in ["tributary_batches_applied_total{source=\"qvp\"}", "tributary_apply_transactions_total{source=\"qvp\"}",
                     "tributary_batches_written_total{source=\"svp\"}",
                     "tributary_source_lag_bytes{source=\"qvp\"}", "tributary_staged_batches{source=\"svp\"}",
                     "tributary_source_state{source=\"qvp\",state=\"running\"} 1"] {
            #expect(scraped.standardOutput.contains(line), "\(line) in \(scraped.standardOutput)")
        }
        second.kill(signal: SIGTERM)
        #expect(await second.wait().status == 0)
        for source in ["qvp", "svp"] {
            for comparison in try await fixture.verify(source) {
                #expect(comparison.matches, "\(source) \(comparison.table)")
            }
        }
    }

    @Test func verifyNamesTheKeyRangeThatDiffersAndRunsTheIndicatorChecks() async throws {
        var fixture = try await PipelineFixture.make("verify", sources: [("qvp", ["public.items"])])
        fixture.sources[0].extraYAML = """
            checks:
              - name: items
                source: SELECT count(*) FROM items
                target: SELECT count(*) FROM stg.qvp_items WHERE NOT _deleted
              - name: amount total
                source: SELECT sum(amount) FROM items
                target: SELECT sum(amount) FROM stg.qvp_items WHERE NOT _deleted

            """
        try await fixture.connectSource("qvp").execute("""
            CREATE TABLE items (id int PRIMARY KEY, amount numeric(12,2), note text);
            INSERT INTO items SELECT i, i * 1.5, 'item ' || i FROM generate_series(1, 20000) i
            """)
        _ = try await fixture.snapshot("qvp")
        #expect(try await fixture.tributary(["apply", "--once"]).status == 0)
        let equal = try await fixture.tributary(["verify"])
        #expect(equal.status == 0, "\(equal.standardOutput)\(equal.standardError)")
        #expect(equal.standardOutput.contains("all 1 tables match") && equal.standardOutput.contains("all 2 checks agree"), "\(equal.standardOutput)")

        try await fixture.connectTarget().execute("UPDATE stg.qvp_items SET amount = amount + 1 WHERE id = 13217")
        let differs = try await fixture.tributary(["verify", "--json", "--recheck", "0"])
        #expect(differs.status == 1)
        let report = try #require(try JSONSerialization.jsonObject(with: Data(differs.standardOutput.utf8)) as? [String: Any])
        let table = try #require((report["tables"] as? [[String: Any]])?.first)
        #expect(table["match"] as? Bool == false)
        let ranges = try #require(table["differing_ranges"] as? [String])
        #expect(ranges.count == 1, "\(ranges)")
        // "(lo) <= id < (hi)" in the keys' text order, holding the altered key, and narrow.
        let bounds = ranges[0].split(separator: " ").filter { $0.hasPrefix("(") }.map { String($0.dropFirst().dropLast()) }
        #expect(bounds.count == 2 && bounds[0] <= "13217" && "13217" < bounds[1], "\(ranges)")
        let checks = try #require(report["checks"] as? [[String: Any]])
        #expect(checks.map { $0["match"] as? Bool } == [true, false], "\(checks)")
        let text = try await fixture.tributary(["verify", "--recheck", "0"])
        #expect(text.standardOutput.contains("differs where") && text.standardOutput.contains("check: amount total"), "\(text.standardOutput)")
    }

    @Test func pauseWithApplyHoldsTheApplierUntilResume() async throws {
        let fixture = try await PipelineFixture.make("pause-apply", sources: [("qvp", ["public.items"])])
        let source = try await fixture.connectSource("qvp")
        try await source.execute("CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items SELECT i, 'n' FROM generate_series(1, 10) i")
        _ = try await fixture.snapshot("qvp")
        #expect(try await fixture.tributary(["apply", "--once"]).status == 0)

        let paused = try await fixture.tributary(["pause", "qvp", "--apply"])
        #expect(paused.standardOutput.contains("(replication and apply)"), "\(paused.standardOutput)")
        try await source.execute("INSERT INTO items SELECT i, 'late' FROM generate_series(11, 20) i")
        let end = try await source.query("SELECT pg_current_wal_insert_lsn()").scalar!
        #expect(try await fixture.tributary(["replicate", "--source", "qvp", "--end-lsn", end]).status == 0)
        let held = try await fixture.tributary(["apply", "--once"])
        #expect(held.standardOutput.contains("nothing to apply"), "\(held.standardOutput)")
        #expect(try await fixture.connectTarget().query("SELECT count(*) FROM stg.qvp_items").scalar == "10")

        #expect(try await fixture.tributary(["resume", "qvp"]).standardOutput.contains("qvp: paused → running"))
        #expect(try await fixture.tributary(["apply", "--once"]).status == 0)
        #expect(try await fixture.connectTarget().query("SELECT count(*) FROM stg.qvp_items").scalar == "20")
        let bad = try await fixture.tributary(["pause"])
        #expect(bad.status != 0 && bad.standardError.contains("name the sources, or give --all"))
        let refused = try await fixture.tributary(["drop-slot", "qvp"])
        #expect(refused.status == 1 && refused.standardError.contains("not drained: run tributary drain first"), "\(refused.standardError)")
    }

    @Test func aSeparateReplicateProcessObeysPauseAndResume() async throws {
        let fixture = try await PipelineFixture.make("replicate-pause", sources: [("qvp", ["public.items"])])
        try await fixture.connectSource("qvp").execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        _ = try await fixture.snapshot("qvp")
        try fixture.writeConfiguration()
        let replicate = TestProcess(Paths.tributary, ["replicate", "--source", "qvp", "--config", fixture.configurationDirectory])
        try replicate.start()
        do {
            try await eventually("the slot consumed") { try await slotActive(fixture, "qvp") }
            #expect(try await fixture.tributary(["pause", "qvp"]).status == 0)
            try await eventually("the slot released", seconds: 10) { try await !slotActive(fixture, "qvp") }
            let source = try await fixture.connectSource("qvp")
            let before = try await source.query("SELECT pg_current_wal_insert_lsn()").scalar!
            try await source.execute("INSERT INTO items VALUES (1, 'while paused')")
            #expect(try await fixture.tributary(["resume", "qvp"]).status == 0)
            try await eventually("the slot consumed again", seconds: 10) { try await slotActive(fixture, "qvp") }
            // SIGTERM stops at the next transaction boundary, received or not: wait until the row is staged.
            let target = try await fixture.connectTarget()
            try await eventually("the row written while paused is staged") {
                try await target.query("SELECT coalesce(flushed_lsn > $1::pg_lsn, false) FROM tributary.sources WHERE source = 'qvp'", [before]).scalar == "t"
            }
        } catch {
            replicate.kill()
            _ = await replicate.wait()
            throw error
        }
        replicate.kill(signal: SIGTERM)
        let outcome = await replicate.wait()
        #expect(outcome.status == 0, "\(outcome.standardError.suffix(1500))")
        #expect(try await fixture.tributary(["apply", "--once"]).status == 0)
        #expect(try await fixture.connectTarget().query("SELECT name FROM stg.qvp_items WHERE id = 1").scalar == "while paused")
    }

    @Test func aSecondApplierOnTheSameTargetIsRefused() async throws {
        let fixture = try await PipelineFixture.make("two-appliers", sources: [("qvp", ["public.items"])])
        try await fixture.connectSource("qvp").execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        _ = try await fixture.snapshot("qvp")
        try fixture.writeConfiguration()
        let first = TestProcess(Paths.tributary, ["apply", "--config", fixture.configurationDirectory])
        try first.start()
        do {
            // The first applier holds the target once it has loaded the snapshot.
            try await eventually("the first applier loaded the snapshot") {
                try await fixture.connectTarget().query("SELECT to_regclass('stg.qvp_items') IS NOT NULL").scalar == "t"
            }
            let second = try await fixture.tributary(["apply", "--once"])
            #expect(second.status == 1, "\(second.standardOutput)\(second.standardError)")
            #expect(second.standardError.contains("another tributary apply (or run, or drain) is applying to this target"), "\(second.standardError)")
        } catch {
            first.kill()
            _ = await first.wait()
            throw error
        }
        first.kill(signal: SIGTERM)
        #expect(await first.wait().status == 0)
        // Once it is gone, applying works again.
        #expect(try await fixture.tributary(["apply", "--once"]).status == 0)
    }
}
