import Logging
import Synchronization
import TributaryCore
import TributaryPostgres
import TributaryStorage

/// Loads a snapshot's parts into their load tables while the snapshot is still being taken
/// (`tributary snapshot --apply`), so export, compression and load run at once; and builds each
/// table's key as soon as all of its parts are in, while other tables still load
/// (`PartLoadSchedule` decides who does what).
///
/// It uses the loader's own per-part transaction, recorded with the part, so afterwards the ordinary
/// `SnapshotLoader.load` finds those parts done (and those keys built), loads whatever is missing
/// and promotes the tables. A failure here stops eager loading only; `finish()` reports it and the
/// ordinary load retries.
public final class EagerSnapshotLoad: SnapshotObserver {
    struct Started: Sendable {
        var header: SnapshotManifest
        var loadTables: [QualifiedName]
        var queue: PartLoadQueue
        var handoff: PartHandoff?
        /// Parts in their load tables before this run (a resumed snapshot's): not fetched again.
        var loaded: Set<String>
    }

    private let loader: SnapshotLoader
    private let jobs: Int
    private let handoffDirectory: String?
    private let handoffBytes: Int
    private let started = Mutex<Started?>(nil)
    private let outcome = Mutex<(workers: Task<Void, any Error>?, failure: String?)>((nil, nil))

    /// - Parameters:
    ///   - handoffDirectory: this source's directory for the local copies of stored parts
    ///     (`PartHandoff`); emptied when the snapshot starts, when its slot makes this run the only
    ///     one of the source, so nothing a killed run left there survives.
    ///   - handoffBytes: `snapshot.apply_cache`; 0 fetches every part from the store.
    public init(loader: SnapshotLoader, jobs: Int, handoffDirectory: String? = nil, handoffBytes: Int = 0) {
        self.loader = loader
        self.jobs = jobs
        self.handoffDirectory = handoffDirectory
        self.handoffBytes = handoffBytes
    }

    public var partHandoff: PartHandoff? { started.withLock { $0?.handoff } }

    public func snapshotStarted(_ header: SnapshotManifest) async {
        do {
            let (loadTables, loaded) = try await loader.target.withControl(migrate: true, .apply, for: "load") { control in
                (try await loader.begin(header, control: control).loadTables,
                 try await control.loadedParts(header.source, snapshot: header.consistentPoint))
            }
            let queue = PartLoadQueue(tables: header.tables.count, frozenRunBytes: loader.settings.freezeBytesMax, stop: loader.stop)
            // Without the local copies the load still works, through the store.
            let handoff = handoffDirectory.flatMap { handoffBytes > 0 ? try? PartHandoff(directory: $0, bytes: handoffBytes) : nil }
            let run = Started(header: header, loadTables: loadTables, queue: queue, handoff: handoff, loaded: loaded)
            started.withLock { $0 = run }
            let workers = Task { [worker = loader.worker, promotion = loader.promotion, jobs] in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for number in 0..<jobs {
                        group.addTask {
                            try await worker.work(number, queue: run.queue, snapshot: run.header, loadTables: run.loadTables,
                                                  promotion: promotion, progress: nil)
                        }
                    }
                    try await group.waitForAll()
                }
            }
            outcome.withLock { $0.workers = workers }
        } catch {
            outcome.withLock { $0.failure = "\(error)" }
        }
    }

    public func partStored(tableIndex: Int, file: StagedFile, local: HandedOffPart?) async {
        guard let run = started.withLock({ $0 }) else { return }
        guard !run.loaded.contains(file.key) else {
            await run.queue.partlyLoaded(table: tableIndex)
            return
        }
        await run.queue.add(table: tableIndex, part: QueuedPart(file: file, local: local))
    }

    public func tableCopied(tableIndex: Int) async {
        guard let run = started.withLock({ $0 }) else { return }
        await run.queue.complete(table: tableIndex)
    }

    /// Waits for the work handed over so far; throws what stopped the eager load, if anything did.
    public func finish() async throws {
        if let run = started.withLock({ $0 }) { await run.queue.close() }
        let (workers, failure) = outcome.withLock { ($0.workers, $0.failure) }
        defer { started.withLock { $0?.handoff?.close() } }
        if let failure { throw TributaryError(.general, failure) }
        try await workers?.value
    }
}
