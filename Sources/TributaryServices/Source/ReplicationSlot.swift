import TributaryCore
import TributaryPostgres

/// A replication slot as `pg_replication_slots` shows it, with the source's WAL position: the one
/// look-up every stage uses (snapshot, replicate, status, check, drop-slot).
public struct ReplicationSlot: Sendable, Decodable {
    public var name: String
    /// Whether the slot belongs to the database the connection is in (a logical slot serves one).
    public var inThisDatabase: Bool
    /// The walsender consuming the slot, if one is.
    public var activePID: Int?
    public var confirmedFlushLSN: LSN?
    public var restartLSN: LSN?
    /// `reserved`, `extended`, `unreserved` or `lost` (PostgreSQL 13+).
    public var walStatus: String?
    /// Bytes the source may still write before it invalidates the slot (with max_slot_wal_keep_size).
    public var safeWALSize: Int?
    /// The source's current WAL write position.
    public var currentLSN: LSN

    public var isActive: Bool { activePID != nil }

    /// The source removed WAL the slot still needed (`max_slot_wal_keep_size`): changes are gone
    /// from the stream for good, and only a new snapshot brings the source's STG back.
    public var isLost: Bool { walStatus == "lost" }

    /// What an operator does about a lost slot of `source`.
    public static func recovery(source: String) -> String {
        "recover it: tributary snapshot --source \(source) --resync (a new slot, every table copied again and merged into STG; the other sources go on)"
    }

    /// WAL the source has written past what the slot confirmed: what it still holds for us.
    public var lagBytes: Int? { confirmedFlushLSN.map { Int(currentLSN.value &- min($0.value, currentLSN.value)) } }

    /// WAL the slot keeps on the source's disk, from its restart position.
    public var retainedBytes: Int? { restartLSN.map { Int(currentLSN.value &- min($0.value, currentLSN.value)) } }

    enum CodingKeys: String, CodingKey {
        case name = "slot_name", inThisDatabase = "in_this_database", activePID = "active_pid"
        case confirmedFlushLSN = "confirmed_flush_lsn", restartLSN = "restart_lsn", walStatus = "wal_status"
        case safeWALSize = "safe_wal_size", currentLSN = "current_lsn"
    }

    /// The slot named `name` on the source `connection` is connected to, or nil.
    public static func find(_ name: String, on connection: PostgresConnection) async throws -> ReplicationSlot? {
        try await connection.query("""
            SELECT slot_name, coalesce(database = current_database(), false) AS in_this_database, active_pid,
                   confirmed_flush_lsn, restart_lsn, wal_status, safe_wal_size, pg_current_wal_lsn() AS current_lsn
            FROM pg_replication_slots WHERE slot_name = $1
            """, [name]).decode(ReplicationSlot.self).first
    }

    /// Drops the slot; it must not be in use.
    public static func drop(_ name: String, on connection: PostgresConnection) async throws {
        try await connection.query("SELECT pg_drop_replication_slot($1)", [name])
    }
}
