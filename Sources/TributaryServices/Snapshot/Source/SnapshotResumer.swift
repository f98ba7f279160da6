import Foundation
import Logging
import TributaryCore
import TributaryPostgres
import TributaryStorage

/// Takes up a full snapshot that was killed (or failed) while copying, keeping what it stored:
/// - a table whose parts were all stored (`table.json`) is kept as it is;
/// - of a table that is as it was at the slot's consistent point (`SnapshotStart.relations`),
///   every range whose parts were all stored (`range-<n>.json`) is kept, and the rest of the
///   table is copied into the same snapshot under a new one, later than that point
///   (`SnapshotPlanner.resume`). The stream from the slot starts at the point and the table was
///   in the publication before it, so every change after it reaches STG, and each row copied
///   later is a state the stream passes through: the table converges
///   (`SnapshotTable.keysMayRepeat` for the rows both copies hold, or that a killed
///   `snapshot --apply` loaded already);
/// - every other table (new to the configuration, or its columns changed since) is copied again
///   by a table snapshot of its own, under a temporary slot (DESIGN.md §1, per-table snapshot).
/// The slot is kept, and the manifest written last, as for a snapshot taken in one go.
struct SnapshotResumer: Sendable {
    let snapshotter: Snapshotter

    var source: SourceConfiguration { snapshotter.source }
    var store: any StagingStore { snapshotter.store }
    var logger: Logger { snapshotter.logger }

    /// What the killed runs stored of one table.
    struct Leftover {
        /// Every part stored: the table as it is.
        var whole: SnapshotTable?
        /// Ranges stored whole.
        var ranges: [SnapshotRangeDone] = []
        /// The table is as it was at the consistent point: the rest of it joins the snapshot.
        var continues = false
        /// Past every range number the killed runs used.
        var nextRange = 0
    }

    func resume(slot: ReplicationSlot, tables: [SourceTable], control: PostgresConnection, jobs: Int,
                observer: (any SnapshotObserver)?, onStart: @Sendable (TransferProgress) async -> Void) async throws -> Snapshotter.Outcome {
        if let pid = slot.activePID {
            throw TributaryError(.slotInUse, "replication slot \"\(source.slot)\" on \(source.name) is in use by process \(pid): a snapshot or replicator is running for it")
        }
        let manifests = try await store.list(prefix: ObjectNaming.snapshotPrefix(source: source.name), startAfter: nil)
            .filter { $0.key.hasSuffix("/" + ObjectNaming.manifestName) }.map(\.key)
        // A never consumed slot's confirmed position is its consistent point: a manifest there is a
        // snapshot complete and not yet streamed from (killed while loading, say): it stands as it is.
        if let point = slot.confirmedFlushLSN, manifests.contains(ObjectNaming.snapshotManifest(source: source.name, consistentPoint: point)) {
            logger.notice("the snapshot is complete already", metadata: [LogKey.lsn: .string(point.description)])
            return .init(manifest: try await store.manifest(SnapshotManifest.self,
                                                            at: ObjectNaming.snapshotManifest(source: source.name, consistentPoint: point)),
                         alreadyComplete: true)
        }
        guard manifests.isEmpty, let consistentPoint = slot.confirmedFlushLSN else {
            throw TributaryError(.state, """
                replication slot "\(source.slot)" already exists on \(source.name): a snapshot was taken before. \
                Run tributary snapshot --source \(source.name) --table <table> to copy one table again, \
                or --restart to drop the slot and take a new snapshot
                """)
        }
        let log = logger.with(LogKey.lsn, consistentPoint.description)
        let leftovers = try await leftovers(of: tables, at: consistentPoint)
        let inSnapshot = tables.indices.filter { leftovers[$0].whole != nil || leftovers[$0].continues }
        let keptWhole = inSnapshot.compactMap { leftovers[$0].whole }
        // A resume that was itself killed: the tables its table snapshot finished are kept too.
        let salvaged = try await TableSnapshotter(snapshotter: snapshotter)
            .salvage(tables.indices.filter { !inSnapshot.contains($0) }.map { tables[$0] }, after: consistentPoint)
        let rest = tables.indices.filter { index in !inSnapshot.contains(index) && !salvaged.contains { $0.relation.table == tables[index].name } }
        let keptRanges = inSnapshot.flatMap { leftovers[$0].ranges }
        log.notice("resuming a snapshot that did not finish", metadata: [
            LogKey.kept: .stringConvertible(keptWhole.count + salvaged.count), LogKey.ranges: .stringConvertible(keptRanges.count),
            LogKey.toCopy: .string(rest.map { tables[$0].name.description }.joined(separator: ",")),
        ])
        try await PublicationSetup(source: source, logger: logger).prepare(on: control, tables: tables, restart: false)
        var resumed = Snapshotter.Resumed(keptTables: keptWhole.count + salvaged.count,
                                          keptBytes: (keptWhole + salvaged).flatMap(\.parts).reduce(0) { $0 + $1.bytes })
        resumed.continuedTables = inSnapshot.count - keptWhole.count
        resumed.keptRanges = keptRanges.count
        resumed.keptRangeBytes = keptRanges.flatMap(\.table.parts).reduce(0) { $0 + $1.bytes }

        let (snapshotTables, copied) = try await completeSnapshot(inSnapshot.map { (tables[$0], leftovers[$0]) }, at: consistentPoint,
                                                                  jobs: jobs, observer: observer, logger: log, onStart: onStart)
        resumed.rangesCopiedAgainBytes = copied.reduce(0) { $0 + $1.file.bytes }
        if !rest.isEmpty {
            resumed.tableSnapshot = try await TableSnapshotter(snapshotter: snapshotter).copy(rest.map { tables[$0] }, jobs: jobs, onStart: onStart)
        }
        let manifest = SnapshotManifest(source: source.name, slot: source.slot, consistentPoint: consistentPoint, snapshotName: "",
                                        startedAt: Date(), finishedAt: Date(), tables: snapshotTables)
        // Last, after the table snapshot: once the applier sees this, everything it needs is there.
        try await store.put(key: ObjectNaming.snapshotManifest(source: source.name, consistentPoint: consistentPoint),
                            bytes: ManifestCoding.encode(manifest))
        log.info("snapshot written", metadata: [LogKey.tables: .stringConvertible(snapshotTables.count)])
        return .init(manifest: manifest, resumed: resumed)
    }

