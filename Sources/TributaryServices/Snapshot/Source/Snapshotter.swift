import Foundation
import Logging
import TributaryCore
import TributaryPostgres
import TributaryStorage

/// Takes a consistent bulk snapshot of one source into the staging store (DESIGN.md §1):
/// the logical slot is created with an exported snapshot, workers COPY every table under that
/// snapshot through gzip into part files, and the manifest is written last.
public struct Snapshotter: Sendable {
    public struct Options: Sendable {
        /// Drop an existing slot (and a publication Tributary created) and start over.
        public var restart = false
        public var jobs: Int?
        /// Make the slot (every table in the publication) and an empty snapshot at its point, copying
        /// no table: the bulk is then copied as table snapshots (`snapshot --group`), in as many
        /// processes as wanted, each merged into STG by LSN over the stream from the slot's point.
        public var slotOnly = false
        public init(restart: Bool = false, jobs: Int? = nil, slotOnly: Bool = false) {
            self.restart = restart
            self.jobs = jobs
            self.slotOnly = slotOnly
        }
    }

    public let source: SourceConfiguration
    public let endpoint: SourceEndpoint
    public let settings: SnapshotSettings
    public let store: any StagingStore
    public let workDirectory: String
    public let logger: Logger
    /// When requested, each copy worker stops within a block of rows and throws `interrupted`;
    /// the parts stored by then are kept (a rerun resumes) and no manifest is written.
    public var stop: StopSignal?

    public init(source: SourceConfiguration, endpoints: Endpoints, settings: SnapshotSettings, store: any StagingStore, workDirectory: String,
                logger: Logger) {
        self.source = source
        endpoint = endpoints.source(source)
        self.settings = settings
        self.store = store
        self.workDirectory = workDirectory
        self.logger = logger.with(source: source.name)
    }

    /// A part file written locally, not yet in the store.
    struct LocalPart: Sendable {
        var path: String
        var file: StagedFile
        var tableIndex: Int
    }

    /// What a run made: the full snapshot and, when it resumed a killed one, the table snapshot
    /// that holds the tables the killed run had not finished.
    public struct Outcome: Sendable {
        public var manifest: SnapshotManifest
        public var resumed: Resumed?
        /// The snapshot was complete before this run: nothing was copied.
        public var alreadyComplete = false
    }

    /// A killed snapshot taken up again (`SnapshotResumer`).
    public struct Resumed: Sendable {
        /// Tables whose parts the killed run had all stored: kept as they were.
        public var keptTables: Int
        public var keptBytes: Int
        /// Tables the killed runs had not finished, continued into the same snapshot: the ranges
        /// they had stored whole kept, the rest of each copied again.
        public var continuedTables = 0
        public var keptRanges = 0
        public var keptRangeBytes = 0
        public var rangesCopiedAgainBytes = 0
        /// The others, copied again under a temporary slot of their own.
        public var tableSnapshot: SnapshotManifest?
        public var recopiedBytes: Int { tableSnapshot?.tables.flatMap(\.parts).reduce(0) { $0 + $1.bytes } ?? 0 }
    }

    /// - Parameter observer: told of each part once it is durable in the store (see `SnapshotObserver`).
    public func run(options: Options, observer: (any SnapshotObserver)? = nil,
                    onStart: @Sendable (TransferProgress) async -> Void = { _ in }) async throws -> Outcome {
        try await endpoint.withConnection(for: "snapshot") { control in
            // Processes that each copy a group of the tables all make sure of the slot first: one
            // makes it, the others wait for its snapshot and find it complete.
            try await AdvisoryLock(name: "tributary-snapshot:\(source.slot)")
                .around(on: control, waitingFor: "another snapshot of \(source.name) to finish", logger: logger) {
                try await run(options: options, observer: observer, control: control, onStart: onStart)
            }
        }
    }

