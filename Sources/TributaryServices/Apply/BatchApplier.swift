import Foundation
import Logging
import TributaryCore
import TributaryPostgres
import TributaryStorage

/// Applies one CDC batch to STG in one target transaction (DESIGN.md §4): every file is COPYed
/// into a load table while its checksum is verified (one a `BatchPreloader` filled, or the
/// merging connection's own, `MergingLoadTables`, or a temporary table), reduced to the newest
/// change per key and merged where the incoming LSN is newer, and the batch is recorded in the
/// control state in the same transaction. A batch already recorded changes nothing (its load tables, if it was
/// loaded ahead, still go).
struct BatchApplier {
    struct Outcome: Sendable {
        var applied: Bool
        var rows: Int
        /// Batches applied (a replayed one is not).
        var batches = 0
        var inserts = 0, updates = 0, deletes = 0, truncates = 0
        /// Inserts and updates COPYed straight into STG (`DirectInsert`).
        var insertedDirectly = 0
    }

    let source: SourceConfiguration
    let store: any StagingStore
    let logger: Logger
    /// Where a batch no preloader loaded is loaded (nil: temporary tables, a file at a time).
    var ownLoadTables: MergingLoadTables?
    /// Tables whose files of inserts and updates go through load tables all the same.
    var directExclusions = DirectInsertExclusions()
    /// `ChangeApplier.Settings.directRowsHeldBytes`.
    var directRowsHeldBytes = DirectInsert.rowsHeldBytes

    /// - Parameter backlog: batches still to apply after this one, said to the BL runner.
    func apply(_ manifest: BatchManifest, backlog: Int = 0, on connection: PostgresConnection) async throws -> Outcome {
        try await apply(manifest, preloaded: nil, backlog: backlog, on: connection)
    }

    /// Applies one batch whose files a `BatchPreloader` loaded into load tables, which go with
    /// this transaction (also when the batch was applied before).
    func apply(_ batch: PreloadedBatch, backlog: Int = 0, on connection: PostgresConnection) async throws -> Outcome {
        try await apply(batch.manifest, preloaded: batch, backlog: backlog, on: connection)
    }

    /// Applies a `BatchGroup` in one target transaction, as one longer batch would be: each
    /// table's files COPYed one after another into the merging connection's own load table for
    /// it, one plain merge per table (`PlainMerge`), every batch claimed and recorded. Returns nil,
    /// having changed nothing, when a table needs more than a plain merge (a shape to follow, a
    /// copy to wait for) or a batch was recorded already: the batches then go one at a time.
    /// - Parameter backlog: batches still to apply after the group, said to the BL runner.
    func apply(_ group: BatchGroup, backlog: Int, on connection: PostgresConnection) async throws -> Outcome? {
        guard let ownLoadTables, let first = group.manifests.first, let last = group.manifests.last else { return nil }
        var locals: [LocalObject] = []
        defer { locals.forEach { $0.release() } }
        locals = try await store.fetch(keys: group.tables.flatMap { $0.files.map(\.file.key) })
        var paths = locals.map(\.path)[...]
        let parts = group.tables.map { table in
            defer { paths = paths.dropFirst(table.files.count) }
            return zip(table.files, paths.prefix(table.files.count)).map { (file: $0, path: $1) }
        }
        let merged = group.tables.map(\.merged)
        let own = ownLoadTables.plan(merged)
        let sourceName = source.name
        do {
            let outcome = try await connection.run { connection in
                try connection.transaction { connection in
                    for manifest in group.manifests {
                        guard try ControlStore.claimBatch(manifest, on: connection) else { throw NotPlain() }
                    }
                    try StagingTypeCheck.validate(merged.map(\.relation), manifest: "batches \(first.endLSN)-\(last.endLSN) of \(sourceName)",
                                                  on: connection)
                    let awaiting = try ControlStore.tablesAwaitingCopy(of: sourceName, on: connection)
                    var lookups = try BatchLookups.read(merged, awaiting: awaiting, on: connection)
                    let merges = try merged.enumerated().map { number, file in
                        guard let lookedUp = lookups.take(file.stagingTable),
                              let merge = PlainMerge(file, loadTable: own.tables[number], lookedUp: lookedUp, awaiting: awaiting) else { throw NotPlain() }
                        return merge
                    }
                    try BatchPreloader.load(parts, into: own.tables, emptying: own.emptying, on: connection)
                    try PlainMerge.run(merges, on: connection)
                    for manifest in group.manifests { try ControlStore.recordApplied(manifest, on: connection) }
                    try ControlStore.announceStagingChange(of: sourceName, backlog: backlog, on: connection)
                    var outcome = Outcome(applied: true, rows: group.rows, batches: group.manifests.count)
                    for file in merged {
                        outcome.inserts += file.inserts
                        outcome.updates += file.updates
                        outcome.deletes += file.deletes
                    }
                    return outcome
                }
            }
            ownLoadTables.loaded(merged, tables: own.tables, emptying: own.emptying)
            return outcome
        } catch is NotPlain {
            return nil
        }
    }

