import Foundation
import Logging
import TributaryCore
import TributaryPostgres
import TributaryStorage

/// Loads complete snapshots from the staging store into STG.
///
/// Each part is copied into a load table in its own transaction, recorded in
/// `tributary.snapshot_parts` in that same transaction; when every part of a table is in, one
/// transaction adds the key and swaps the load table in as `stg.<table>`. A kill at any moment
/// leaves either a recorded part or nothing, never a half-loaded table that looks complete, and
/// the next run carries on from what is recorded.
public struct SnapshotLoader: Sendable {
    public struct Report: Sendable {
        public var source: String
        public var consistentPoint: LSN
        public var tables: Int
        public var rows: Int
        public var partsLoaded: Int
        public var partsAlreadyLoaded: Int
    }

    public let target: String
    public let store: any StagingStore
    public let jobs: Int
    /// Bytes of `maintenance_work_mem` while a key is built.
    public let maintenanceWorkMem: Int
    /// Bytes a frozen run loads before it commits (`SnapshotSettings.freezeBytesMax`).
    public let frozenRunBytes: Int
    public let logger: Logger

    public init(target: String, store: any StagingStore, jobs: Int, settings: SnapshotSettings = .init(), logger: Logger) {
        self.target = target
        self.store = store
        self.jobs = jobs
        self.maintenanceWorkMem = settings.maintenanceWorkMem
        self.frozenRunBytes = settings.freezeBytesMax
        self.logger = logger
    }

    /// The newest complete snapshot of `source` in the store, unless it is applied already.
    public func pendingSnapshot(source: String, on connection: PostgresConnection) async throws -> SnapshotManifest? {
        let prefix = ObjectNaming.snapshotPrefix(source: source)
        let manifests = try await store.list(prefix: prefix, startAfter: nil)
            .filter { $0.key.hasSuffix("/" + ObjectNaming.manifestName) }
            .compactMap { ObjectNaming.lsnComponent(of: $0.key, after: prefix) }
        guard let newest = manifests.max() else { return nil }
        let applied = try await connection.query("""
            SELECT 1 FROM tributary.snapshots WHERE source = $1 AND snapshot_lsn >= $2::pg_lsn AND state = 'applied'
            """, [source, newest.description])
        guard applied.isEmpty else { return nil }
        return try await store.manifest(SnapshotManifest.self, at: ObjectNaming.snapshotManifest(source: source, consistentPoint: newest))
    }

    /// Loads `source`'s pending snapshot, if any. Returns nil when there was nothing to do.
    public func load(source: String, onStart: @Sendable (TransferProgress) async -> Void = { _ in }) async throws -> Report? {
        let control = try await TargetSession.connect(target)
        try await ControlSchema.migrate(on: control)
        guard let manifest = try await pendingSnapshot(source: source, on: control) else {
            await control.close()
            return nil
        }
        var log = logger.with(source: source)
        log[metadataKey: LogKey.lsn] = .string(manifest.consistentPoint.description)
        let lsnText = manifest.consistentPoint.description
        let (loadTables, finished) = try await begin(manifest, on: control)
        let loaded = Set(try await control.query(
            "SELECT object_key FROM tributary.snapshot_parts WHERE source = $1 AND snapshot_lsn = $2::pg_lsn",
            [source, lsnText]).rows.map { $0[0]! })

        // Each table's parts in order; the schedule spreads workers over tables and builds each
        // key as soon as its table is in, so the key builds overlap the loads of other tables.
        let queue = PartLoadQueue(tables: manifest.tables.count, frozenRunBytes: frozenRunBytes)
        var partsPerTable = Array(repeating: 0, count: manifest.tables.count)
        for (index, table) in manifest.tables.enumerated() {
            guard !finished.contains(table.stagingTable) else {
                await queue.skip(table: index)
                continue
            }
            if table.parts.contains(where: { loaded.contains($0.key) }) { await queue.partlyLoaded(table: index) }
            for part in table.parts where !loaded.contains(part.key) {
                await queue.add(table: index, part: QueuedPart(file: part, local: nil))
                partsPerTable[index] += 1
            }
            await queue.complete(table: index)
        }
        await queue.close()
        let partsToLoad = partsPerTable.reduce(0, +)
        let progress = TransferProgress(title: "load \(source)", tables: manifest.tables.enumerated().map { index, table in
            (table.stagingTable, table.rows, table.parts.reduce(0) { $0 + $1.uncompressedBytes }, partsPerTable[index])
        })
        await onStart(progress)
        log.info("loading snapshot", metadata: ["parts": .stringConvertible(partsToLoad), "already_loaded": .stringConvertible(loaded.count)])

        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<max(1, jobs) {
                group.addTask {
                    try await work(worker, queue: queue, tables: manifest.tables, loadTables: loadTables, source: source,
                                   consistentPoint: manifest.consistentPoint, progress: progress)
                }
            }
            try await group.waitForAll()
        }

