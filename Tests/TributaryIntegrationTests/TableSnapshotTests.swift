import Foundation
import Testing
import TributaryCore
import TributaryPostgres
import TributaryTestSupport

/// Per-table snapshots (DESIGN.md §1): a table added to a running migration, a suspect STG table
/// resynced under a workload, a killed full snapshot resumed; each ends equal to its source.
@Suite(.clusterLoad) struct TableSnapshotTests {

    /// Changes to `extra` (updates, inserts, deletes) on a connection of their own.
    func churn(_ fixture: PipelineFixture, rounds: Range<Int>) async throws {
        let qvp = try await fixture.connectSource("qvp")
        for round in rounds {
            try await qvp.execute("""
                UPDATE extra SET note = 'round \(round)', n = n + 1 WHERE id % 17 = \(round % 17);
                INSERT INTO extra VALUES (\(100_000 + round), 'new \(round)', \(round));
                DELETE FROM extra WHERE id = \(round * 7 + 1);
                """)
        }
    }

    @Test func aTableAddedWhileRunningIsSnapshottedAndFollowed() async throws {
        var fixture = try await PipelineFixture.twoSources("tables-add")
        var workloads = PipelineFixture.randomWorkloads()
        let run = try fixture.startRun()
        do {
            try await fixture.randomWorkload(steps: 0..<40, &workloads)
            let qvp = try await fixture.connectSource("qvp")
            try await qvp.execute("""
                CREATE TABLE extra (id int PRIMARY KEY, note text, n int);
                INSERT INTO extra SELECT i, md5(i::text), i FROM generate_series(1, 20000) i;
                """)
            // In the YAML now, not snapshotted: check says so, with the command.
            fixture.sources[0].tables.append("public.extra")
            let check = try await fixture.tributary(["check"])
            #expect(check.standardOutput.contains("not snapshotted yet: public.extra")
                    && check.standardOutput.contains("--table public.extra"), "\(check.standardOutput)")
            // The table changes before, while and after it is copied.
            try await churn(fixture, rounds: 0..<20)
            let current = fixture
            let during = Task { try await churn(current, rounds: 20..<120) }
            let snapshot = try await fixture.tributary(["snapshot", "--source", "qvp", "--table", "public.extra"])
            try await during.value
            #expect(snapshot.status == 0 && snapshot.standardOutput.contains("table snapshot qvp: public.extra"),
                    "\(snapshot.standardOutput)\(snapshot.standardError)")
            try await churn(fixture, rounds: 120..<160)
            try await fixture.randomWorkload(steps: 40..<80, &workloads)
            let drained = try await fixture.tributary(["drain", "--timeout", "120", "--no-verify"])
            #expect(drained.status == 0, "\(drained.standardOutput)\(drained.standardError)")
        } catch {
            run.kill()
            let outcome = await run.wait()
            throw TestFailure("\(error); run said \(outcome.standardError.suffix(2000))")
        }
        run.kill(signal: SIGTERM)
        _ = await run.wait()
        for comparison in try await fixture.verify("qvp") { #expect(comparison.matches, "\(comparison)") }
        let check = try await fixture.tributary(["check"])
        #expect(!check.standardOutput.contains("not snapshotted yet"), "\(check.standardOutput)")
    }

    /// A table added while running gets its STG table from its first change, before its copy is
    /// in. An update that leaves a large value out (unchanged TOAST) of a row STG does not hold
    /// yet, merged then, stored the value as NULL, newer than the copy, which lost to it: 6,600
    /// of 15,000 rows lost their document. The table's files now wait for its copy and are merged
    /// over it.
    @Test func updatesLeavingALargeValueOutWhileAnAddedTableIsCopiedLoseNothing() async throws {
        var fixture = try await PipelineFixture.twoSources("toast-add")
        let run = try fixture.startRun()
        let outcome: TestProcess.Outcome
        do {
            let qvp = try await fixture.connectSource("qvp")
            // Documents of about 10 KB of random hex: stored out of line, so an update that does not
            // set them sends them as unchanged TOAST.
            try await qvp.execute("""
                CREATE TABLE big (id int PRIMARY KEY, doc text, n int);
                INSERT INTO big SELECT i, (SELECT string_agg(md5(random()::text || i || g), '') FROM generate_series(1, 300) g), i
                FROM generate_series(1, 15000) i;
                """)
            fixture.sources[0].tables.append("public.big")
            let current = fixture
            let writer = BackgroundWriter()
            writer.start {
                let connection = try await current.connectSource("qvp")
                var round = 0
                while !writer.stopped {
                    try await connection.execute("UPDATE big SET n = n + 1 WHERE id % 50 = \(round % 50)")
                    round += 1
                    try await Task.sleep(for: .milliseconds(20))
                }
                return round
            }
            let snapshot = try await fixture.tributary(["snapshot", "--source", "qvp", "--table", "public.big", "--jobs", "1"])
            let updates = try await writer.stop()
            #expect(snapshot.status == 0, "\(snapshot.standardOutput)\(snapshot.standardError)")
            #expect(updates > 10)
            let drained = try await fixture.tributary(["drain", "--timeout", "120", "--no-verify"])
            #expect(drained.status == 0, "\(drained.standardOutput)\(drained.standardError)")
        } catch {
            run.kill()
            let outcome = await run.wait()
            throw TestFailure("\(error); run said \(outcome.standardError.suffix(2000))")
        }
        run.kill(signal: SIGTERM)
        outcome = await run.wait()
        // The case this is about happened: changes came before the copy and waited for it.
        #expect(outcome.standardError.contains("its changes wait for its copy"), "\(outcome.standardError.suffix(2000))")
        #expect(outcome.standardError.contains("changes that waited for the copy merged over it"), "\(outcome.standardError.suffix(2000))")
        let target = try await fixture.connectTarget()
        #expect(try await target.query("SELECT count(*) FROM stg.qvp_big WHERE doc IS NULL").scalar == "0", "rows that lost their document")
        #expect(try await target.query("SELECT count(*) FROM tributary.deferred_files").scalar == "0")
        #expect(try await target.query("SELECT count(*) FROM tributary.awaiting_copy").scalar == "0")
        for comparison in try await fixture.verify("qvp") where comparison.table == "public.big" { #expect(comparison.matches, "\(comparison)") }
    }

    @Test func aTamperedSTGTableIsResyncedUnderAWorkloadAndBLFollows() async throws {
        let fixture = try await DemoSources.fixture("tables-resync")
        let run = try fixture.startRun()
        var demo = DemoWorkload(seed: UInt64.random(in: 1...UInt64.max / 2))
        do {
            try await fixture.demoWorkload(&demo, steps: 60)
            try await fixture.waitUntilApplied(["qvp", "svp"])
            // Rows changed, deleted and made up by hand in STG: the source never said so.
            let target = try await fixture.connectTarget()
            try await target.execute("""
                UPDATE stg.qvp_claims SET amount = -1 WHERE id % 7 = 0;
                DELETE FROM stg.qvp_claims WHERE id % 11 = 0;
                CREATE TEMP TABLE ghosts AS SELECT * FROM stg.qvp_claims WHERE id <= 20;
                UPDATE ghosts SET id = id + 9000000;
                INSERT INTO stg.qvp_claims SELECT * FROM ghosts;
                """)
            #expect(try await fixture.verify("qvp").contains { !$0.matches }, "the tampering shows")
            let qvp = try await fixture.connectSource("qvp"), svp = try await fixture.connectSource("svp")
            let otherSeed = demo.seed &+ 1
            let during = Task {
                var more = DemoWorkload(seed: otherSeed)
                more.next = 50_000  // its new rows' keys apart from the main workload's
                try await more.prepare(qvp: qvp, svp: svp)
                for _ in 0..<80 { try await more.step(qvp: qvp, svp: svp) }
            }
            let resync = try await fixture.tributary(["snapshot", "--source", "qvp", "--table", "claims"])
            try await during.value
            #expect(resync.status == 0, "\(resync.standardOutput)\(resync.standardError)")
            try await fixture.demoWorkload(&demo, steps: 40)
            let drained = try await fixture.tributary(["drain", "--timeout", "120", "--no-verify"])
            #expect(drained.status == 0, "\(drained.standardOutput)\(drained.standardError)")
        } catch {
            run.kill()
            let outcome = await run.wait()
            throw TestFailure("\(error); run said \(outcome.standardError.suffix(2000))")
        }
        run.kill(signal: SIGTERM)
        _ = await run.wait()
        for source in ["qvp", "svp"] {
            for comparison in try await fixture.verify(source) { #expect(comparison.matches, "\(comparison)") }
        }
        // BL took in the merged rows (its watermarks went back to the table snapshot's point).
        for difference in try await fixture.blCheck() { #expect(difference.matches, "\(difference)") }
    }

    /// The merge of a table snapshot logs its keys at its consistent point, behind what the applier
    /// logged since. A BL run whose snapshot missed the merge but saw those later batches would set
    /// its watermark past the merged keys, and BL would keep stale rows for good (CI caught that once
    /// in the test above). So a merge waits for the runs reading its table: here a transaction
    /// holding the lock a run holds (ROW SHARE) keeps the merge waiting until it ends, and after it
    /// BL takes the merged rows in.
    @Test func aTableSnapshotMergeWaitsForBLRunsReadingTheTable() async throws {
        let fixture = try await DemoSources.fixture("tables-resync-lock")
        #expect(try await fixture.tributary(["apply", "--once"]).status == 0)
        #expect(try await fixture.tributary(["transform"]).status == 0)
        let target = try await fixture.connectTarget()
        // STG altered by hand and taken into BL by a full reload: only the merge can put it right.
        try await target.execute("UPDATE stg.qvp_claims SET amount = -1 WHERE id % 7 = 0")
        #expect(try await fixture.tributary(["transform", "--full", "--model", "claim"]).status == 0)
        #expect(try await fixture.blCheck().contains { !$0.matches } == false, "BL equals a reload of the altered STG")
        let holder = try await fixture.connectTarget()
        try await holder.execute("BEGIN; LOCK TABLE stg.qvp_claims IN ROW SHARE MODE")
        let resync = Task { try await fixture.tributary(["snapshot", "--source", "qvp", "--table", "claims", "--apply"]) }
        // The merge asks for its lock and waits (polled, not timed: the copy comes first).
        var waited = false
        for _ in 0..<600 where !waited {
            waited = try await target.query("""
                SELECT count(*) FROM pg_locks WHERE relation = 'stg.qvp_claims'::regclass AND mode = 'ExclusiveLock' AND NOT granted
                """).scalar(Int.self) == 1
            if !waited { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(waited, "the merge waits for the lock BL runs hold")
        #expect(try await target.query("SELECT count(*) FROM stg.qvp_claims WHERE amount = -1").scalar(Int.self) > 0,
                "nothing merged while a run holds the table")
        try await holder.execute("COMMIT")
        let outcome = try await resync.value
        #expect(outcome.status == 0, "\(outcome.standardOutput)\(outcome.standardError)")
        #expect(try await target.query("SELECT count(*) FROM stg.qvp_claims WHERE amount = -1").scalar(Int.self) == 0)
        let caughtUp = try await fixture.tributary(["transform"])
        #expect(caughtUp.status == 0 && caughtUp.standardOutput.contains("claim "), "\(caughtUp.standardOutput)\(caughtUp.standardError)")
        for difference in try await fixture.blCheck() { #expect(difference.matches, "\(difference)") }
        #expect(try await target.query("SELECT count(*) FROM bl.claim WHERE amount = -1").scalar(Int.self) == 0, "BL took the merged rows in")
    }

    /// A full snapshot killed three times at seeded moments, under a workload, each rerun taking it
    /// up again without --restart; then the stream from the slot and the table snapshots the
    /// resumes made: STG equals the source.
    @Test func aKilledSnapshotResumesOnRerunWithoutRestart() async throws {
        let seed = ProcessInfo.processInfo.environment["TRIBUTARY_TEST_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64.max / 2)
        print("aKilledSnapshotResumesOnRerunWithoutRestart seed \(seed)")
        var generator = SeededGenerator(seed: seed)
        let tables = ["public.t1", "public.t2", "public.t3", "public.t4"]
        var fixture = try await PipelineFixture.make("tables-resume", sources: [("qvp", tables)])
        fixture.snapshotYAML = "  jobs: 2\n  part_size: 256KiB\n  range_size: 4MiB\n"
        let qvp = try await fixture.connectSource("qvp")
        for (index, table) in ["t1", "t2", "t3", "t4"].enumerated() {
            try await qvp.execute("""
                CREATE TABLE \(table) (id int PRIMARY KEY, note text, n int);
                INSERT INTO \(table) SELECT i, repeat(md5(i::text), 3), i FROM generate_series(1, \(100_000 * (index + 1))) i;
                """)
        }
        try fixture.writeConfiguration()
        var copiedAgain: [String] = []
        var finished = false
        /// Part files stored so far, of any snapshot of the source.
        func parts() -> Int {
            let found = FileManager.default.enumerator(atPath: fixture.stagingDirectory + "/qvp")?.allObjects as? [String] ?? []
            return found.filter { $0.hasSuffix(".csv.gz") }.count
        }
        for kill in 1...3 {
            // Killed once a seeded number of new parts is stored: somewhere in the copy, never before or after it.
            let before = parts(), wanted = Int.random(in: 20...400, using: &generator)
            let process = TestProcess(Paths.tributary, ["snapshot", "--config", fixture.configurationDirectory])
            try process.start()
            while parts() < before + wanted && !process.hasExited { try await Task.sleep(for: .milliseconds(5)) }
            print("kill \(kill) after \(parts() - before) new parts")
            process.kill()
            let outcome = await process.wait()
            if !outcome.signalled {
                // Done before the kill: it finished (resuming or not); nothing left to resume.
                #expect(outcome.status == 0, "\(outcome.standardError.suffix(1500))")
                copiedAgain.append("kill \(kill) came too late: \(outcome.standardOutput)")
                finished = true
                break
            }
            // Changes between the attempts: the stream from the slot brings them.
            try await qvp.execute("UPDATE t\(kill) SET n = n + 1000 WHERE id % 13 = \(kill); DELETE FROM t4 WHERE id % 101 = \(kill)")
        }
        if !finished {
            let final = try await fixture.tributary(["snapshot"])
            #expect(final.status == 0, "a rerun resumes, never refuses: \(final.standardOutput)\(final.standardError)")
            copiedAgain.append(final.standardOutput)
        }
        print("aKilledSnapshotResumesOnRerunWithoutRestart: " + copiedAgain.joined(separator: " | "))
        try await qvp.execute("UPDATE t2 SET note = 'after' WHERE id % 7 = 0; INSERT INTO t3 VALUES (9999999, 'late', 1)")
        let end = try await qvp.query("SELECT pg_current_wal_insert_lsn()").scalar!
        let replicated = try await fixture.tributary(["replicate", "--source", "qvp", "--end-lsn", end])
        #expect(replicated.status == 0, "\(replicated.standardOutput)\(replicated.standardError.suffix(2000))")
        let applied = try await fixture.tributary(["apply", "--once"])
        #expect(applied.status == 0, "\(applied.standardOutput)\(applied.standardError)")
        for comparison in try await fixture.verify("qvp") { #expect(comparison.matches, "\(comparison)") }
        let target = try await fixture.connectTarget()
        #expect(try await target.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'tributary_load'").scalar == "0",
                "no load table is left behind")
    }

    /// SIGTERM (systemd's stop, Kubernetes', Ctrl-C) ends `snapshot --apply` at a safe point instead
    /// of where a kill would: the load workers commit their open frozen runs, so nothing they loaded
    /// is loaded again, and the rerun takes the snapshot up from there.
    /// `--group 1/1` too: its load of the group's table snapshot commits the same way.
    @Test(arguments: [[], ["--group", "1/1"]])
    func aSnapshotStoppedBySIGTERMKeepsWhatItLoadedAndResumes(_ options: [String]) async throws {
        var fixture = try await PipelineFixture.make("snapshot-stop\(options.isEmpty ? "" : "-group")", sources: [("qvp", ["public.t1", "public.t2"])])
        fixture.snapshotYAML = "  jobs: 2\n  part_size: 256KiB\n  range_size: 4MiB\n"
        let qvp = try await fixture.connectSource("qvp")
        for (index, table) in ["t1", "t2"].enumerated() {
            try await qvp.execute("""
                CREATE TABLE \(table) (id int PRIMARY KEY, note text, n int);
                INSERT INTO \(table) SELECT i, repeat(md5(i::text), 3), i FROM generate_series(1, \(300_000 * (index + 1))) i;
                """)
        }
        try fixture.writeConfiguration()
        let process = TestProcess(Paths.tributary, ["snapshot", "--apply"] + options
                                  + ["--config", fixture.configurationDirectory, "--log-level", "debug"])
        try process.start()
        // Loaded parts sit in the workers' frozen runs (freeze_max 4GiB), uncommitted, until their tables are in.
        func loaded() -> Int { process.errorSoFar().components(separatedBy: "part loaded").count - 1 }
        while loaded() < 3 && !process.hasExited { try await Task.sleep(for: .milliseconds(5)) }
        let seen = loaded()
        process.kill(signal: SIGTERM)
        let stopped = await process.wait()
        #expect(!stopped.signalled && stopped.status == 75, "exit \(stopped.status): \(stopped.standardError.suffix(1500))")
        #expect(stopped.standardError.contains("run the same tributary snapshot command again to resume it"), "\(stopped.standardError.suffix(800))")
        let target = try await fixture.connectTarget()
        let committed = Int(try await target.query("SELECT count(*) FROM tributary.snapshot_parts").scalar ?? "0") ?? 0
        #expect(committed >= seen, "the \(seen) parts loaded before the stop were committed (\(committed) recorded)")
        #expect(try await target.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'stg'").scalar == "0",
                "no table reached STG half loaded")

        let rerun = try await fixture.tributary(["snapshot", "--apply"] + options)
        #expect(rerun.status == 0, "\(rerun.standardOutput)\(rerun.standardError.suffix(1500))")
        #expect(rerun.standardOutput.contains("parts were loaded by an earlier run"), "\(rerun.standardOutput)")
        for comparison in try await fixture.verify("qvp") { #expect(comparison.matches, "\(comparison)") }
    }
}
