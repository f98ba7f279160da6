import Foundation
import Logging
import Synchronization
import TributaryCore
import TributaryPostgres
import TributaryStorage

/// One batch's files, each COPYed into a load table of its own and committed, waiting for the
/// merging connection; but those that may go straight into STG (`DirectInsert`), left to it.
struct PreloadedBatch: Sendable {
    var manifest: BatchManifest
    /// Per file of the manifest, in its order; nil for a file left to the merging connection.
    var tables: [QualifiedName?]
}

/// A load table without the rows it was loaded with: the target restarted (an unlogged table
/// comes back empty) between the load and the merge. Temporary: the batch is loaded again.
struct PreloadedBatchLost: Error, CustomStringConvertible {
    var table: QualifiedName
    var rows: Int
    var expected: Int
    var description: String { "load table \(table) holds \(rows) changes of \(expected) (the target restarted?): loading the batch again" }
}

/// Catch-up, batch by batch: while one connection merges a batch into STG, a second one (this)
/// COPYs the next batch into unlogged load tables, so the target parses one batch while it writes
/// the other. On the staged backlog of bench-apply the COPYs were 42% of the apply's time, all of
/// it on the one backend. Nothing of STG changes here: the batch is claimed, merged and recorded
/// in the merging transaction, exactly as a batch loaded there.
///
/// The load tables are reused, not made per batch (each CREATE and DROP writes catalog rows, which
/// over hundreds of tables and weeks bloats the target's catalog): per shape of file, two sets,
/// `tributary_load."<source>-<shape>-<set>-<n>"` (`n` for files of one shape in one batch; a source
/// name has no "-", so no snapshot's load table has such a name). Batches take the sets in turn, so
/// the batch being loaded never shares a table with the batch being merged (at most one batch is
/// loaded ahead, and it is started after the merge before it ended). The load TRUNCATEs a table in
/// its own transaction, so it holds exactly that batch's rows. A crash of the target leaves them
/// empty, which the merge's row count check refuses. The first `connect` of a process drops what
/// a killed applier left; the applier drops its load tables when it closes.
actor BatchPreloader {
    let connection: PostgresConnection
    let source: String
    let store: any StagingStore
    /// Tables whose files of inserts and updates are loaded here all the same.
    let directExclusions: DirectInsertExclusions
    /// What this connection's loads left in each load table, to empty it the cheap way.
    private var reuse = LoadTableReuse()

    private init(connection: PostgresConnection, source: String, store: any StagingStore, directExclusions: DirectInsertExclusions) {
        self.connection = connection
        self.source = source
        self.store = store
        self.directExclusions = directExclusions
    }

    /// - Parameter dropLeftovers: drop the source's load tables first (a killed applier's).
    static func connect(target: TargetEndpoint, source: String, store: any StagingStore, directExclusions: DirectInsertExclusions = DirectInsertExclusions(),
                        dropLeftovers: Bool = true) async throws -> BatchPreloader {
        let connection = try await target.connect(.apply, for: "load ahead \(source)")
        do {
            if dropLeftovers { _ = try await connection.run { try TablePromotion.dropLoadTables(startingWith: "\(source)-", on: $0) } }
        } catch {
            await connection.close()
            throw error
        }
        return BatchPreloader(connection: connection, source: source, store: store, directExclusions: directExclusions)
    }

    /// The load table of each file of a batch loaded into `set` (0 or 1).
    static func loadTables(source: String, files: [BatchFile], set: Int) -> [QualifiedName] {
        var seen: [String: Int] = [:]
        return files.map { file in
            let shape = MergeSQL.shapeName(of: file.relation)
            let n = seen[shape, default: 0]
            seen[shape] = n + 1
            return QualifiedName(schema: StagingColumns.loadSchema, name: "\(SQL.truncated(source, bytes: 28))-\(shape)-\(set)-\(n)")
        }
    }

    /// Fetches the batch's files and COPYs each into its load table of `set`, in one transaction;
    /// not those that may go straight into STG, which only the batch's own transaction can do.
    func load(_ manifest: BatchManifest, set: Int) async throws -> PreloadedBatch {
        let left = Set(DirectInsert.candidates(in: manifest.files, excluding: directExclusions.contains))
        let loading = manifest.files.indices.filter { !left.contains($0) }
        let files = loading.map { manifest.files[$0] }
        var locals: [LocalObject] = []
        defer { locals.forEach { $0.release() } }
        locals = try await store.fetch(keys: files.map(\.file.key))
        let paths = locals.map(\.path)
        let tables = Self.loadTables(source: source, files: files, set: set)
        let emptying = zip(tables, files).map { reuse.emptying($0.description, incomingRows: $1.file.rows) }
        try await connection.run { connection in
            try connection.transaction { connection in
                try Self.load(files, paths: paths, into: tables, emptying: emptying, on: connection)
            }
        }
        var preloaded = PreloadedBatch(manifest: manifest, tables: Array(repeating: nil, count: manifest.files.count))
        for (index, number) in loading.enumerated() {
            reuse.loaded(tables[index].description, rows: files[index].file.rows, emptiedBy: emptying[index])
            preloaded.tables[number] = tables[index]
        }
        return preloaded
    }

    /// COPYs each file into its load table, in the caller's transaction. The tables are created
    /// once, then emptied in this transaction (which also replaces an earlier load of the same
    /// batch that its merge refused): all of the batch's load tables in one round trip, since a
    /// wide batch has hundreds. A batch without files (its transactions changed only tables that
    /// are published and not configured) loads nothing: an empty statement is an error to libpq.
    static func load(_ files: [BatchFile], paths: [String], into tables: [QualifiedName], emptying: [LoadTableReuse.Emptying],
                     on connection: isolated PostgresConnection) throws {
        try load(zip(files, paths).map { [(file: $0, path: $1)] }, into: tables, emptying: emptying, on: connection)
    }

    /// `load` of a `BatchGroup`: each table's files, in batch order, into its one load table.
    /// - Parameter parts: per load table, its files and their local paths.
    static func load(_ parts: [[(file: BatchFile, path: String)]], into tables: [QualifiedName], emptying: [LoadTableReuse.Emptying],
                     on connection: isolated PostgresConnection) throws {
        guard !parts.isEmpty else { return }
        let merges = parts.enumerated().map { number, files in
            var sql = MergeSQL(files[0].file, loadTable: tables[number])
            sql.loadsFrozen = emptying[number].truncates
            return sql
        }
        try connection.execute(merges.indices.map { merges[$0].createLoadTable(emptying: emptying[$0]) }.joined(separator: ";\n"))
        for (number, files) in parts.enumerated() {
            try BatchApplier.load(files, with: merges[number], on: connection)
        }
    }

    func close() async { await connection.close() }
}

