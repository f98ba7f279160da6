import Foundation
import Testing
import TributaryCore
import TributaryPostgres

/// The bulk load spread over processes (`snapshot --group K/N`): each makes sure of its sources'
/// slots, copies its group of tables as a table snapshot and loads it, all at once while the
/// sources change; the stream then brings the rest and STG ends equal to the sources.
@Suite(.clusterLoad) struct BulkGroupTests {
    static let tables = (1...5).map { "public.t\($0)" }

    static let schema = (1...5).map { table in
        """
        CREATE TABLE t\(table) (id int PRIMARY KEY, note text, n int);
        INSERT INTO t\(table) SELECT i, md5(i::text), i FROM generate_series(1, \(table * 3000)) i;
        """
    }.joined(separator: "\n")

    @Test func threeProcessesCopyAThirdEachAndEndEqualToTheSources() async throws {
        var fixture = try await PipelineFixture.make("bulk-groups", sources: [("qvp", Self.tables), ("svp", Self.tables)])
        fixture.snapshotYAML = "  jobs: 2\nbatch:\n  max_age: 200ms\n  heartbeat: 300ms\n"
        for source in ["qvp", "svp"] { try await fixture.connectSource(source).execute(Self.schema) }
        let current = fixture
        let writer = BackgroundWriter()
        writer.start {
            let qvp = try await current.connectSource("qvp"), svp = try await current.connectSource("svp")
            var round = 0
            while !writer.stopped {
                for connection in [qvp, svp] {
                    let table = "t\(round % 5 + 1)"
                    try await connection.execute("""
                        UPDATE \(table) SET n = n + 1, note = 'round \(round)' WHERE id % 97 = \(round % 97);
                        INSERT INTO \(table) VALUES (\(1_000_000 + round), 'new \(round)', \(round));
                        DELETE FROM \(table) WHERE id = \(round * 13 + 1);
                        """)
                }
                round += 1
                try await Task.sleep(for: .milliseconds(10))
            }
            return round
        }
        let groups = try await withThrowingTaskGroup(of: TestProcess.Outcome.self) { group in
            for index in 1...3 {
                group.addTask { try await current.tributary(["snapshot", "--group", "\(index)/3", "--apply", "--jobs", "1"]) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let rounds = try await writer.stop()
        #expect(rounds > 10)
        for outcome in groups { #expect(outcome.status == 0, "\(outcome.standardOutput)\(outcome.standardError)") }
        let lines = groups.flatMap { $0.standardOutput.split(separator: "\n").map(String.init) }
        for source in ["qvp", "svp"] {
            // One process made the slot; the others waited for it and found it.
            #expect(lines.filter { $0.contains("of \(source): made slot") }.count == 1, "\(lines)")
            // Groups of 2, 2 and 1 tables: every table copied once.
            let copied = lines.filter { $0.contains("of \(source):") }.compactMap { line in
                line.firstMatch(of: /; (\d+) tables,/).map { Int($0.1)! }
            }
            #expect(copied.sorted() == [1, 2, 2], "\(lines)")
        }
        // The stream from the slots' point brings what changed during and after the copies.
        try await fixture.connectSource("qvp").execute("UPDATE t1 SET note = 'after' WHERE id < 50")
        try await fixture.withRun { _ in
            let drained = try await fixture.tributary(["drain", "--timeout", "120", "--no-verify"])
            #expect(drained.status == 0, "\(drained.standardOutput)\(drained.standardError)")
        }
        for source in ["qvp", "svp"] {
            let comparisons = try await fixture.verify(source)
            #expect(comparisons.count == 5)
            for comparison in comparisons { #expect(comparison.matches, "\(comparison)\n\(lines.joined(separator: "\n"))") }
        }
        // Run again (a group whose process failed is rerun as it was): nothing is copied twice.
        let again = try await fixture.tributary(["snapshot", "--group", "2/3"])
        #expect(again.status == 0, "\(again.standardOutput)\(again.standardError.suffix(3000))")
        #expect(again.standardOutput.split(separator: "\n").filter { $0.contains("nothing copied") }.count == 2, "\(again.standardOutput)")
    }

    /// Loads of one source's snapshots take turns (two would fill and promote the same load
    /// tables), but the applier does not wait its turn: it goes on with the stream, and merges
    /// the table snapshot once the other process is done.
    @Test func theApplierGoesOnWithTheStreamWhileAnotherProcessLoadsTheSourcesSnapshots() async throws {
        let fixture = try await PipelineFixture.twoSources("bulk-load-turns")
        for source in ["qvp", "svp"] { _ = try await fixture.load(source) }
        let copied = try await fixture.tributary(["snapshot", "--source", "qvp", "--table", "public.ledger"])
        #expect(copied.status == 0, "\(copied.standardOutput)\(copied.standardError)")
        // Another process loading qvp's snapshots, as far as the lock tells.
        let other = try await fixture.connectTarget()
        try await other.execute("SELECT pg_advisory_lock(hashtextextended('tributary-load:qvp', 0))")
        let target = try await fixture.connectTarget()
        let tableSnapshotsApplied = "SELECT count(*) FROM tributary.snapshots WHERE source = 'qvp' AND kind = 'tables' AND state = 'applied'"
        var workloads = PipelineFixture.randomWorkloads()
        try await fixture.withRun { _ in
            try await fixture.randomWorkload(steps: 0..<30, &workloads)
            try await fixture.waitUntilApplied(["qvp", "svp"], seconds: 60)
            #expect(try await target.query(tableSnapshotsApplied).scalar == "0")
            try await other.execute("SELECT pg_advisory_unlock(hashtextextended('tributary-load:qvp', 0))")
            try await eventually("the table snapshot merged once the other load is done", seconds: 60) {
                try await target.query(tableSnapshotsApplied).scalar == "1"
            }
            try await fixture.randomWorkload(steps: 30..<40, &workloads)
            try await fixture.waitUntilApplied(["qvp", "svp"], seconds: 60)
        }
        for source in ["qvp", "svp"] {
            for comparison in try await fixture.verify(source) { #expect(comparison.matches, "\(comparison)") }
        }
    }

    /// A source whose slot is gone but which has a snapshot is a lost slot: a group's new slot would
    /// pass over what the old one had not delivered for the tables other groups do not copy again.
    @Test func aGroupOfASourceWhoseSlotIsLostIsRefusedWithTheResync() async throws {
        let fixture = try await PipelineFixture.twoSources("bulk-groups-lost")
        let qvp = try await fixture.connectSource("qvp")
        try await qvp.execute("SELECT pg_drop_replication_slot('\(fixture.source("qvp").slot)')")
        let outcome = try await fixture.tributary(["snapshot", "--source", "qvp", "--group", "1/2"])
        #expect(outcome.status == 1 && outcome.standardError.contains("snapshot --source qvp --resync"), "\(outcome.standardError)")
        let slots = try await qvp.query("SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1", [fixture.source("qvp").slot])
        #expect(slots.scalar == "0")
    }

    /// A process killed between making the slot and writing the empty snapshot's manifest: the
    /// next group finishes that snapshot rather than taking the slot for an unfinished full one.
    @Test func aSlotOnlySnapshotKilledBeforeItsManifestIsFinishedByTheNextGroup() async throws {
        var fixture = try await PipelineFixture.make("bulk-groups-killed", sources: [("qvp", Self.tables)])
        fixture.snapshotYAML = "  jobs: 1\n"
        try await fixture.connectSource("qvp").execute(Self.schema)
        let first = try await fixture.tributary(["snapshot", "--group", "1/2"])
        #expect(first.status == 0 && first.standardOutput.contains("made slot"), "\(first.standardOutput)\(first.standardError)")
        let manifests = try FileManager.default.subpathsOfDirectory(atPath: fixture.stagingDirectory + "/qvp/snapshot")
            .filter { $0.hasSuffix("manifest.json") }
        #expect(manifests.count == 1)
        for manifest in manifests { try FileManager.default.removeItem(atPath: fixture.stagingDirectory + "/qvp/snapshot/" + manifest) }
        let second = try await fixture.tributary(["snapshot", "--group", "2/2", "--apply"])
        #expect(second.status == 0, "\(second.standardOutput)\(second.standardError)")
        #expect(second.standardError.contains("finished a slot-only snapshot that was killed before its manifest"), "\(second.standardError)")
        // Group 1's table snapshot is complete; group 2's is copied; both load.
        let again = try await fixture.tributary(["snapshot", "--group", "1/2", "--apply"])
        #expect(again.status == 0 && again.standardOutput.contains("nothing copied"), "\(again.standardOutput)\(again.standardError)")
        for comparison in try await fixture.verify("qvp") { #expect(comparison.matches, "\(comparison)") }
    }

    @Test func aGroupThatDoesNotExistIsRefusedWithTheForm() async throws {
        let fixture = try await PipelineFixture.make("bulk-groups-usage", sources: [("qvp", Self.tables)])
        for group in ["4/3", "0/3", "2", "a/b"] {
            let outcome = try await fixture.tributary(["snapshot", "--group", group])
            #expect(outcome.status == 64 && outcome.standardError.contains("K/N"), "\(group): \(outcome.standardError)")
        }
        let mixed = try await fixture.tributary(["snapshot", "--group", "1/2", "--table", "public.t1"])
        #expect(mixed.status == 64 && mixed.standardError.contains("--group"), "\(mixed.standardError)")
    }
}
