import Foundation
import Testing
import TributaryCore
import TributaryStorage

/// Snapshot, replicate and apply unchanged over an oci:// staging store, with the emulator answering
/// every request, and failing a tenth of them.
@Suite(.clusterLoad) struct OCIPipelineTests {
    @Test(arguments: [0.0, 0.1])
    func pipelineOverOCIWithFailingRequestsLosesAndDuplicatesNothing(errorRate: Double) async throws {
        let emulator = try await OCIEmulator.start()
        try await emulator.setFaults(["error_rate": errorRate, "statuses": [503, 429], "seed": 11])
        // Enough seed rows that each snapshot part is far above the 64 KiB multipart threshold: multipart
        // uploads run under faults too.
        let fixture = try await PipelineFixture.twoSources("oci", batchRows: 100, configure: { fixture in
            fixture.staging = "oci://\(OCIEmulator.namespace)/\(OCIEmulator.bucket)/pipeline"
            fixture.extraTargetYAML = emulator.targetYAML(attempts: 15, multipartThreshold: "64KiB", partSize: "32KiB")
        }, seed: "INSERT INTO ledger SELECT i, 7, md5(random()::text) || md5(random()::text) FROM generate_series(1, 20000) i")
        try await fixture.randomWorkloadEndsEqual(steps: 150)

        let store = try fixture.store()
        #expect(store is OCIStagingStore)
        #expect(try await store.list(prefix: "qvp/cdc/", startAfter: nil).count > 4, "the batches went to the emulator")
        let stats = try await emulator.stats()
        if errorRate > 0 {
            #expect(stats["injected_errors"]! >= stats["requests"]! / 20, "\(stats)")
        } else {
            #expect(stats["injected_errors"] == 0)
        }
        #expect(stats["multipart_commits"]! > 0, "\(stats)")
        #expect(stats["rejected_signatures"] == 0)
    }

