import Foundation
import Testing
import TributaryCore
import TributaryStorage
import TributaryTestSupport

/// The object sync, through `tributary sync-objects`, against the signature-checking emulator
/// (server-side copies and streamed ones) and between directories: the target ends with exactly
/// the source's objects, byte for byte, whatever the names, sizes, failures and kills.
@Suite(.clusterLoad) struct ObjectSyncTests {
    enum Kind: String, CaseIterable, Sendable {
        /// One profile reaches both buckets: Object Storage copies (CopyObject, work requests).
        case serverSide
        /// Two profiles: the bytes come through tributary, range by range above the threshold.
        case streamed
        /// Two directories.
        case files
    }

    static let names = ["plain.txt", "with space/and+plus.pdf", "ünïcødé/名前.json", "percent%25/q?x=1#frag", "deep/a/b/c/d.bin",
                        "empty", "~tilde*star'quote"]

    /// A world: a fixture whose qvp source has one object mapping, and direct access to both sides.
    struct World {
        var fixture: PipelineFixture
        let emulator: OCIEmulator?
        let source: any ObjectStore
        let target: any ObjectStore

        func sync(_ extra: [String] = []) async throws -> TestProcess.Outcome {
            try await fixture.tributary(["sync-objects"] + extra)
        }
    }

    func world(_ kind: Kind, pageSize: Int = 10, mappingYAML: String = "") async throws -> World {
        var fixture = try await PipelineFixture.make("objects-\(kind.rawValue)", sources: [("qvp", ["public.t"])])
        try await fixture.connectSource("qvp").execute("CREATE TABLE t (id int PRIMARY KEY)")
        let sync = "sync:\n  page_size: \(pageSize)\n  multipart_threshold: 2MiB\n  part_size: 1MiB\n  connections: 4\n"
        switch kind {
        case .files:
            let root = fixture.root
            fixture.extraTargetYAML = sync
            fixture.sources[0].extraYAML = "objects:\n  - from: \(root)/buckets/qvp-docs\n    to: \(root)/buckets/unipacc/qvp/\n" + mappingYAML
            try FileManager.default.createDirectory(atPath: root + "/buckets/qvp-docs", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: root + "/buckets/unipacc/qvp", withIntermediateDirectories: true)
            return World(fixture: fixture, emulator: nil, source: FileObjectStore(root: root + "/buckets/qvp-docs"),
                         target: FileObjectStore(root: root + "/buckets/unipacc/qvp", mustExist: false))
        case .serverSide, .streamed:
            let emulator = try await OCIEmulator.start(buckets: ["staging", "qvp-docs", "unipacc"])
            // A second profile with the same key: different credentials to tributary, so it streams.
            let config = fixture.root + "/oci-config"
            try (try String(contentsOfFile: OCIEmulator.configFile, encoding: .utf8)
                 .replacingOccurrences(of: "key_file=key.pem", with: "key_file=\(Paths.repository)/Tests/TributaryCoreTests/Fixtures/oci/key.pem")
                 + "\n[COPIER]\n").write(toFile: config, atomically: true, encoding: .utf8)
            chmod(config, 0o600)
            fixture.extraTargetYAML = sync + "oci:\n  config_file: \(config)\n  endpoint: \(emulator.endpoint)\n"
            fixture.sources[0].extraYAML = "objects:\n  - from: oci://\(OCIEmulator.namespace)/qvp-docs/\n"
                + "    to: oci://\(OCIEmulator.namespace)/unipacc/qvp/\n" + (kind == .streamed ? "    to_profile: COPIER\n" : "") + mappingYAML
            let client = try emulator.client()
            return World(fixture: fixture, emulator: emulator,
                         source: OCIObjectStore(client: client, namespace: OCIEmulator.namespace, bucket: "qvp-docs", prefix: "", region: "r"),
                         target: OCIObjectStore(client: client, namespace: OCIEmulator.namespace, bucket: "unipacc", prefix: "qvp/", region: "r"))
        }
    }

    /// Every object of a store: name → bytes.
    func contents(_ store: any ObjectStore) async throws -> [String: [UInt8]] {
        var all: [String: [UInt8]] = [:]
        var after: String?
        while true {
            let page = try await store.list(after: after, limit: 100)
            for entry in page.objects { all[entry.name] = try await store.read(entry.name, range: nil, ifMatch: nil) }
            guard page.more, let last = page.objects.last else { return all }
            after = last.name
        }
    }

