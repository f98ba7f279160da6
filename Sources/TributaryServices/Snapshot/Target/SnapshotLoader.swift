import Foundation
import Logging
import TributaryCore
import TributaryPostgres
import TributaryStorage

/// Loads complete snapshots from the staging store into STG (the target side of DESIGN.md §1).
///
/// Each part is copied into a load table in its own transaction (or a worker's frozen run),
/// recorded in the control state in that same transaction (`LoadWorker`); when every part of a
/// table is in, its key is built and one short transaction swaps the load table in as
/// `stg.<table>` (`TablePromotion`). A kill at any moment leaves either a recorded part or
/// nothing, never a half-loaded table that looks complete, and the next run carries on from what
/// is recorded.
public struct SnapshotLoader: Sendable {
    public struct Report: Sendable {
        public var source: String
        public var consistentPoint: LSN
        public var tables: Int
        public var rows: Int
        public var partsLoaded: Int
        public var partsAlreadyLoaded: Int
        /// Consistent points of the table snapshots merged.
        public var tableSnapshots: [LSN] = []

        /// This report and a table snapshot's after it.
        func adding(_ other: Report) -> Report {
            var sum = self
            sum.tables += other.tables
            sum.rows += other.rows
            sum.partsLoaded += other.partsLoaded
            sum.partsAlreadyLoaded += other.partsAlreadyLoaded
            sum.tableSnapshots += other.tableSnapshots
            return sum
        }
    }

    public let target: TargetEndpoint
    public let store: any StagingStore
    public let jobs: Int
    public let settings: SnapshotSettings
    public let logger: Logger
    /// The sources whose tables it loads: a table that waited for its copy merges the files the
    /// stream brought meanwhile, following their shape as its source's configuration says.
    public let sources: [SourceConfiguration]
    /// When requested, load workers end after the part in hand, committing what they loaded, and
    /// the load throws `interrupted` before promoting anything.
    public var stop: StopSignal?

    public init(target: TargetEndpoint, store: any StagingStore, jobs: Int, settings: SnapshotSettings = .init(),
                sources: [SourceConfiguration], logger: Logger) {
        self.target = target
        self.store = store
        self.jobs = jobs
        self.settings = settings
        self.sources = sources
        self.logger = logger
    }

    /// The table a snapshot's table is loaded into before it reaches STG (see `TablePromotion`).
    public static func loadTable(source: String, lsn: LSN, stagingTable: String) -> QualifiedName {
        TablePromotion.loadTable(source: source, lsn: lsn, stagingTable: stagingTable)
    }

    var worker: LoadWorker { LoadWorker(target: target, store: store, frozenRunBytes: settings.freezeBytesMax, logger: logger) }
    var promotion: TablePromotion {
        TablePromotion(target: target, maintenanceWorkMem: settings.maintenanceWorkMem, logger: logger, store: store, sources: sources)
    }

    /// The newest complete snapshot of `source` in the store, unless it is applied already.
    public func pendingSnapshot(source: String, control: ControlStore) async throws -> SnapshotManifest? {
        let prefix = ObjectNaming.snapshotPrefix(source: source)
        let manifests = try await store.list(prefix: prefix, startAfter: nil)
            .filter { $0.key.hasSuffix("/" + ObjectNaming.manifestName) }
            .compactMap { ObjectNaming.lsnComponent(of: $0.key, after: prefix) }
        guard let newest = manifests.max(), try await !control.isSnapshotApplied(source, atOrAfter: newest) else { return nil }
        return try await store.manifest(SnapshotManifest.self, at: ObjectNaming.snapshotManifest(source: source, consistentPoint: newest))
    }

