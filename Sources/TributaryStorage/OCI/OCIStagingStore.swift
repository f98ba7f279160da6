import Foundation
import Logging
import TributaryCore

/// The staging store in an OCI bucket: `oci://<namespace>/<bucket>/<prefix>`. Keys live under the
/// prefix. PutObject replaces an object atomically, so a reader sees the whole object or none of it,
/// and a batch (whose manifest goes up last) exists only once complete.
public final class OCIStagingStore: StagingStore {
    public let namespace: String
    public let bucket: String
    public let prefix: String
    public let client: OCIObjectStorageClient
    /// Downloads for streaming land here and are removed when released.
    public let downloadDirectory: String
    private let logger: Logger

    public init(namespace: String, bucket: String, prefix: String, client: OCIObjectStorageClient,
                workDirectory: String, logger: Logger) throws {
        self.namespace = namespace
        self.bucket = bucket
        self.prefix = prefix.isEmpty || prefix.hasSuffix("/") ? prefix : prefix + "/"
        self.client = client
        downloadDirectory = workDirectory + "/downloads"
        self.logger = logger
        try LocalFiles.makeDirectory(downloadDirectory)
    }

    public var description: String { "staging store oci://\(namespace)/\(bucket)/\(prefix)" }

    private func name(_ key: String) -> String { prefix + key }

    public func put(key: String, file: String) async throws {
        try await client.upload(namespace: namespace, bucket: bucket, name: name(key), file: file)
        LocalFiles.remove(file)
    }

    public func put(key: String, bytes: [UInt8]) async throws {
        try await client.putObject(namespace: namespace, bucket: bucket, name: name(key), body: .bytes(bytes))
    }

    public func get(key: String) async throws -> [UInt8] {
        guard let response = try await client.getObject(namespace: namespace, bucket: bucket, name: name(key)) else {
            throw StorageError.notFound(key: key, store: description)
        }
        return response.body
    }

    public func fetch(key: String) async throws -> LocalObject {
        let path = downloadDirectory + "/\(UUID().uuidString)-" + (key as NSString).lastPathComponent
        do {
            guard try await client.getObject(namespace: namespace, bucket: bucket, name: name(key), toFile: path) != nil else {
                throw StorageError.notFound(key: key, store: description)
            }
        } catch {
            LocalFiles.remove(path)
            throw error
        }
        return LocalObject(path: path, isTemporary: true)
    }

    public func head(key: String) async throws -> StoredObject? {
        try await client.headObject(namespace: namespace, bucket: bucket, name: name(key)).map { StoredObject(key: key, size: Int($0)) }
    }

    public func list(prefix listPrefix: String, startAfter: String?, endBefore: String?) async throws -> [StoredObject] {
        try await client.listObjects(namespace: namespace, bucket: bucket, prefix: name(listPrefix), startAfter: startAfter.map(name),
                                     end: endBefore.map(name))
            .map { StoredObject(key: String($0.name.dropFirst(prefix.count)), size: $0.size ?? 0) }
    }

    public func delete(key: String) async throws {
        try await client.deleteObject(namespace: namespace, bucket: bucket, name: name(key))
    }
}