/// The merging connection's own set of load tables, for a batch no `BatchPreloader` loaded (the
/// applier keeping up, one batch at a time): COPYed in the batch's transaction, then merged as a
/// preloaded batch is. Into temporary tables, a file at a time, each file took its own round
/// trips to load, count and merge; at 600 tables, with about 200 files a batch, applying a batch
/// took as long as the replicator took to write the next (bench-breadth). In load tables, the
/// batch's plain merges go together (`PlainMerge`). Set 2: the preloader alternates 0 and 1.
final class MergingLoadTables: Sendable {
    static let set = 2
    let source: String
    /// What the loads that committed left in each table; nil until one did.
    private let reuse = Mutex<LoadTableReuse?>(nil)

    init(source: String) { self.source = source }

    /// The load table of each file, and how to empty it.
    func plan(_ files: [BatchFile]) -> (tables: [QualifiedName], emptying: [LoadTableReuse.Emptying]) {
        let tables = BatchPreloader.loadTables(source: source, files: files, set: Self.set)
        let reuse = reuse.withLock { $0 } ?? LoadTableReuse()
        return (tables, zip(tables, files).map { reuse.emptying($0.description, incomingRows: $1.file.rows) })
    }

    /// Records a load whose transaction committed.
    func loaded(_ files: [BatchFile], tables: [QualifiedName], emptying: [LoadTableReuse.Emptying]) {
        reuse.withLock { reuse in
            var updated = reuse ?? LoadTableReuse()
            for (number, file) in files.enumerated() { updated.loaded(tables[number].description, rows: file.file.rows, emptiedBy: emptying[number]) }
            reuse = updated
        }
    }

    /// Whether this process loaded any (they go when the applier closes).
    var wereUsed: Bool { reuse.withLock { $0 != nil } }

    /// The tables were dropped: the next load creates them again.
    func forget() { reuse.withLock { $0 = nil } }
}

/// The batch a `BatchPreloader` is loading ahead of the merging connection, for one source's
/// pass through its waiting batches.
struct LoadAhead {
    let target: TargetEndpoint
    let source: String
    let store: any StagingStore
    let enabled: Bool
    let directExclusions: DirectInsertExclusions
    private var preloader: BatchPreloader?
    private var ahead: (endLSN: LSN, task: Task<PreloadedBatch, any Error>)?
    /// The set of load tables the next batch loaded ahead takes.
    private var nextSet = 0
    /// Whether this process has loaded ahead (and dropped a killed applier's load tables first).
    private var used = false

    init(target: TargetEndpoint, source: String, store: any StagingStore, enabled: Bool, directExclusions: DirectInsertExclusions) {
        self.target = target
        self.source = source
        self.store = store
        self.enabled = enabled
        self.directExclusions = directExclusions
    }

    /// Starts loading `manifest`, opening the second connection on the first call.
    mutating func start(_ manifest: BatchManifest) async throws {
        if preloader == nil {
            // The second connection closes when the source is idle; the load tables stay for the
            // next backlog. What a killed applier left went at the applier's first step (here it
            // would take the merging connection's own tables, which that one knows to exist).
            preloader = try await BatchPreloader.connect(target: target, source: source, store: store, directExclusions: directExclusions,
                                                         dropLeftovers: false)
            used = true
        }
        let preloader = preloader!
        let set = nextSet
        nextSet = 1 - nextSet
        ahead = (manifest.endLSN, Task { try await preloader.load(manifest, set: set) })
    }

    /// The loaded batch when `manifest`'s is the batch loaded ahead (waiting for its load to end);
    /// nil when nothing was loaded for it.
    mutating func take(_ manifest: BatchManifest) async throws -> PreloadedBatch? {
        guard let ahead else { return nil }
        self.ahead = nil
        let batch = try await ahead.task.value
        // Another batch's load (its rows stay until the set's next load replaces them).
        return manifest.endLSN == ahead.endLSN ? batch : nil
    }

    /// Waits for a load in flight; closes the second connection. The load tables stay.
    mutating func finish() async {
        if let ahead { _ = try? await ahead.task.value }
        ahead = nil
        await preloader?.close()
        preloader = nil
    }

    /// `finish`, and the load tables go (the applier stops), also the merging connection's own
    /// when it `loadedOwn`. Best effort: the next process's first load drops what is left.
    mutating func close(loadedOwn: Bool = false) async {
        await finish()
        guard used || loadedOwn else { return }
        used = false
        do {
            let preloader = try await BatchPreloader.connect(target: target, source: source, store: store)
            await preloader.close()
        } catch {}
    }
}
