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
        // The table had not been stored whole: it was copied again under a temporary slot.
        #expect(retried.standardOutput.contains("resumed a snapshot that did not finish: 0 tables kept"), "\(retried.standardOutput)")
        #expect(try await fixture.verify("qvp").allSatisfy { $0.matches })
        // The failed attempt's load table, with what was loaded of it, went once the snapshot was in.
        #expect(try await target.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'tributary_load'").scalar == "0")
        #expect(retried.standardError.contains("dropped load tables a killed snapshot left"), "\(retried.standardError)")
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
