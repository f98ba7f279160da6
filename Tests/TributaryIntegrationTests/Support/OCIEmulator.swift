import Foundation
import Logging
import TributaryCore
import TributaryStorage

/// deploy/tools/oci-emulator.py on a free loopback port, trusting the test API key of
/// Tests/TributaryCoreTests/Fixtures/oci; stopped when the test ends.
final class OCIEmulator: @unchecked Sendable {
    static let namespace = "tributary"
    static let bucket = "staging"
    static let configFile = Paths.repository + "/Tests/TributaryCoreTests/Fixtures/oci/config"

    let endpoint: String
    private let process: TestProcess
    private let control = HTTPClient()

    private init(endpoint: String, process: TestProcess) {
        self.endpoint = endpoint
        self.process = process
    }

    deinit {
        process.kill(signal: SIGTERM)
        _ = process.waitBlocking()
    }

    static func start(pageSize: Int = 1000, buckets: [String] = [bucket]) async throws -> OCIEmulator {
        // A checkout leaves the key readable by all, which the client rightly warns about.
        for key in ["key.pem", "key-encrypted.pem", "key-pkcs1.pem", "other-key.pem"] {
            chmod(Paths.repository + "/Tests/TributaryCoreTests/Fixtures/oci/" + key, 0o600)
        }
        let process = TestProcess.python("oci-emulator.py", ["--oci-config", configFile, "--namespace", namespace,
                                                             "--page-size", String(pageSize)] + buckets.flatMap { ["--bucket", $0] })
        try process.start()
        let endpoint = try await process.firstLine("the OCI emulator") { line in
            line.hasPrefix("listening on ") ? String(line.dropFirst("listening on ".count)) : nil
        }
        return OCIEmulator(endpoint: endpoint, process: process)
    }

    /// Switches fault injection: error_rate, statuses, slow_rate, delay_ms, drop_rate, fail_path, seed.
    func setFaults(_ faults: [String: Any]) async throws {
        let body = try JSONSerialization.data(withJSONObject: faults)
        let response = try await control.send(HTTPRequest(method: "POST", endpoint: endpoint, pathAndQuery: "/_emulator/faults",
                                                          headers: [("content-type", "application/json")], body: .bytes(Array(body))))
        guard response.status == 200 else { throw TestFailure("emulator refused faults: \(response.status)") }
    }

    func stats() async throws -> [String: Int] {
        let response = try await control.send(HTTPRequest(method: "GET", endpoint: endpoint, pathAndQuery: "/_emulator/stats"))
        return try JSONDecoder().decode([String: Int].self, from: Data(response.body))
    }

    /// A client signing with the test key.
    func client(settings: OCIObjectStorageClient.Settings = .init()) throws -> OCIObjectStorageClient {
        let credentials = try OCICredentials.load(configFile: Self.configFile, profile: "DEFAULT", logger: PipelineFixture.logger)
        return try OCIObjectStorageClient(endpoint: endpoint, signer: credentials.signer, settings: settings, logger: PipelineFixture.logger)
    }

    /// The `oci:` section of tributary.yaml for this emulator.
    func targetYAML(attempts: Int = 8, multipartThreshold: String = "128MiB", partSize: String = "1MiB") -> String {
        """
        oci:
          config_file: \(Self.configFile)
          endpoint: \(endpoint)
          attempts: \(attempts)
          multipart_threshold: \(multipartThreshold)
          part_size: \(partSize)

        """
    }
}
