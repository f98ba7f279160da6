import Foundation
import TributaryCore

/// A directory as an `ObjectStore` (tests, the demo, a mounted volume): names are paths under it.
/// ETags change whenever a file is written again (new inode and time); MD5s are of the content.
/// Writes go to a temporary name and are renamed into place, so a reader never sees half a file.
public struct FileObjectStore: ObjectStore {
    public let root: String
    /// A missing directory is an error (a source: a typo would make every target object look
    /// deleted), or an empty store (a target not written yet).
    public let mustExist: Bool
    static let incoming = ".tributary-incoming"

    /// Nothing is created here: a source directory is only ever read.
    public init(root: String, mustExist: Bool = true) {
        self.root = (root as NSString).standardizingPath
        self.mustExist = mustExist
    }

    public var description: String { "file://\(root)/" }

    public func list(after: String?, limit: Int) async throws -> (objects: [ObjectEntry], more: Bool) {
        var status = stat()
        guard stat(root, &status) == 0, (status.st_mode & S_IFMT) == S_IFDIR else {
            if !mustExist && errno == ENOENT { return ([], false) }
            throw StorageError.io(operation: "list the directory", path: root, errno: errno == 0 ? ENOTDIR : errno)
        }
        var objects: [ObjectEntry] = []
        let more = try walk(relative: "", after: after, limit: limit, into: &objects)
        return (objects, more)
    }

    /// Depth first, each directory's entries in the byte order of their names (a directory's name
    /// with its `/`), so names come out in listing order; subtrees wholly before `after` are skipped.
    /// Returns true when more names follow the `limit` collected.
    private func walk(relative: String, after: String?, limit: Int, into objects: inout [ObjectEntry]) throws -> Bool {
        let directory = relative.isEmpty ? root : root + "/" + relative
        var entries: [(key: String, isDirectory: Bool)] = []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            if relative.isEmpty && name == Self.incoming { continue }
            var status = stat()
            guard lstat(directory + "/" + name, &status) == 0 else { continue }
            let isDirectory = (status.st_mode & S_IFMT) == S_IFDIR
            guard isDirectory || (status.st_mode & S_IFMT) == S_IFREG else { continue }
            entries.append((relative + name + (isDirectory ? "/" : ""), isDirectory))
        }
        entries.sort { utf8Precedes($0.key, $1.key) }
        for item in entries {
            if let after, !item.isDirectory, !utf8Precedes(after, item.key) { continue }
            if let after, item.isDirectory, utf8Precedes(item.key, after), !after.hasPrefix(item.key) { continue }
            if item.isDirectory {
                if try walk(relative: item.key, after: after, limit: limit, into: &objects) { return true }
                continue
            }
            if objects.count == limit { return true }
            objects.append(try entry(item.key))
        }
        return false
    }

    private func entry(_ name: String) throws -> ObjectEntry {
        let path = root + "/" + name
        var status = stat()
        guard stat(path, &status) == 0 else { throw StorageError.io(operation: "stat", path: path, errno: errno) }
        let digest = MessageDigest(.md5)
        try FileInput(path: path).forEachChunk { digest.update($0) }
        return ObjectEntry(name: name, size: Int64(status.st_size), md5: Data(digest.finalizeBytes()).base64EncodedString(),
                           etag: Self.etag(status))
    }

    static func etag(_ status: stat) -> String {
        "\(status.st_ino)-\(status.st_mtim.tv_sec)\(status.st_mtim.tv_nsec)-\(status.st_size)"
    }

    public func head(_ name: String) async throws -> ObjectEntry? {
        var status = stat()
        guard stat(try path(name), &status) == 0 else { return nil }
        return try entry(name)
    }

    public func read(_ name: String, range: ClosedRange<Int64>?, ifMatch: String?) async throws -> [UInt8] {
        let path = try path(name)
        let input = try FileInput(path: path)
        var status = stat()
        guard stat(path, &status) == 0 else { throw StorageError.notFound(key: name, store: description) }
        if let ifMatch, Self.etag(status) != ifMatch {
            throw StorageError.notCopied(key: name, reason: "it changed while it was being copied")
        }
        guard let range else { return try FileInput.readAll(path) }
        try input.seek(to: range.lowerBound)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(range.count))
        while bytes.count < range.count {
            let chunk = try input.read(upTo: min(Int(range.count) - bytes.count, 1 << 20))
            if chunk.isEmpty { break }
            bytes += chunk
        }
        return bytes
    }

    public func write(_ name: String, bytes: [UInt8]) async throws -> String? {
        try commit(name) { try $0.write(bytes) }
    }

    public func write(_ name: String, size: Int64, partSize: Int,
                      part: @escaping @Sendable (Int, ClosedRange<Int64>) async throws -> [UInt8]) async throws -> String? {
        let temporary = try incomingPath()
        let output = try FileOutput(creating: temporary)
        do {
            for (index, range) in Self.ranges(size: size, partSize: partSize).enumerated() {
                try output.write(try await part(index + 1, range))
            }
            try output.syncAndClose()
            return try place(temporary, as: name)
        } catch {
            LocalFiles.remove(temporary)
            throw error
        }
    }

    public func delete(_ name: String) async throws {
        let path = try path(name)
        if unlink(path) != 0 && errno != ENOENT { throw StorageError.io(operation: "delete", path: path, errno: errno) }
    }

    private func commit(_ name: String, _ body: (FileOutput) throws -> Void) throws -> String? {
        let temporary = try incomingPath()
        do {
            let output = try FileOutput(creating: temporary)
            try body(output)
            try output.syncAndClose()
            return try place(temporary, as: name)
        } catch {
            LocalFiles.remove(temporary)
            throw error
        }
    }

    /// A fresh temporary name, in a directory beside the objects (the same file system, so the rename is atomic).
    private func incomingPath() throws -> String {
        try LocalFiles.makeDirectory(root + "/" + Self.incoming)
        return root + "/" + Self.incoming + "/" + UUID().uuidString
    }

    private func place(_ temporary: String, as name: String) throws -> String? {
        let destination = try path(name)
        try LocalFiles.makeDirectory((destination as NSString).deletingLastPathComponent)
        guard rename(temporary, destination) == 0 else { throw StorageError.io(operation: "rename into", path: destination, errno: errno) }
        var status = stat()
        return stat(destination, &status) == 0 ? Self.etag(status) : nil
    }

    private func path(_ name: String) throws -> String {
        guard !name.isEmpty, !name.hasPrefix("/"), !name.split(separator: "/", omittingEmptySubsequences: false).contains(where: { $0 == ".." || $0 == "." || $0.isEmpty }) else {
            throw StorageError.unsupported("object name \"\(name)\" is not usable in a directory store")
        }
        return root + "/" + name
    }
}
