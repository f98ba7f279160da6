import Foundation
import TributaryCore
import TributaryPostgres

/// What an operator asked of a source, as the `tributary.sources` row holds it (DESIGN.md §5).
public enum SourceState: String, Sendable, Codable, CaseIterable {
    case running, paused, draining, drained
}

public struct SourceControlState: Sendable, Equatable {
    public var state: SourceState
    public var applyPaused: Bool
    public var drainLSN: LSN?
    public var flushedLSN: LSN?
    public var appliedLSN: LSN?
}

/// Reads and writes the control state. Writes NOTIFY `tributary_control`, and running processes also
/// poll it at least every half second, so a command takes effect within a second.
public enum SourceControl {
    public static let channel = "tributary_control"

    public static func state(of source: String, on connection: PostgresConnection) async throws -> SourceControlState? {
        let result = try await connection.query("""
            SELECT state, apply_paused, drain_lsn, flushed_lsn, applied_lsn FROM tributary.sources WHERE source = $1
            """, [source])
        guard !result.isEmpty else { return nil }
        return SourceControlState(state: SourceState(rawValue: result.value(0, "state")!) ?? .running,
                                  applyPaused: result.value(0, "apply_paused") == "t",
                                  drainLSN: result.value(0, "drain_lsn").flatMap(LSN.init),
                                  flushedLSN: result.value(0, "flushed_lsn").flatMap(LSN.init),
                                  appliedLSN: result.value(0, "applied_lsn").flatMap(LSN.init))
    }

    /// Moves `source` to `state`, creating its row if no stage has yet. Returns the state it left.
    @discardableResult
    public static func set(_ source: SourceConfiguration, to state: SourceState, applyPaused: Bool = false, drainLSN: LSN? = nil,
                           on connection: PostgresConnection) async throws -> SourceState? {
        let before = try await Self.state(of: source.name, on: connection)?.state
        try await connection.query("""
            INSERT INTO tributary.sources AS s (source, slot, state, apply_paused, drain_lsn, drain_started_at)
            VALUES ($1, $2, $3, $4, $5::pg_lsn, CASE WHEN $3 = 'draining' THEN now() END)
            ON CONFLICT (source) DO UPDATE SET state = excluded.state, apply_paused = excluded.apply_paused,
                drain_lsn = CASE WHEN excluded.state IN ('draining', 'drained') THEN coalesce(excluded.drain_lsn, s.drain_lsn) END,
                drain_started_at = CASE WHEN excluded.state = 'draining' THEN now()
                                        WHEN excluded.state = 'drained' THEN s.drain_started_at END,
                updated_at = now()
            """, [source.name, source.slot, state.rawValue, applyPaused ? "t" : "f", drainLSN?.description])
        try await connection.query("SELECT pg_notify($1, $2)", [channel, source.name])
        return before
    }

    /// Records a replicator's durable position when no batch carried it (an idle source, a drain end).
    public static func recordFlushed(_ source: String, at lsn: LSN, on connection: PostgresConnection) async throws {
        try await connection.query("""
            UPDATE tributary.sources SET flushed_lsn = greatest(flushed_lsn, $2::pg_lsn), updated_at = now() WHERE source = $1
            """, [source, lsn.description])
    }
}
