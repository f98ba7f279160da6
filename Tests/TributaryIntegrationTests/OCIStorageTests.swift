import Foundation
import Testing
import TributaryCore
import TributaryStorage

/// The OCI client and the oci:// staging store against the signature-checking emulator.
/// A class so that `deinit` removes what each test wrote locally.
@Suite(.clusterLoad) final class OCIStorageTests {
    let scratch = NSTemporaryDirectory() + "oci-test-\(UUID().uuidString)"

    init() throws {
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: scratch) }

    static let awkwardNames = ["plain.txt", "with space/and+plus.csv.gz", "ünïcødé/名前.json", "percent%25/q?x=1#frag", "a/b/../c", "~tilde*star'quote"]

    func temporaryFile(_ bytes: [UInt8]) throws -> String {
        let path = scratch + "/file-\(UUID().uuidString)"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    func store(_ emulator: OCIEmulator, prefix: String, settings: OCIObjectStorageClient.Settings = .init()) throws -> OCIStagingStore {
        try OCIStagingStore(namespace: OCIEmulator.namespace, bucket: OCIEmulator.bucket, prefix: prefix, client: try emulator.client(settings: settings),
                            workDirectory: scratch + "/work-\(UUID().uuidString)", logger: PipelineFixture.logger)
    }

    @Test func objectsWithAwkwardNamesRoundTripThroughTheStore() async throws {
        let emulator = try await OCIEmulator.start()
        let store = try store(emulator, prefix: "round")
        #expect(try await emulator.client().namespace() == OCIEmulator.namespace)
        for (index, name) in Self.awkwardNames.enumerated() {
            let bytes = Array("object \(index): \(name)\n".utf8)
            if index % 2 == 0 {
                try await store.put(key: name, bytes: bytes)
            } else {
                let file = try temporaryFile(bytes)
                try await store.put(key: name, file: file)
                #expect(!FileManager.default.fileExists(atPath: file), "put(file:) consumes the local file")
            }
            #expect(try await store.get(key: name) == bytes)
            #expect(try await store.head(key: name)?.size == bytes.count)
            let local = try await store.fetch(key: name)
            #expect(Array(try Data(contentsOf: URL(fileURLWithPath: local.path))) == bytes)
            local.release()
        }
        let listed = try await store.list(prefix: "", startAfter: nil).map(\.key)
        #expect(listed == Self.awkwardNames.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) })
        try await store.delete(key: Self.awkwardNames[0])
        try await store.delete(key: Self.awkwardNames[0])  // deleting a missing object is no error
        #expect(try await store.head(key: Self.awkwardNames[0]) == nil)
        await #expect(throws: StorageError.self) { try await store.get(key: "missing") }
        // Every request was signed and accepted: a signature mismatch would have failed a call above.
        #expect(try await emulator.stats()["rejected_signatures"] == 0)
    }

    @Test func rangeReadsAndIfNoneMatch() async throws {
        let emulator = try await OCIEmulator.start()
        let client = try emulator.client()
        let bytes = randomBytes(10_000)
        try await client.putObject(namespace: OCIEmulator.namespace, bucket: OCIEmulator.bucket, name: "r", body: .bytes(bytes))
        let part = try await client.getObject(namespace: OCIEmulator.namespace, bucket: OCIEmulator.bucket, name: "r", range: 100...1099)
        #expect(part?.status == 206)
        #expect(part?.body == Array(bytes[100...1099]))
        await #expect { try await client.putObject(namespace: OCIEmulator.namespace, bucket: OCIEmulator.bucket, name: "r",
                                                   body: .bytes([1]), ifAbsent: true) } throws: { ($0 as? OCIError)?.status == 412 }
        #expect(try await client.getObject(namespace: OCIEmulator.namespace, bucket: OCIEmulator.bucket, name: "r")?.body == bytes)
    }

    @Test func listingAcrossManyPagesReturnsEachObjectOnceInOrder() async throws {
        let emulator = try await OCIEmulator.start(pageSize: 7)
        let store = try store(emulator, prefix: "pages/")
        let keys = (0..<53).map { String(format: "cdc/%016llx/manifest.json", UInt64($0) * 0x1_0000_0123) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for key in keys { group.addTask { try await store.put(key: key, bytes: Array(key.utf8)) } }
            try await group.waitForAll()
        }
        let client = try emulator.client()
        let page = try await client.listObjectsPage(namespace: OCIEmulator.namespace, bucket: OCIEmulator.bucket, prefix: "pages/", start: nil, startAfter: nil)
        #expect(page.objects.count == 7 && page.nextStartWith != nil, "the emulator pages by 7")
        #expect(try await store.list(prefix: "cdc/", startAfter: nil).map(\.key) == keys)
        #expect(try await store.list(prefix: "cdc/", startAfter: keys[20]).map(\.key) == Array(keys[21...]))
        // An end bounds the listing strictly, as OCI's `end` does, across pages.
        #expect(try await store.list(prefix: "cdc/", startAfter: keys[3], endBefore: keys[40]).map(\.key) == Array(keys[4..<40]))
        #expect(try await store.list(prefix: "cdc/", startAfter: nil, endBefore: String(keys[9].dropLast(14))).map(\.key) == Array(keys[..<9]))
        #expect(try await client.listObjects(namespace: OCIEmulator.namespace, bucket: OCIEmulator.bucket, prefix: "pages/cdc/",
                                             startAfter: nil, pageSize: 5).map(\.name) == keys.map { "pages/" + $0 })
    }

    @Test func largeFilesGoUpInPartsAndAFailedUploadIsAborted() async throws {
        let emulator = try await OCIEmulator.start()
        var settings = OCIObjectStorageClient.Settings()
        settings.multipartThreshold = 1 << 20
        settings.partSize = 1 << 20
        settings.retry = OCIRetryPolicy(attempts: 2, baseDelay: .milliseconds(10))
        let store = try store(emulator, prefix: "multi", settings: settings)
        let bytes = randomBytes(5 << 20 + 12_345)
        try await store.put(key: "big.csv.gz", file: try temporaryFile(bytes))
        #expect(try await emulator.stats()["multipart_commits"] == 1)
        let local = try await store.fetch(key: "big.csv.gz")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: local.path))) == bytes)
        local.release()

        // Part 3 keeps failing: the upload is aborted, nothing is committed, no upload is left open.
        try await emulator.setFaults(["fail_path": "uploadPartNum=3"])
        let file = try temporaryFile(bytes)
        await #expect(throws: OCIError.self) { try await store.put(key: "failed.csv.gz", file: file) }
        try await emulator.setFaults([:])
        #expect(try await store.head(key: "failed.csv.gz") == nil)
        #expect(try await emulator.stats()["open_uploads"] == 0)
        #expect(try await emulator.stats()["multipart_commits"] == 1)
        #expect(FileManager.default.fileExists(atPath: file), "a failed put leaves the local file for the next attempt")
    }

    @Test func transientFaultsAreRetriedUntilEveryCallSucceeds() async throws {
        let emulator = try await OCIEmulator.start()
        var settings = OCIObjectStorageClient.Settings()
        settings.retry = OCIRetryPolicy(attempts: 12, baseDelay: .milliseconds(10), maximumDelay: .milliseconds(200))
        settings.multipartThreshold = 256 << 10
        settings.partSize = 100 << 10
        let store = try store(emulator, prefix: "faults", settings: settings)
        try await emulator.setFaults(["error_rate": 0.25, "statuses": [503, 429, 500], "drop_rate": 0.1, "slow_rate": 0.05, "delay_ms": 200, "seed": 7])
        var expected: [String: [UInt8]] = [:]
        for index in 0..<30 {
            let bytes = randomBytes(index % 5 == 0 ? 600 << 10 : 2_000 + index)
            let key = String(format: "obj-%02d", index)
            expected[key] = bytes
            try await store.put(key: key, file: try temporaryFile(bytes))
        }
        for (key, bytes) in expected {
            let local = try await store.fetch(key: key)
            #expect(Array(try Data(contentsOf: URL(fileURLWithPath: local.path))) == bytes, "\(key)")
            local.release()
        }
        #expect(try await store.list(prefix: "", startAfter: nil).map(\.key) == expected.keys.sorted())
        let stats = try await emulator.stats()
        #expect(stats["injected_errors"]! > 10)
        #expect(stats["dropped_connections"]! >= 1)
    }

    /// A batch's files go up and come back several at a time (each call waits 100 ms at the
    /// emulator here, as a real store's round trip does), consuming the local files, in the
    /// keys' order; a failed one fails the call, and what was fetched before it is released.
    @Test func aBatchsFilesTravelSeveralAtATime() async throws {
        let emulator = try await OCIEmulator.start()
        var settings = OCIObjectStorageClient.Settings()
        settings.retry = OCIRetryPolicy(attempts: 2, baseDelay: .milliseconds(10), maximumDelay: .milliseconds(20))
        let store = try store(emulator, prefix: "batch", settings: settings)
        let contents = (0..<12).map { index in Array("file \(index)\n".utf8) + randomBytes(index * 100) }
        let keys = (0..<12).map { String(format: "qvp/cdc/0000000000000010/public.t_%02d.csv.gz", $0) }
        let files = try contents.map(temporaryFile)
        try await emulator.setFaults(["slow_rate": 1.0, "delay_ms": 100])
        try await store.put(files: Array(zip(keys, files)).map { (key: $0, file: $1) })
        #expect(files.allSatisfy { !FileManager.default.fileExists(atPath: $0) }, "put(files:) consumes the local files")
        let connections = OCIObjectStorageClient.Settings().http.connections
        #expect(try await emulator.stats()["max_in_flight"]! >= connections, "uploads one after another")
        let fetched = try await store.fetch(keys: keys.reversed())
        #expect(try fetched.map { Array(try Data(contentsOf: URL(fileURLWithPath: $0.path))) } == contents.reversed())
        fetched.forEach { $0.release() }
        #expect(try await store.list(prefix: "qvp/", startAfter: nil).map(\.key) == keys)

        try await emulator.setFaults(["fail_path": "t_07"])
        await #expect(throws: (any Error).self) { try await store.fetch(keys: keys) }
        let downloads = try FileManager.default.contentsOfDirectory(atPath: store.downloadDirectory)
        #expect(downloads.isEmpty, "a failed fetch(keys:) leaves no download behind: \(downloads)")
        await #expect(throws: (any Error).self) {
            try await store.put(files: [(key: "qvp/x/a", file: try temporaryFile([1])), (key: "qvp/x/t_07", file: try temporaryFile([2]))])
        }
    }

    @Test func theEmulatorRejectsWhatOCIRejects() async throws {
        let emulator = try await OCIEmulator.start()
        let http = HTTPClient()
        let path = OCIPath.object(namespace: OCIEmulator.namespace, bucket: OCIEmulator.bucket, name: "x")
        // No signature.
        #expect(try await http.send(HTTPRequest(method: "GET", endpoint: emulator.endpoint, pathAndQuery: path)).status == 401)
        // Signed, but with a Date ten minutes old.
        let credentials = try OCICredentials.load(configFile: OCIEmulator.configFile, profile: nil, environment: [:], logger: PipelineFixture.logger)
        let host = String(emulator.endpoint.dropFirst("http://".count))
        for (age, status) in [(600.0, 401), (0.0, 404)] {
            let headers = ["date": OCIRequestSigner.httpDate(Date() - age), "host": host]
            let signed = try credentials.signer.sign(method: "GET", pathAndQuery: path, headers: headers, signsBody: false)
            let request = HTTPRequest(method: "GET", endpoint: emulator.endpoint, pathAndQuery: path,
                                      headers: headers.map { ($0.key, $0.value) } + [("authorization", signed.authorization)])
            #expect(try await http.send(request).status == status, "Date \(age) s old")
        }
        // A signature by another key.
        let otherKey = try OCIPrivateKey(pem: Array(try Data(contentsOf: URL(fileURLWithPath: Paths.repository + "/Tests/TributaryCoreTests/Fixtures/oci/other-key.pem"))), passphrase: nil)
        let forged = OCIRequestSigner(tenancy: credentials.profile.tenancy, user: credentials.profile.user,
                                      fingerprint: credentials.profile.fingerprint, key: otherKey)
        let client = try OCIObjectStorageClient(endpoint: emulator.endpoint, signer: forged, logger: PipelineFixture.logger)
        await #expect { _ = try await client.namespace() } throws: { error in
            guard case .service(_, _, 401, "NotAuthenticated", _, let requestID)? = error as? OCIError else { return false }
            return requestID != nil && "\(error)".contains("opc-request-id")
        }
        #expect(try await emulator.stats()["rejected_signatures"] == 1)
        // A PUT without Content-Length (chunked) is refused with 411.
        let curl = try await TestProcess.run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT",
                                                               "-H", "Transfer-Encoding: chunked", "--data-binary", "hi", emulator.endpoint + path])
        #expect(curl.standardOutput == "411")
    }

    /// Each bad input is one line that names its cause.
    @Test func badCredentialsAndEndpointsAreOneLineErrorsNamingTheCause() async throws {
        let fixtures = Paths.repository + "/Tests/TributaryCoreTests/Fixtures/oci"
        let directory = scratch + "/bad"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        func failure(_ config: String, profile: String? = nil) -> String {
            let file = directory + "/config-\(UUID().uuidString)"
            try? config.write(toFile: file, atomically: true, encoding: .utf8)
            do {
                _ = try OCICredentials.load(configFile: file, profile: profile, environment: [:], logger: PipelineFixture.logger)
                return "loaded"
            } catch {
                return "\(error)"
            }
        }
        let good = """
            [DEFAULT]
            user=ocid1.user.oc1..u
            fingerprint=73:7a:8f:d0:9c:c2:3f:ea:17:f0:04:e1:0e:e9:c9:f4
            key_file=\(fixtures)/key.pem
            tenancy=ocid1.tenancy.oc1..t
            region=eu-frankfurt-1
            [OTHER]
            region=us-ashburn-1

            """
        #expect(failure(good) == "loaded")
        #expect(failure(good, profile: "OTHER") == "loaded", "a profile inherits DEFAULT's keys")
        let cases: [(String, String?, String)] = [
            (good, "MISSING", "has no profile [MISSING]"),
            (good.replacingOccurrences(of: "\(fixtures)/key.pem", with: directory + "/absent.pem"), nil, "absent.pem"),
            (good.replacingOccurrences(of: "key.pem", with: "key-encrypted.pem") + "pass_phrase=wrong\n", "OTHER", "passphrase"),
            (good.replacingOccurrences(of: "key.pem", with: "key-encrypted.pem"), nil, "passphrase"),
            (good.replacingOccurrences(of: "73:7a:8f", with: "73-7a-8f"), nil, "fingerprint \"73-7a-8f"),
        ]
        for (config, profile, cause) in cases {
            let message = failure(config, profile: profile)
            #expect(message.contains(cause), "\(message)")
            #expect(!message.contains("\n"), "one line: \(message)")
        }
        #expect(failure(good.replacingOccurrences(of: "key.pem", with: "key-encrypted.pem") + "pass_phrase=correct-horse\n", profile: "OTHER") == "loaded")
        let missingFile = (try? OCICredentials.load(configFile: directory + "/nope", profile: nil, environment: [:], logger: PipelineFixture.logger)) == nil
        #expect(missingFile)

        // Nothing listens on port 1: the error names the endpoint, after the configured attempts.
        let credentials = try OCICredentials.load(configFile: OCIEmulator.configFile, profile: nil, environment: [:], logger: PipelineFixture.logger)
        var settings = OCIObjectStorageClient.Settings()
        settings.retry = OCIRetryPolicy(attempts: 2, baseDelay: .milliseconds(10))
        let client = try OCIObjectStorageClient(endpoint: "http://127.0.0.1:1", signer: credentials.signer, settings: settings, logger: PipelineFixture.logger)
        await #expect { _ = try await client.namespace() } throws: { error in
            let message = "\(error)"
            return message.contains("cannot reach http://127.0.0.1:1") && message.contains("after 2 attempts") && !message.contains("\n")
        }
    }
}
