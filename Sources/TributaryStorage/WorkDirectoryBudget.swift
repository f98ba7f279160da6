import Foundation
import Synchronization

/// The bound on the local work directory (`work_max`), and the disk under it: every local write
/// into the directory is charged here first, so a spill, a batch or a snapshot part that would pass
/// the bound (or fill the disk) fails with an error that says so, before the disk is full.
/// Usage is measured by walking the directory at most once a second, plus what was written since.
public final class WorkDirectoryBudget: Sendable {
    public static let shared = WorkDirectoryBudget()

    /// Free space always left on the disk, whatever `work_max` says.
    public static let diskReserve = 64 << 20

    private struct State {
        var directory: String?
        var maximum: Int?
        var measured = 0
        var measuredAt: ContinuousClock.Instant?
        var writtenSince = 0
    }
    private let state = Mutex(State())

    public init() {}

    /// Set once a command has read its configuration; `maximum` nil bounds only by the disk.
    public func configure(directory: String, maximum: Int?) {
        state.withLock {
            $0 = State()
            $0.directory = directory.hasSuffix("/") ? directory : directory + "/"
            $0.maximum = maximum
        }
    }

    /// Charges `bytes` about to be written to `path`; throws when they do not fit.
    func charge(_ bytes: Int, path: String) throws {
        try state.withLock { state in
            guard let directory = state.directory, path.hasPrefix(directory) else { return }
            let now = ContinuousClock.now
            if state.measuredAt.map({ now - $0 > .seconds(1) }) ?? true {
                state.measured = Self.usage(of: directory)
                state.measuredAt = now
                state.writtenSince = 0
            }
            let usage = state.measured + state.writtenSince + bytes
            if let maximum = state.maximum, usage > maximum {
                throw StorageError.workDirectoryFull(directory: directory, reason: "it would hold \(usage >> 20) MiB, work_max is \(maximum >> 20) MiB")
            }
            var disk = statvfs()
            if statvfs(directory, &disk) == 0 {
                let free = Int(disk.f_bavail) * Int(disk.f_frsize)
                if free - bytes < Self.diskReserve {
                    throw StorageError.workDirectoryFull(directory: directory, reason: "its disk has \(free >> 20) MiB free")
                }
            }
            state.writtenSince += bytes
        }
    }

    /// Bytes of the regular files under `directory`.
    static func usage(of directory: String) -> Int {
        guard let enumerator = FileManager.default.enumerator(atPath: directory) else { return 0 }
        var total = 0
        while let relative = enumerator.nextObject() as? String {
            var status = stat()
            if stat(directory + relative, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG { total += Int(status.st_size) }
        }
        return total
    }
}
