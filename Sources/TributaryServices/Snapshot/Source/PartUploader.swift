import Foundation
import Synchronization
import TributaryStorage

/// Moves one copy worker's finished part files into the staging store while its COPY goes on, and
/// tells the observer of each part as soon as it is durable, so `snapshot --apply` starts loading
/// the first part of a table while the rest is still being read. At most `depth` parts wait on
/// local disk: beyond that the COPY's thread blocks, so a slow store slows the copy down instead
/// of filling the work directory.
final class PartUploader: Sendable {
    enum Event: Sendable {
        case part(Snapshotter.LocalPart)
        /// Every part of one work item has been submitted.
        case itemDone(tableIndex: Int, item: CopiedItem)
    }

    private let stream: AsyncStream<Event>
    private let continuation: AsyncStream<Event>.Continuation
    private let slots: DispatchSemaphore
    private let failure = Mutex<(any Error)?>(nil)

    init(depth: Int = 4) {
        (stream, continuation) = AsyncStream.makeStream()
        slots = DispatchSemaphore(value: depth)
    }

    /// A finished part. Called on the COPY's own thread, never on the cooperative pool: it blocks
    /// while `depth` parts wait. Throws what made an upload fail, which ends the COPY.
    func submit(_ part: Snapshotter.LocalPart) throws {
        slots.wait()
        if let error = failure.withLock({ $0 }) {
            slots.signal()
            throw error
        }
        continuation.yield(.part(part))
    }

    func itemDone(tableIndex: Int, item: CopiedItem) { continuation.yield(.itemDone(tableIndex: tableIndex, item: item)) }

    /// No more parts.
    func finish() { continuation.finish() }

    /// Stores the parts in the order submitted until `finish()`; returns them. After a failure the
    /// rest are dropped (the snapshot fails and is retaken) and the failure is thrown.
    func run(store: any StagingStore, observer: (any SnapshotObserver)?, progress: TransferProgress) async throws -> [Snapshotter.LocalPart] {
        var stored: [Snapshotter.LocalPart] = []
        for await event in stream {
            let failed = failure.withLock { $0 != nil }
            switch event {
            case .part(let part):
                defer { slots.signal() }
                guard !failed else {
                    LocalFiles.remove(part.path)
                    continue
                }
                // Linked before the store takes the file (it moves or deletes it).
                let local = observer?.partHandoff?.keep(part.path, bytes: part.file.bytes)
                do {
                    try await store.put(key: part.file.key, file: part.path)
                    await observer?.partStored(tableIndex: part.tableIndex, file: part.file, local: local)
                    stored.append(part)
                } catch {
                    failure.withLock { $0 = error }
                }
            case .itemDone(let tableIndex, let item):
                // After its parts, which were stored in order before it.
                guard !failed else { continue }
                await observer?.itemCopied(tableIndex: tableIndex, item: item)
                if progress.tables[tableIndex].finishUnit() == 0 {
                    await observer?.tableCopied(tableIndex: tableIndex)
                }
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
        return stored
    }
}