        // Keys are built; promotion swaps catalogs, one table after another in short transactions.
        let promotions = WorkQueue(manifest.tables.indices.filter { !finished.contains(manifest.tables[$0].stagingTable) })
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<max(1, jobs) {
                group.addTask { [log] in try await promoteWorker(queue: promotions, manifest: manifest, loadTables: loadTables, logger: log) }
            }
            try await group.waitForAll()
        }

        try await control.run { [manifest] connection in
            try connection.transaction { connection in
                try connection.query("""
                    UPDATE tributary.snapshots SET state = 'applied', finished_at = now()
                    WHERE source = $1 AND snapshot_lsn = $2::pg_lsn
                    """, [manifest.source, lsnText])
                // A new snapshot restarts the stream at its consistent point.
                try connection.query("""
                    INSERT INTO tributary.sources AS s (source, slot, snapshot_lsn, applied_lsn)
                    VALUES ($1, $2, $3::pg_lsn, $3::pg_lsn)
                    ON CONFLICT (source) DO UPDATE SET slot = excluded.slot, snapshot_lsn = excluded.snapshot_lsn,
                        applied_lsn = excluded.applied_lsn, applied_commit_time = NULL, updated_at = now()
                    """, [manifest.source, manifest.slot, lsnText])
            }
        }
        try await dropSuperseded(source: source, applied: manifest.consistentPoint, on: control, logger: log)
        await control.close()
        let rows = manifest.tables.reduce(0) { $0 + $1.rows }
        log.info("snapshot applied to STG", metadata: [LogKey.rows: .stringConvertible(rows), "tables": .stringConvertible(manifest.tables.count)])
        return Report(source: source, consistentPoint: manifest.consistentPoint, tables: manifest.tables.count, rows: rows,
                      partsLoaded: partsToLoad, partsAlreadyLoaded: loaded.count)
    }

    /// Older snapshots of `source` that were being loaded when a newer one was applied (a failed
    /// `snapshot --apply`, or one replaced by `--restart` before its load finished) can never be
    /// applied now: their load tables, which may hold much of a table, go with their records.
    func dropSuperseded(source: String, applied: LSN, on connection: PostgresConnection, logger: Logger) async throws {
        let stale = try await connection.query("""
            SELECT snapshot_lsn, tables FROM tributary.snapshots WHERE source = $1 AND state = 'loading' AND snapshot_lsn < $2::pg_lsn
            """, [source, applied.description])
        for row in stale.rows {
            guard let lsn = row[0].flatMap(LSN.init), let tables = row[1].flatMap({ Int($0) }) else { continue }
            try await connection.run { connection in
                try connection.transaction { connection in
                    for index in 0..<tables {
                        try connection.execute("DROP TABLE IF EXISTS \(loadTable(source: source, lsn: lsn, index: index).sql)")
                    }
                    for table in ["snapshot_parts", "snapshots"] {
                        try connection.query("DELETE FROM tributary.\(table) WHERE source = $1 AND snapshot_lsn = $2::pg_lsn",
                                             [source, lsn.description])
                    }
                }
            }
            logger.notice("dropped the load tables of a superseded snapshot", metadata: [
                "superseded_lsn": .string(lsn.description), "tables": .stringConvertible(tables),
            ])
        }
    }

    /// `tributary_load.<source>_<lsn>_<n>`: unique per snapshot and table, and short.
    func loadTable(source: String, lsn: LSN, index: Int) -> QualifiedName {
        QualifiedName(schema: StagingColumns.loadSchema, name: "\(source)_\(lsn.paddedHex)_\(index)")
    }

    /// Records the snapshot as loading and creates the load tables of the tables not yet promoted.
    /// Safe to repeat; the eager load calls it before the manifest exists (parts may be empty then).
    /// Returns every table's load table, and the STG names of the tables already promoted.
    func begin(_ manifest: SnapshotManifest, on connection: PostgresConnection) async throws
        -> (loadTables: [QualifiedName], finished: Set<String>) {
        let lsnText = manifest.consistentPoint.description
        try await connection.query("""
            INSERT INTO tributary.snapshots (source, snapshot_lsn, slot, state, tables, rows)
            VALUES ($1, $2::pg_lsn, $3, 'loading', $4, $5)
            ON CONFLICT (source, snapshot_lsn) DO UPDATE SET tables = excluded.tables, rows = excluded.rows
            """, [manifest.source, lsnText, manifest.slot, String(manifest.tables.count), String(manifest.tables.reduce(0) { $0 + $1.rows })])
        let finished = Set(try await connection.query(
            "SELECT stg_table FROM tributary.snapshot_tables WHERE source = $1 AND snapshot_lsn = $2::pg_lsn",
            [manifest.source, lsnText]).rows.map { $0[0]! })
        let loadTables = manifest.tables.indices.map { loadTable(source: manifest.source, lsn: manifest.consistentPoint, index: $0) }
        for (index, table) in manifest.tables.enumerated() where !finished.contains(table.stagingTable) {
            try await connection.execute(SnapshotSQL.createLoadTable(loadTables[index], relation: table.relation))
        }
        return (loadTables, finished)
    }

    /// One load worker: takes jobs from `queue` until it closes. `apply` runs it, and so does the
    /// eager load of `snapshot --apply`.
    func work(_ worker: Int, queue: PartLoadQueue, tables: [SnapshotTable], loadTables: [QualifiedName], source: String,
              consistentPoint: LSN, progress: TransferProgress?) async throws {
        let connection = try await TargetSession.connect(target)
        // The worker's open frozen run, if any.
        var run: OpenRun?
        while let job = await queue.next(worker: worker) {
            switch job {
            case .load(let index, let part, let frozen):
                var membership = RunMembership.none
                if frozen {
                    if run == nil {
                        try await connection.execute("BEGIN")
                        run = OpenRun()
                    }
                    if run!.tables[index] == nil { run!.tables[index] = try await hold(loadTables[index], on: connection) }
                    run!.rows += part.file.rows
                    run!.parts += 1
                    membership = .within(freeze: run!.tables[index]!)
                }
                let started = ContinuousClock.now
                try await loadPart(part.file, local: part.local, relation: tables[index].relation, into: loadTables[index],
                                   source: source, consistentPoint: consistentPoint, counter: progress?.tables[index],
                                   run: membership, on: connection)
                progress?.tables[index].finishUnit()
                logger.debug("part loaded", metadata: [LogKey.object: .string(part.file.key), LogKey.rows: .stringConvertible(part.file.rows),
                                                       "frozen": .stringConvertible(run?.tables[index] == true),
                                                       "handed_over": .stringConvertible(part.local != nil),
                                                       LogKey.seconds: .string(String(format: "%.2f", (ContinuousClock.now - started).seconds))])
                if await queue.loaded(worker: worker, table: index) {
                    try await buildKey(tables[index], loadTable: loadTables[index], on: connection)
                }
            case .commitRun:
                try await connection.execute("COMMIT")
                if let run { logger.info("load run committed", metadata: run.summary(tables)) }
                run = nil
            case .buildKey(let index):
                try await buildKey(tables[index], loadTable: loadTables[index], on: connection)
            }
        }
        // The queue closed while a run was open (the snapshot stopped before its tables were
        // complete). Each part the run loaded is whole and recorded, so it is kept.
        if run != nil { try await connection.execute("COMMIT") }
        await connection.close()
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
                "parts": .stringConvertible(parts), LogKey.rows: .stringConvertible(rows),
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

    /// One part into its load table, recorded in `tributary.snapshot_parts` in the same transaction;
    /// a part already recorded is skipped, so callers may race or repeat.
    /// `local`: the copy's own file of the part (`snapshot --apply`), read instead of fetching it
    /// from the store; verified all the same.
    func loadPart(_ part: StagedFile, local handedOver: HandedOffPart? = nil, relation: RelationSchema, into loadTable: QualifiedName,
                  source: String, consistentPoint: LSN, counter: TransferProgress.Table?, run: RunMembership = .none,
                  on connection: PostgresConnection) async throws {
        let fetched = handedOver == nil ? try await store.fetch(key: part.key) : nil
        defer { fetched?.release() }
        let path = handedOver?.path ?? fetched!.path
        let lsnText = consistentPoint.description
        try await connection.run { connection in
            func copy(on connection: isolated PostgresConnection, freeze: Bool) throws {
                let recorded = try connection.query("""
                    SELECT 1 FROM tributary.snapshot_parts WHERE source = $1 AND snapshot_lsn = $2::pg_lsn AND object_key = $3
                    """, [source, lsnText, part.key])
                guard recorded.isEmpty else { return }
                let rows = try connection.copyIn(SnapshotSQL.copyIn(loadTable, relation: relation, freeze: freeze)) { send in
                    // Checksum and size are verified as the bytes stream; a mismatch throws,
                    // which aborts the COPY and rolls the part back.
                    var transcoder = CSVToTextTranscoder()
                    do {
                        try GzipFileReader.read(path: path, key: part.key, expected: part) { chunk in
                            try transcoder.transcode(chunk, sink: send)
                            counter?.add(rows: 0, bytes: chunk.count)
                        }
                        try transcoder.finish(sink: send)
                    } catch let failure as CSVToTextTranscoder.Failure {
                        throw StorageError.corrupt(key: part.key, reason: failure.description)
                    }
                }
                guard rows == part.rows else {
                    throw StorageError.corrupt(key: part.key, reason: "\(rows) rows, the manifest says \(part.rows)")
                }
                try connection.query("""
                    INSERT INTO tributary.snapshot_parts (source, snapshot_lsn, object_key, rows) VALUES ($1, $2::pg_lsn, $3, $4)
                    """, [source, lsnText, part.key, String(rows)])
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

    /// Builds a fully loaded table's key and statistics on its load table, before promotion, so
    /// that this can overlap the load of other tables (`PartLoadSchedule` hands every table to it
    /// before promotion). Nothing of it is visible in STG. Safe to repeat.
    func buildKey(_ table: SnapshotTable, loadTable: QualifiedName, on connection: PostgresConnection) async throws {
        let stagingTable = QualifiedName(schema: StagingColumns.schema, name: table.stagingTable)
        let started = ContinuousClock.now
        let built = try await connection.run { [maintenanceWorkMem] connection in
            try connection.transaction { connection -> Bool in
                guard try connection.query(SnapshotSQL.hasKey, [loadTable.sql]).isEmpty else { return false }
                // The sort behind the index stays in memory instead of spilling to disk.
                try connection.execute("SET LOCAL maintenance_work_mem = '\(max(1, maintenanceWorkMem >> 10))kB'")
                try connection.execute(SnapshotSQL.addKey(loadTable, stagingTable: stagingTable, relation: table.relation))
                // Statistics now, so the first merges and BL queries get good plans; they move with the table.
                try connection.execute("ANALYZE \(loadTable.sql)")
                return true
            }
        }
        guard built else { return }
        logger.debug("key built", metadata: [LogKey.table: .string(stagingTable.description),
                                             LogKey.seconds: .string(String(format: "%.1f", (ContinuousClock.now - started).seconds))])
    }

    private func promoteWorker(queue: WorkQueue<Int>, manifest: SnapshotManifest, loadTables: [QualifiedName], logger: Logger) async throws {
        let connection = try await TargetSession.connect(target)
        while let index = await queue.take() {
            let table = manifest.tables[index]
            let stagingTable = QualifiedName(schema: StagingColumns.schema, name: table.stagingTable)
            let started = ContinuousClock.now
            try await connection.run { [loadTable = loadTables[index]] connection in
                try connection.transaction { connection in
                    // Each part's row count was checked and recorded with it; their sum must be the table's.
                    let rows = Int(try connection.query("""
                        SELECT coalesce(sum(rows), 0) FROM tributary.snapshot_parts
                        WHERE source = $1 AND snapshot_lsn = $2::pg_lsn AND object_key = ANY($3::text[])
                        """, [manifest.source, manifest.consistentPoint.description, PostgresArray.literal(table.parts.map(\.key))]).scalar ?? "0") ?? 0
                    guard rows == table.rows else {
                        throw OperatorError("\(loadTable) holds \(rows) rows of recorded parts but the snapshot of \(table.relation.table) has \(table.rows): run apply again")
                    }
                    for statement in SnapshotSQL.promote(loadTable, to: stagingTable, relation: table.relation,
                                                                      consistentPoint: manifest.consistentPoint) {
                        try connection.execute(statement)
                    }
                    try connection.query("""
                        INSERT INTO tributary.snapshot_tables (source, snapshot_lsn, stg_table, source_table, rows)
                        VALUES ($1, $2::pg_lsn, $3, $4, $5)
                        """, [manifest.source, manifest.consistentPoint.description, table.stagingTable,
                              table.relation.table.description, String(rows)])
                }
            }
            logger.info("STG table ready", metadata: [LogKey.table: .string(stagingTable.description), LogKey.rows: .stringConvertible(table.rows),
                                                      LogKey.seconds: .string(String(format: "%.1f", (ContinuousClock.now - started).seconds))])
        }
        await connection.close()
    }
}

extension Duration {
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