    /// `source`'s table snapshots not yet in STG, in LSN order: those taken after its applied full
    /// snapshot (an older one is void: the full snapshot replaced what it would merge into).
    public func pendingTableSnapshots(source: String, control: ControlStore) async throws -> [SnapshotManifest] {
        var pending: [SnapshotManifest] = []
        for lsn in try await Self.pendingTableSnapshotPoints(source: source, store: store, control: control) {
            pending.append(try await store.manifest(SnapshotManifest.self, at: ObjectNaming.tableSnapshotManifest(source: source, consistentPoint: lsn)))
        }
        return pending
    }

    /// The consistent points of those, from the listing alone.
    public static func pendingTableSnapshotPoints(source: String, store: any StagingStore, control: ControlStore) async throws -> [LSN] {
        guard let full = try await control.appliedSnapshot(of: source) else { return [] }
        let prefix = ObjectNaming.tableSnapshotPrefix(source: source)
        let applied = try await control.appliedTableSnapshots(source)
        return try await store.list(prefix: prefix, startAfter: nil).filter { $0.key.hasSuffix("/" + ObjectNaming.manifestName) }
            .compactMap { ObjectNaming.lsnComponent(of: $0.key, after: prefix) }.filter { $0 > full && !applied.contains($0) }.sorted()
    }

    /// Loads `source`'s pending snapshot, if any, then its pending table snapshots. Returns nil when
    /// there was nothing to do.
    /// Another process loading the source's snapshots is waited for (`snapshot --group … --apply`
    /// in several processes), unless `waiting` is false (the applier, which goes on with the
    /// stream): then nothing is loaded and the result is nil.
    public func load(source: String, waiting: Bool = true, onStart: @Sendable (TransferProgress) async -> Void = { _ in }) async throws -> Report? {
        try await target.withControl(migrate: true, .apply, for: "load \(source)") { control in
            // Two loads of one manifest would each fill and promote its load tables.
            let lock = AdvisoryLock(name: "tributary-load:\(source)")
            guard waiting else {
                return try await lock.ifFree(on: control.connection) { try await load(source: source, control: control, onStart: onStart) } ?? nil
            }
            return try await lock.around(on: control.connection, waitingFor: "another process loading snapshots of \(source)",
                                         logger: logger.with(source: source)) {
                try await load(source: source, control: control, onStart: onStart)
            }
        }
    }

    private func load(source: String, control: ControlStore, onStart: @Sendable (TransferProgress) async -> Void) async throws -> Report? {
        var report: Report?
        if let manifest = try await pendingSnapshot(source: source, control: control) {
            report = try await load(manifest, control: control, onStart: onStart)
        }
        for manifest in try await pendingTableSnapshots(source: source, control: control) {
            let loaded = try await load(manifest, control: control, onStart: onStart)
            report = report.map { $0.adding(loaded) } ?? loaded
        }
        return report
    }