    private func run(options: Options, observer: (any SnapshotObserver)?, control: PostgresConnection,
                     onStart: @Sendable (TransferProgress) async -> Void) async throws -> Outcome {
        // Everything that can be wrong is checked before anything is created.
        try await SourceChecks.requireLogicalDecoding(on: control, source: source)
        let tables = try await SourceCatalog.describe(source.tables, source: source, on: control)
        if !options.restart, let slot = try await ReplicationSlot.find(source.slot, on: control) {
            if options.slotOnly { return try await finishSlotOnly(slot: slot) }
            return try await SnapshotResumer(snapshotter: self)
                .resume(slot: slot, tables: tables, control: control, jobs: options.jobs ?? settings.jobs, observer: observer, onStart: onStart)
        }
        if options.slotOnly, try await hasCompleteSnapshot() {
            // A new slot's point would pass over the changes the lost one had not delivered, for
            // every table no group copies again: that is --resync's work, which copies them all.
            throw TributaryError(.slotMissing, """
                \(source.name) has a snapshot but its replication slot "\(source.slot)" is gone: \
                recover it with tributary snapshot --source \(source.name) --resync
                """)
        }
        try await prepareSlot(on: control, restart: options.restart)
        try await PublicationSetup(source: source, logger: logger).prepare(on: control, tables: tables, restart: options.restart)
        return Outcome(manifest: try await takeFull(tables: tables, copying: !options.slotOnly, jobs: options.jobs ?? settings.jobs,
                                                    observer: observer, onStart: onStart))
    }

    private func hasCompleteSnapshot() async throws -> Bool {
        try await store.list(prefix: ObjectNaming.snapshotPrefix(source: source.name), startAfter: nil)
            .contains { $0.key.hasSuffix("/" + ObjectNaming.manifestName) }
    }

    /// `slotOnly` where the slot exists: its snapshot is complete (streamed from since, perhaps),
    /// or a slot-only run was killed between the slot and the manifest (its start lists no
    /// table), which this finishes. A snapshot that copies tables and did not finish is not turned
    /// into an empty one.
    private func finishSlotOnly(slot: ReplicationSlot) async throws -> Outcome {
        guard let point = slot.confirmedFlushLSN else {
            throw TributaryError(.state, "replication slot \"\(source.slot)\" on \(source.name) has no consistent point yet: run the snapshot again in a moment")
        }
        let prefix = ObjectNaming.snapshotPrefix(source: source.name)
        let keys = Set(try await store.list(prefix: prefix, startAfter: nil).map(\.key))
        let manifestKey = ObjectNaming.snapshotManifest(source: source.name, consistentPoint: point)
        let startKey = ObjectNaming.snapshotStarted(source: source.name, consistentPoint: point)
        if !keys.contains(manifestKey), keys.contains(startKey) {
            // Never streamed from (its confirmed position is still its consistent point) and unfinished.
            guard try await store.manifest(SnapshotStart.self, at: startKey).tables.isEmpty else {
                throw TributaryError(.state, """
                    the snapshot of \(source.name) at \(point), which copies tables, did not finish: \
                    finish it with tributary snapshot --source \(source.name), or take a new one with --restart
                    """)
            }
            let manifest = SnapshotManifest(source: source.name, slot: source.slot, consistentPoint: point, snapshotName: "",
                                            startedAt: Date(), finishedAt: Date(), tables: [])
            try await store.put(key: manifestKey, bytes: ManifestCoding.encode(manifest))
            logger.notice("finished a slot-only snapshot that was killed before its manifest", metadata: [LogKey.lsn: .string(point.description)])
            return Outcome(manifest: manifest)
        }
        // The slot's snapshot is the newest complete one at or before where it stands.
        let newest = keys.filter { $0.hasSuffix("/" + ObjectNaming.manifestName) }
            .compactMap { ObjectNaming.lsnComponent(of: $0, after: prefix) }.filter { $0 <= point }.max()
        guard let newest else {
            throw TributaryError(.state, """
                replication slot "\(source.slot)" exists on \(source.name) but the staging store holds no snapshot of it: \
                take a new one with tributary snapshot --source \(source.name) --restart
                """)
        }
        return Outcome(manifest: try await store.manifest(SnapshotManifest.self, at: ObjectNaming.snapshotManifest(source: source.name, consistentPoint: newest)),
                       alreadyComplete: true)
    }

