import Foundation
import TributaryCore


/// A local copy of an object, to stream from. `release()` removes it when it was a temporary download.
public struct LocalObject: Sendable {
    public var path: String
    public var isTemporary: Bool

    public init(path: String, isTemporary: Bool) {
        self.path = path
        self.isTemporary = isTemporary
    }

    public func release() {
        if isTemporary { LocalFiles.remove(path) }
    }
}

/// The OCI layer: a flat key space with lexical listing. Implementations make every `put` atomic:
/// a reader sees the whole object or none of it. A new kind of store conforms here and is opened
/// by `StagingStores.open`.
public protocol StagingStore: Sendable, CustomStringConvertible {
    /// Stores the file at `file` under `key`. The local file is consumed (moved or deleted).
    func put(key: String, file: String) async throws
    /// Stores small contents (a manifest) under `key`.
    func put(key: String, bytes: [UInt8]) async throws
    /// The whole object; for small objects such as manifests.
    func get(key: String) async throws -> [UInt8]
    /// A local file with the object's bytes, for streaming.
    func fetch(key: String) async throws -> LocalObject
    /// Size of the object, or nil when it does not exist.
    func head(key: String) async throws -> StoredObject?
    /// Objects whose key starts with `prefix`, sorts after `startAfter` and before `endBefore`
    /// (strictly, as OCI's ListObjects `end`), in lexical order. A remote store lists no page past
    /// `endBefore`.
    func list(prefix: String, startAfter: String?, endBefore: String?) async throws -> [StoredObject]
    /// Removes the object; a missing object is not an error.
    func delete(key: String) async throws
}

extension StagingStore {
    /// Objects whose key starts with `prefix` and sorts after `startAfter`, in lexical order.
    public func list(prefix: String, startAfter: String?) async throws -> [StoredObject] {
        try await list(prefix: prefix, startAfter: startAfter, endBefore: nil)
    }

    /// Uploads a file the caller keeps: `put(key:file:)` consumes its file, so it gets a hard link
    /// (or a copy, across filesystems) made in `scratchDirectory`. Returns the bytes uploaded.
    @discardableResult
    public func upload(keeping file: String, as key: String, scratchDirectory: String) async throws -> Int {
        try LocalFiles.makeDirectory(scratchDirectory)
        let staged = scratchDirectory + "/put-\(UUID().uuidString)"
        if link(file, staged) != 0 { try FileManager.default.copyItem(atPath: file, toPath: staged) }
        var status = stat()
        let size = stat(staged, &status) == 0 ? Int(status.st_size) : 0
        do {
            try await put(key: key, file: staged)
        } catch {
            LocalFiles.remove(staged)
            throw error
        }
        return size
    }

    /// Downloads `key` to `file`, replacing it.
    public func download(_ key: String, to file: String) async throws {
        let local = try await fetch(key: key)
        defer { local.release() }
        LocalFiles.remove(file)
        if local.isTemporary {
            guard rename(local.path, file) == 0 else { throw StorageError.io(operation: "move the download to", path: file, errno: errno) }
        } else {
            try FileManager.default.copyItem(atPath: local.path, toPath: file)
        }
    }
}
