import Foundation
import TributaryCore
import TributaryPostgres

/// What an operator asked of a source, as the `tributary.sources` row holds it (DESIGN.md §5).
public enum SourceState: String, Sendable, Codable, CaseIterable, PostgresTextDecodable {
    case running, paused, draining, drained

    public init?(postgresText text: String) { self.init(rawValue: text) }
}

/// One source's row of the control state.
public struct SourceControlState: Sendable, Equatable, Decodable {
    public var state: SourceState
    public var applyPaused: Bool
    public var drainLSN: LSN?
    public var flushedLSN: LSN?
    public var appliedLSN: LSN?

    public init(state: SourceState, applyPaused: Bool = false, drainLSN: LSN? = nil, flushedLSN: LSN? = nil, appliedLSN: LSN? = nil) {
        self.state = state
        self.applyPaused = applyPaused
        self.drainLSN = drainLSN
        self.flushedLSN = flushedLSN
        self.appliedLSN = appliedLSN
    }

    enum CodingKeys: String, CodingKey {
        case state, applyPaused = "apply_paused", drainLSN = "drain_lsn", flushedLSN = "flushed_lsn", appliedLSN = "applied_lsn"
    }
}

/// The owner of every statement on the target's `tributary` schema: the control state all
/// processes share (DESIGN.md §5). Nothing else names its tables.
///
/// Statements that must run inside a caller's transaction (an applied batch is recorded with its
/// merge, a snapshot part with its COPY) are static and take the connection isolated; the rest are
/// methods on a store bound to a connection.
public struct ControlStore: Sendable {
    /// NOTIFY channel of control changes (pause, resume, drain): running parts react within a second.
    public static let controlChannel = "tributary_control"
    /// NOTIFY channel of stored batches: the applier wakes at once.
    public static let batchChannel = "tributary_batches"

    public let connection: PostgresConnection

    /// On a session of the target (`TargetEndpoint.openControl` opens one, migrating it for writers).
    public init(_ connection: PostgresConnection) { self.connection = connection }

    public func close() async { await connection.close() }

    /// Brings the schema to this build's version (for writers on a connection of their own).
    public func migrate() async throws {
        try await connection.run { try ControlSchema.migrate(on: $0) }
    }

    /// Whether a writing command has ever set up the schema on this target.
    public func isMigrated() async throws -> Bool {
        try await connection.run { try ControlSchema.version(on: $0) } > 0
    }

    /// Whether the schema is at this build's version (a read-only command on an older one knows
    /// nothing of what the newer parts hold).
    public func isCurrent() async throws -> Bool {
        try await connection.run { try ControlSchema.version(on: $0) } >= ControlSchema.migrations.count
    }

    // MARK: Sources

    public func state(of source: String) async throws -> SourceControlState? {
        try await connection.query("""
            SELECT state, apply_paused, drain_lsn, flushed_lsn, applied_lsn FROM tributary.sources WHERE source = $1
            """, [source]).decode(SourceControlState.self).first
    }

    /// Moves `source` to `state`, creating its row if no stage has yet, and tells running parts.
    /// Returns the state it left.
    @discardableResult
    public func set(_ source: SourceConfiguration, to state: SourceState, applyPaused: Bool = false,
                    drainLSN: LSN? = nil) async throws -> SourceState? {
        let before = try await self.state(of: source.name)?.state
        try await connection.query("""
            INSERT INTO tributary.sources AS s (source, slot, state, apply_paused, drain_lsn, drain_started_at)
            VALUES ($1, $2, $3, $4, $5::pg_lsn, CASE WHEN $3 = 'draining' THEN now() END)
            ON CONFLICT (source) DO UPDATE SET state = excluded.state, apply_paused = excluded.apply_paused,
                drain_lsn = CASE WHEN excluded.state IN ('draining', 'drained') THEN coalesce(excluded.drain_lsn, s.drain_lsn) END,
                drain_started_at = CASE WHEN excluded.state = 'draining' THEN now()
                                        WHEN excluded.state = 'drained' THEN s.drain_started_at END,
                updated_at = now()
            """, [source.name, source.slot, state.rawValue, applyPaused ? "t" : "f", drainLSN?.description])
        try await connection.query("SELECT pg_notify($1, $2)", [Self.controlChannel, source.name])
        return before
    }