    /// One listing of the killed snapshot's directory, and the markers in it that still describe
    /// the table as it is now (a table whose columns changed since is copied again).
    private func leftovers(of tables: [SourceTable], at point: LSN) async throws -> [Leftover] {
        let directory = ObjectNaming.snapshotDirectory(source: source.name, consistentPoint: point)
        let keys = try await store.list(prefix: directory, startAfter: nil).map(\.key)
        func matches(_ stored: SnapshotTable, _ table: SourceTable) -> Bool {
            stored.relation == table.relation && stored.stagingTable == table.configuration.stagingTable
        }
        let startKey = ObjectNaming.snapshotStarted(source: source.name, consistentPoint: point)
        let start = keys.contains(startKey) ? try? await store.manifest(SnapshotStart.self, at: startKey) : nil
        let startRelations = start?.relations ?? []
        var found: [Leftover] = []
        for table in tables {
            let tableDirectory = directory + ObjectNaming.tableComponent(table.name) + "/"
            let own = keys.filter { $0.hasPrefix(tableDirectory) }
            var leftover = Leftover(nextRange: (own.compactMap(ObjectNaming.snapshotRangeIndex(ofKey:)).max() ?? -1) + 1)
            let doneKey = ObjectNaming.snapshotTableDone(source: source.name, consistentPoint: point, table: table.name)
            if own.contains(doneKey), let done = try? await store.manifest(SnapshotTableDone.self, at: doneKey), matches(done.table, table) {
                leftover.whole = done.table
            } else if startRelations.contains(table.relation) {
                leftover.continues = true
                for key in own where key.hasPrefix(tableDirectory + "range-") {
                    guard let range = try? await store.manifest(SnapshotRangeDone.self, at: key), matches(range.table, table) else { continue }
                    leftover.ranges.append(range)
                }
            }
            found.append(leftover)
        }
        return found
    }