    func bytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var generator = SeededGenerator(seed: seed)
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    /// Awkward names, a 0-byte object, 35 small objects (four pages of 10), two multipart ones.
    func populate(_ world: World, kind: Kind) async throws {
        for (index, name) in Self.names.enumerated() where kind != .files || !name.contains("..") {
            _ = try await world.source.write(name, bytes: name == "empty" ? [] : bytes(100 + index, seed: UInt64(index)))
        }
        for index in 0..<35 { _ = try await world.source.write("many/\(1000 + index)", bytes: bytes(50, seed: UInt64(100 + index))) }
        for index in 0..<2 {
            let content = bytes(3 * 1024 * 1024 + 517, seed: UInt64(200 + index))
            _ = try await world.source.write("big/\(index).bin", size: Int64(content.count), partSize: 1 << 20) { _, range in
                Array(content[Int(range.lowerBound)...Int(range.upperBound)])
            }
        }
    }

    @Test(arguments: Kind.allCases)
    func theTargetEndsWithExactlyTheSourcesObjects(kind: Kind) async throws {
        let world = try await world(kind)
        try await populate(world, kind: kind)
        let first = try await world.sync()
        #expect(first.status == 0, "\(first.standardOutput)\(first.standardError)")
        #expect(try await contents(world.target) == (try await contents(world.source)))
        // One profile: the two objects above server_side_min go by CopyObject, the small ones through; two profiles: none.
        if let copies = try await world.emulator?.stats()["copy_requests"] { #expect(copies == (kind == .serverSide ? 2 : 0)) }

        // Nothing changed: nothing copied, multipart objects included (their MD5 is no content hash).
        let gets = try await world.emulator?.stats()["object_gets"]
        let again = try await world.sync()
        #expect(again.status == 99, "nothing to do: \(again.standardOutput)\(again.standardError)")
        #expect(again.standardOutput.contains(" 0 copied, 0 replaced"), "\(again.standardOutput)")
        if let gets { #expect(try await world.emulator?.stats()["object_gets"] == gets, "no object read again") }

        // Changed with the same size, new, deleted (deletes are off: reported, kept).
        _ = try await world.source.write("many/1003", bytes: bytes(50, seed: 999))
        _ = try await world.source.write("new one", bytes: [1, 2, 3])
        try await world.source.delete("many/1004")
        let third = try await world.sync()
        #expect(third.standardOutput.contains(" 1 copied, 1 replaced"), "\(third.standardOutput)")
        #expect(third.standardOutput.contains("1 only in the target") && third.standardOutput.contains("not deleted: deletes are off"))
        var expected = try await contents(world.source)
        expected["many/1004"] = bytes(50, seed: 104)
        #expect(try await contents(world.target) == expected)
        let verify = try await world.fixture.tributary(["verify"])
        #expect(verify.status == 1 && verify.standardOutput.contains("extra     many/1004"), "\(verify.standardOutput)")

        // status --json: one entry per mapping under "objects", its keys pinned (only ever added).
        let status = try await world.fixture.tributary(["status", "--json"])
        let json = try JSONSerialization.jsonObject(with: Data(status.standardOutput.utf8)) as? [String: Any]
        let objects = json?["objects"] as? [[String: Any]] ?? []
        #expect(objects.count == 1 && objects.first?["state"] as? String == "done", "\(status.standardOutput)")
        let keys: Set<String> = ["mapping", "source", "target", "state", "started_at", "finished_at", "pending", "pending_bytes", "copied",
                                 "copied_bytes", "failed", "extra", "deleted"]
        #expect(keys.isSubset(of: Set(objects.first?.keys.map { $0 } ?? [])), "\(status.standardOutput)")
        #expect(objects.first?["extra"] as? Int == 1)
    }

    @Test func deletesOnlyUnderThePolicyAndNeverAfterAFailedPass() async throws {
        let world = try await world(.streamed, mappingYAML: "    delete: true\n    max_delete: 5\n    trash: .trash/\n")
        try await populate(world, kind: .streamed)
        #expect(try await world.sync().status == 0)
        for index in 0..<3 { try await world.source.delete("many/\(1000 + index)") }
        // One object cannot be copied: the pass fails, so nothing is deleted.
        _ = try await world.source.write("stuck", bytes: [9])
        try await world.emulator!.setFaults(["fail_path": "stuck"])
        let failed = try await world.sync()
        #expect(failed.status == 1, "\(failed.standardOutput)")
        #expect(failed.standardOutput.contains("nothing is deleted after a failed pass"), "\(failed.standardOutput)")
        #expect(try await world.target.head("many/1000") != nil)
        // Healthy again: the extras go, to the trash prefix.
        try await world.emulator!.setFaults([:])
        let healthy = try await world.sync()
        #expect(healthy.status == 0 && healthy.standardOutput.contains("3 deleted"), "\(healthy.standardOutput)")
        #expect(try await world.target.head("many/1000") == nil)
        #expect(try await world.target.head(".trash/many/1000") != nil)
        // More extras than max_delete: none go.
        for index in 10..<16 { try await world.source.delete("many/\(1000 + index)") }
        let capped = try await world.sync()
        #expect(capped.standardOutput.contains("more than max_delete 5: nothing deleted"), "\(capped.standardOutput)")
        #expect(try await world.target.head("many/1010") != nil)
        let dry = try await world.sync(["--dry-run"])
        #expect(dry.standardOutput.contains("delete 6") && dry.standardOutput.contains("  delete   many/1010"), "\(dry.standardOutput)")
    }

    @Test func failingRequestsAndAKillMidPassStillEndWithExactlyTheSourcesObjects() async throws {
        let world = try await world(.streamed, pageSize: 20)
        try await populate(world, kind: .streamed)
        for index in 0..<150 { _ = try await world.source.write("more/\(index)", bytes: bytes(2000, seed: UInt64(300 + index))) }
        _ = try await world.source.write("zz-held", bytes: bytes(2000, seed: 450))
        let failing: [String: Any] = ["error_rate": 0.1, "statuses": [503, 429], "slow_rate": 0.3, "delay_ms": 40, "seed": 7]
        // One object late in listing order is held, so the pass is certainly still running when it is
        // killed (on a fast machine it once finished between two polls, and the kill hit nothing).
        try await world.emulator!.setFaults(failing.merging(["hold_path": "/o/zz-held"]) { $1 })
        try world.fixture.writeConfiguration()
        let pass = TestProcess(Paths.tributary, ["sync-objects", "--config", world.fixture.configurationDirectory])
        try pass.start()
        // Killed once the pass has checkpointed a position, so the rerun must carry on from it.
        let target = try await world.fixture.connectTarget()
        var checkpoint: String?
        for _ in 0..<300 where checkpoint == nil {
            try await Task.sleep(for: .milliseconds(100))
            checkpoint = try? await target.query("SELECT position FROM tributary.object_passes WHERE position IS NOT NULL").scalar
        }
        pass.kill()
        #expect(await pass.wait().signalled)
        #expect(checkpoint != nil, "the pass never checkpointed")
        try await world.emulator!.setFaults(failing)
        let rerun = try await world.sync()
        #expect(rerun.status == 0, "\(rerun.standardOutput)\(rerun.standardError)")
        #expect(rerun.standardOutput.contains("resumed a killed pass after"), "\(rerun.standardOutput)")
        #expect(try await contents(world.target) == (try await contents(world.source)))
        #expect(try await world.emulator!.stats()["injected_errors"]! > 0)
        let verify = try await world.fixture.tributary(["verify"])
        #expect(verify.standardOutput.contains("all files are in place"), "\(verify.standardOutput)")
    }

    @Test func aDryRunChangesNothingAndAMissingSourceDirectoryIsAnError() async throws {
        let world = try await world(.files)
        try await populate(world, kind: .files)
        try FileManager.default.removeItem(atPath: world.fixture.root + "/buckets/unipacc")
        let dry = try await world.sync(["--dry-run"])
        #expect(dry.status == 0 && dry.standardOutput.contains("would copy 44"), "\(dry.standardOutput)\(dry.standardError)")
        let target = try await world.fixture.connectTarget()
        #expect(try await target.query("SELECT to_regclass('tributary.object_passes') IS NULL").scalar == "t", "a dry run set up no control state")
        #expect(!FileManager.default.fileExists(atPath: world.fixture.root + "/buckets/unipacc"), "a dry run wrote no file")
        // A mistyped (or unmounted) source directory is not an empty bucket: nothing is copied or deleted.
        try FileManager.default.moveItem(atPath: world.fixture.root + "/buckets/qvp-docs", toPath: world.fixture.root + "/buckets/moved")
        let failed = try await world.sync()
        #expect(failed.status == 1 && failed.standardOutput.contains("cannot list the directory"), "\(failed.standardOutput)\(failed.standardError)")
        #expect(!FileManager.default.fileExists(atPath: world.fixture.root + "/buckets/qvp-docs"), "nothing written to a source")
    }
}