    /// A replicator's durable position, with the commit time of its newest change when a batch
    /// carried one. Only ever moves forward.
    public func recordFlushed(_ source: String, at lsn: LSN, commitTime: Date? = nil) async throws {
        try await connection.query("""
            UPDATE tributary.sources SET flushed_lsn = greatest(flushed_lsn, $2::pg_lsn),
                flushed_commit_time = greatest(flushed_commit_time, $3::timestamptz), updated_at = now()
            WHERE source = $1
            """, [source, lsn.description, commitTime.map(ManifestCoding.format)])
    }

    /// Wakes the applier: a batch of `source` is stored.
    public func announceBatch(of source: String) async throws {
        try await connection.query("SELECT pg_notify($1, $2)", [Self.batchChannel, source])
    }

    /// The applier's view of a source: where it stands, how far its replicator has stored or
    /// confirmed, and whether an operator holds it.
    public func applyPosition(of source: String) async throws -> ApplyPosition {
        guard let row = try await connection.query("""
            SELECT applied_lsn, apply_paused, flushed_lsn, flushed_commit_time,
                   CASE WHEN hold_until > now() THEN hold_lsn END AS hold_lsn, held_lsn
            FROM tributary.sources WHERE source = $1
            """, [source]).first else { return ApplyPosition() }
        return ApplyPosition(applied: try row.decodeIfPresent("applied_lsn"), paused: try row.decode("apply_paused"),
                             flushed: try row.decodeIfPresent("flushed_lsn"), flushedCommitTime: try row.decodeIfPresent("flushed_commit_time"),
                             hold: try row.decodeIfPresent("hold_lsn"), held: try row.decodeIfPresent("held_lsn"))
    }

    /// Asks the applier to stop `source`'s STG at exactly the transactions committed before
    /// `lsn` (verify at a point), and wakes it. The hold lapses after `lasting`: a verify that
    /// was killed never holds a source for good.
    public func hold(_ source: String, at lsn: LSN, lasting: Duration = .seconds(900)) async throws {
        try await connection.query("""
            UPDATE tributary.sources SET hold_lsn = $2::pg_lsn, held_lsn = NULL, hold_started_at = coalesce(hold_started_at, now()),
                hold_until = now() + make_interval(secs => $3::float8), updated_at = now()
            WHERE source = $1
            """, [source, lsn.description, String(lasting.seconds)])
        try await connection.query("SELECT pg_notify($1, $2)", [Self.controlChannel, source])
    }

    /// The applier: `source`'s STG holds exactly the changes before `lsn`.
    public func recordHeld(_ source: String, at lsn: LSN) async throws {
        try await connection.query("UPDATE tributary.sources SET held_lsn = $2::pg_lsn WHERE source = $1 AND hold_lsn = $2::pg_lsn",
                                   [source, lsn.description])
    }

    /// Where `source`'s hold stands: the point asked for and whether STG holds it.
    public func holdState(of source: String) async throws -> (hold: LSN?, held: LSN?) {
        guard let row = try await connection.query("SELECT hold_lsn, held_lsn FROM tributary.sources WHERE source = $1", [source]).first else {
            return (nil, nil)
        }
        return (try row.decodeIfPresent("hold_lsn"), try row.decodeIfPresent("held_lsn"))
    }

    /// Lifts `source`'s hold (the applier goes on at once).
    public func releaseHold(_ source: String) async throws {
        try await connection.query("""
            UPDATE tributary.sources SET hold_lsn = NULL, held_lsn = NULL, hold_started_at = NULL, hold_until = NULL, updated_at = now()
            WHERE source = $1
            """, [source])
        try await connection.query("SELECT pg_notify($1, $2)", [Self.controlChannel, source])
    }