    /// The full snapshot's tables: those kept whole, and those with kept ranges, whose other rows
    /// are copied now under a snapshot exported for it. The observer (the eager load of `snapshot
    /// --apply`) hears of the kept parts first, then of the new ones as they are stored.
    private func completeSnapshot(_ tables: [(table: SourceTable, leftover: Leftover)], at point: LSN, jobs: Int,
                                  observer: (any SnapshotObserver)?, logger log: Logger,
                                  onStart: @Sendable (TransferProgress) async -> Void) async throws
        -> (tables: [SnapshotTable], copied: [Snapshotter.LocalPart]) {
        guard !tables.isEmpty else { return ([], []) }
        let header = tables.map { table, leftover in
            leftover.whole ?? SnapshotTable(relation: table.relation, stagingTable: table.configuration.stagingTable, rows: 0, parts: [],
                                            keysMayRepeat: true)
        }
        let recorder = TableCompletionRecorder(store: store, inner: observer)
        await recorder.snapshotStarted(SnapshotManifest(
            source: source.name, slot: source.slot, consistentPoint: point, snapshotName: "", startedAt: Date(), finishedAt: Date(),
            tables: header.map { SnapshotTable(relation: $0.relation, stagingTable: $0.stagingTable, rows: 0, parts: [],
                                               keysMayRepeat: $0.keysMayRepeat) }))
        var items: [SnapshotWorkItem] = []
        for (index, (table, leftover)) in tables.enumerated() {
            let kept = leftover.whole?.parts ?? leftover.ranges.flatMap(\.table.parts)
            recorder.kept(tableIndex: index, parts: kept)
            for part in kept { await observer?.partStored(tableIndex: index, file: part, local: nil) }
            if leftover.whole != nil {
                await observer?.tableCopied(tableIndex: index)
                continue
            }
            if let oldest = leftover.ranges.map(\.snapshotXmin).min(), !table.isPartitioned {
                // The oldest snapshot among the kept ranges says which rows may be newer than a copy.
                items += SnapshotPlanner.resume(tableIndex: index, kept: leftover.ranges.map(\.pages), pages: table.pages,
                                                rangeBytes: snapshotter.settings.rangeBytes, firstRangeIndex: leftover.nextRange,
                                                changedSince: oldest)
            } else {
                items += SnapshotPlanner.plan([.init(pages: table.pages, splittable: !table.isPartitioned)], rangeBytes: snapshotter.settings.rangeBytes)
                    .map { SnapshotWorkItem(tableIndex: index, rangeIndex: leftover.nextRange + $0.rangeIndex, firstPage: $0.firstPage, endPage: $0.endPage) }
            }
        }
        var copied: [Snapshotter.LocalPart] = []
        if !items.isEmpty {
            // Every table's first piece before any second one, so workers start on different tables.
            var taken: [Int: Int] = [:]
            let ranked = items.map { item in
                defer { taken[item.tableIndex, default: 0] += 1 }
                return (rank: taken[item.tableIndex, default: 0], item: item)
            }
            items = ranked.sorted { ($0.rank, $0.item.tableIndex) < ($1.rank, $1.item.tableIndex) }.map(\.item)
            copied = try await snapshotter.endpoint.withConnection(for: "snapshot") { holder in
                // Any snapshot later than the slot's point will do (see above): no slot needed for it.
                try await holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                let name = try await holder.query("SELECT pg_export_snapshot()").scalar(String.self)
                log.info("copying the rest of partly stored tables", metadata: [
                    LogKey.snapshot: .string(name), LogKey.ranges: .stringConvertible(items.count)])
                let parts = try await snapshotter.copyAll(tables: tables.map(\.table), items: items, consistentPoint: point, snapshotName: name,
                                                          scope: .full, jobs: jobs, observer: recorder, logger: log, onStart: onStart)
                try await holder.execute("COMMIT")
                return parts
            }
        }
        let complete = tables.enumerated().map { index, entry in
            if let whole = entry.leftover.whole { return whole }
            let parts = (entry.leftover.ranges.flatMap(\.table.parts) + copied.filter { $0.tableIndex == index }.map(\.file))
                .sorted { $0.key < $1.key }
            return SnapshotTable(relation: entry.table.relation, stagingTable: entry.table.configuration.stagingTable,
                                 rows: parts.reduce(0) { $0 + $1.rows }, parts: parts, keysMayRepeat: true)
        }
        return (complete, copied)
    }
}
