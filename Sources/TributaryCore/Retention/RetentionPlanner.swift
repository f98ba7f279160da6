/// What the garbage collector may remove from one source's part of the staging store. Pure: given
/// the listing and the control state's positions, it decides; the service only lists and deletes.
///
/// What is provably dead, and only that:
/// - a batch ending at or before the applied position, once applied at least `retention` ago (or
///   never applied because a snapshot superseded it): the applier never lists before the applied
///   position, so no reader remains;
/// - a batch directory without a manifest ending at or before the applied position: a batch being
///   written always ends after the replicator's confirmed position, hence after the applied one, so
///   this is what a killed replicator left behind (no age rule needed, which a slow upload of a
///   large batch could defeat);
/// - a full or per-table snapshot older than the source's current full snapshot.
/// Everything after the applied position, the current snapshot and its per-table snapshots, and any
/// unrecognised key are kept.
public enum RetentionPlanner {
    public enum Reason: String, Sendable, CaseIterable {
        case appliedBatch = "applied batches"
        case orphanedBatch = "orphaned batch files"
        case supersededSnapshot = "superseded snapshots"
    }

    /// One directory to remove: the manifest first (the batch or snapshot stops existing for every
    /// reader at once), then the rest.
    public struct Removal: Sendable, Equatable {
        public var reason: Reason
        public var directory: String
        /// The batch's end LSN when a batch (its `applied_batches` row goes with it).
        public var batchEnd: LSN?
        public var keys: [String]
        public var bytes: Int
    }

    public struct Plan: Sendable, Equatable {
        public var removals: [Removal] = []
        public var keptObjects = 0
        public var keptBytes = 0

        public var removedObjects: Int { removals.reduce(0) { $0 + $1.keys.count } }
        public var removedBytes: Int { removals.reduce(0) { $0 + $1.bytes } }
        public func count(_ reason: Reason) -> Int { removals.filter { $0.reason == reason }.count }
    }

    public struct Positions: Sendable, Equatable {
        /// Nil before a snapshot is applied: no batch is removed.
        public var applied: LSN?
        /// The consistent point of the source's current full snapshot.
        public var snapshot: LSN?
        /// Batches applied less than `retention` ago: kept for now.
        public var recentlyApplied: Set<LSN>

        public init(applied: LSN?, snapshot: LSN?, recentlyApplied: Set<LSN> = []) {
            self.applied = applied
            self.snapshot = snapshot
            self.recentlyApplied = recentlyApplied
        }
    }

    /// A key range one collection lists: keys under `prefix` before `endBefore` (exclusive).
    public struct ListingRange: Sendable, Equatable {
        public var prefix: String
        public var endBefore: String
    }

    /// The key ranges that can hold anything `plan` would remove: batches before the oldest one
    /// still kept (the oldest applied within retention, else the first past the applied position),
    /// and snapshots before the current one. A collection lists only these, not what retention
    /// keeps: a month of batches kept is not read again every few minutes. A batch directory left
    /// without its manifest after the oldest kept batch waits until retention moves past it.
    public static func listingRanges(source: String, positions: Positions) -> [ListingRange] {
        var ranges: [ListingRange] = []
        if let applied = positions.applied {
            let firstKept = min(positions.recentlyApplied.min() ?? LSN(applied.value + 1), LSN(applied.value + 1))
            ranges.append(ListingRange(prefix: ObjectNaming.cdcPrefix(source: source),
                                       endBefore: ObjectNaming.cdcDirectory(source: source, endLSN: firstKept)))
        }
        if let current = positions.snapshot {
            for prefix in [ObjectNaming.snapshotPrefix(source: source), ObjectNaming.tableSnapshotPrefix(source: source)] {
                ranges.append(ListingRange(prefix: prefix, endBefore: prefix + current.paddedHex + "/"))
            }
        }
        return ranges
    }

    /// `listing`: every object under `<source>/`, or those of `listingRanges`, in key order.
    public static func plan(source: String, listing: [StoredObject], positions: Positions) -> Plan {
        var plan = Plan()
        var index = 0
        while index < listing.count {
            guard let (directory, kind, lsn) = directoryOf(listing[index].key, source: source) else {
                plan.keptObjects += 1
                plan.keptBytes += listing[index].size
                index += 1
                continue
            }
            var end = index
            while end < listing.count, listing[end].key.hasPrefix(directory) { end += 1 }
            let objects = listing[index..<end]
            let manifest = directory + ObjectNaming.manifestName
            let hasManifest = objects.contains { $0.key == manifest }
            if let reason = removal(kind: kind, lsn: lsn, hasManifest: hasManifest, positions: positions) {
                let keys = (hasManifest ? [manifest] : []) + objects.map(\.key).filter { $0 != manifest }
                plan.removals.append(Removal(reason: reason, directory: directory, batchEnd: kind == .cdc ? lsn : nil,
                                             keys: keys, bytes: objects.reduce(0) { $0 + $1.size }))
            } else {
                plan.keptObjects += objects.count
                plan.keptBytes += objects.reduce(0) { $0 + $1.size }
            }
            index = end
        }
        return plan
    }

    enum Kind { case cdc, snapshot, tables }

    private static func removal(kind: Kind, lsn: LSN, hasManifest: Bool, positions: Positions) -> Reason? {
        switch kind {
        case .cdc:
            guard let applied = positions.applied, lsn <= applied else { return nil }
            if !hasManifest { return .orphanedBatch }
            return positions.recentlyApplied.contains(lsn) ? nil : .appliedBatch
        case .snapshot, .tables:
            guard let current = positions.snapshot, lsn < current else { return nil }
            return .supersededSnapshot
        }
    }

    private static func directoryOf(_ key: String, source: String) -> (String, Kind, LSN)? {
        for (kind, prefix) in [(Kind.cdc, ObjectNaming.cdcPrefix(source: source)),
                               (.snapshot, ObjectNaming.snapshotPrefix(source: source)),
                               (.tables, ObjectNaming.tableSnapshotPrefix(source: source))] {
            // Only names this program writes; anything else is kept, never guessed at.
            if let lsn = ObjectNaming.lsnComponent(of: key, after: prefix), key.hasPrefix(prefix + lsn.paddedHex + "/") {
                return (prefix + lsn.paddedHex + "/", kind, lsn)
            }
        }
        return nil
    }
}
