import TributaryCore

/// Told what a running snapshot has made durable, so a consumer can start on it before the
/// manifest exists. Only an optimisation: whatever the observer does must be repeatable from the
/// store alone, because the manifest (written last) stays the only proof of a complete snapshot.
public protocol SnapshotObserver: Sendable {
    /// The slot exists; `tables` carry schemas and STG names, their `parts` still empty.
    func snapshotStarted(_ header: SnapshotManifest) async
    /// `file` of table `tableIndex` is durable in the staging store.
    func partStored(tableIndex: Int, file: StagedFile) async
    /// Every part of table `tableIndex` has been reported through `partStored`; no more follow.
    func tableCopied(tableIndex: Int) async
}

extension SnapshotObserver {
    public func tableCopied(tableIndex: Int) async {}
}