    /// A group's table needs more than a plain merge, or one of its batches was recorded already.
    private struct NotPlain: Error {}

    /// Applies the changes of a batch that committed before `lsn` (a verify's point the batch
    /// runs across), without recording the batch: it is applied whole once the hold is lifted,
    /// and its changes before the point, applied again, are no newer than what STG holds then.
    func apply(_ manifest: BatchManifest, before lsn: LSN, on connection: PostgresConnection) async throws -> Outcome {
        var locals: [LocalObject] = []
        defer { locals.forEach { $0.release() } }
        locals = try await store.fetch(keys: manifest.files.map(\.file.key))
        let schema = SchemaFollowing(source: source, batchEnd: manifest.endLSN, logger: logger)
        let sourceName = source.name
        let paths = locals.map(\.path)
        return try await connection.run { connection in
            try connection.transaction { connection in
                try StagingTypeCheck.validate(manifest.files.map(\.relation), manifest: "batch \(manifest.endLSN) of \(sourceName)", on: connection)
                var outcome = Outcome(applied: false, rows: 0)
                var awaiting = try ControlStore.tablesAwaitingCopy(of: sourceName, on: connection)
                for (number, file) in manifest.files.enumerated() {
                    outcome.rows += try Self.apply(file, position: number, path: paths[number], loaded: nil, before: lsn, schema: schema,
                                                   awaiting: &awaiting, on: connection)
                }
                try ControlStore.announceStagingChange(of: sourceName, backlog: 0, on: connection)
                return outcome
            }
        }
    }

