import Foundation
import Synchronization
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
    /// Stores each local file under its key, as `put(key:file:)` does, several at once: a batch's
    /// data files. The files need not be durable yet (their writer did not fsync them): a store
    /// that keeps them on local disk makes them so before it returns. Either all are stored when
    /// it returns, or it throws and any of them may be.
    func put(files: [(key: String, file: String)]) async throws
    /// The whole object; for small objects such as manifests.
    func get(key: String) async throws -> [UInt8]
    /// A local file with the object's bytes, for streaming.
    func fetch(key: String) async throws -> LocalObject
    /// `fetch(key:)` of each key, in their order, several at once.
    func fetch(keys: [String]) async throws -> [LocalObject]
    /// Size of the object, or nil when it does not exist.
    func head(key: String) async throws -> StoredObject?
    /// Objects whose key starts with `prefix`, sorts after `startAfter` and before `endBefore`
    /// (strictly, as OCI's ListObjects `end`), in lexical order. A remote store lists no page past
    /// `endBefore`.
    func list(prefix: String, startAfter: String?, endBefore: String?) async throws -> [StoredObject]
    /// Removes the object; a missing object is not an error.
    func delete(key: String) async throws
}

/// How many transfers of one call go at once (`put(files:)`, `fetch(keys:)`).
public enum StagingTransfers {
    /// At 600 tables a batch has hundreds of files: one after another, each waits out its own
    /// round trip to the object store (tens of milliseconds to OCI: seconds a batch).
    public static let concurrent = 8
}

extension StagingStore {
    /// `put(key:file:)` of each, `StagingTransfers.concurrent` at a time.
    public func put(files: [(key: String, file: String)]) async throws {
        try await Self.inParallel(files) { try await put(key: $0.key, file: $0.file) }
    }

    /// Local copies of `keys`, in their order, `StagingTransfers.concurrent` fetched at a time.
    /// On an error, those fetched are released.
    public func fetch(keys: [String]) async throws -> [LocalObject] {
        let fetched = LocalObjects(count: keys.count)
        do {
            try await Self.inParallel(Array(keys.enumerated())) { index, key in fetched.set(index, try await fetch(key: key)) }
        } catch {
            fetched.releaseAll()
            throw error
        }
        return fetched.all
    }

    /// `body` for each item, at most `StagingTransfers.concurrent` at once; the first error ends it.
    static func inParallel<Item: Sendable>(_ items: [Item], _ body: @escaping @Sendable (Item) async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = items.makeIterator()
            for _ in 0..<StagingTransfers.concurrent {
                guard let item = next.next() else { break }
                group.addTask { try await body(item) }
            }
            while try await group.next() != nil {
                if let item = next.next() { group.addTask { try await body(item) } }
            }
        }
    }

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

/// What `fetch(keys:)` fetched so far, by place.
private final class LocalObjects: Sendable {
    private let objects: Mutex<[LocalObject?]>

    init(count: Int) { objects = Mutex(Array(repeating: nil, count: count)) }

    func set(_ index: Int, _ object: LocalObject) { objects.withLock { $0[index] = object } }

    var all: [LocalObject] { objects.withLock { $0.map { $0! } } }

    func releaseAll() { objects.withLock { $0.forEach { $0?.release() } } }
}
