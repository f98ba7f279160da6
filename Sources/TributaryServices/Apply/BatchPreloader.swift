import Foundation
import Logging
import TributaryCore
import TributaryPostgres
import TributaryStorage

/// One batch's files, each COPYed into a load table of its own and committed, waiting for the
/// merging connection.
struct PreloadedBatch: Sendable {
    var manifest: BatchManifest
    /// Per file of the manifest, in its order.
    var tables: [QualifiedName]
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
/// in the merging transaction, which drops the load tables, exactly as a batch loaded there.
///
/// The load tables of a source are `tributary_load."<source>-<end LSN>-<file>"` (a source name has
/// no "-", so no snapshot's load table has such a name). A crash of the target leaves them empty,
/// which the merge's row count check refuses, and every connection of this applier broken, so it
/// starts again from `connect`, which drops what a killed applier left.
actor BatchPreloader {
    let connection: PostgresConnection
    let source: String
    let store: any StagingStore

    private init(connection: PostgresConnection, source: String, store: any StagingStore) {
        self.connection = connection
        self.source = source
        self.store = store
    }

    static func connect(target: TargetEndpoint, source: String, store: any StagingStore) async throws -> BatchPreloader {
        let connection = try await target.connect(.apply, for: "load ahead \(source)")
        do {
            // A killed applier's, or a batch loaded ahead and never merged.
            _ = try await connection.run { try TablePromotion.dropLoadTables(startingWith: "\(source)-", on: $0) }
        } catch {
            await connection.close()
            throw error
        }
        return BatchPreloader(connection: connection, source: source, store: store)
    }

    static func loadTable(source: String, batch: LSN, file: Int) -> QualifiedName {
        QualifiedName(schema: StagingColumns.loadSchema, name: "\(source)-\(batch.paddedHex)-\(file)")
    }

    /// Fetches the batch's files and COPYs each into its load table, in one transaction.
    func load(_ manifest: BatchManifest) async throws -> PreloadedBatch {
        var locals: [LocalObject] = []
        defer { locals.forEach { $0.release() } }
        for file in manifest.files { locals.append(try await store.fetch(key: file.file.key)) }
        let paths = locals.map(\.path)
        let tables = manifest.files.indices.map { Self.loadTable(source: source, batch: manifest.endLSN, file: $0) }
        try await connection.run { connection in
            try connection.transaction { connection in
                for (number, file) in manifest.files.enumerated() {
                    let sql = MergeSQL(relation: file.relation, stagingTable: file.stagingTable, loadTable: tables[number])
                    // Loading a batch again (its merge refused the first load) replaces that load.
                    try connection.execute("DROP TABLE IF EXISTS \(tables[number].sql)")
                    try connection.execute(sql.createLoadTable)
                    try BatchApplier.load(file, path: paths[number], with: sql, on: connection)
                }
            }
        }
        return PreloadedBatch(manifest: manifest, tables: tables)
    }

    /// A batch loaded and then not merged (the applier stopped first): its tables go.
    func discard(_ batch: PreloadedBatch) async throws {
        try await connection.run { connection in
            for table in batch.tables { try connection.execute("DROP TABLE IF EXISTS \(table.sql)") }
        }
    }

    func close() async { await connection.close() }
}

/// The batch a `BatchPreloader` is loading ahead of the merging connection, for one source's
/// pass through its waiting batches.
struct LoadAhead {
    let target: TargetEndpoint
    let source: String
    let store: any StagingStore
    let enabled: Bool
    private var preloader: BatchPreloader?
    private var ahead: (endLSN: LSN, task: Task<PreloadedBatch, any Error>)?

    init(target: TargetEndpoint, source: String, store: any StagingStore, enabled: Bool) {
        self.target = target
        self.source = source
        self.store = store
        self.enabled = enabled
    }

    /// Starts loading `manifest`, opening the second connection on the first call.
    mutating func start(_ manifest: BatchManifest) async throws {
        if preloader == nil { preloader = try await BatchPreloader.connect(target: target, source: source, store: store) }
        let preloader = preloader!
        ahead = (manifest.endLSN, Task { try await preloader.load(manifest) })
    }

    /// The loaded batch when `manifest`'s is the batch loaded ahead (waiting for its load to end);
    /// nil when nothing was loaded for it.
    mutating func take(_ manifest: BatchManifest) async throws -> PreloadedBatch? {
        guard let ahead else { return nil }
        self.ahead = nil
        let batch = try await ahead.task.value
        if manifest.endLSN == ahead.endLSN { return batch }
        try await preloader?.discard(batch)
        return nil
    }

    /// Waits for a load in flight and drops what nothing merged; closes the second connection.
    mutating func finish() async {
        if let ahead, let batch = try? await ahead.task.value { try? await preloader?.discard(batch) }
        ahead = nil
        await preloader?.close()
        preloader = nil
    }
}
