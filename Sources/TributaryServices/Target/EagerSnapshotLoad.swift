import Logging
import Synchronization
import TributaryCore
import TributaryPostgres

/// Loads a snapshot's parts into their load tables while the snapshot is still being taken
/// (`tributary snapshot --apply`), so export, compression and load run at once; and builds each
/// table's key as soon as all of its parts are in, while other tables still load.
///
/// It uses the loader's own per-part transaction, recorded with the part, so afterwards the ordinary
/// `SnapshotLoader.load` finds those parts done (and those keys built), loads whatever is missing
/// and promotes the tables. A failure here stops eager loading only; `finish()` reports it and the
/// ordinary load retries.
public final class EagerSnapshotLoad: SnapshotObserver {
    enum Job: Sendable {
        case load(tableIndex: Int, part: StagedFile)
        case buildKey(tableIndex: Int)
    }

    /// Where each table stands: a key is built once the table is copied and every stored part loaded.
    struct TableState {
        var stored = 0
        var loaded = 0
        var copied = false
        var keyClaimed = false

        /// Claims the key build when it is due, so exactly one caller does it.
        mutating func claimKeyIfDue() -> Bool {
            guard copied, loaded == stored, !keyClaimed else { return false }
            keyClaimed = true
            return true
        }
    }

    struct State {
        var header: SnapshotManifest?
        var loadTables: [QualifiedName] = []
        var tables: [TableState] = []
        var workers: Task<Void, Error>?
        var failure: String?
    }

    private let loader: SnapshotLoader
    private let jobs: Int
    private let queue = AsyncWorkQueue<Job>()
    private let state = Mutex(State())

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
            state.withLock {
                $0.header = header
                $0.loadTables = loadTables
                $0.tables = Array(repeating: TableState(), count: header.tables.count)
            }
            let workers = Task { [self] in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<jobs {
                        group.addTask { try await self.work() }
                    }
                    try await group.waitForAll()
                }
            }
            state.withLock { $0.workers = workers }
        } catch {
            state.withLock { $0.failure = "\(error)" }
        }
    }

    public func partStored(tableIndex: Int, file: StagedFile) async {
        let accepted = state.withLock { state -> Bool in
            guard state.header != nil, state.failure == nil else { return false }
            state.tables[tableIndex].stored += 1
            return true
        }
        if accepted { await queue.push(.load(tableIndex: tableIndex, part: file)) }
    }

    public func tableCopied(tableIndex: Int) async {
        let due = state.withLock { state -> Bool in
            guard state.header != nil, state.failure == nil else { return false }
            state.tables[tableIndex].copied = true
            return state.tables[tableIndex].claimKeyIfDue()
        }
        if due { await queue.push(.buildKey(tableIndex: tableIndex)) }
    }

    /// Waits for the work handed over so far; throws what stopped the eager load, if anything did.
    public func finish() async throws {
        await queue.finish()
        let (workers, failure) = state.withLock { ($0.workers, $0.failure) }
        if let failure { throw OperatorError(failure) }
        try await workers?.value
    }

    private func work() async throws {
        let connection = try await PostgresConnection.connect(loader.target, name: "target", applicationName: "tributary apply")
        while let job = await queue.next() {
            let (header, loadTables) = state.withLock { ($0.header!, $0.loadTables) }
            switch job {
            case .load(let index, let part):
                try await loader.loadPart(part, relation: header.tables[index].relation, into: loadTables[index], source: header.source,
                                          consistentPoint: header.consistentPoint, counter: nil, on: connection)
                let due = state.withLock { state -> Bool in
                    state.tables[index].loaded += 1
                    return state.tables[index].claimKeyIfDue()
                }
                // This worker builds the key now; the others keep loading the other tables' parts.
                if due { try await loader.buildKey(header.tables[index], loadTable: loadTables[index], on: connection) }
            case .buildKey(let index):
                try await loader.buildKey(header.tables[index], loadTable: loadTables[index], on: connection)
            }
        }
        await connection.close()
    }
}
