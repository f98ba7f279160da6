/// Whether a slot's confirmed position is one tributary itself could have put it at.
///
/// tributary confirms only positions it stored (a batch, whose manifest is in the store), recorded
/// (a keepalive or heartbeat with nothing pending, written to the control state before it is
/// confirmed) or created (a snapshot's consistent point). A slot confirmed past every one of them
/// was made anew by someone else (its position is its creation) or consumed by another client:
/// either way the changes in between never reached STG, and only a resync brings them.
public enum SlotContinuity {
    /// - Parameters:
    ///   - confirmed: the slot's `confirmed_flush_lsn`.
    ///   - known: the newest position tributary stored, recorded or created for the slot's source
    ///     (nil when it knows none: nothing snapshotted yet, so nothing to compare).
    public static func isContinuous(confirmed: LSN?, known: LSN?) -> Bool {
        guard let confirmed, let known else { return true }
        return confirmed <= known
    }

    /// What the operator reads when it is not.
    public static func problem(slot: String, source: String, confirmed: LSN, known: LSN) -> String {
        "replication slot \(slot) on \(source) is confirmed up to \(confirmed), past anything tributary stored or confirmed (\(known)): "
            + "it was recreated, or another client consumed it, and the changes in between are not in STG"
    }
}
