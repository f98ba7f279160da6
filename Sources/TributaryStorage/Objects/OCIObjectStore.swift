import Foundation
import TributaryCore

/// A prefix of an OCI bucket as an `ObjectStore`.
public struct OCIObjectStore: ObjectStore {
    public let client: OCIObjectStorageClient
    public let namespace: String
    public let bucket: String
    public let prefix: String
    /// The region the bucket is in: the destination of a server-side copy.
    public let region: String

    public init(client: OCIObjectStorageClient, namespace: String, bucket: String, prefix: String, region: String) {
        self.client = client
        self.namespace = namespace
        self.bucket = bucket
        self.prefix = prefix
        self.region = region
    }

    public var description: String { "oci://\(namespace)/\(bucket)/\(prefix)" }

    public func list(after: String?, limit: Int) async throws -> (objects: [ObjectEntry], more: Bool) {
        let page = try await client.listObjectsPage(namespace: namespace, bucket: bucket, prefix: prefix.isEmpty ? nil : prefix, start: nil,
                                                    startAfter: after.map { prefix + $0 }, limit: limit, fields: "name,size,md5,etag,timeModified")
        let objects = page.objects.map { ObjectEntry(name: String($0.name.dropFirst(prefix.count)), size: Int64($0.size ?? 0), md5: $0.md5, etag: $0.etag) }
        return (objects, page.nextStartWith != nil)
    }

    public func head(_ name: String) async throws -> ObjectEntry? {
        try await client.headEntry(namespace: namespace, bucket: bucket, name: prefix + name).map {
            ObjectEntry(name: name, size: $0.size, md5: $0.md5, etag: $0.etag)
        }
    }

    public func read(_ name: String, range: ClosedRange<Int64>?, ifMatch: String?) async throws -> [UInt8] {
        try await client.getBytes(namespace: namespace, bucket: bucket, name: prefix + name, range: range, ifMatch: ifMatch)
    }

    public func write(_ name: String, bytes: [UInt8]) async throws -> String? {
        try await client.putBytes(namespace: namespace, bucket: bucket, name: prefix + name, bytes: bytes)
    }

    public func write(_ name: String, size: Int64, partSize: Int,
                      part: @escaping @Sendable (Int, ClosedRange<Int64>) async throws -> [UInt8]) async throws -> String? {
        let ranges = Self.ranges(size: size, partSize: partSize)
        return try await client.uploadParts(namespace: namespace, bucket: bucket, name: prefix + name, count: ranges.count) { number in
            try await part(number, ranges[number - 1])
        }
    }

    public func delete(_ name: String) async throws {
        try await client.deleteObject(namespace: namespace, bucket: bucket, name: prefix + name)
    }

    /// Object Storage copies `name` from `source` to here itself (CopyObject), failing rather than
    /// copying another version if the source's ETag is no longer `ifMatch`; waits for the work
    /// request (polled after 50 ms, then ever less often: a small object's copy is done at once, a
    /// large one's takes a while) and returns the copy's ETag when `wantETag` (one more request).
    public func copyServerSide(_ name: String, from source: OCIObjectStore, ifMatch: String?, wantETag: Bool,
                               pollInterval: Duration = .milliseconds(50)) async throws -> String? {
        let id = try await source.client.copyObject(namespace: source.namespace, bucket: source.bucket, details: .init(
            sourceObjectName: source.prefix + name, sourceObjectIfMatchETag: ifMatch, destinationRegion: region,
            destinationNamespace: namespace, destinationBucket: bucket, destinationObjectName: prefix + name))
        var backoff = Backoff(initial: pollInterval, maximum: .seconds(5))
        while true {
            let request = try await source.client.workRequest(id)
            switch request.status {
            case "COMPLETED":
                return wantETag ? try await head(name)?.etag : nil
            case "FAILED", "CANCELED":
                let errors = (try? await source.client.workRequestErrors(id)) ?? []
                throw OCIError.service(operation: "CopyObject", object: source.prefix + name, status: 409,
                                       code: errors.first?.code ?? request.status,
                                       message: errors.first?.message ?? "the copy's work request ended \(request.status)", requestID: id)
            default:
                try await Task.sleep(for: backoff.next(unit: 1))
            }
        }
    }
}
