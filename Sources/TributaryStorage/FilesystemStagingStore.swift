import Foundation
import TributaryCore

/// The staging store on a local (or mounted) filesystem. Objects are files under `root`; a put goes
/// to a temporary name, is fsynced and renamed into place, and the directory is fsynced, so a reader
/// never sees half an object and a crash never leaves one.
///
/// File operations block (fsync can take a while), so they run on the store's own thread.
public actor FilesystemStagingStore: StagingStore {
    public nonisolated let root: String
    private nonisolated let executor = ThreadExecutor(name: "staging fs")
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    private var temporarySequence = 0
    /// Several stores (and processes) share `.incoming`: names must never collide.
    private nonisolated let instance = UInt64.random(in: 0...UInt64.max)

    public init(root: String) throws {
        self.root = (root as NSString).standardizingPath
        try LocalFiles.makeDirectory(self.root + "/.incoming")
    }

    public nonisolated var description: String { "staging store file://\(root)" }

    public func put(key: String, file: String) throws {
        let destination = try path(for: key)
        try LocalFiles.makeDirectory((destination as NSString).deletingLastPathComponent)
        if rename(file, destination) != 0 {
            guard errno == EXDEV else { throw StorageError.io(operation: "move \(file) to", path: destination, errno: errno) }
            // Another filesystem: copy through a temporary name instead.
            try write(key: key, destination: destination) { output in
                try FileInput(path: file).forEachChunk { try output.write($0) }
            }
            LocalFiles.remove(file)
            return
        }
        try LocalFiles.syncDirectory((destination as NSString).deletingLastPathComponent)
    }

    /// The files fsynced all at once from several threads (ext4 commits its journal once for the
    /// fsyncs waiting together, where one after another each waited for a commit of its own:
    /// 270 files of a batch at 600 tables took 1.7 s so on a busy machine), then renamed into
    /// place, and each directory fsynced once.
    public func put(files: [(key: String, file: String)]) async throws {
        try LocalFiles.syncAll(files.map(\.file))
        var directories: [String] = []
        for (key, file) in files {
            let destination = try path(for: key)
            let directory = (destination as NSString).deletingLastPathComponent
            if directories.last != directory && !directories.contains(directory) {
                try LocalFiles.makeDirectory(directory)
                directories.append(directory)
            }
            if rename(file, destination) != 0 {
                guard errno == EXDEV else { throw StorageError.io(operation: "move \(file) to", path: destination, errno: errno) }
                try write(key: key, destination: destination) { output in
                    try FileInput(path: file).forEachChunk { try output.write($0) }
                }
                LocalFiles.remove(file)
            }
        }
        for directory in directories { try LocalFiles.syncDirectory(directory) }
    }

    public func put(key: String, bytes: [UInt8]) throws {
        let destination = try path(for: key)
        try LocalFiles.makeDirectory((destination as NSString).deletingLastPathComponent)
        try write(key: key, destination: destination) { try $0.write(bytes) }
    }

    public func get(key: String) throws -> [UInt8] {
        let file = try path(for: key)
        guard FileManager.default.fileExists(atPath: file) else { throw StorageError.notFound(key: key, store: description) }
        return try FileInput.readAll(file)
    }

    public func fetch(key: String) throws -> LocalObject {
        let file = try path(for: key)
        guard FileManager.default.fileExists(atPath: file) else { throw StorageError.notFound(key: key, store: description) }
        return LocalObject(path: file, isTemporary: false)
    }

    /// The files themselves, in one call: nothing is transferred.
    public func fetch(keys: [String]) async throws -> [LocalObject] {
        try keys.map { try fetch(key: $0) }
    }

    public func head(key: String) throws -> StoredObject? {
        var status = stat()
        guard stat(try path(for: key), &status) == 0 else { return nil }
        return StoredObject(key: key, size: Int(status.st_size))
    }

    public func list(prefix: String, startAfter: String?, endBefore: String?) throws -> [StoredObject] {
        // Walk only the deepest directory the prefix names.
        let directoryPart = prefix.contains("/") ? String(prefix[..<prefix.lastIndex(of: "/")!]) : ""
        var results: [StoredObject] = []
        walk(directoryPart, bounds: ListingBounds(prefix: prefix, startAfter: startAfter, endBefore: endBefore), into: &results)
        // Byte order, as object stores list: Swift's String `<` on these ASCII keys is that.
        return results.sorted { Self.precedes($0.key, $1.key) }
    }

    /// Which keys a listing wants, and so which directories it need not open.
    struct ListingBounds {
        var prefix: String
        var startAfter: String?
        var endBefore: String?

        /// Whether some key under `directory` (a key prefix ending in "/") can be listed. A
        /// directory wholly before the start is not opened: listing what follows the applied
        /// position was walking every batch kept for retention, file by file (status of 2 x 300
        /// tables spent half its time there, and the applier lists on every step).
        func mayHoldKeys(under directory: String) -> Bool {
            guard prefix.hasPrefix(directory) || directory.hasPrefix(prefix) else { return false }
            // Every key under it sorts before `startAfter` (or is it), unless it leads to `startAfter`.
            if let startAfter, !startAfter.hasPrefix(directory), FilesystemStagingStore.precedes(directory, startAfter) { return false }
            // Every key under it sorts past the directory's name, so at or past `endBefore`.
            if let endBefore, !FilesystemStagingStore.precedes(directory, endBefore) { return false }
            return true
        }

        func wants(_ key: String) -> Bool {
            guard key.hasPrefix(prefix) else { return false }
            if let startAfter, !FilesystemStagingStore.precedes(startAfter, key) { return false }
            if let endBefore, !FilesystemStagingStore.precedes(key, endBefore) { return false }
            return true
        }
    }

    /// The objects under `directoryKey` that `bounds` wants, opening only directories that may
    /// hold some (readdir, then a stat for the size of each file listed).
    private func walk(_ directoryKey: String, bounds: ListingBounds, into results: inout [StoredObject]) {
        let path = directoryKey.isEmpty ? root : root + "/" + directoryKey
        guard let directory = opendir(path) else { return }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { bytes in
                String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name == "." || name == ".." || (directoryKey.isEmpty && name == ".incoming") { continue }
            let key = directoryKey.isEmpty ? name : directoryKey + "/" + name
            var status = stat()
            var type = Int32(entry.pointee.d_type)
            if type == Int32(DT_UNKNOWN) || type == Int32(DT_LNK) {
                guard stat(root + "/" + key, &status) == 0 else { continue }
                type = (status.st_mode & S_IFMT) == S_IFDIR ? Int32(DT_DIR) : (status.st_mode & S_IFMT) == S_IFREG ? Int32(DT_REG) : -1
            }
            if type == Int32(DT_DIR) {
                if bounds.mayHoldKeys(under: key + "/") { walk(key, bounds: bounds, into: &results) }
            } else if type == Int32(DT_REG), bounds.wants(key), stat(root + "/" + key, &status) == 0 {
                results.append(StoredObject(key: key, size: Int(status.st_size)))
            }
        }
    }

    /// Byte order, as object stores compare keys.
    static func precedes(_ left: String, _ right: String) -> Bool { Array(left.utf8).lexicographicallyPrecedes(Array(right.utf8)) }

    public func delete(key: String) throws {
        let file = try path(for: key)
        if unlink(file) != 0 && errno != ENOENT { throw StorageError.io(operation: "delete", path: file, errno: errno) }
        // An object store has no directories: an emptied batch or snapshot directory goes too. Never
        // above `<source>/<kind>/<lsn>/`, where a writer may be creating its own directory meanwhile.
        var components = key.split(separator: "/").dropLast()
        while components.count >= 3 {
            guard rmdir(root + "/" + components.joined(separator: "/")) == 0 else { break }
            components = components.dropLast()
        }
    }

    private func write(key: String, destination: String, _ body: (FileOutput) throws -> Void) throws {
        temporarySequence += 1
        let temporary = "\(root)/.incoming/\(getpid())-\(String(instance, radix: 36))-\(temporarySequence)"
        do {
            let output = try FileOutput(creating: temporary)
            try body(output)
            try output.syncAndClose()
            guard rename(temporary, destination) == 0 else {
                throw StorageError.io(operation: "rename into", path: destination, errno: errno)
            }
            try LocalFiles.syncDirectory((destination as NSString).deletingLastPathComponent)
        } catch {
            LocalFiles.remove(temporary)
            throw error
        }
    }

    private nonisolated func path(for key: String) throws -> String {
        guard !key.isEmpty, !key.hasPrefix("/"), !key.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }) else {
            throw StorageError.unsupported("object key \"\(key)\" is not usable in a filesystem store")
        }
        return root + "/" + key
    }
}