    /// Everything stored up to `flushed` is applied and the rest of the way was idle heartbeats
    /// (confirmed without an object): STG is current up to `flushed`. Compare-and-set on `applied`,
    /// so a batch applied meanwhile is never overwritten.
    public func advanceAppliedOverIdle(_ source: String, from applied: LSN, to flushed: LSN, commitTime: Date?) async throws {
        try await connection.query("""
            UPDATE tributary.sources SET applied_lsn = $3::pg_lsn,
                applied_commit_time = greatest(applied_commit_time, $4::timestamptz), updated_at = now()
            WHERE source = $1 AND applied_lsn = $2::pg_lsn AND $3::pg_lsn > applied_lsn
            """, [source, applied.description, flushed.description, commitTime.map(ManifestCoding.format)])
    }

    /// Everything `status` shows of a source from the control state; nil before any stage wrote it.
    public func statusRow(of source: String) async throws -> ControlStatusRow? {
        try await connection.query("""
            SELECT state, flushed_lsn, applied_lsn, drain_lsn, applied_commit_time,
                   extract(epoch FROM now() - applied_commit_time)::float8 AS lag,
                   extract(epoch FROM now() - flushed_commit_time)::float8 AS flushed_lag,
                   (SELECT coalesce(sum(rows), 0) / 60.0 FROM tributary.applied_batches
                    WHERE source = $1 AND applied_at > now() - interval '1 minute')::float8 AS rate
            FROM tributary.sources WHERE source = $1
            """, [source]).decode(ControlStatusRow.self).first
    }

    /// Where each of `sources` stands, in one statement: what a drain's watch reads every tick.
    public func drainReadings(_ sources: [String]) async throws -> [DrainProgress.SourceReading] {
        let rows = try await connection.query("""
            SELECT source, flushed_lsn, applied_lsn FROM tributary.sources WHERE source = ANY($1::text[])
            """, [PostgresArray.literal(sources)]).rows
        var bySource: [String: DrainProgress.SourceReading] = [:]
        for row in rows {
            let source: String = try row.decode("source")
            bySource[source] = DrainProgress.SourceReading(source: source, flushed: try row.decodeIfPresent("flushed_lsn"),
                                                           applied: try row.decodeIfPresent("applied_lsn"))
        }
        return sources.map { bySource[$0] ?? DrainProgress.SourceReading(source: $0, flushed: nil, applied: nil) }
    }

    /// When the earliest drain of `sources` began, on the target's clock.
    public func drainBegan(_ sources: [String]) async throws -> Date? {
        try await connection.query("SELECT min(drain_started_at) FROM tributary.sources WHERE source = ANY($1::text[])",
                                   [PostgresArray.literal(sources)]).optionalScalar(Date.self)
    }

    /// When the drain of `source` began, and the batches and rows applied since.
    public func appliedSinceDrainBegan(_ source: String) async throws -> (batches: Int, rows: Int) {
        let row = try await connection.query("""
            SELECT count(b.end_lsn) AS batches, coalesce(sum(b.rows), 0) AS rows
            FROM tributary.sources s LEFT JOIN tributary.applied_batches b ON b.source = s.source AND b.applied_at >= s.drain_started_at
            WHERE s.source = $1
            """, [source]).first
        return (try row?.decode("batches") ?? 0, try row?.decode("rows") ?? 0)
    }

    // MARK: The applier

    /// One applier per target: two would race to record the same batch. Held for the session, so
    /// a killed applier releases it with its connection.
    public func claimApplierLock() async throws -> Bool {
        try await connection.query("SELECT pg_try_advisory_lock($1)", [String(Self.applierLock)]).scalar(Bool.self)
    }

