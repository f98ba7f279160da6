import Foundation
import Testing
import TributaryCore
import TributaryPostgres
import TributaryServices
import TributaryStorage

/// The OCI layer does not grow without end: `gc` and `run` remove what is applied and past
/// retention, what killed replicators left, and superseded snapshots, and never what is needed.
@Suite(.clusterLoad) struct RetentionTests {
    func fixture(_ label: String, retention: String?) async throws -> PipelineFixture {
        var fixture = try await PipelineFixture.make(label, sources: [("qvp", ["public.items"])])
        if let retention { fixture.staging = "\n  url: ../staging\n  retention: \(retention)\n  gc_interval: 1s" }
        fixture.snapshotYAML = "  jobs: 2\nbatch:\n  max_age: 100ms\n  heartbeat: 300ms\n"
        try await fixture.connectSource("qvp").execute("CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items SELECT i, 'x' FROM generate_series(1, 100) i")
        return fixture
    }

    /// Commits `count` one-row transactions, then stages them: one batch each at most.
    func stage(_ fixture: PipelineFixture, from first: Int, count: Int) async throws {
        let source = try await fixture.connectSource("qvp")
        for id in first..<(first + count) { try await source.execute("INSERT INTO items VALUES (\(id), 'y')") }
        let end = try await source.query("SELECT pg_current_wal_insert_lsn()").scalar!
        let replicated = try await fixture.tributary(["replicate", "--source", "qvp", "--end-lsn", end])
        #expect(replicated.status == 0, "\(replicated.standardError)")
    }