    /// Creates the slot with an exported snapshot and copies every table under it. A table whose
    /// parts are all stored is marked done (`table.json`) at once, so a kill loses only the tables
    /// in flight: the slot stays, and a rerun resumes.
    /// - Parameter copying: false for a slot-only snapshot: every table is in the publication, none is copied.
    private func takeFull(tables published: [SourceTable], copying: Bool, jobs: Int, observer: (any SnapshotObserver)?,
                          onStart: @Sendable (TransferProgress) async -> Void) async throws -> SnapshotManifest {
        let tables = copying ? published : []
        let startedAt = Date()
        var log = logger.with(LogKey.slot, source.slot)
        // The exported snapshot lives as long as this connection stays open and idle.
        let (consistentPoint, snapshotName, parts) = try await endpoint.withConnection(.replication, for: "snapshot") { replication in
            let (consistentPoint, snapshotName) = try await Self.createSlot(source.slot, temporary: false, on: replication, source: source)
            let log = log.with(LogKey.lsn, consistentPoint.description)
            log.info("created replication slot with exported snapshot", metadata: [LogKey.snapshot: .string(snapshotName)])
            try await store.put(key: ObjectNaming.snapshotStarted(source: source.name, consistentPoint: consistentPoint),
                                bytes: ManifestCoding.encode(SnapshotStart(source: source.name, slot: source.slot, consistentPoint: consistentPoint,
                                                                           startedAt: startedAt, tables: tables.map(\.name.description),
                                                                           relations: tables.map(\.relation))))
            let recorder = TableCompletionRecorder(store: store, inner: observer)
            await recorder.snapshotStarted(SnapshotManifest(
                source: source.name, slot: source.slot, consistentPoint: consistentPoint, snapshotName: snapshotName,
                startedAt: startedAt, finishedAt: startedAt,
                tables: tables.map { SnapshotTable(relation: $0.relation, stagingTable: $0.configuration.stagingTable, rows: 0, parts: []) }))
            let parts = try await copyAll(tables: tables, consistentPoint: consistentPoint, snapshotName: snapshotName, scope: .full,
                                          jobs: jobs, observer: recorder, logger: log, onStart: onStart)
            return (consistentPoint, snapshotName, parts)
        }
        log = log.with(LogKey.lsn, consistentPoint.description)
        let manifest = SnapshotManifest(source: source.name, slot: source.slot, consistentPoint: consistentPoint, snapshotName: snapshotName,
                                        startedAt: startedAt, finishedAt: Date(), tables: Self.tables(tables, parts: parts))
        // Last: the snapshot exists only once its manifest does.
        try await store.put(key: ObjectNaming.snapshotManifest(source: source.name, consistentPoint: consistentPoint),
                            bytes: ManifestCoding.encode(manifest))
        log.info("snapshot written", metadata: [
            LogKey.rows: .stringConvertible(manifest.tables.reduce(0) { $0 + $1.rows }), LogKey.tables: .stringConvertible(manifest.tables.count),
        ])
        return manifest
    }

    /// `CREATE_REPLICATION_SLOT … (SNAPSHOT 'export')`: the slot's consistent point and the
    /// snapshot's name. A temporary slot goes with the connection.
    static func createSlot(_ name: String, temporary: Bool, on replication: PostgresConnection,
                           source: SourceConfiguration) async throws -> (LSN, String) {
        let created = try await replication.simpleQuery(
            "CREATE_REPLICATION_SLOT \(SQL.identifier(name))\(temporary ? " TEMPORARY" : "") LOGICAL pgoutput (SNAPSHOT 'export')")
        guard let row = created.first, let consistentPoint = try row.decodeIfPresent("consistent_point", as: LSN.self),
              let snapshotName = try row.decodeIfPresent("snapshot_name", as: String.self) else {
            throw TributaryError(.corrupt, "\(source.name): CREATE_REPLICATION_SLOT returned no consistent point or snapshot")
        }
        return (consistentPoint, snapshotName)
    }

    /// The manifest's tables: each with its stored parts in key order.
    static func tables(_ tables: [SourceTable], parts: [LocalPart]) -> [SnapshotTable] {
        tables.enumerated().map { index, table in
            let files = parts.filter { $0.tableIndex == index }.map(\.file).sorted { $0.key < $1.key }
            return SnapshotTable(relation: table.relation, stagingTable: table.configuration.stagingTable,
                                 rows: files.reduce(0) { $0 + $1.rows }, parts: files)
        }
    }