    /// Loads one snapshot: a full one replaces its tables in STG and sets where the stream resumes;
    /// a table snapshot is merged into STG by LSN.
    func load(_ manifest: SnapshotManifest, control: ControlStore, onStart: @Sendable (TransferProgress) async -> Void) async throws -> Report {
        let source = manifest.source
        try await control.connection.run { [manifest] in
            try StagingTypeCheck.validate(manifest.tables.map(\.relation), manifest: "the snapshot of \(source) at \(manifest.consistentPoint)", on: $0)
        }
        var log = logger.with(source: source)
        log[metadataKey: LogKey.lsn] = .string(manifest.consistentPoint.description)
        let (loadTables, finished) = try await begin(manifest, control: control)
        let loaded = try await control.loadedParts(source, snapshot: manifest.consistentPoint)
        let (queue, progress, partsToLoad) = await schedule(manifest, finished: finished, loaded: loaded)
        await onStart(progress)
        log.info("loading snapshot", metadata: [LogKey.parts: .stringConvertible(partsToLoad), LogKey.alreadyLoaded: .stringConvertible(loaded.count)])
        try await runWorkers(queue: queue, manifest: manifest, loadTables: loadTables, progress: progress)
        if let stop, stop.isRequested { throw Snapshotter.interrupted(source) }
        try await promotion.promoteAll(manifest, loadTables: loadTables, except: finished, jobs: jobs, logger: log)
        // Every table of the manifest is in STG now: what is left under its prefix is a killed run's.
        let leftovers = try await control.connection.run { [manifest] in
            try TablePromotion.dropLoadTables(source: manifest.source, lsn: manifest.consistentPoint, on: $0)
        }
        if leftovers > 0 { log.notice("dropped load tables a killed snapshot left", metadata: [LogKey.tables: .stringConvertible(leftovers)]) }
        try await control.connection.run { [manifest] connection in
            try connection.transaction { connection in
                if manifest.isFull {
                    try ControlStore.markApplied(manifest, on: connection)
                } else {
                    try ControlStore.markTableSnapshotApplied(manifest, on: connection)
                }
                try ControlStore.announceStagingChange(of: manifest.source, on: connection)
            }
        }
        if manifest.isFull { try await promotion.dropAbandoned(source: source, applied: manifest.consistentPoint, control: control, logger: log) }
        let rows = manifest.tables.reduce(0) { $0 + $1.rows }
        log.info(manifest.isFull ? "snapshot applied to STG" : "table snapshot applied to STG",
                 metadata: [LogKey.rows: .stringConvertible(rows), LogKey.tables: .stringConvertible(manifest.tables.count)])
        return Report(source: source, consistentPoint: manifest.consistentPoint, tables: manifest.tables.count, rows: rows,
                      partsLoaded: partsToLoad, partsAlreadyLoaded: loaded.count,
                      tableSnapshots: manifest.isFull ? [] : [manifest.consistentPoint])
    }

    /// Each table's parts in order, but for those already loaded; the schedule spreads workers over
    /// tables and builds each key as soon as its table is in, overlapping the loads of other tables.
    private func schedule(_ manifest: SnapshotManifest, finished: Set<String>, loaded: Set<String>) async
        -> (PartLoadQueue, TransferProgress, Int) {
        let queue = PartLoadQueue(tables: manifest.tables.count, frozenRunBytes: settings.freezeBytesMax, stop: stop)
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
        let progress = TransferProgress(title: "load \(manifest.source)", tables: manifest.tables.enumerated().map { index, table in
            (table.stagingTable, table.rows, table.parts.reduce(0) { $0 + $1.uncompressedBytes }, partsPerTable[index])
        })
        return (queue, progress, partsPerTable.reduce(0, +))
    }

    private func runWorkers(queue: PartLoadQueue, manifest: SnapshotManifest, loadTables: [QualifiedName],
                            progress: TransferProgress) async throws {
        let worker = worker, promotion = promotion
        try await withThrowingTaskGroup(of: Void.self) { group in
            for number in 0..<max(1, jobs) {
                group.addTask {
                    try await worker.work(number, queue: queue, snapshot: manifest, loadTables: loadTables, promotion: promotion,
                                          progress: progress)
                }
            }
            try await group.waitForAll()
        }
    }

    /// Records the snapshot as loading and creates the load tables of the tables not yet promoted.
    /// Safe to repeat; the eager load calls it before the manifest exists (parts may be empty then).
    /// Returns every table's load table, and the STG names of the tables already promoted.
    func begin(_ manifest: SnapshotManifest, control: ControlStore) async throws -> (loadTables: [QualifiedName], finished: Set<String>) {
        let finished = try await control.beginLoading(manifest)
        let loadTables = manifest.tables.map { TablePromotion.loadTable(source: manifest.source, lsn: manifest.consistentPoint, stagingTable: $0.stagingTable) }
        for (index, table) in manifest.tables.enumerated() where !finished.contains(table.stagingTable) {
            try await control.connection.execute(SnapshotSQL.createLoadTable(loadTables[index], relation: table.relation))
        }
        return (loadTables, finished)
    }
}