    private func apply(_ manifest: BatchManifest, preloaded: PreloadedBatch?, backlog: Int,
                       on connection: PostgresConnection) async throws -> Outcome {
        // Files no preloader loaded are fetched before the transaction opens, so no transaction
        // waits on the store.
        let unloaded = manifest.files.indices.filter { preloaded?.tables[$0] == nil }
        var locals: [LocalObject] = []
        defer { locals.forEach { $0.release() } }
        locals = try await store.fetch(keys: unloaded.map { manifest.files[$0].file.key })
        var fetched = Array(repeating: "", count: manifest.files.count)
        for (number, local) in zip(unloaded, locals) { fetched[number] = local.path }
        let paths = fetched
        let candidates = Set(DirectInsert.candidates(in: manifest.files, excluding: directExclusions.contains)).intersection(unloaded)
        let schema = SchemaFollowing(source: source, batchEnd: manifest.endLSN, logger: logger)
        let sourceName = source.name
        let own = ownLoadTables?.plan(manifest.files)
        let directExclusions = directExclusions
        let (outcome, ownLoaded) = try await connection.run { connection in
            try connection.transaction { connection in
                var outcome = Outcome(applied: false, rows: 0)
                var ownLoaded: [Int] = []
                guard try ControlStore.claimBatch(manifest, on: connection) else { return (outcome, ownLoaded) }
                try StagingTypeCheck.validate(manifest.files.map(\.relation), manifest: "batch \(manifest.endLSN) of \(sourceName)", on: connection)
                outcome = Outcome(applied: true, rows: manifest.rows, batches: 1)
                var awaiting = try ControlStore.tablesAwaitingCopy(of: sourceName, on: connection)
                var lookups = try BatchLookups.read(manifest.files, awaiting: awaiting, on: connection)
                var direct = Set<Int>()
                for number in candidates.sorted() {
                    let file = manifest.files[number]
                    guard let lookedUp = lookups.table(file.stagingTable) else { continue }
                    let logged = lookedUp.changeLog != nil
                    // A table a BL model logs stays logged: the preloader loads its files again.
                    if logged { directExclusions.exclude(file.stagingTable) }
                    guard DirectInsert.applies(to: file, firstCommit: manifest.firstCommitLSN, recorded: lookedUp.recorded?.relation,
                                               truncatedAt: lookedUp.truncatedAt, logged: logged, awaiting: awaiting.contains(file.stagingTable),
                                               stagingColumns: lookedUp.columns)
                    else { continue }
                    if try Self.insertDirectly(file, path: paths[number], holdingRowsUpTo: directRowsHeldBytes, on: connection) {
                        direct.insert(number)
                    } else {
                        directExclusions.exclude(file.stagingTable)
                    }
                }
                var tables = preloaded?.tables ?? Array(repeating: nil, count: manifest.files.count)
                if let own {
                    ownLoaded = unloaded.filter { !direct.contains($0) }
                    try BatchPreloader.load(ownLoaded.map { manifest.files[$0] }, paths: ownLoaded.map { paths[$0] },
                                            into: ownLoaded.map { own.tables[$0] }, emptying: ownLoaded.map { own.emptying[$0] }, on: connection)
                    for number in ownLoaded { tables[number] = own.tables[number] }
                }
                let filesPerTable = Dictionary(manifest.files.map { ($0.stagingTable, 1) }, uniquingKeysWith: +)
                var together: [PlainMerge] = []
                // In file order: a table whose schema changed inside the batch has a segment per
                // shape, each followed and merged in turn. Plain merges of tables with one file
                // each go last, together (their order among other tables' merges is free).
                for (number, file) in manifest.files.enumerated() {
                    let lookedUp = lookups.take(file.stagingTable)
                    outcome.inserts += file.inserts
                    outcome.updates += file.updates
                    outcome.deletes += file.deletes
                    outcome.truncates += file.truncates
                    if direct.contains(number) {
                        outcome.insertedDirectly += file.inserts + file.updates
                    } else if let loaded = tables[number], let lookedUp, filesPerTable[file.stagingTable] == 1,
                              let plain = PlainMerge(file, loadTable: loaded, lookedUp: lookedUp, awaiting: awaiting) {
                        together.append(plain)
                    } else {
                        try Self.apply(file, position: number, path: tables[number] == nil ? paths[number] : "", loaded: tables[number],
                                       schema: schema, lookedUp: lookedUp, awaiting: &awaiting, on: connection)
                    }
                }
                try PlainMerge.run(together, on: connection)
                try ControlStore.recordApplied(manifest, on: connection)
                try ControlStore.announceStagingChange(of: sourceName, backlog: backlog, on: connection)
                return (outcome, ownLoaded)
            }
        }
        if let own, outcome.applied {
            ownLoadTables?.loaded(ownLoaded.map { manifest.files[$0] }, tables: ownLoaded.map { own.tables[$0] },
                                  emptying: ownLoaded.map { own.emptying[$0] })
        }
        return outcome
    }

