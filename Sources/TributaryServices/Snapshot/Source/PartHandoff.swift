import Foundation
import Synchronization
import TributaryStorage

/// Local disk on which `snapshot --apply` keeps a copy of each part it stores until the loader has
/// loaded it (`snapshot.apply_cache`), so that the loader reads the file the copy wrote instead of
/// fetching it back from the store: with OCI, a download of the whole snapshot saved. The copy
/// is a hard link, made before the part goes into the store, so it costs no bytes written. Beyond
/// the budget (compressed bytes), parts are fetched from the store as before, so a load far
/// behind the copy cannot fill the disk.
public final class PartHandoff: Sendable {
    let directory: String
    private let available: Mutex<Int>

    /// `directory` is emptied first: what an earlier, killed run left there is of no use. Only one
    /// run per source may use it at a time (its slot sees to that).
    public init(directory: String, bytes: Int) throws {
        self.directory = directory
        try? FileManager.default.removeItem(atPath: directory)
        try LocalFiles.makeDirectory(directory)
        available = Mutex(bytes)
    }

    /// Links `path` (a part file about to be stored) into the handoff directory, if the budget has
    /// room for `bytes`. Returns nil otherwise, or when the filesystem cannot link.
    func keep(_ path: String, bytes: Int) -> HandedOffPart? {
        let granted = available.withLock { available -> Bool in
            guard available >= bytes else { return false }
            available -= bytes
            return true
        }
        guard granted else { return nil }
        let copy = directory + "/" + UUID().uuidString + ".csv.gz"
        guard link(path, copy) == 0 else {
            release(bytes)
            return nil
        }
        return HandedOffPart(path: copy, bytes: bytes, handoff: self)
    }

    /// Removes the directory and what is left in it.
    public func close() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    fileprivate func release(_ bytes: Int) {
        available.withLock { $0 += bytes }
    }
}

/// A stored part's local copy. The file goes, and its share of the budget returns, when the last
/// reference does: after the load, or when the part is abandoned.
public final class HandedOffPart: Sendable {
    public let path: String
    private let bytes: Int
    private let handoff: PartHandoff

    fileprivate init(path: String, bytes: Int, handoff: PartHandoff) {
        self.path = path
        self.bytes = bytes
        self.handoff = handoff
    }

    deinit {
        LocalFiles.remove(path)
        handoff.release(bytes)
    }
}
