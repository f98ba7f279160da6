import Foundation
import Testing
import TributaryCore
import TributaryPostgres

/// What the staging store and the work directory expose, and what reaches SQL from them.
@Suite struct HardeningTests {
    func fixture(_ label: String, signed: Bool) async throws -> PipelineFixture {
        var fixture = try await PipelineFixture.make(label, sources: [("qvp", ["public.items"])])
        if signed { fixture.staging = "\n  url: ../staging\n  signing_key: ${TRIBUTARY_TEST_SIGNING_KEY:-test-signing-key-0123456789abcdef}" }
        try await fixture.connectSource("qvp").execute("CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'a')")
        return fixture
    }

    /// Every file under `directory` with its permission bits.
    func modes(_ directory: String) -> [(path: String, mode: mode_t, isDirectory: Bool)] {
        let paths = (FileManager.default.enumerator(atPath: directory)?.allObjects as? [String]) ?? []
        return paths.compactMap { path in
            var status = stat()
            guard stat(directory + "/" + path, &status) == 0 else { return nil }
            return (path, status.st_mode & 0o777, (status.st_mode & S_IFMT) == S_IFDIR)
        }
    }

    @Test func stagedFilesAreTheUsersOnlyWhateverTheUmask() async throws {
        let fixture = try await fixture("modes", signed: false)
        let previous = umask(0o022)
        defer { umask(previous) }
        #expect(try await fixture.tributary(["snapshot"]).status == 0)
        try await fixture.connectSource("qvp").execute("INSERT INTO items VALUES (2, 'b')")
        let end = try await fixture.connectSource("qvp").query("SELECT pg_current_wal_insert_lsn()").scalar!
        #expect(try await fixture.tributary(["replicate", "--source", "qvp", "--end-lsn", end]).status == 0)
        let staged = modes(fixture.stagingDirectory)
        #expect(staged.contains { $0.path.hasSuffix("manifest.json") } && staged.contains { $0.path.hasSuffix(".csv.gz") })
        for entry in staged {
            #expect(entry.mode == (entry.isDirectory ? 0o700 : 0o600), "\(entry.path) is \(String(entry.mode, radix: 8))")
        }
    }

    /// Snapshot applied, then one more row replicated: the path of its batch's manifest.
    func stagedBatchManifest(_ fixture: PipelineFixture) async throws -> String {
        #expect(try await fixture.tributary(["snapshot"]).status == 0)
        #expect(try await fixture.tributary(["apply", "--once"]).status == 0)
        let source = try await fixture.connectSource("qvp")
        try await source.execute("INSERT INTO items VALUES (2, 'b')")
        #expect(try await fixture.tributary(["replicate", "--source", "qvp",
                                             "--end-lsn", try await source.query("SELECT pg_current_wal_insert_lsn()").scalar!]).status == 0)
        let manifests = ((FileManager.default.enumerator(atPath: fixture.stagingDirectory + "/qvp/cdc")?.allObjects as? [String]) ?? [])
            .filter { $0.hasSuffix("manifest.json") }.map { fixture.stagingDirectory + "/qvp/cdc/" + $0 }
        return try #require(manifests.first)
    }

    /// `work_max` bounds the local work directory: a large transaction that spills past it stops
    /// the replicator with an error that says what to do, before the disk fills; with room, the
    /// same transaction replicates whole.
    @Test func workMaxStopsASpillWithAClearErrorAndNothingIsLost() async throws {
        var fixture = try await fixture("workmax", signed: false)
        fixture.snapshotYAML = "  jobs: 1\nbatch:\n  memory_max: 64kB\n"
        fixture.extraTargetYAML = "work_max: 1MiB"
        try fixture.writeConfiguration()
        #expect(try await fixture.tributary(["snapshot", "--apply"]).status == 0)
        let source = try await fixture.connectSource("qvp")
        try await source.execute("INSERT INTO items SELECT i, repeat(md5(i::text), 4) FROM generate_series(100, 40099) i")
        let end = try await source.query("SELECT pg_current_wal_insert_lsn()").scalar!
        let refused = try await fixture.tributary(["replicate", "--source", "qvp", "--end-lsn", end])
        #expect(refused.status == 1, "\(refused.standardError)")
        #expect(refused.standardError.contains("is full: it would hold") && refused.standardError.contains("raise work_max"),
                "\(refused.standardError)")

        fixture.extraTargetYAML = "work_max: 200MiB"
        try fixture.writeConfiguration()
        let replicated = try await fixture.tributary(["replicate", "--source", "qvp", "--end-lsn", end])
        #expect(replicated.status == 0, "\(replicated.standardError)")
        #expect(try await fixture.tributary(["apply", "--once"]).status == 0)
        #expect(try await fixture.verify("qvp").allSatisfy(\.matches))
    }

    @Test func aSignedStoreRefusesAnUnsignedOrAlteredManifest() async throws {
        let fixture = try await fixture("signed", signed: true)
        // Someone with write access to the store, but not the key, edits the batch's manifest.
        let path = try await stagedBatchManifest(fixture)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.contains("tributary-hmac-sha256: "), "written signed")
        try text.replacingOccurrences(of: "\"rows\":1,", with: "\"rows\":2,").write(toFile: path, atomically: true, encoding: .utf8)
        let refused = try await fixture.tributary(["apply", "--once"])
        #expect(refused.status == 1 && refused.standardError.contains("signature does not match"), "\(refused.standardError)")
        let target = try await fixture.connectTarget()
        #expect(try await target.query("SELECT count(*) FROM stg.qvp_items").scalar == "1", "nothing of it applied")
    }

    @Test func aTypeNameInAManifestNeverRunsAsSQL() async throws {
        let fixture = try await fixture("types", signed: false)
        let path = try await stagedBatchManifest(fixture)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        try text.replacingOccurrences(of: "\"staging_type\":\"text\"", with: "\"staging_type\":\"text); DROP TABLE stg.qvp_items; --\"")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let refused = try await fixture.tributary(["apply", "--once"])
        #expect(refused.status == 1 && refused.standardError.contains("declares a column type"), "\(refused.standardError)")
        let target = try await fixture.connectTarget()
        #expect(try await target.query("SELECT to_regclass('stg.qvp_items') IS NOT NULL").scalar == "t", "the table is still there")
    }
}

/// A server error whose detail may quote row values keeps them out of its one-line description.
@Suite struct ErrorDetailTests {
    @Test func rowValuesInADetailAreWithheldOutsideDebug() {
        let duplicate = PostgresError(kind: .statementFailed, endpoint: "target", sqlState: "23505",
                                      message: "duplicate key value violates unique constraint \"t_pkey\"", detail: "Key (ssn)=(078-05-1120) already exists.")
        #expect(!duplicate.description.contains("078-05-1120") && duplicate.description.contains("detail withheld"))
        #expect(duplicate.fullDescription.contains("078-05-1120"))
        let busy = PostgresError(kind: .statementFailed, endpoint: "target", sqlState: "55006", message: "database is being accessed",
                                 detail: "There are 2 other sessions using the database.")
        #expect(busy.description.contains("2 other sessions"), "a detail without data stays")
    }
}