    func cdcDirectories(_ fixture: PipelineFixture) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: fixture.stagingDirectory + "/qvp/cdc")) ?? []).sorted()
    }

    func snapshotDirectories(_ fixture: PipelineFixture) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: fixture.stagingDirectory + "/qvp/snapshot")) ?? []).sorted()
    }

    func appliedLSN(_ fixture: PipelineFixture) async throws -> LSN {
        LSN(try await fixture.connectTarget().query("SELECT applied_lsn FROM tributary.sources WHERE source = 'qvp'").scalar!)!
    }

    /// Files a killed replicator left: a batch directory with data and no manifest.
    func plantOrphan(_ fixture: PipelineFixture, at lsn: LSN) throws {
        let directory = fixture.stagingDirectory + "/" + ObjectNaming.cdcDirectory(source: "qvp", endLSN: lsn)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data("partial".utf8).write(to: URL(fileURLWithPath: directory + "public.items.csv.gz"))
    }

    @Test func gcRemovesOnlyWhatNoReaderNeeds() async throws {
        var fixture = try await fixture("gc", retention: nil)
        #expect(try await fixture.tributary(["snapshot"]).status == 0)
        try await stage(fixture, from: 1000, count: 3)
        try await stage(fixture, from: 1100, count: 3)
        let before = try await fixture.tributary(["gc"])
        #expect(before.status == 0 && before.standardOutput.contains("qvp: no control state yet"), "\(before.standardOutput)\(before.standardError)")

        #expect(try await fixture.tributary(["apply", "--once"]).status == 0)
        let applied = try await appliedLSN(fixture)
        let staged = cdcDirectories(fixture)
        #expect(staged.count >= 2, "\(staged)")
        try plantOrphan(fixture, at: LSN(applied.value - 1))
        try plantOrphan(fixture, at: LSN(applied.value + 0x100_0000))  // after the applied position: maybe being written
        try await stage(fixture, from: 2000, count: 2)                  // staged, not applied

        // Within the default 7-day retention only the dead orphan goes, and only when asked.
        let dry = try await fixture.tributary(["gc", "--dry-run"])
        #expect(dry.status == 0 && dry.standardOutput.contains("qvp: would remove 1 objects") && dry.standardOutput.contains("1 orphaned batch files"),
                "\(dry.standardOutput)\(dry.standardError)")
        #expect(cdcDirectories(fixture).contains(LSN(applied.value - 1).paddedHex), "a dry run removes nothing")
        let kept = try await fixture.tributary(["gc"])
        #expect(kept.standardOutput.contains("qvp: removed 1 objects") && kept.standardOutput.contains("1 orphaned batch files"), "\(kept.standardOutput)")
        #expect(!cdcDirectories(fixture).contains(LSN(applied.value - 1).paddedHex))

        // Retention 0: every applied batch goes, with its record; what is not applied stays.
        fixture.staging = "\n  url: ../staging\n  retention: 0"
        try fixture.writeConfiguration()
        let collected = try await fixture.tributary(["gc"])
        #expect(collected.status == 0 && collected.standardOutput.contains("\(staged.count) applied batches"), "\(collected.standardOutput)")
        let remaining = cdcDirectories(fixture)
        #expect(remaining.allSatisfy { LSN($0)! > applied }, "\(remaining)")
        #expect(remaining.contains(LSN(applied.value + 0x100_0000).paddedHex))
        let target = try await fixture.connectTarget()
        #expect(try await target.query("SELECT count(*) FROM tributary.applied_batches WHERE end_lsn <= $1::pg_lsn", [applied.description]).scalar == "0")
        let status = try await fixture.tributary(["status", "--source", "qvp"])
        #expect(status.standardOutput.contains("store "), "\(status.standardOutput)")

        // The pending batches still apply, and STG equals the source.
        #expect(try await fixture.tributary(["apply", "--once"]).status == 0)
        #expect(try await fixture.verify("qvp").allSatisfy(\.matches))

        // A restarted snapshot supersedes the first once applied; the new one stays.
        let oldSnapshot = try #require(snapshotDirectories(fixture).first)
        #expect(try await fixture.tributary(["snapshot", "--restart", "--apply"]).status == 0)
        let superseded = try await fixture.tributary(["gc"])
        #expect(superseded.standardOutput.contains("1 superseded snapshots"), "\(superseded.standardOutput)")
        #expect(!snapshotDirectories(fixture).contains(oldSnapshot) && snapshotDirectories(fixture).count == 1)
        try await stage(fixture, from: 3000, count: 3)
        #expect(try await fixture.tributary(["apply", "--once"]).status == 0)
        #expect(try await fixture.verify("qvp").allSatisfy(\.matches))
    }

    /// Files waiting for their table's copy are merged after it (`CopyWait`): retention keeps
    /// their batches, and everything after them, however old.
    @Test func gcKeepsTheBatchesOfFilesWaitingForATableCopy() async throws {
        var fixture = try await fixture("gc-wait", retention: nil)
        #expect(try await fixture.tributary(["snapshot"]).status == 0)
        for first in [1000, 1100, 1200] { try await stage(fixture, from: first, count: 1) }
        #expect(try await fixture.tributary(["apply", "--once"]).status == 0)
        let staged = cdcDirectories(fixture)
        try #require(staged.count >= 3, "\(staged)")
        let target = try await fixture.connectTarget()
        try await target.query("""
            INSERT INTO tributary.deferred_files (stg_table, source, batch_end, position, file) VALUES ('qvp_later', 'qvp', $1::pg_lsn, 0, '{}')
            """, [LSN(staged[1])!.description])
        fixture.staging = "\n  url: ../staging\n  retention: 0"
        try fixture.writeConfiguration()
        let collected = try await fixture.tributary(["gc"])
        #expect(collected.status == 0, "\(collected.standardOutput)\(collected.standardError)")
        let remaining = cdcDirectories(fixture)
        #expect(!remaining.contains(staged[0]), "an older batch goes: \(remaining)")
        #expect(staged[1...].allSatisfy { remaining.contains($0) }, "\(remaining)")
    }

    /// A collection lists only what it may remove: after the hourly measurement, the batches
    /// retention keeps (and the current snapshot) are not read again, whatever their number.
    @Test func gcReadsNoKeyPastWhatItMayRemove() async throws {
        let fixture = try await fixture("gcbound", retention: nil)
        #expect(try await fixture.tributary(["snapshot"]).status == 0)
        try await stage(fixture, from: 1000, count: 4)
        #expect(try await fixture.tributary(["apply", "--once"]).status == 0)
        let recorder = ListingRecorder(inner: try fixture.store())
        var settings = RetentionSettings()
        settings.retention = .seconds(3600)
        func collect(_ settings: RetentionSettings) async throws -> RetentionPlanner.Plan? {
            try await StoreCollector(endpoints: try fixture.endpoints(), store: recorder, settings: settings, logger: PipelineFixture.logger)
                .collect(try fixture.configuration().sources, dryRun: false).first?.plan
        }
        // The first collection measures the store: it lists everything once.
        let measured = try #require(try await collect(settings))
        #expect(measured.removedObjects == 0 && measured.keptObjects > 0)
        let first = await recorder.calls
        #expect(first.count == 1 && first.first?.endBefore == nil)
        let target = try await fixture.connectTarget()
        let usage = { try await target.query("SELECT objects FROM tributary.store_usage WHERE source = 'qvp'").scalar.flatMap { Int($0) } }
        #expect(try await usage() == measured.keptObjects)

        // More batches, applied: all within retention, so the next collection may remove none of
        // them and lists none of their keys, nor the current snapshot's.
        try await stage(fixture, from: 2000, count: 4)
        #expect(try await fixture.tributary(["apply", "--once"]).status == 0)
        await recorder.reset()
        let bounded = try #require(try await collect(settings))
        #expect(bounded.removedObjects == 0)
        let listed = await recorder.listedKeys
        #expect(listed.isEmpty, "\(listed)")
        let boundedCalls = await recorder.calls
        #expect(!boundedCalls.isEmpty && boundedCalls.allSatisfy { $0.endBefore != nil })

        // Retention 0: every applied batch is removable, so listed and removed; what retention keeps
        // (nothing now) and what is not applied stay unread. The measurement drops by what went.
        settings.retention = .zero
        await recorder.reset()
        let collected = try #require(try await collect(settings))
        #expect(collected.removedObjects > 0 && collected.keptObjects == 0)
        let listedForRemoval = await recorder.listedKeys
        #expect(listedForRemoval.count == collected.removedObjects)
        #expect(cdcDirectories(fixture).isEmpty)
        #expect(try await usage() == measured.keptObjects - collected.removedObjects)
        #expect(try await fixture.verify("qvp").allSatisfy(\.matches))
    }

    @Test func runCollectsOnItsOwnAndAnIdleSourceWritesNothing() async throws {
        let fixture = try await fixture("gcrun", retention: "0")
        #expect(try await fixture.tributary(["snapshot"]).status == 0)
        let stopped = try await fixture.withRun { _ in
            let source = try await fixture.connectSource("qvp")
            for id in 1000..<1020 { try await source.execute("INSERT INTO items VALUES (\(id), 'z')") }
            try await fixture.waitUntilApplied(["qvp"])
            try await eventually("run removed every applied batch", seconds: 30) { cdcDirectories(fixture).isEmpty }
            // Idle now: heartbeats keep the slot moving (several every second here) without objects.
            let idleFrom = try await appliedLSN(fixture)
            try await Task.sleep(for: .seconds(3))
            #expect(cdcDirectories(fixture).isEmpty, "\(cdcDirectories(fixture))")
            let confirmed = try await source.query("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1",
                                                   [fixture.source("qvp").slot]).scalar.flatMap(LSN.init)
            #expect(confirmed.map { $0 > idleFrom } == true, "the idle slot advances")
        }
        #expect(stopped.status == 0)
        #expect(try await fixture.verify("qvp").allSatisfy(\.matches))
    }
}