    /// COPYs a file of inserts and updates straight into its STG table (`DirectInsert`), under a
    /// savepoint, its checksum and row count verified; with updates, the STG rows of its keys are
    /// deleted first (their keys read from the file in a first pass, which keeps its rows for the
    /// COPY up to `limit` bytes of CSV, `DirectInsert.holdsRows`). False, with nothing of it
    /// kept, when STG held one of its keys as new as its change (or, for inserts only, at all): the
    /// file then goes through a load table. Any other failure fails the batch, as a load's does.
    static func insertDirectly(_ file: BatchFile, path: String, holdingRowsUpTo limit: Int, on connection: isolated PostgresConnection) throws -> Bool {
        let stagingTable = QualifiedName(schema: StagingColumns.schema, name: file.stagingTable)
        try connection.execute("SAVEPOINT tributary_direct_insert")
        do {
            var held: [[UInt8]]?
            if DirectInsert.deletesFirst(file) {
                try connection.execute(DirectInsert.createKeys(like: stagingTable, relation: file.relation))
                let keys = try connection.copyIn(DirectInsert.copyKeys) { send in
                    if DirectInsert.holdsRows(file, upTo: limit) {
                        held = try Self.readKeys(of: file, path: path, sink: send)
                    } else {
                        try GzipFileReader.readForCOPY(path: path, key: file.file.key, expected: file.file,
                                                       rewriter: CSVToBinaryTranscoder(keysOf: file.relation)!, sink: send)
                    }
                }
                guard keys == file.file.rows else {
                    throw StorageError.corrupt(key: file.file.key, reason: "\(keys) rows, the manifest says \(file.file.rows)")
                }
                try connection.execute(DirectInsert.deleteOlder(from: stagingTable, relation: file.relation))
            }
            let rows = try connection.copyIn(DirectInsert.copy(into: stagingTable, relation: file.relation)) { send in
                if let held {
                    for piece in held { try piece.withUnsafeBytes(send) }
                } else {
                    let transcoder = DirectInsert.deletesFirst(file) ? CSVToBinaryTranscoder(upsertsOf: file.relation)! : CSVToBinaryTranscoder(insertsOf: file.relation)!
                    try GzipFileReader.readForCOPY(path: path, key: file.file.key, expected: file.file, rewriter: transcoder, sink: send)
                }
            }
            guard rows == file.file.rows else {
                throw StorageError.corrupt(key: file.file.key, reason: "\(rows) rows, the manifest says \(file.file.rows)")
            }
        } catch let error as PostgresError where error.sqlState == DirectInsert.uniqueViolation {
            try connection.execute("ROLLBACK TO SAVEPOINT tributary_direct_insert; RELEASE SAVEPOINT tributary_direct_insert")
            return false
        }
        try connection.execute("RELEASE SAVEPOINT tributary_direct_insert")
        return true
    }

    /// Reads a file of updates once (`DirectInsert.holdsRows`), checked as `GzipFileReader.readForCOPY`
    /// checks it: its keys go to `sink`, and its rows' binary tuples are returned, in pieces.
    static func readKeys(of file: BatchFile, path: String, sink: (UnsafeRawBufferPointer) throws -> Void) throws -> [[UInt8]] {
        var keys = CSVToBinaryTranscoder(keysOf: file.relation)!, rows = CSVToBinaryTranscoder(upsertsOf: file.relation)!
        var held: [[UInt8]] = []
        func hold(_ piece: UnsafeRawBufferPointer) {
            // The transcoder hands its output over in pieces of up to 4 MiB: kept as they come.
            held.append(Array(piece))
        }
        do {
            try GzipFileReader.read(path: path, key: file.file.key, expected: file.file) { chunk in
                try keys.transcode(chunk, sink: sink)
                try rows.transcode(chunk, sink: hold)
            }
            try keys.finish(sink: sink)
            try rows.finish(sink: hold)
        } catch let failure as CSVToBinaryTranscoder.Failure {
            throw StorageError.corrupt(key: file.file.key, reason: failure.description)
        }
        return held
    }

