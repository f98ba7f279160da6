import Foundation

/// A staging-store or local-file failure, naming the object or path and what to do.
public enum StorageError: Error, CustomStringConvertible, Sendable {
    case io(operation: String, path: String, errno: Int32)
    case notFound(key: String, store: String)
    case checksumMismatch(key: String, expected: String, actual: String)
    case sizeMismatch(key: String, expected: Int, actual: Int)
    case corrupt(key: String, reason: String)
    case unsupported(String)
    /// An object sync copy that did not match what was listed (the source changed meanwhile).
    case notCopied(key: String, reason: String)
    /// A manifest whose signature is missing or wrong (`staging.signing_key`).
    case notSigned(key: String, reason: String)
    /// A local write that would pass `work_max` or fill the disk.
    case workDirectoryFull(directory: String, reason: String)

    public var description: String {
        switch self {
        case .io(let operation, let path, let code):
            return "cannot \(operation) \(path): \(String(cString: strerror(code)))"
        case .notFound(let key, let store):
            return "object \(key) does not exist in \(store)"
        case .checksumMismatch(let key, let expected, let actual):
            return "object \(key) is corrupt: SHA-256 is \(actual), the manifest says \(expected); re-run the stage that wrote it"
        case .sizeMismatch(let key, let expected, let actual):
            return "object \(key) is corrupt: \(actual) bytes, the manifest says \(expected); re-run the stage that wrote it"
        case .corrupt(let key, let reason):
            return "object \(key) is corrupt: \(reason); re-run the stage that wrote it"
        case .unsupported(let what):
            return what
        case .notSigned(let key, let reason):
            return "manifest \(key) refused: \(reason); nothing of it was applied (was the staging store written by another tributary, or altered?)"
        case .workDirectoryFull(let directory, let reason):
            return "the work directory \(directory) is full: \(reason); raise work_max in tributary.yaml, free space, "
                + "or lower batch.memory_max and snapshot.part_size (they size spills and parts)"
        case .notCopied(let key, let reason):
            return "object \(key) was not copied: \(reason); the next pass copies it again"
        }
    }
}

extension StorageError {
    /// A full work directory or disk: freeing space (or a spill finishing elsewhere) cures it, so
    /// a daemon waits it out instead of stopping.
    public var isLackOfSpace: Bool {
        switch self {
        case .workDirectoryFull: return true
        case .io(_, _, let code): return code == ENOSPC || code == EDQUOT
        default: return false
        }
    }
}
