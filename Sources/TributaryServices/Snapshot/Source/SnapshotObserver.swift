import TributaryCore

/// Told what a running snapshot has made durable, so a consumer can start on it before the
/// manifest exists. Only an optimisation: whatever the observer does must be repeatable from the
/// store alone, because the manifest (written last) stays the only proof of a complete snapshot.
public protocol SnapshotObserver: Sendable {
    /// Where the copy may keep a local copy of each part for `partStored`; nil: nowhere.
    var partHandoff: PartHandoff? { get }
    /// The slot exists; `tables` carry schemas and STG names, their `parts` still empty.
    func snapshotStarted(_ header: SnapshotManifest) async
    /// `file` of table `tableIndex` is durable in the staging store; `local` is a copy of it on
    /// local disk when `partHandoff` had room.
    func partStored(tableIndex: Int, file: StagedFile, local: HandedOffPart?) async
    /// Every part of table `tableIndex` has been reported through `partStored`; no more follow.
    func tableCopied(tableIndex: Int) async
    /// Every part of one work item of table `tableIndex` has been reported through `partStored`.
    func itemCopied(tableIndex: Int, item: CopiedItem) async
}

extension SnapshotObserver {
    public var partHandoff: PartHandoff? { nil }
    public func tableCopied(tableIndex: Int) async {}
    public func itemCopied(tableIndex: Int, item: CopiedItem) async {}
}

/// One work item of a snapshot, all of its parts stored.
public struct CopiedItem: Sendable {
    public var work: SnapshotWorkItem
    public var parts: [StagedFile]
    /// The copy's snapshot's oldest running transaction (`pg_snapshot_xmin`).
    public var snapshotXmin: UInt64
}
