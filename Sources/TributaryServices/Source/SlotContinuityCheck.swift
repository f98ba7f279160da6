import TributaryCore
import TributaryStorage

/// Reads what `SlotContinuity` compares: the newest position tributary stored, recorded or created
/// for a source. The store is listed only past the slot's position, so the usual case (the slot
/// at or behind the recorded position) costs no listing at all.
enum SlotContinuityCheck {
    /// nil when the slot's position is one tributary could have confirmed; the problem otherwise.
    /// - Parameter recorded: reads the control state's recorded position. Read after the slot:
    ///   tributary records a position before it confirms it, so a reading taken later can only be
    ///   further on (read before, a replicator still running would outpace it).
    static func problem(_ slot: ReplicationSlot, source: SourceConfiguration, recorded: () async -> LSN?,
                        store: any StagingStore) async throws -> String? {
        guard let confirmed = slot.confirmedFlushLSN else { return nil }
        var known = await recorded()
        if SlotContinuity.isContinuous(confirmed: confirmed, known: known) { return nil }
        // A batch stored at or past the slot's position (the notifier may have missed recording it).
        let cdc = ObjectNaming.cdcPrefix(source: source.name)
        let later = try await store.list(prefix: cdc, startAfter: String(ObjectNaming.cdcDirectory(source: source.name, endLSN: confirmed).dropLast()))
        known = [known, later.compactMap { ObjectNaming.lsnComponent(of: $0.key, after: cdc) }.max()].compactMap { $0 }.max()
        // A snapshot's or a table snapshot's (a resync's) consistent point.
        for prefix in [ObjectNaming.snapshotPrefix(source: source.name), ObjectNaming.tableSnapshotPrefix(source: source.name)] {
            let points = try await store.list(prefix: prefix, startAfter: nil).compactMap { ObjectNaming.lsnComponent(of: $0.key, after: prefix) }
            known = [known, points.max()].compactMap { $0 }.max()
        }
        guard let known, known > .zero, !SlotContinuity.isContinuous(confirmed: confirmed, known: known) else { return nil }
        return SlotContinuity.problem(slot: source.slot, source: source.name, confirmed: confirmed, known: known)
    }
}
