import Foundation
import Synchronization

/// A file opened for writing with plain POSIX calls: large sequential writes, explicit fsync.
public final class FileOutput {
    public let path: String
    private var descriptor: Int32

    public init(creating path: String) throws {
        self.path = path
        descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw StorageError.io(operation: "create", path: path, errno: errno) }
    }

    deinit { if descriptor >= 0 { Glibc.close(descriptor) } }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        try WorkDirectoryBudget.shared.charge(bytes.count, path: path)
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw StorageError.io(operation: "write", path: path, errno: errno)
            }
            offset += written
        }
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Close without fsync.
    public func close() throws {
        guard descriptor >= 0 else { return }
        Glibc.close(descriptor)
        descriptor = -1
    }

    /// fsync, then close: after this returns the bytes survive a crash.
    public func syncAndClose() throws {
        guard fsync(descriptor) == 0 else { throw StorageError.io(operation: "fsync", path: path, errno: errno) }
        Glibc.close(descriptor)
        descriptor = -1
    }
}

/// A file opened for sequential reading.
public final class FileInput {
    public let path: String
    private let descriptor: Int32

    public init(path: String) throws {
        self.path = path
        descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw StorageError.io(operation: "open", path: path, errno: errno) }
    }

    deinit { Glibc.close(descriptor) }

    /// Calls `body` with consecutive chunks until the end of the file.
    public func forEachChunk(size: Int = 1 << 20, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let count = Glibc.read(descriptor, buffer.baseAddress!, size)
            if count < 0 {
                if errno == EINTR { continue }
                throw StorageError.io(operation: "read", path: path, errno: errno)
            }
            if count == 0 { return }
            try body(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        }
    }

    public func seek(to offset: Int64) throws {
        guard lseek(descriptor, off_t(offset), SEEK_SET) >= 0 else { throw StorageError.io(operation: "seek in", path: path, errno: errno) }
    }

    /// Reads up to `buffer.count` bytes into `buffer`; 0 means the end of the file.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let read = Glibc.read(descriptor, buffer.baseAddress!, buffer.count)
            if read >= 0 { return read }
            if errno != EINTR { throw StorageError.io(operation: "read", path: path, errno: errno) }
        }
    }

    /// Reads up to `count` bytes; an empty result means the end of the file.
    public func read(upTo count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        while true {
            let read = bytes.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress!, count) }
            if read < 0 {
                if errno == EINTR { continue }
                throw StorageError.io(operation: "read", path: path, errno: errno)
            }
            bytes.removeLast(count - read)
            return bytes
        }
    }

    public static func readAll(_ path: String) throws -> [UInt8] {
        var bytes: [UInt8] = []
        try FileInput(path: path).forEachChunk { bytes.append(contentsOf: $0) }
        return bytes
    }
}

public enum LocalFiles {
    /// Creates `path` and its parents; existing directories are fine.
    public static func makeDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw StorageError.io(operation: "create directory", path: path, errno: (error as NSError).code == 0 ? EIO : Int32((error as NSError).code))
        }
    }

    /// fsync a directory, so a rename or create inside it is durable.
    public static func syncDirectory(_ path: String) throws {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw StorageError.io(operation: "open directory", path: path, errno: errno) }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw StorageError.io(operation: "fsync directory", path: path, errno: errno) }
    }

    /// fsyncs a file written and closed without it.
    public static func sync(_ path: String) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw StorageError.io(operation: "open", path: path, errno: errno) }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw StorageError.io(operation: "fsync", path: path, errno: errno) }
    }

    /// `sync` of every path, from up to `threads` threads at once (blocking the caller's thread,
    /// never the cooperative pool's: call it from a store's own thread). The first error is thrown
    /// once all have ended.
    public static func syncAll(_ paths: [String], threads: Int = 16) throws {
        guard paths.count > 1 else { return try paths.forEach(sync) }
        let work = SyncWork(paths)
        let ended = DispatchGroup()
        for _ in 0..<min(threads, paths.count) {
            ended.enter()
            Thread {
                work.run()
                ended.leave()
            }.start()
        }
        ended.wait()
        if let failure = work.failure { throw failure }
    }

    public static func remove(_ path: String) {
        unlink(path)
    }

    /// Removes the directories `<prefix><pid>` in `directory` whose process has ended (another
    /// process's, still running, is left alone).
    public static func removeDirectoriesOfEndedProcesses(in directory: String, prefix: String) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasPrefix(prefix) {
            guard let pid = pid_t(name.dropFirst(prefix.count)), pid != getpid(), kill(pid, 0) == -1, errno == ESRCH else { continue }
            try? FileManager.default.removeItem(atPath: directory + "/" + name)
        }
    }
}

/// The paths `LocalFiles.syncAll`'s threads take one by one, and the first failure.
private final class SyncWork: Sendable {
    private let paths: [String]
    private let state = Mutex<(next: Int, failure: (any Error)?)>((0, nil))

    init(_ paths: [String]) { self.paths = paths }

    func run() {
        while true {
            let index = state.withLock { state -> Int? in
                guard state.next < paths.count, state.failure == nil else { return nil }
                state.next += 1
                return state.next - 1
            }
            guard let index else { return }
            do {
                try LocalFiles.sync(paths[index])
            } catch {
                state.withLock { $0.failure = $0.failure ?? error }
            }
        }
    }

    var failure: (any Error)? { state.withLock { $0.failure } }
}