/// Forwards to a store and records every listing: what was asked and what came back.
actor ListingRecorder: StagingStore {
    struct Call: Sendable { var prefix: String; var endBefore: String?; var keys: [String] }
    let inner: any StagingStore
    private(set) var calls: [Call] = []
    var listedKeys: [String] { calls.flatMap(\.keys) }

    init(inner: any StagingStore) { self.inner = inner }

    func reset() { calls = [] }

    func list(prefix: String, startAfter: String?, endBefore: String?) async throws -> [StoredObject] {
        let objects = try await inner.list(prefix: prefix, startAfter: startAfter, endBefore: endBefore)
        calls.append(Call(prefix: prefix, endBefore: endBefore, keys: objects.map(\.key)))
        return objects
    }

    func put(key: String, file: String) async throws { try await inner.put(key: key, file: file) }
    func put(key: String, bytes: [UInt8]) async throws { try await inner.put(key: key, bytes: bytes) }
    func get(key: String) async throws -> [UInt8] { try await inner.get(key: key) }
    func fetch(key: String) async throws -> LocalObject { try await inner.fetch(key: key) }
    func head(key: String) async throws -> StoredObject? { try await inner.head(key: key) }
    func delete(key: String) async throws { try await inner.delete(key: key) }
    nonisolated var description: String { "listing recorder" }
}
