import Foundation
import Logging
import TributaryCore
import TributaryPostgres
import TributaryStorage

/// One target connection loading snapshot parts into their load tables, as `PartLoadQueue` hands
/// them out. `apply` runs several, and so does the eager load of `snapshot --apply`.
///
/// A part is loaded in a transaction of its own, or inside the worker's frozen run: one open
/// transaction that emptied the table first, so COPY may write its rows frozen (no vacuum rewrites
/// them later). Either way the part is recorded in the control state in the transaction that
/// loads it.
struct LoadWorker: Sendable {
    let target: TargetEndpoint
    let store: any StagingStore
    /// Bytes a frozen run loads before it commits (`SnapshotSettings.freezeBytesMax`).
    let frozenRunBytes: Int
    let logger: Logger

    /// Takes jobs from `queue` until it closes.
    func work(_ worker: Int, queue: PartLoadQueue, snapshot: SnapshotManifest, loadTables: [QualifiedName],
              promotion: TablePromotion, progress: TransferProgress?) async throws {
        try await target.withConnection(.apply, for: "load") { connection in
            try await work(worker, queue: queue, snapshot: snapshot, loadTables: loadTables, promotion: promotion, progress: progress,
                           on: connection)
        }
    }

    private func work(_ worker: Int, queue: PartLoadQueue, snapshot: SnapshotManifest, loadTables: [QualifiedName],
                      promotion: TablePromotion, progress: TransferProgress?, on connection: PostgresConnection) async throws {
        var run: OpenRun?
        while let job = await queue.next(worker: worker) {
            switch job {
            case .load(let index, let part, let frozen):
                let membership = try await join(&run, frozen: frozen, table: index, loadTable: loadTables[index], rows: part.file.rows,
                                                on: connection)
                let started = ContinuousClock.now
                try await loadPart(part.file, local: part.local, relation: snapshot.tables[index].relation, into: loadTables[index],
                                   snapshot: snapshot, counter: progress?.tables[index], run: membership, on: connection)
                progress?.tables[index].finishUnit()
                logger.debug("part loaded", metadata: [LogKey.object: .string(part.file.key), LogKey.rows: .stringConvertible(part.file.rows),
                                                       LogKey.frozen: .stringConvertible(run?.tables[index] == true),
                                                       LogKey.handedOver: .stringConvertible(part.local != nil),
                                                       LogKey.seconds: .string(String(format: "%.2f", (ContinuousClock.now - started).seconds))])
                if await queue.loaded(worker: worker, table: index) {
                    try await promotion.buildKey(snapshot.tables[index], loadTable: loadTables[index], on: connection)
                }
            case .commitRun:
                try await connection.execute("COMMIT")
                if let run { logger.info("load run committed", metadata: run.summary(snapshot.tables)) }
                run = nil
            case .buildKey(let index):
                try await promotion.buildKey(snapshot.tables[index], loadTable: loadTables[index], on: connection)
            }
        }
        // The queue closed while a run was open (the snapshot stopped before its tables were
        // complete). Each part the run loaded is whole and recorded, so it is kept.
        if run != nil { try await connection.execute("COMMIT") }
    }

    /// Opens the worker's frozen run, or takes a table into it, when the schedule says the part is
    /// to load frozen.
    private func join(_ run: inout OpenRun?, frozen: Bool, table index: Int, loadTable: QualifiedName, rows: Int,
                      on connection: PostgresConnection) async throws -> RunMembership {
        guard frozen else { return .none }
        if run == nil {
            try await connection.execute("BEGIN")
            run = OpenRun()
        }
        if run!.tables[index] == nil { run!.tables[index] = try await hold(loadTable, on: connection) }
        run!.rows += rows
        run!.parts += 1
        return .within(freeze: run!.tables[index]!)
    }

    /// Takes `loadTable` into the open frozen run: holds it alone and empties it, so that COPY may
    /// write frozen rows. Returns false when it holds rows committed before (a resumed load): they
    /// are kept, and its parts load without FREEZE.
    func hold(_ loadTable: QualifiedName, on connection: PostgresConnection) async throws -> Bool {
        try await connection.run { connection in
            // TRUNCATE takes this lock too; taken first, the check below sees every earlier commit.
            try connection.execute("LOCK TABLE \(loadTable.sql) IN ACCESS EXCLUSIVE MODE")
            guard try connection.query("SELECT 1 FROM \(loadTable.sql) LIMIT 1").isEmpty else { return false }
            try connection.execute("TRUNCATE \(loadTable.sql)")
            return true
        }
    }

