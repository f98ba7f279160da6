import TributaryCore

/// A staging store whose manifests (`.json` objects) are signed when written and checked when read
/// (`ManifestSignature`); data files pass through, covered by the SHA-256s their manifests list.
public struct SigningStagingStore: StagingStore {
    public let inner: any StagingStore
    let key: [UInt8]

    public init(_ inner: any StagingStore, key: [UInt8]) {
        self.inner = inner
        self.key = key
    }

    public var description: String { inner.description }

    static func isManifest(_ key: String) -> Bool { key.hasSuffix(".json") }

    public func put(key: String, file: String) async throws { try await inner.put(key: key, file: file) }

    /// Data files only (manifests go through `put(key:bytes:)`): the inner store's way.
    public func put(files: [(key: String, file: String)]) async throws { try await inner.put(files: files) }

    public func put(key: String, bytes: [UInt8]) async throws {
        try await inner.put(key: key, bytes: Self.isManifest(key) ? ManifestSignature.sign(bytes, key: self.key) : bytes)
    }

    public func get(key: String) async throws -> [UInt8] {
        let bytes = try await inner.get(key: key)
        guard Self.isManifest(key) else { return bytes }
        do {
            return try ManifestSignature.verified(bytes, key: self.key)
        } catch let refused as ManifestSignature.Refused {
            throw StorageError.notSigned(key: key, reason: refused.reason)
        }
    }

    public func fetch(key: String) async throws -> LocalObject { try await inner.fetch(key: key) }
    public func fetch(keys: [String]) async throws -> [LocalObject] { try await inner.fetch(keys: keys) }
    public func head(key: String) async throws -> StoredObject? { try await inner.head(key: key) }
    public func list(prefix: String, startAfter: String?, endBefore: String?) async throws -> [StoredObject] {
        try await inner.list(prefix: prefix, startAfter: startAfter, endBefore: endBefore)
    }
    public func delete(key: String) async throws { try await inner.delete(key: key) }
}
