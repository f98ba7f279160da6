import Testing
import TributaryCore

/// What garbage collection may remove: only what no reader can need, oldest first, manifests first.
@Suite struct RetentionPlannerTests {
    let table = QualifiedName(schema: "public", name: "ledger")

    func batch(_ end: UInt64, manifest: Bool = true, files: Int = 2) -> [StoredObject] {
        let lsn = LSN(end)
        var keys = (0..<files).map { StoredObject(key: ObjectNaming.cdcFile(source: "qvp", endLSN: lsn, table: table, segment: $0), size: 100) }
        if manifest { keys.append(StoredObject(key: ObjectNaming.cdcManifest(source: "qvp", endLSN: lsn), size: 10)) }
        return keys
    }

    func snapshot(_ point: UInt64, scope: SnapshotScope = .full) -> [StoredObject] {
        let lsn = LSN(point)
        return [StoredObject(key: ObjectNaming.manifest(scope, source: "qvp", consistentPoint: lsn), size: 5),
                StoredObject(key: ObjectNaming.snapshotPart(source: "qvp", consistentPoint: lsn, table: table, range: 0, part: 0, scope: scope), size: 1000)]
    }

    func plan(_ listing: [StoredObject], applied: UInt64?, snapshot: UInt64? = 0x100, recent: Set<UInt64> = []) -> RetentionPlanner.Plan {
        RetentionPlanner.plan(source: "qvp", listing: listing.sorted { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) },
                              positions: .init(applied: applied.map(LSN.init), snapshot: snapshot.map(LSN.init),
                                               recentlyApplied: Set(recent.map(LSN.init))))
    }

    @Test func appliedBatchesGoOnceOldEnoughAndNothingAfterTheAppliedPosition() {
        let listing = batch(0x200) + batch(0x300) + batch(0x400) + batch(0x500)
        let result = plan(listing, applied: 0x400, recent: [0x400])
        // 0x400 was applied too recently; 0x500 is not applied at all.
        #expect(result.removals.map(\.batchEnd) == [LSN(0x200), LSN(0x300)])
        #expect(result.removals.allSatisfy { $0.reason == .appliedBatch })
        #expect(result.removedObjects == 6 && result.removedBytes == 420)
        #expect(result.keptObjects == 6 && result.keptBytes == 420)
        // Manifest first: a reader sees the whole batch or none of it.
        #expect(result.removals.allSatisfy { $0.keys.first!.hasSuffix("/manifest.json") })
    }

    @Test func nothingIsRemovedBeforeASnapshotIsApplied() {
        let result = plan(batch(0x200) + batch(0x300, manifest: false), applied: nil)
        #expect(result.removals.isEmpty)
        #expect(result.keptObjects == 5)
    }

    @Test func orphanedFilesGoOnlyOnceTheAppliedPositionPassedThem() {
        let listing = batch(0x200, manifest: false) + batch(0x300) + batch(0x600, manifest: false)
        let result = plan(listing, applied: 0x300, recent: [0x300])
        // 0x600 may be a batch being written right now: kept.
        #expect(result.removals.map(\.directory) == [ObjectNaming.cdcDirectory(source: "qvp", endLSN: LSN(0x200))])
        #expect(result.removals.first?.reason == .orphanedBatch)
        #expect(result.keptObjects == 5)
    }

    @Test func retentionZeroKeepsNothingApplied() {
        let result = plan(batch(0x200) + batch(0x300), applied: 0x300)
        #expect(result.count(.appliedBatch) == 2 && result.keptObjects == 0)
    }

    @Test func supersededSnapshotsGoAndTheCurrentOneStays() {
        let listing = snapshot(0x80) + snapshot(0x90, scope: .tables) + snapshot(0x100) + snapshot(0x180, scope: .tables) + snapshot(0x900)
        let result = plan(listing, applied: 0x1000, snapshot: 0x100)
        #expect(result.count(.supersededSnapshot) == 2)
        #expect(result.removals.map(\.directory) == [ObjectNaming.directory(.full, source: "qvp", consistentPoint: LSN(0x80)),
                                                     ObjectNaming.directory(.tables, source: "qvp", consistentPoint: LSN(0x90))])
        // The current snapshot, a later table snapshot and a newer snapshot still loading: kept.
        #expect(result.keptObjects == 6)
    }

    @Test func keysItDoesNotRecogniseAreKept() {
        let listing = [StoredObject(key: "qvp/cdc/not-an-lsn/x.csv.gz", size: 1), StoredObject(key: "qvp/notes.txt", size: 1),
                       StoredObject(key: "qvp/cdc/0000000000000200", size: 1)] + batch(0x200)
        let result = plan(listing, applied: 0x300)
        #expect(result.count(.appliedBatch) == 1)
        #expect(result.keptObjects == 3)
    }

    /// A collection lists only what it may remove: within the ranges, the plan is the one the whole
    /// listing gives, and the batches retention keeps lie past them.
    @Test func theListingRangesHoldEverythingRemovableAndNothingKept() {
        let everything = batch(0x200) + batch(0x250, manifest: false) + batch(0x300) + batch(0x400) + batch(0x500) + batch(0x600)
            + snapshot(0x100) + snapshot(0x180) + snapshot(0x100, scope: .tables) + snapshot(0x180, scope: .tables)
        let positions = RetentionPlanner.Positions(applied: LSN(0x500), snapshot: LSN(0x180), recentlyApplied: [LSN(0x400), LSN(0x500)])
        let ranges = RetentionPlanner.listingRanges(source: "qvp", positions: positions)
        #expect(ranges.map(\.endBefore) == ["qvp/cdc/" + LSN(0x400).paddedHex + "/", "qvp/snapshot/" + LSN(0x180).paddedHex + "/",
                                           "qvp/tables/" + LSN(0x180).paddedHex + "/"])
        let bounded = everything.filter { object in
            ranges.contains { object.key.hasPrefix($0.prefix) && Array(object.key.utf8).lexicographicallyPrecedes(Array($0.endBefore.utf8)) }
        }
        let whole = plan(everything, applied: 0x500, snapshot: 0x180, recent: [0x400, 0x500])
        let part = plan(bounded, applied: 0x500, snapshot: 0x180, recent: [0x400, 0x500])
        #expect(part.removals == whole.removals && !whole.removals.isEmpty)
        #expect(part.keptObjects == 0, "nothing listed is kept")
        #expect(bounded.count == whole.removedObjects)
        // Retention 0: up to the applied position; before any snapshot is applied, nothing at all.
        #expect(RetentionPlanner.listingRanges(source: "qvp", positions: .init(applied: LSN(0x500), snapshot: nil)).map(\.endBefore)
                == ["qvp/cdc/" + LSN(0x501).paddedHex + "/"])
        #expect(RetentionPlanner.listingRanges(source: "qvp", positions: .init(applied: nil, snapshot: nil)).isEmpty)
    }
}