    private func prepareSlot(on connection: PostgresConnection, restart: Bool) async throws {
        guard restart, let existing = try await ReplicationSlot.find(source.slot, on: connection) else { return }
        if let pid = existing.activePID {
            throw TributaryError(.slotInUse, "replication slot \"\(source.slot)\" on \(source.name) is in use by process \(pid): stop its replicator first")
        }
        try await ReplicationSlot.drop(source.slot, on: connection)
        logger.notice("dropped replication slot for --restart", metadata: [LogKey.slot: .string(source.slot)])
    }

    /// Copies `tables` under the exported snapshot `snapshotName`: the work `items` (a resume's),
    /// or every table whole, split as `SnapshotPlanner.plan` says.
    func copyAll(tables: [SourceTable], items planned: [SnapshotWorkItem]? = nil, consistentPoint: LSN, snapshotName: String,
                 scope: SnapshotScope, jobs: Int, observer: (any SnapshotObserver)?, logger: Logger,
                 onStart: @Sendable (TransferProgress) async -> Void) async throws -> [LocalPart] {
        let items = planned ?? SnapshotPlanner.plan(
            tables.map { .init(pages: $0.pages, splittable: !$0.isPartitioned) }, rangeBytes: settings.rangeBytes)
        let progress = TransferProgress(title: scope == .full ? "snapshot \(source.name)" : "table snapshot \(source.name)", tables: tables.enumerated().map { index, table in
            (table.name.description, table.estimatedRows, table.estimatedBytes, items.filter { $0.tableIndex == index }.count)
        })
        await onStart(progress)
        let directory = "\(workDirectory)/snapshot-\(source.name)-\(scope.rawValue)-\(consistentPoint.paddedHex)"
        try LocalFiles.makeDirectory(directory)
        defer { try? FileManager.default.removeItem(atPath: directory) }

        let queue = WorkQueue(items)
        let workerCount = max(1, min(jobs, items.count))
        logger.info("copying", metadata: [LogKey.tables: .stringConvertible(tables.count), LogKey.ranges: .stringConvertible(items.count),
                                          LogKey.jobs: .stringConvertible(workerCount)])
        return try await withThrowingTaskGroup(of: [LocalPart].self) { group in
            for _ in 0..<workerCount {
                group.addTask {
                    try await copyWorker(queue: queue, tables: tables, consistentPoint: consistentPoint, snapshotName: snapshotName,
                                         scope: scope, directory: directory, progress: progress, observer: observer)
                }
            }
            var all: [LocalPart] = []
            for try await parts in group { all += parts }
            return all
        }
    }

    private func copyWorker(queue: WorkQueue<SnapshotWorkItem>, tables: [SourceTable], consistentPoint: LSN,
                            snapshotName: String, scope: SnapshotScope, directory: String, progress: TransferProgress,
                            observer: (any SnapshotObserver)?) async throws -> [LocalPart] {
        try await endpoint.withConnection(for: "snapshot") { connection in
            try await copyWorker(queue: queue, tables: tables, consistentPoint: consistentPoint, snapshotName: snapshotName, scope: scope,
                                 directory: directory, progress: progress, observer: observer, on: connection)
        }
    }

