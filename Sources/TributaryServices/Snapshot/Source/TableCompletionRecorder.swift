import Synchronization
import TributaryCore
import TributaryStorage

/// Writes `table.json` beside a snapshot's parts as soon as every part of a table is stored, and
/// `range-<n>.json` as soon as every part of a range of a split table is, so a rerun after a kill
/// keeps those and copies only the rest again. Passes every event on to the observer it wraps
/// (the eager load of `snapshot --apply`).
final class TableCompletionRecorder: SnapshotObserver {
    private let store: any StagingStore
    private let inner: (any SnapshotObserver)?
    private let state = Mutex<(header: SnapshotManifest?, parts: [Int: [StagedFile]])>((nil, [:]))

    init(store: any StagingStore, inner: (any SnapshotObserver)?) {
        self.store = store
        self.inner = inner
    }

    var partHandoff: PartHandoff? { inner?.partHandoff }

    func snapshotStarted(_ header: SnapshotManifest) async {
        state.withLock { $0.header = header }
        await inner?.snapshotStarted(header)
    }

    func partStored(tableIndex: Int, file: StagedFile, local: HandedOffPart?) async {
        state.withLock { $0.parts[tableIndex, default: []].append(file) }
        await inner?.partStored(tableIndex: tableIndex, file: file, local: local)
    }

    /// Parts stored before this run (kept by a resume): in the table's `table.json` too.
    func kept(tableIndex: Int, parts: [StagedFile]) {
        state.withLock { $0.parts[tableIndex, default: []] += parts }
    }

    func itemCopied(tableIndex: Int, item: CopiedItem) async {
        if let header = state.withLock({ $0.header }), (header.scope ?? .full) == .full, item.work.isResumableRange {
            let described = header.tables[tableIndex]
            let table = SnapshotTable(relation: described.relation, stagingTable: described.stagingTable,
                                      rows: item.parts.reduce(0) { $0 + $1.rows }, parts: item.parts)
            // Only an aid to a resume, like table.json.
            try? await store.put(key: ObjectNaming.snapshotRangeDone(source: header.source, consistentPoint: header.consistentPoint,
                                                                     table: described.relation.table, range: item.work.rangeIndex),
                                 bytes: ManifestCoding.encode(SnapshotRangeDone(
                                     table: table, pages: PageRange(first: item.work.firstPage ?? 0, end: item.work.endPage),
                                     snapshotXmin: item.snapshotXmin)))
        }
        await inner?.itemCopied(tableIndex: tableIndex, item: item)
    }

    func tableCopied(tableIndex: Int) async {
        let (header, parts) = state.withLock { ($0.header, $0.parts[tableIndex] ?? []) }
        if let header {
            let described = header.tables[tableIndex]
            let table = SnapshotTable(relation: described.relation, stagingTable: described.stagingTable,
                                      rows: parts.reduce(0) { $0 + $1.rows }, parts: parts.sorted { $0.key < $1.key },
                                      keysMayRepeat: described.keysMayRepeat)
            // Only an aid to a resume: a failure here costs that table's copy on a rerun, nothing more.
            try? await store.put(key: ObjectNaming.snapshotTableDone(source: header.source, consistentPoint: header.consistentPoint,
                                                                     table: described.relation.table, scope: header.scope ?? .full),
                                 bytes: ManifestCoding.encode(SnapshotTableDone(table: table)))
        }
        await inner?.tableCopied(tableIndex: tableIndex)
    }
}
