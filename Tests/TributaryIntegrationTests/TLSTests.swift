import Foundation
import Testing
import TributaryCore
import TributaryPostgres

/// TLS to PostgreSQL with `sslmode=verify-full`, against a cluster whose certificate a throwaway
/// local CA signed: every stage works through it (the replication connection too), and a client
/// that trusts another CA is refused with a one-line error.
@Suite(.clusterLoad) struct TLSTests {
    /// A CA and a server certificate for 127.0.0.1 and localhost; returns the directory.
    func makeCertificates(in directory: String) async throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let script = """
            set -e; cd '\(directory)'
            openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=tributary-test-ca -keyout ca.key -out ca.crt 2>/dev/null
            openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca -keyout other.key -out other-ca.crt 2>/dev/null
            openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr 2>/dev/null
            printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext
            openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.crt 2>/dev/null
            chmod 600 server.key; chown postgres: server.key server.crt 2>/dev/null || true
            """
        let outcome = try await TestProcess.run("/bin/bash", ["-c", script])
        guard outcome.status == 0 else { throw TestFailure("making certificates: \(outcome.standardError)") }
    }

    @Test func verifyFullWorksForEveryStageAndAnotherCAIsRefused() async throws {
        let shared = try await TestClusters.shared()
        let certificates = shared.directory + "/tls-\(UUID().uuidString.prefix(8))"
        try await makeCertificates(in: certificates)
        // The server runs as the postgres user: it must reach its key.
        _ = try await TestProcess.run("/bin/chmod", ["755", certificates])
        let cluster = try await PrivateCluster.start("tls", settings: [
            "ssl=on", "ssl_cert_file=\(certificates)/server.crt", "ssl_key_file=\(certificates)/server.key",
        ])
        defer { Task { await cluster.destroy() } }
        var fixture = try await PipelineFixture.make("tls", sources: [("qvp", ["public.items"])], sourceCluster: cluster)
        fixture.sources[0].conninfo += " sslmode=verify-full sslrootcert=\(certificates)/ca.crt"
        let source = try await fixture.connectSource("qvp")
        #expect(try await source.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").scalar == "t", "the test's own session is TLS")
        try await source.execute("CREATE TABLE items (id int PRIMARY KEY, note text); INSERT INTO items VALUES (1, 'a')")

        let check = try await fixture.tributary(["check"])
        #expect(check.status == 0, "\(check.standardOutput)\(check.standardError)")
        #expect(try await fixture.tributary(["snapshot", "--apply"]).status == 0)
        try await source.execute("INSERT INTO items VALUES (2, 'b')")
        let end = try await source.query("SELECT pg_current_wal_insert_lsn()").scalar!
        // The replication connection goes through TLS too: the walsender's session says so.
        let replicate = TestProcess(Paths.tributary, ["replicate", "--source", "qvp", "--config", fixture.configurationDirectory])
        try replicate.start()
        try await eventually("the replicator's walsender is on TLS", seconds: 30) {
            try await source.query("""
                SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE s.ssl
                """).scalar == "1"
        }
        replicate.kill(signal: SIGTERM)
        #expect(await replicate.wait().status == 0)
        let caughtUp = try await fixture.tributary(["replicate", "--source", "qvp", "--end-lsn", end])
        #expect(caughtUp.status == 0, "\(caughtUp.standardError)")
        #expect(try await fixture.tributary(["apply", "--once"]).status == 0)
        #expect(try await fixture.verify("qvp").allSatisfy(\.matches))

        // Trusting another CA: refused, in one line that names the certificate problem.
        var wrong = fixture
        wrong.sources[0].conninfo = wrong.sources[0].conninfo.replacingOccurrences(of: "ca.crt", with: "other-ca.crt")
        try wrong.writeConfiguration()
        let refused = try await wrong.tributary(["check"])
        #expect(refused.status != 0 && refused.standardOutput.contains("certificate verify failed"), "\(refused.standardOutput)\(refused.standardError)")
        try fixture.writeConfiguration()
    }
}
