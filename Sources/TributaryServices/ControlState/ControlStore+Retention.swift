import Foundation
import TributaryCore
import TributaryPostgres

/// The control state the garbage collector reads and keeps: positions that say what is dead, and
/// what the staging store holds per source (what `status` shows without listing the store).
extension ControlStore {
    /// What the last collection found of `source` in the store; nil before one ran.
    public func storeUsage(of source: String) async throws -> StoreUsage? {
        guard try await connection.query("SELECT to_regclass('tributary.store_usage') IS NOT NULL").scalar(Bool.self) else { return nil }
        return try await connection.query("""
            SELECT objects, bytes, removed_objects, removed_bytes, measured_at FROM tributary.store_usage WHERE source = $1
            """, [source]).decode(StoreUsage.self).first
    }

    /// Where `source` stands for retention; nil when no stage has written its control state yet.
    public func retentionPositions(of source: String, retention: Duration) async throws -> RetentionPlanner.Positions? {
        guard let row = try await connection.query("SELECT applied_lsn, snapshot_lsn FROM tributary.sources WHERE source = $1",
                                                   [source]).first else { return nil }
        let recent = try await connection.query("""
            SELECT end_lsn FROM tributary.applied_batches
            WHERE source = $1 AND applied_at >= now() - make_interval(secs => $2::float8)
            """, [source, String(retention.seconds)]).column(LSN.self)
        var applied: LSN? = try row.decodeIfPresent("applied_lsn")
        // Files waiting for their table's copy are merged after it: their batches stay.
        if try await isCurrent(), let kept = applied,
           let waiting = try await connection.query("SELECT min(batch_end) FROM tributary.deferred_files WHERE source = $1", [source])
               .optionalScalar(LSN.self), waiting <= kept {
            applied = waiting.value > 0 ? LSN(waiting.value - 1) : nil
        }
        return RetentionPlanner.Positions(applied: applied, snapshot: try row.decodeIfPresent("snapshot_lsn"), recentlyApplied: Set(recent))
    }

    /// Removed batches' records go with their objects: nothing can replay them any more.
    public func forgetBatches(_ source: String, _ ends: [LSN]) async throws {
        guard !ends.isEmpty else { return }
        try await connection.query("DELETE FROM tributary.applied_batches WHERE source = $1 AND end_lsn = ANY($2::pg_lsn[])",
                                   [source, PostgresArray.literal(ends.map(\.description))])
    }

    /// After a collection: what `source`'s part of the store holds now, and what went.
    public func recordStoreUsage(_ source: String, plan: RetentionPlanner.Plan) async throws {
        try await connection.query("""
            INSERT INTO tributary.store_usage AS u (source, objects, bytes, removed_objects, removed_bytes, measured_at)
            VALUES ($1, $2, $3, $4, $5, now())
            ON CONFLICT (source) DO UPDATE SET objects = excluded.objects, bytes = excluded.bytes,
                removed_objects = u.removed_objects + excluded.removed_objects,
                removed_bytes = u.removed_bytes + excluded.removed_bytes, measured_at = now()
            """, [source, String(plan.keptObjects), String(plan.keptBytes), String(plan.removedObjects), String(plan.removedBytes)])
    }
}

extension ControlStore {
    /// After a collection that listed only what it may remove: the last measurement less what went.
    public func recordRemoval(_ source: String, plan: RetentionPlanner.Plan) async throws {
        try await connection.query("""
            UPDATE tributary.store_usage SET objects = greatest(objects - $2::bigint, 0), bytes = greatest(bytes - $3::bigint, 0),
                removed_objects = removed_objects + $2::bigint, removed_bytes = removed_bytes + $3::bigint
            WHERE source = $1
            """, [source, String(plan.removedObjects), String(plan.removedBytes)])
    }
}

/// What the last collection found in the store for one source.
public struct StoreUsage: Sendable, Codable, Equatable {
    public var objects: Int
    public var bytes: Int
    public var removedObjects: Int
    public var removedBytes: Int
    public var measuredAt: Date

    enum CodingKeys: String, CodingKey {
        case objects, bytes, removedObjects = "removed_objects", removedBytes = "removed_bytes", measuredAt = "measured_at"
    }
}