    /// A part the store refuses for good, mid-copy, while `snapshot --apply` loads: the snapshot
    /// stops with the object named, leaves no manifest, no STG table and no local files, keeps its
    /// slot, and a rerun resumes it and completes.
    @Test func aPartTheStoreRefusesStopsTheSnapshotCleanly() async throws {
        let emulator = try await OCIEmulator.start()
        try await emulator.setFaults(["fail_path": "00000-0004.csv.gz"])
        var fixture = try await PipelineFixture.make("ocifail", sources: [("qvp", ["public.orders"])])
        fixture.staging = "oci://\(OCIEmulator.namespace)/\(OCIEmulator.bucket)/refused"
        fixture.extraTargetYAML = emulator.targetYAML(attempts: 2)
        fixture.snapshotYAML = "  jobs: 2\n  part_size: 64KiB\n"
        let source = try await fixture.connectSource("qvp")
        try await source.execute("""
            CREATE TABLE orders (id int PRIMARY KEY, note text);
            INSERT INTO orders SELECT i, md5(i::text) || md5((i * 7)::text) FROM generate_series(1, 30000) i;
            """)

        let failed = try await fixture.tributary(["snapshot", "--apply"])
        #expect(failed.status != 0)
        #expect(failed.standardError.contains("00000-0004.csv.gz"), "\(failed.standardError)")
        let store = try fixture.store()
        #expect(try await store.list(prefix: "qvp/snapshot/", startAfter: nil).allSatisfy { !$0.key.hasSuffix("manifest.json") })
        #expect(try await source.query("SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1",
                                       [fixture.source("qvp").slot]).scalar == "1", "the slot is kept for a resume")
        let target = try await fixture.connectTarget()
        #expect(try await target.query("SELECT to_regclass('stg.qvp_orders') IS NULL").scalar == "t")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: fixture.root + "/work").filter { $0.hasPrefix("snapshot-") }
        #expect(leftovers.isEmpty, "local part files left behind: \(leftovers)")

        #expect(try await target.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'tributary_load'").scalar == "1",
                "the failed attempt's load table, with what was loaded of it")

        try await emulator.setFaults([:])
        let retried = try await fixture.tributary(["snapshot", "--apply"])
        #expect(retried.status == 0, "\(retried.standardError)")
        // The table had no range stored whole: it was copied again into the same snapshot, and
        // the rows the failed attempt had loaded stayed, one of each key kept.
        #expect(retried.standardOutput.contains("resumed a snapshot that did not finish: 0 tables kept from it (0 B gzip); 1 continued, keeping 0 ranges"),
                "\(retried.standardOutput)")
        #expect(retried.standardError.contains("kept one row of each key copied twice"), "\(retried.standardError)")
        #expect(try await fixture.verify("qvp").allSatisfy { $0.matches })
        #expect(try await target.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'tributary_load'").scalar == "0")
    }

    /// A snapshot that fails in the middle of a split table keeps the ranges it stored whole: the
    /// rerun copies only the rest of the table. Rows that changed in between come out right,
    /// among them TOASTed rows an update moved from a range copied again into a kept one (the
    /// stream's update leaves their large value out, so only the copy can bring it).
    @Test func aResumedSnapshotKeepsTheRangesItStoredAndLosesNoMovedRow() async throws {
        let emulator = try await OCIEmulator.start()
        // One worker copies the ranges in order: ranges 0-4 are stored whole, range 5 is refused.
        try await emulator.setFaults(["fail_path": "00005-0000.csv.gz"])
        var fixture = try await PipelineFixture.make("rangeresume", sources: [("qvp", ["public.big"])])
        fixture.staging = "oci://\(OCIEmulator.namespace)/\(OCIEmulator.bucket)/rangeresume"
        fixture.extraTargetYAML = emulator.targetYAML(attempts: 2)
        fixture.snapshotYAML = "  jobs: 1\n  part_size: 64KiB\n  range_size: 64KiB\n"
        let source = try await fixture.connectSource("qvp")
        // Every 50th row has a 3,200-byte value of hex digits, stored out of line (TOAST).
        try await source.execute("""
            CREATE TABLE big (id int PRIMARY KEY, n int, payload text) WITH (fillfactor = 100, autovacuum_enabled = false);
            INSERT INTO big SELECT i, i, CASE WHEN i % 50 = 0 THEN (SELECT string_agg(md5(i::text || g::text), '') FROM generate_series(1, 100) g)
                                               ELSE md5(i::text) END
            FROM generate_series(1, 8000) i;
            """)
        let failed = try await fixture.tributary(["snapshot", "--apply"])
        #expect(failed.status != 0, "\(failed.standardOutput)")
        let store = try fixture.store()
        let markers = try await store.list(prefix: "qvp/snapshot/", startAfter: nil).map(\.key).filter { $0.contains("/range-") }
        #expect(markers.count == 5, "ranges 0-4 stored whole: \(markers)")

        // Room in the kept range 1 (pages 8-15), then updates of TOASTed rows on full pages of ranges
        // copied again: their new versions land in the room (pages 8-15), the stream's updates
        // carry no payload.
        try await source.execute("DELETE FROM big WHERE ctid >= '(8,0)' AND ctid < '(16,0)' AND id % 50 <> 0")
        try await source.execute("VACUUM big")
        try await source.execute("UPDATE big SET n = -n WHERE id % 50 = 0 AND ctid >= '(48,0)'")
        let moved = try await source.query("SELECT count(*) FROM big WHERE n < 0 AND ctid < '(40,0)'").scalar(Int.self)
        #expect(moved > 0, "some updated rows moved into a kept range")
        // And the rest: rows of kept ranges updated in place and deleted, a key changed, rows added.
        try await source.execute("""
            UPDATE big SET n = n + 1 WHERE ctid < '(8,0)';
            DELETE FROM big WHERE ctid >= '(16,0)' AND ctid < '(24,0)' AND id % 3 = 0;
            UPDATE big SET id = id + 100000 WHERE id IN (2, 4000);
            INSERT INTO big SELECT i, i, md5(i::text) FROM generate_series(9001, 9500) i;
            """)

        try await emulator.setFaults([:])
        let resumed = try await fixture.tributary(["snapshot", "--apply"])
        #expect(resumed.status == 0, "\(resumed.standardError.suffix(2000))")
        #expect(resumed.standardOutput.contains("0 tables kept from it (0 B gzip); 1 continued, keeping 5 ranges"),
                "\(resumed.standardOutput)")
        #expect(resumed.standardError.contains("kept one row of each key copied twice"), "rows updated in kept ranges were in both copies")

        let end = try await source.query("SELECT pg_current_wal_insert_lsn()").scalar(String.self)
        let replicated = try await fixture.tributary(["replicate", "--source", "qvp", "--end-lsn", end])
        #expect(replicated.status == 0, "\(replicated.standardError.suffix(2000))")
        let applied = try await fixture.tributary(["apply", "--once"])
        #expect(applied.status == 0, "\(applied.standardError.suffix(2000))")
        for comparison in try await fixture.verify("qvp") { #expect(comparison.matches, "\(comparison)") }
        let target = try await fixture.connectTarget()
        let movedRows = "SELECT count(*) FROM %@ WHERE n < 0 AND length(payload) = 3200"
        let inSource = try await source.query(String(format: movedRows, "big")).scalar(Int.self)
        #expect(try await target.query(String(format: movedRows, "stg.qvp_big") + " AND NOT _deleted").scalar(Int.self) == inSource,
                "every updated TOASTed row has its value")
    }

    /// A table whose columns changed between a failed snapshot and its rerun is not continued
    /// into the snapshot (its stream from the slot's point holds the change): it is copied again
    /// under a temporary slot and merged by LSN, and ends equal to the source.
    @Test func aResumeCopiesATableWhoseColumnsChangedUnderATableSnapshot() async throws {
        let emulator = try await OCIEmulator.start()
        try await emulator.setFaults(["fail_path": "00000-0002.csv.gz"])
        var fixture = try await PipelineFixture.make("altered", sources: [("qvp", ["public.orders"])])
        fixture.staging = "oci://\(OCIEmulator.namespace)/\(OCIEmulator.bucket)/altered"
        fixture.extraTargetYAML = emulator.targetYAML(attempts: 2)
        fixture.snapshotYAML = "  jobs: 1\n  part_size: 64KiB\n"
        let source = try await fixture.connectSource("qvp")
        try await source.execute("""
            CREATE TABLE orders (id int PRIMARY KEY, note text);
            INSERT INTO orders SELECT i, md5(i::text) || md5((i * 7)::text) FROM generate_series(1, 20000) i;
            """)
        let failed = try await fixture.tributary(["snapshot", "--apply"])
        #expect(failed.status != 0, "\(failed.standardOutput)")
        try await source.execute("ALTER TABLE orders ADD COLUMN extra int DEFAULT 7; UPDATE orders SET extra = 8 WHERE id % 10 = 0")
        try await emulator.setFaults([:])
        let retried = try await fixture.tributary(["snapshot", "--apply"])
        #expect(retried.status == 0, "\(retried.standardError.suffix(2000))")
        #expect(retried.standardOutput.contains("0 continued, keeping 0 ranges"), "\(retried.standardOutput)")
        #expect(retried.standardOutput.contains("1 copied again") && retried.standardOutput.contains("under a temporary slot"),
                "\(retried.standardOutput)")
        let end = try await source.query("SELECT pg_current_wal_insert_lsn()").scalar(String.self)
        #expect(try await fixture.tributary(["replicate", "--source", "qvp", "--end-lsn", end]).status == 0)
        #expect(try await fixture.tributary(["apply", "--once"]).status == 0)
        for comparison in try await fixture.verify("qvp") { #expect(comparison.matches, "\(comparison)") }
    }

    /// `snapshot --apply` over OCI loads each part from the file the copy wrote, not from a
    /// download of what it just uploaded; with `apply_cache: 0`, every part is downloaded.
    @Test func snapshotApplyLoadsTheCopysOwnFilesInsteadOfDownloads() async throws {
        let emulator = try await OCIEmulator.start()
        var fixture = try await PipelineFixture.make("ocihandoff", sources: [("qvp", ["public.orders"])])
        fixture.staging = "oci://\(OCIEmulator.namespace)/\(OCIEmulator.bucket)/handoff"
        fixture.extraTargetYAML = emulator.targetYAML()
        fixture.snapshotYAML = "  jobs: 2\n  part_size: 64KiB\n"
        let source = try await fixture.connectSource("qvp")
        try await source.execute("""
            CREATE TABLE orders (id int PRIMARY KEY, note text);
            INSERT INTO orders SELECT i, md5(i::text) || md5((i * 7)::text) FROM generate_series(1, 30000) i;
            """)
        func partGets() async throws -> Int { try await emulator.stats()["object_gets"] ?? 0 }

        let handedOver = try await fixture.tributary(["snapshot", "--apply"])
        #expect(handedOver.status == 0, "\(handedOver.standardError)")
        let parts = try await fixture.store().list(prefix: "qvp/snapshot/", startAfter: nil).filter { $0.key.hasSuffix(".csv.gz") }.count
        #expect(parts > 10)
        let downloads = try await partGets()
        #expect(downloads <= 2, "\(downloads) GETs for \(parts) parts: only the manifest is read back")
        #expect(try await fixture.verify("qvp").allSatisfy { $0.matches })
        #expect(!FileManager.default.fileExists(atPath: fixture.root + "/work/handoff/qvp"), "the local copies are gone")

        fixture.snapshotYAML += "  apply_cache: 0\n"
        let fetched = try await fixture.tributary(["snapshot", "--apply", "--restart"])
        #expect(fetched.status == 0, "\(fetched.standardError)")
        #expect(try await partGets() - downloads >= parts, "without the cache every part is downloaded")
        #expect(try await fixture.verify("qvp").allSatisfy { $0.matches })
    }
}