    private func copyWorker(queue: WorkQueue<SnapshotWorkItem>, tables: [SourceTable], consistentPoint: LSN,
                            snapshotName: String, scope: SnapshotScope, directory: String, progress: TransferProgress,
                            observer: (any SnapshotObserver)?, on connection: PostgresConnection) async throws -> [LocalPart] {
        try await connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        try await connection.execute("SET TRANSACTION SNAPSHOT \(SQL.literal(snapshotName))")
        // Recorded with each range, for a resume to tell the rows written since.
        let snapshotXmin = UInt64(try await connection.query("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint").scalar(Int64.self))
        let uploader = PartUploader()
        let upload = Task { try await uploader.run(store: store, observer: observer, progress: progress) }
        do {
            while let item = await queue.take() {
                if let stop, stop.isRequested { throw Self.interrupted(source.name) }
                let table = tables[item.tableIndex]
                let counter = progress.tables[item.tableIndex]
                let parts = try await connection.run { [source, settings, stop] connection -> [StagedFile] in
                    var parts: [StagedFile] = []
                    try Self.copy(item: item, table: table, source: source.name, consistentPoint: consistentPoint, scope: scope,
                                  settings: settings, directory: directory, counter: counter, stop: stop, on: connection) { part in
                        try uploader.submit(part)
                        parts.append(part.file)
                    }
                    return parts
                }
                uploader.itemDone(tableIndex: item.tableIndex, item: CopiedItem(work: item, parts: parts, snapshotXmin: snapshotXmin))
            }
        } catch {
            uploader.finish()
            _ = try? await upload.value
            throw error
        }
        uploader.finish()
        let stored = try await upload.value
        try await connection.execute("COMMIT")
        return stored
    }

    /// One work item: COPY → gzip → part files, rotated at row boundaries once a part reaches its
    /// size limit; each finished part goes to `onPart` at once. Runs on the connection's thread, so
    /// the per-row loop never hops.
    static func copy(item: SnapshotWorkItem, table: SourceTable, source: String, consistentPoint: LSN, scope: SnapshotScope = .full,
                     settings: SnapshotSettings, directory: String, counter: TransferProgress.Table, stop: StopSignal? = nil,
                     on connection: isolated PostgresConnection, onPart: (LocalPart) throws -> Void) throws {
        var partCount = 0
        var header: [UInt8]?
        var writer: GzipFileWriter?
        var rowsInPart = 0

        func startPart() throws {
            let key = ObjectNaming.snapshotPart(source: source, consistentPoint: consistentPoint, table: table.name,
                                                range: item.rangeIndex, part: partCount, scope: scope)
            let path = directory + "/" + key.replacingOccurrences(of: "/", with: "~")
            writer = try GzipFileWriter(path: path, level: settings.compressionLevel)
            try writer!.write(header!)
            rowsInPart = 0
        }
        func finishPart() throws {
            let summary = try writer!.finish()
            let key = ObjectNaming.snapshotPart(source: source, consistentPoint: consistentPoint, table: table.name,
                                                range: item.rangeIndex, part: partCount, scope: scope)
            partCount += 1
            try onPart(LocalPart(path: writer!.path, file: StagedFile(
                key: key, rows: rowsInPart, bytes: summary.bytes, uncompressedBytes: summary.uncompressedBytes,
                sha256: summary.sha256), tableIndex: item.tableIndex))
        }

        let sql = SnapshotSQL.copyOut(table: table.name, columns: table.relation.columnNames, item: item, partitioned: table.isPartitioned)
        // Blocks small beside a part keep parts close to their limit; 256 KiB is enough to amortize
        // the per-call cost of gzip and the hash.
        let blockBytes = max(4096, min(256 * 1024, settings.partBytesMax / 8))
        try connection.copyOut(sql, blockBytes: blockBytes) { rows, count in
            if let stop, stop.isRequested { throw Self.interrupted(source) }
            guard header != nil else {
                // COPY sends the header row first (alone), even for an empty table; every part repeats it.
                header = Array(rows)
                try startPart()
                return
            }
            // Parts are rotated between blocks of whole rows, before a block would cross the limit.
            if rowsInPart > 0, writer!.uncompressedBytes + rows.count > settings.partBytesMax {
                try finishPart()
                try startPart()
            }
            try writer!.write(rows)
            rowsInPart += count
            counter.add(rows: count, bytes: rows.count)
        }
        guard header != nil else { throw TributaryError(.corrupt, "\(source): COPY of \(table.name) sent no header row") }
        try finishPart()
    }

    /// What a copy stopped by `stop` throws.
    static func interrupted(_ source: String) -> TributaryError {
        TributaryError(.interrupted, """
            the snapshot of \(source) was stopped before it was complete: the parts it stored (and loaded) are kept; \
            run the same tributary snapshot command again to resume it
            """, context: [LogKey.source: source])
    }
}
