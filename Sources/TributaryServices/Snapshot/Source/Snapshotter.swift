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
        public init(restart: Bool = false, jobs: Int? = nil) {
            self.restart = restart
            self.jobs = jobs
        }
    }

    public let source: SourceConfiguration
    public let settings: SnapshotSettings
    public let store: any StagingStore
    public let workDirectory: String
    public let logger: Logger

    public init(source: SourceConfiguration, settings: SnapshotSettings, store: any StagingStore, workDirectory: String, logger: Logger) {
        self.source = source
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

    /// - Parameter observer: told of each part once it is durable in the store (see `SnapshotObserver`).
    public func run(options: Options, observer: (any SnapshotObserver)? = nil,
                    onStart: @Sendable (TransferProgress) async -> Void = { _ in }) async throws -> SnapshotManifest {
        let startedAt = Date()
        let control = try await PostgresConnection.connect(source.connection, name: source.name, applicationName: "tributary snapshot")
        // Everything that can be wrong is checked before anything is created.
        try await SourceChecks.requireLogicalDecoding(on: control, source: source)
        let tables = try await SourceCatalog.describe(source.tables, source: source, on: control)
        try await prepareSlot(on: control, restart: options.restart)
        try await preparePublication(on: control, tables: tables, restart: options.restart)

        let replication = try await PostgresConnection.connect(
            source.connection, name: source.name, mode: .replication, applicationName: "tributary snapshot")
        // The exported snapshot lives as long as this connection stays open and idle.
        let created = try await replication.simpleQuery(
            "CREATE_REPLICATION_SLOT \(SQL.identifier(source.slot)) LOGICAL pgoutput (SNAPSHOT 'export')")
        guard let row = created.first, let consistentPoint = try row.decodeIfPresent("consistent_point", as: LSN.self),
              let snapshotName = try row.decodeIfPresent("snapshot_name", as: String.self) else {
            throw OperatorError("\(source.name): CREATE_REPLICATION_SLOT returned no consistent point or snapshot")
        }
        var log = logger
        log[metadataKey: LogKey.slot] = .string(source.slot)
        log[metadataKey: LogKey.lsn] = .string(consistentPoint.description)
        log.info("created replication slot with exported snapshot", metadata: ["snapshot": .string(snapshotName)])

        do {
            await observer?.snapshotStarted(SnapshotManifest(
                source: source.name, slot: source.slot, consistentPoint: consistentPoint, snapshotName: snapshotName,
                startedAt: startedAt, finishedAt: startedAt,
                tables: tables.map { SnapshotTable(relation: $0.relation, stagingTable: $0.configuration.stagingTable, rows: 0, parts: []) }))
            let parts = try await copyAll(tables: tables, consistentPoint: consistentPoint, snapshotName: snapshotName,
                                          jobs: options.jobs ?? settings.jobs, observer: observer, logger: log, onStart: onStart)
            await replication.close()
            let manifest = SnapshotManifest(
                source: source.name, slot: source.slot, consistentPoint: consistentPoint, snapshotName: snapshotName,
                startedAt: startedAt, finishedAt: Date(),
                tables: tables.enumerated().map { index, table in
                    let files = parts.filter { $0.tableIndex == index }.map(\.file).sorted { $0.key < $1.key }
                    return SnapshotTable(relation: table.relation, stagingTable: table.configuration.stagingTable,
                                         rows: files.reduce(0) { $0 + $1.rows }, parts: files)
                })
            // Last: the snapshot exists only once its manifest does.
            try await store.put(key: ObjectNaming.snapshotManifest(source: source.name, consistentPoint: consistentPoint),
                                bytes: ManifestCoding.encode(manifest))
            log.info("snapshot written", metadata: [
                LogKey.rows: .stringConvertible(manifest.tables.reduce(0) { $0 + $1.rows }),
                "tables": .stringConvertible(manifest.tables.count),
            ])
            await control.close()
            return manifest
        } catch {
            // An incomplete snapshot is worthless; drop its slot so a rerun starts cleanly and the
            // source does not retain WAL for it.
            await replication.close()
            try? await ReplicationSlot.drop(source.slot, on: control)
            await control.close()
            throw error
        }
    }

    private func prepareSlot(on connection: PostgresConnection, restart: Bool) async throws {
        guard let existing = try await ReplicationSlot.find(source.slot, on: connection) else { return }
        guard restart else {
            throw OperatorError("""
                replication slot "\(source.slot)" already exists on \(source.name): a snapshot was taken before. \
                Run tributary snapshot --source \(source.name) --restart to drop it and take a new one
                """)
        }
        if let pid = existing.activePID {
            throw OperatorError("replication slot \"\(source.slot)\" on \(source.name) is in use by process \(pid): stop its replicator first")
        }
        try await ReplicationSlot.drop(source.slot, on: connection)
        logger.notice("dropped replication slot for --restart", metadata: [LogKey.slot: .string(source.slot)])
    }

    /// The publication must exist before the slot: pgoutput reads it as of each change's position.
    private func preparePublication(on connection: PostgresConnection, tables: [SourceTable], restart: Bool) async throws {
        let exists = try await !connection.query("SELECT 1 FROM pg_publication WHERE pubname = $1", [source.publication]).isEmpty
        let tableList = tables.map(\.name.sql).joined(separator: ", ")
        if exists && restart && source.createPublication {
            try await connection.execute("DROP PUBLICATION \(SQL.identifier(source.publication))")
        } else if exists {
            let published = try await connection.query(
                "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1", [source.publication])
            let names = Set(try published.rows.map { QualifiedName(schema: try $0.decode("schemaname"), name: try $0.decode("tablename")) })
            let missing = tables.map(\.name).filter { !names.contains($0) }
            guard !missing.isEmpty else { return }
            guard source.createPublication else {
                throw OperatorError("""
                    publication \(source.publication) on \(source.name) does not include \(missing.map(\.description).joined(separator: ", ")): \
                    ALTER PUBLICATION \(SQL.identifier(source.publication)) ADD TABLE …, or set create_publication: true in \(source.file)
                    """)
            }
            try await connection.execute(
                "ALTER PUBLICATION \(SQL.identifier(source.publication)) ADD TABLE \(missing.map(\.sql).joined(separator: ", "))")
            logger.notice("added tables to publication", metadata: ["publication": .string(source.publication)])
            return
        } else if !source.createPublication {
            throw OperatorError("""
                publication \(source.publication) does not exist on \(source.name): create it \
                (CREATE PUBLICATION \(SQL.identifier(source.publication)) FOR TABLE …) or set create_publication: true in \(source.file)
                """)
        }
        try await connection.execute("""
            CREATE PUBLICATION \(SQL.identifier(source.publication)) FOR TABLE \(tableList) WITH (publish_via_partition_root = true)
            """)
        logger.notice("created publication", metadata: ["publication": .string(source.publication)])
    }

    private func copyAll(tables: [SourceTable], consistentPoint: LSN, snapshotName: String, jobs: Int,
                         observer: (any SnapshotObserver)?, logger: Logger, onStart: @Sendable (TransferProgress) async -> Void) async throws -> [LocalPart] {
        let items = SnapshotPlanner.plan(
            tables.map { .init(pages: $0.pages, splittable: !$0.isPartitioned) }, rangeBytes: settings.rangeBytes)
        let progress = TransferProgress(title: "snapshot \(source.name)", tables: tables.enumerated().map { index, table in
            (table.name.description, table.estimatedRows, table.estimatedBytes, items.filter { $0.tableIndex == index }.count)
        })
        await onStart(progress)
        let directory = "\(workDirectory)/snapshot-\(source.name)-\(consistentPoint.paddedHex)"
        try LocalFiles.makeDirectory(directory)
        defer { try? FileManager.default.removeItem(atPath: directory) }

        let queue = WorkQueue(items)
        let workerCount = max(1, min(jobs, items.count))
        logger.info("copying", metadata: ["tables": .stringConvertible(tables.count), "ranges": .stringConvertible(items.count),
                                          "jobs": .stringConvertible(workerCount)])
        return try await withThrowingTaskGroup(of: [LocalPart].self) { group in
            for _ in 0..<workerCount {
                group.addTask {
                    try await copyWorker(queue: queue, tables: tables, consistentPoint: consistentPoint, snapshotName: snapshotName,
                                         directory: directory, progress: progress, observer: observer)
                }
            }
            var all: [LocalPart] = []
            for try await parts in group { all += parts }
            return all
        }
    }

    private func copyWorker(queue: WorkQueue<SnapshotWorkItem>, tables: [SourceTable], consistentPoint: LSN,
                            snapshotName: String, directory: String, progress: TransferProgress,
                            observer: (any SnapshotObserver)?) async throws -> [LocalPart] {
        let connection = try await PostgresConnection.connect(source.connection, name: source.name, applicationName: "tributary snapshot")
        try await connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        try await connection.execute("SET TRANSACTION SNAPSHOT \(SQL.literal(snapshotName))")
        let uploader = PartUploader()
        let upload = Task { try await uploader.run(store: store, observer: observer, progress: progress) }
        do {
            while let item = await queue.take() {
                let table = tables[item.tableIndex]
                let counter = progress.tables[item.tableIndex]
                try await connection.run { [source, settings] connection in
                    try Self.copy(item: item, table: table, source: source.name, consistentPoint: consistentPoint,
                                  settings: settings, directory: directory, counter: counter, on: connection, onPart: uploader.submit)
                }
                uploader.itemDone(tableIndex: item.tableIndex)
            }
        } catch {
            uploader.finish()
            _ = try? await upload.value
            throw error
        }
        uploader.finish()
        let stored = try await upload.value
        try await connection.execute("COMMIT")
        await connection.close()
        return stored
    }

    /// One work item: COPY → gzip → part files, rotated at row boundaries once a part reaches its
    /// size limit; each finished part goes to `onPart` at once. Runs on the connection's thread, so
    /// the per-row loop never hops.
    static func copy(item: SnapshotWorkItem, table: SourceTable, source: String, consistentPoint: LSN,
                     settings: SnapshotSettings, directory: String, counter: TransferProgress.Table,
                     on connection: isolated PostgresConnection, onPart: (LocalPart) throws -> Void) throws {
        var partCount = 0
        var header: [UInt8]?
        var writer: GzipFileWriter?
        var rowsInPart = 0

        func startPart() throws {
            let key = ObjectNaming.snapshotPart(source: source, consistentPoint: consistentPoint, table: table.name,
                                                range: item.rangeIndex, part: partCount)
            let path = directory + "/" + key.replacingOccurrences(of: "/", with: "~")
            writer = try GzipFileWriter(path: path, level: settings.compressionLevel)
            try writer!.write(header!)
            rowsInPart = 0
        }
        func finishPart() throws {
            let summary = try writer!.finish()
            let key = ObjectNaming.snapshotPart(source: source, consistentPoint: consistentPoint, table: table.name,
                                                range: item.rangeIndex, part: partCount)
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
        guard header != nil else { throw OperatorError("\(source): COPY of \(table.name) sent no header row") }
        try finishPart()
    }
}