    /// A worker's frozen run while its transaction is open.
    struct OpenRun {
        /// Its tables, each with whether the run emptied it (only then may its COPYs write frozen rows).
        var tables: [Int: Bool] = [:]
        var rows = 0
        var parts = 0
        let started = ContinuousClock.now

        /// For the log: tables loaded frozen, resumed ones only added to, parts, rows, seconds.
        func summary(_ snapshotTables: [SnapshotTable]) -> Logger.Metadata {
            var metadata: Logger.Metadata = [
                LogKey.parts: .stringConvertible(parts), LogKey.rows: .stringConvertible(rows),
                LogKey.seconds: .string(String(format: "%.1f", (ContinuousClock.now - started).seconds)),
            ]
            for (key, frozen) in [("frozen", true), ("resumed", false)] {
                let names = tables.filter { $0.value == frozen }.keys.map { snapshotTables[$0].stagingTable }.sorted()
                if !names.isEmpty { metadata[key] = .string(names.joined(separator: ",")) }
            }
            return metadata
        }
    }

    /// How a part's load relates to a frozen run.
    enum RunMembership {
        /// The part is a transaction of its own.
        case none
        /// Within the worker's open run; `freeze` when the run emptied the table.
        case within(freeze: Bool)
    }

    /// One part into its load table, recorded in the control state in the same transaction; a part
    /// already recorded is skipped, so callers may race or repeat.
    /// `local`: the copy's own file of the part (`snapshot --apply`), read instead of fetching it
    /// from the store; verified all the same.
    func loadPart(_ part: StagedFile, local handedOver: HandedOffPart? = nil, relation: RelationSchema, into loadTable: QualifiedName,
                  snapshot: SnapshotManifest, counter: TransferProgress.Table?, run: RunMembership = .none,
                  on connection: PostgresConnection) async throws {
        let fetched = handedOver == nil ? try await store.fetch(key: part.key) : nil
        defer { fetched?.release() }
        let path = handedOver?.path ?? fetched!.path
        let (source, lsn) = (snapshot.source, snapshot.consistentPoint)
        try await connection.run { connection in
            func copy(on connection: isolated PostgresConnection, freeze: Bool) throws {
                guard try !ControlStore.isPartLoaded(source, snapshot: lsn, key: part.key, on: connection) else { return }
                let rows = try Self.copyIn(part, path: path, into: loadTable, relation: relation, freeze: freeze, counter: counter, on: connection)
                try ControlStore.recordPart(source, snapshot: lsn, key: part.key, rows: rows, on: connection)
                counter?.add(rows: rows, bytes: 0)
            }
            switch run {
            case .within(let freeze):
                // The run holds the table alone: no other loader can be on this part.
                try copy(on: connection, freeze: freeze)
            case .none:
                try connection.transaction { connection in
                    // Serialises two loaders on the same part; the loser sees it recorded and stops.
                    try connection.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [part.key])
                    // Waits out a frozen run on the table, whose parts become visible when it commits.
                    try connection.execute("LOCK TABLE \(loadTable.sql) IN ROW EXCLUSIVE MODE")
                    try copy(on: connection, freeze: false)
                }
            }
        }
    }

    /// The part's rows into the load table, rewritten on the way to COPY's binary format when every
    /// column has one (`RelationSchema.binaryKinds`), else to its text format: either is cheaper
    /// for the target to parse than CSV. Checksum and size are verified as the bytes stream; a
    /// mismatch throws, which aborts the COPY.
    static func copyIn(_ part: StagedFile, path: String, into loadTable: QualifiedName, relation: RelationSchema, freeze: Bool,
                       counter: TransferProgress.Table?, on connection: isolated PostgresConnection) throws -> Int {
        let binary = CSVToBinaryTranscoder(relation: relation)
        let rewriter: any COPYRewriter = binary ?? CSVToTextTranscoder()
        let rows = try connection.copyIn(SnapshotSQL.copyIn(loadTable, relation: relation, freeze: freeze, binary: binary != nil)) { send in
            try GzipFileReader.readForCOPY(path: path, key: part.key, expected: part, rewriter: rewriter,
                                           progress: { counter?.add(rows: 0, bytes: $0) }, sink: send)
        }
        guard rows == part.rows else {
            throw StorageError.corrupt(key: part.key, reason: "\(rows) rows, the manifest says \(part.rows)")
        }
        return rows
    }
}