    /// Loads one file into a temporary table (or takes the load table a `BatchPreloader` filled)
    /// and merges it; with `before`, only its changes that committed before that LSN, with
    /// `copiedAt`, only those at or after it (a copy at that point holds the others). Returns the
    /// changes merged.
    /// Between the file's load and its merge, STG follows the file's shape (`SchemaFollowing`):
    /// the first change's LSN is known then, and a file a table snapshot's copy covers is left out.
    /// A file of a table in `awaiting` (its STG table waits for its first copy) is kept for the
    /// copy instead (`TablePromotion.replayDeferredFiles`); a table created empty here joins `awaiting`.
    /// - Parameter position: the file's place in its batch (deferred files replay in that order).
    /// - Parameter lookedUp: the STG table's lookups read with the batch's (`BatchLookups`); nil: looked up here.
    @discardableResult
    static func apply(_ file: BatchFile, position: Int, path: String, loaded: QualifiedName?, before: LSN? = nil, copiedAt: LSN? = nil,
                      schema: SchemaFollowing, lookedUp: BatchLookups.Table? = nil, awaiting: inout Set<String>,
                      on connection: isolated PostgresConnection) throws -> Int {
        if awaiting.contains(file.stagingTable) {
            try ControlStore.deferFile(file, position: position, batchEnd: schema.batchEnd, source: schema.source.name, on: connection)
            return 0
        }
        let sql = MergeSQL(file, loadTable: loaded)
        if loaded == nil {
            try connection.execute(sql.createTemporary)
            try load(file, path: path, with: sql, on: connection)
        }
        switch try schema.follow(file, changes: sql, before: before, recorded: lookedUp.map { .some($0.recorded) } ?? .none, on: connection) {
        case .leaveOut:
            return 0
        case .awaitCopy:
            awaiting.insert(file.stagingTable)
            try ControlStore.deferFile(file, position: position, batchEnd: schema.batchEnd, source: schema.source.name, on: connection)
            return 0
        case .merge:
            return try merge(sql, stagingTable: file.stagingTable, rows: file.file.rows, deletes: file.deletes, truncates: file.truncates,
                             before: before, copiedAt: copiedAt, lookedUp: lookedUp, on: connection)
        }
    }

    /// COPYs one file into `sql`'s temporary table, rewritten to COPY's binary or text format on
    /// the way (`MergeSQL.copyIn`), its checksum and row count verified.
    static func load(_ file: BatchFile, path: String, with sql: MergeSQL, on connection: isolated PostgresConnection) throws {
        let rewriter: any COPYRewriter = sql.loadsBinary ? CSVToBinaryTranscoder(changesOf: file.relation)! : CSVToTextTranscoder()
        let rows = try connection.copyIn(sql.copyIn) { send in
            // A bad checksum, a cut gzip stream, broken CSV or a value not in its type's text form
            // throws here: the COPY is aborted and with it the whole batch's transaction, so
            // nothing of the batch is applied.
            try GzipFileReader.readForCOPY(path: path, key: file.file.key, expected: file.file, rewriter: rewriter, sink: send)
        }
        guard rows == file.file.rows else {
            throw StorageError.corrupt(key: file.file.key, reason: "\(rows) rows, the manifest says \(file.file.rows)")
        }
    }

    /// COPYs several files of one table (a `BatchGroup`'s, in batch order) into `sql`'s load
    /// table: in binary format, in one COPY, each file's checksum verified on the way and the
    /// rows counted together; in text format, whose header rows COPY checks, a COPY per file.
    static func load(_ files: [(file: BatchFile, path: String)], with sql: MergeSQL, on connection: isolated PostgresConnection) throws {
        guard sql.loadsBinary, files.count > 1 else {
            for (file, path) in files { try load(file, path: path, with: sql, on: connection) }
            return
        }
        let rows = try connection.copyIn(sql.copyIn) { send in
            for (index, part) in files.enumerated() {
                var rewriter = CSVToBinaryTranscoder(changesOf: part.file.relation)!
                rewriter.writesFileHeader = index == 0
                rewriter.writesFileTrailer = index == files.count - 1
                try GzipFileReader.readForCOPY(path: part.path, key: part.file.file.key, expected: part.file.file, rewriter: rewriter, sink: send)
            }
        }
        let expected = files.reduce(0) { $0 + $1.file.file.rows }
        guard rows == expected else {
            throw StorageError.corrupt(key: files.map(\.file.file.key).joined(separator: ", "), reason: "\(rows) rows, the manifests say \(expected)")
        }
    }

