import Foundation
import Testing
import TributaryCore
import TributaryPostgres
import TributaryServices

/// `apply --once` killed with SIGKILL at several moments, inside frozen runs and between parts: each time what the database holds is
/// consistent (every loaded part recorded once, no STG table unless complete), and a rerun
/// finishes with the right contents and no duplicates.
@Suite(.clusterLoad) struct ApplyKillTests {
    @Test func killedLoadResumesWithoutDuplicates() async throws {
        var fixture = try await PipelineFixture.make("kill", sources: [("qvp", ["public.orders", "public.lines"])])
        // Frozen runs commit every 1MiB: kills land inside runs (undone whole) and between
        // committed parts (resumed part by part, never emptied again).
        fixture.snapshotYAML = "  jobs: 2\n  part_size: 64KiB\n  range_size: 1MiB\n  freeze_max: 1MiB\n"
        let source = try await fixture.connectSource("qvp")
        try await source.execute("""
            CREATE TABLE orders (id int PRIMARY KEY, customer text, total numeric, placed timestamptz);
            INSERT INTO orders SELECT i, 'customer ' || (i % 977), i * 1.25, '2024-01-01'::timestamptz + i * interval '1 minute'
            FROM generate_series(1, 120000) i;
            CREATE TABLE lines (order_id int, line int, sku text, PRIMARY KEY (order_id, line));
            INSERT INTO lines SELECT i / 3 + 1, i % 3, md5(i::text) FROM generate_series(0, 59999) i;
            ANALYZE;
            """)
        let manifest = try await fixture.snapshot("qvp")
        let totalParts = manifest.tables.reduce(0) { $0 + $1.parts.count }
        #expect(totalParts > 40, "want many parts to kill between, got \(totalParts)")
        let target = try await fixture.connectTarget()

        var kills = 0
        for fraction in [0.05, 0.4, 0.8, 1.0] {
            try fixture.writeConfiguration()
            let apply = TestProcess(Paths.tributary, ["apply", "--once", "--config", fixture.configurationDirectory, "--jobs", "2"])
            try apply.start()
            let threshold = max(1, Int(Double(totalParts) * fraction))
            var killed = false
            let deadline = ContinuousClock.now + .seconds(120)
            while ContinuousClock.now < deadline {
                let recorded = try? await target.query("SELECT count(*) FROM tributary.snapshot_parts").scalar.flatMap { Int($0) }
                if let recorded, recorded >= threshold {
                    apply.kill()
                    killed = true
                    break
                }
                if waitpid(apply.pid, nil, WNOHANG) != 0 { break }
                try await Task.sleep(for: .milliseconds(5))
            }
            let outcome = await apply.wait()
            if killed && outcome.signalled { kills += 1 } else { #expect(outcome.status == 0, "\(outcome.standardError)") }
            try await expectConsistent(target: target, manifest: manifest)
        }
        #expect(kills >= 2, "the load finished before it could be killed often enough")

        let finish = try await fixture.tributary(["apply", "--once"])
        #expect(finish.status == 0, "\(finish.standardError)")
        let comparisons = try await fixture.verify("qvp")
        #expect(comparisons.count == 2 && comparisons.allSatisfy { $0.matches })
        #expect(try await target.query("SELECT count(*), count(DISTINCT id) FROM stg.qvp_orders").rows[0].values == ["120000", "120000"])
        #expect(try await target.query("SELECT state FROM tributary.snapshots").scalar == "applied")
        #expect(try await target.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'tributary_load'").scalar == "0")
        #expect(try await target.query("SELECT applied_lsn FROM tributary.sources WHERE source = 'qvp'").scalar
                == manifest.consistentPoint.description)
    }

    /// After any kill: each load table holds exactly the rows of the parts recorded for it, and an
    /// STG table exists only complete.
    func expectConsistent(target: PostgresConnection, manifest: SnapshotManifest) async throws {
        let recorded = Dictionary(uniqueKeysWithValues: try await target.query(
            "SELECT object_key, rows FROM tributary.snapshot_parts").rows.map { ($0[0]!, Int($0[1]!)!) })
        for table in manifest.tables {
            let loadTable = SnapshotLoader.loadTable(source: "qvp", lsn: manifest.consistentPoint, stagingTable: table.stagingTable).sql
            let recordedRows = table.parts.compactMap { recorded[$0.key] }.reduce(0, +)
            let exists = try await target.query("SELECT to_regclass($1) IS NOT NULL", [loadTable]).scalar == "t"
            if exists {
                let rows = Int(try await target.query("SELECT count(*) FROM \(loadTable)").scalar!)!
                #expect(rows == recordedRows, "\(loadTable): \(rows) rows but recorded parts hold \(recordedRows)")
            }
            let stagingExists = try await target.query("SELECT to_regclass($1) IS NOT NULL", ["stg.\(table.stagingTable)"]).scalar == "t"
            if stagingExists {
                let rows = Int(try await target.query("SELECT count(*) FROM stg.\(table.stagingTable)").scalar!)!
                #expect(rows == table.rows, "stg.\(table.stagingTable) is visible with \(rows) of \(table.rows) rows")
            }
            #expect(exists || stagingExists, "neither load table nor STG table for \(table.stagingTable)")
        }
    }
}
