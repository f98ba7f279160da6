import Logging
import Synchronization
import TributaryCore
import TributaryPostgres

/// Loads a snapshot's parts into their load tables while the snapshot is still being taken
/// (`tributary snapshot --apply`), so export, compression and load run at once.
///
/// It uses the loader's own per-part transaction, recorded with the part, so afterwards the ordinary
/// `SnapshotLoader.load` finds those parts done, loads whatever is missing and promotes the tables.
/// A failure here stops eager loading only; `finish()` reports it and the ordinary load retries.
public final class EagerSnapshotLoad: SnapshotObserver {
    struct Job: Sendable {
        var part: StagedFile
        var relation: RelationSchema
        var loadTable: QualifiedName
        var source: String
        var consistentPoint: LSN
    }

    private let loader: SnapshotLoader
    private let jobs: Int
    private let queue = AsyncWorkQueue<Job>()
    private let state = Mutex<(header: SnapshotManifest?, loadTables: [QualifiedName], workers: Task<Void, Error>?, failure: String?)>(
        (nil, [], nil, nil))

    public init(loader: SnapshotLoader, jobs: Int) {
        self.loader = loader
        self.jobs = jobs
    }

    public func snapshotStarted(_ header: SnapshotManifest) async {
        do {
            let control = try await PostgresConnection.connect(loader.target, name: "target", applicationName: "tributary apply")
            try await ControlSchema.migrate(on: control)
            let loadTables = try await loader.begin(header, on: control).loadTables
            await control.close()
            let workers = Task { [queue, loader, jobs] in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<jobs {
                        group.addTask {
                            let connection = try await PostgresConnection.connect(loader.target, name: "target", applicationName: "tributary apply")
                            while let job = await queue.next() {
                                try await loader.loadPart(job.part, relation: job.relation, into: job.loadTable, source: job.source,
                                                          consistentPoint: job.consistentPoint, counter: nil, on: connection)
                            }
                            await connection.close()
                        }
                    }
                    try await group.waitForAll()
                }
            }
            state.withLock { $0 = (header, loadTables, workers, nil) }
        } catch {
            state.withLock { $0.failure = "\(error)" }
        }
    }

    public func partStored(tableIndex: Int, file: StagedFile) async {
        let job: Job? = state.withLock { state in
            guard let header = state.header, state.failure == nil else { return nil }
            return Job(part: file, relation: header.tables[tableIndex].relation, loadTable: state.loadTables[tableIndex],
                       source: header.source, consistentPoint: header.consistentPoint)
        }
        if let job { await queue.push(job) }
    }

    /// Waits for the parts handed over so far; throws what stopped the eager load, if anything did.
    public func finish() async throws {
        await queue.finish()
        let (workers, failure) = state.withLock { ($0.workers, $0.failure) }
        if let failure { throw OperatorError(failure) }
        try await workers?.value
    }
}