    /// Truncates, key moves and unchanged-TOAST folding, then the LSN-guarded merge; with
    /// `before`, the changes that committed at or after it are left out first, with `copiedAt`
    /// those that committed before it (a copy at that consistent point holds them). Returns the
    /// changes merged.
    @discardableResult
    static func merge(_ sql: MergeSQL, stagingTable: String, rows: Int, deletes: Int, truncates: Int, before: LSN? = nil, copiedAt: LSN? = nil,
                      lookedUp: BatchLookups.Table? = nil, on connection: isolated PostgresConnection) throws -> Int {
        var summary = try connection.query(sql.changeSummary).first!
        let count = try summary.decode(at: 0, as: Int.self)
        guard count == rows else {
            // A load table emptied by a crash of the target: the batch is loaded again.
            if sql.temporary.schema != "pg_temp" { throw PreloadedBatchLost(table: sql.temporary, rows: count, expected: rows) }
            throw StorageError.corrupt(key: sql.target.description, reason: "\(count) changes in the temporary table, the batch has \(rows)")
        }
        var rows = rows
        if before != nil || copiedAt != nil {
            if let before { try connection.execute(sql.dropChanges(from: before)) }
            if let copiedAt { try connection.execute(sql.dropChanges(before: copiedAt)) }
            summary = try connection.query(sql.changeSummary).first!
            rows = try summary.decode(at: 0, as: Int.self)
        }
        let log = if let lookedUp { lookedUp.changeLog } else { try changeLog(of: sql.target, key: sql.relation.key, on: connection) }
        var afterSequence: Int?
        var ownTruncate: LSN?
        if truncates > 0, let point = try connection.query(sql.truncatePoint).first {
            afterSequence = try point.decode("_seq", as: Int.self)
            let lsn = try point.decode("_lsn", as: LSN.self)
            ownTruncate = lsn
            if let log {
                try connection.query(log.logging(sql.tombstoneOlderThan(lsn), at: lsn))
            } else {
                try connection.execute(sql.tombstoneOlderThan(lsn))
            }
            try ControlStore.recordTruncation(of: stagingTable, at: lsn, on: connection)
        }
        // A truncation this file carried is newer than the batch's lookup.
        let truncatedAt = if let lookedUp, afterSequence == nil { lookedUp.truncatedAt } else { try ControlStore.truncatedAt(stagingTable, on: connection) }
        var folding = try summary.decode(at: 1, as: Bool.self)
        if folding && deletes > 0 {
            // Each pass resolves at least the first unresolved move of every chain; bounded by the rows.
            for _ in 0..<max(1, rows) {
                if try connection.query(sql.resolveKeyMoves).affectedRows == 0 { break }
            }
            folding = try connection.query(sql.hasUnchanged).scalar(Bool.self)
        }
        // After the file's own TRUNCATE, when it is the table's newest, its changes are picked by
        // sequence: those of the truncating transaction share the truncate's LSN, which the LSN
        // filter would leave out. A newer one (a later batch applied first) still voids them all.
        let voidBefore = truncatedAt == ownTruncate ? nil : truncatedAt
        try connection.execute(sql.merge(afterSequence: afterSequence, truncatedAt: voidBefore, folding: folding))
        if let log {
            try connection.execute(log.append(fromChanges: sql.changes))
            try connection.query(log.prune(watermarks: ControlStore.watermarkPositions), [sql.target.description])
        }
        return rows
    }

    /// The STG table's change log, when a BL model reads the table. Looked for under the lock the
    /// writes (a batch's, a table snapshot's merge) take anyway: a log created meanwhile (under a SHARE lock, see
    /// `ModelRun.ensureChangeLogs`) either is seen here or was seeded after this batch commits.
    static func changeLog(of stagingTable: QualifiedName, key: [String], on connection: isolated PostgresConnection) throws -> StagingChangeLog? {
        try connection.execute("LOCK TABLE \(stagingTable.sql) IN ROW EXCLUSIVE MODE")
        let log = StagingChangeLog(stagingTable: stagingTable, key: key)
        return try TargetCatalog.exists(log.log, on: connection) ? log : nil
    }
}