    /// Released before the session closes: a closed session's backend drops its locks only as it
    /// exits, and an applier started right after must not find the lock still held.
    public func releaseApplierLock() async throws {
        _ = try await connection.query("SELECT pg_advisory_unlock($1)", [String(Self.applierLock)])
    }

    static let applierLock: Int64 = 0x7472_6962_0002

    /// LISTEN to the batch and control channels, so the applier wakes on both.
    public func listenForBatchesAndControl() async throws {
        try await connection.execute("LISTEN \(Self.batchChannel); LISTEN \(Self.controlChannel)")
    }
}

/// What `status` reads of a source from the control state.
/// The applier's view of one source.
public struct ApplyPosition: Sendable {
    /// Nil until a snapshot is applied: changes have nothing to apply to.
    public var applied: LSN?
    /// Held by an operator.
    public var paused = false
    /// Stored or confirmed by the replicator.
    public var flushed: LSN?
    public var flushedCommitTime: Date?
    /// A verify's point, and whether STG holds it.
    public var hold: LSN?
    public var held: LSN?
}

public struct ControlStatusRow: Sendable, Decodable {
    public var state: SourceState
    public var flushedLSN: LSN?
    public var appliedLSN: LSN?
    public var drainLSN: LSN?
    public var appliedCommitTime: Date?
    public var lagSeconds: Double?
    /// now − the commit time of the newest change (or idle heartbeat) stored: the lag once
    /// everything stored is applied.
    public var flushedLagSeconds: Double?
    public var changesPerSecond: Double

    enum CodingKeys: String, CodingKey {
        case state, flushedLSN = "flushed_lsn", appliedLSN = "applied_lsn", drainLSN = "drain_lsn"
        case appliedCommitTime = "applied_commit_time", lagSeconds = "lag", flushedLagSeconds = "flushed_lag", changesPerSecond = "rate"
    }
}

// MARK: Statements inside a caller's transaction

extension ControlStore {
    /// Records a batch as applied; false when it was already (then nothing of it may be applied again).
    static func claimBatch(_ manifest: BatchManifest, on connection: isolated PostgresConnection) throws -> Bool {
        try connection.query("""
            INSERT INTO tributary.applied_batches (source, end_lsn, start_lsn, rows)
            VALUES ($1, $2::pg_lsn, $3::pg_lsn, $4) ON CONFLICT DO NOTHING
            """, [manifest.source, manifest.endLSN.description, manifest.firstCommitLSN.description, String(manifest.rows)])
            .affectedRows == 1
    }

    /// The source's applied position and the commit time of its newest applied change.
    static func recordApplied(_ manifest: BatchManifest, on connection: isolated PostgresConnection) throws {
        try connection.query("""
            UPDATE tributary.sources SET applied_lsn = greatest(applied_lsn, $2::pg_lsn),
                applied_commit_time = greatest(applied_commit_time, $3::timestamptz), updated_at = now()
            WHERE source = $1
            """, [manifest.source, manifest.endLSN.description, ManifestCoding.format(manifest.lastCommitTime)])
    }

    /// The newest TRUNCATE applied to an STG table: changes older than it are void, whatever order
    /// batches arrive in, so a replay can never bring back a truncated row STG never saw.
    static func recordTruncation(of stagingTable: String, at lsn: LSN, on connection: isolated PostgresConnection) throws {
        try connection.query("""
            INSERT INTO tributary.truncations (stg_table, lsn) VALUES ($1, $2::pg_lsn)
            ON CONFLICT (stg_table) DO UPDATE SET lsn = greatest(tributary.truncations.lsn, excluded.lsn)
            """, [stagingTable, lsn.description])
    }

    static func truncatedAt(_ stagingTable: String, on connection: isolated PostgresConnection) throws -> LSN? {
        try connection.query("SELECT lsn FROM tributary.truncations WHERE stg_table = $1", [stagingTable]).optionalScalar(LSN.self)
    }
}
