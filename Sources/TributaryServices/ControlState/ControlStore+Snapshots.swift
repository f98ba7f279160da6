import TributaryCore
import TributaryPostgres

/// The control state of snapshot loads: which snapshot of a source is loading or applied
/// (`snapshots`), which of its part files are in their load tables (`snapshot_parts`, recorded in
/// the transaction that loads the part) and which tables are promoted into STG (`snapshot_tables`).
/// A kill anywhere leaves either a recorded step or nothing, so a rerun carries on from here.
extension ControlStore {
    /// Whether a snapshot of `source` at `lsn` or later is applied already.
    public func isSnapshotApplied(_ source: String, atOrAfter lsn: LSN) async throws -> Bool {
        try await !connection.query("""
            SELECT 1 FROM tributary.snapshots WHERE source = $1 AND snapshot_lsn >= $2::pg_lsn AND state = 'applied' AND kind = 'full'
            """, [source, lsn.description]).isEmpty
    }

    /// The consistent point of `source`'s applied full snapshot; nil before one is applied.
    public func appliedSnapshot(of source: String) async throws -> LSN? {
        try await connection.query("SELECT snapshot_lsn FROM tributary.sources WHERE source = $1", [source]).first?
            .decodeIfPresent("snapshot_lsn", as: LSN.self)
    }

    /// The consistent points of `source`'s table snapshots that are in STG.
    public func appliedTableSnapshots(_ source: String) async throws -> Set<LSN> {
        Set(try await connection.query("""
            SELECT snapshot_lsn FROM tributary.snapshots WHERE source = $1 AND kind = 'tables' AND state = 'applied'
            """, [source]).column(LSN.self))
    }

    /// The STG tables of `source` some snapshot (full or of tables) has filled.
    public func snapshottedTables(_ source: String) async throws -> Set<String> {
        Set(try await connection.query("SELECT DISTINCT stg_table FROM tributary.snapshot_tables WHERE source = $1", [source])
            .column(String.self))
    }

    /// Records the snapshot as loading (again, harmlessly); returns the STG tables already promoted.
    public func beginLoading(_ manifest: SnapshotManifest) async throws -> Set<String> {
        let lsn = manifest.consistentPoint.description
        try await connection.query("""
            INSERT INTO tributary.snapshots (source, snapshot_lsn, slot, state, tables, rows, kind)
            VALUES ($1, $2::pg_lsn, $3, 'loading', $4, $5, $6)
            ON CONFLICT (source, snapshot_lsn) DO UPDATE SET tables = excluded.tables, rows = excluded.rows
            """, [manifest.source, lsn, manifest.slot, String(manifest.tables.count), String(manifest.tables.reduce(0) { $0 + $1.rows }),
                  (manifest.scope ?? .full).rawValue])
        return Set(try await connection.query(
            "SELECT stg_table FROM tributary.snapshot_tables WHERE source = $1 AND snapshot_lsn = $2::pg_lsn",
            [manifest.source, lsn]).column(String.self))
    }

    /// The object keys of the parts already in their load tables.
    public func loadedParts(_ source: String, snapshot lsn: LSN) async throws -> Set<String> {
        Set(try await connection.query(
            "SELECT object_key FROM tributary.snapshot_parts WHERE source = $1 AND snapshot_lsn = $2::pg_lsn",
            [source, lsn.description]).column(String.self))
    }

    /// Snapshots of `source` older than `lsn` still recorded as loading: they can never be applied now.
    public func abandonedSnapshots(_ source: String, olderThan lsn: LSN) async throws -> [(lsn: LSN, tables: Int)] {
        try await connection.query("""
            SELECT snapshot_lsn, tables FROM tributary.snapshots
            WHERE source = $1 AND state = 'loading' AND snapshot_lsn < $2::pg_lsn AND kind = 'full'
            """, [source, lsn.description]).rows.map { (try $0.decode("snapshot_lsn"), try $0.decode("tables")) }
    }

    static func isPartLoaded(_ source: String, snapshot lsn: LSN, key: String, on connection: isolated PostgresConnection) throws -> Bool {
        try !connection.query("""
            SELECT 1 FROM tributary.snapshot_parts WHERE source = $1 AND snapshot_lsn = $2::pg_lsn AND object_key = $3
            """, [source, lsn.description, key]).isEmpty
    }

    static func recordPart(_ source: String, snapshot lsn: LSN, key: String, rows: Int, on connection: isolated PostgresConnection) throws {
        try connection.query("""
            INSERT INTO tributary.snapshot_parts (source, snapshot_lsn, object_key, rows) VALUES ($1, $2::pg_lsn, $3, $4)
            """, [source, lsn.description, key, String(rows)])
    }

    /// Rows of the recorded parts among `keys`.
    static func rowsOfParts(_ source: String, snapshot lsn: LSN, keys: [String], on connection: isolated PostgresConnection) throws -> Int {
        try connection.query("""
            SELECT coalesce(sum(rows), 0) FROM tributary.snapshot_parts
            WHERE source = $1 AND snapshot_lsn = $2::pg_lsn AND object_key = ANY($3::text[])
            """, [source, lsn.description, PostgresArray.literal(keys)]).scalar(Int.self)
    }

    /// - Parameter merged: merged into an STG table by LSN (a table snapshot), not swapped in whole.
    static func recordPromotion(_ source: String, snapshot lsn: LSN, table: SnapshotTable, rows: Int, merged: Bool = false,
                                on connection: isolated PostgresConnection) throws {
        try connection.query("""
            INSERT INTO tributary.snapshot_tables (source, snapshot_lsn, stg_table, source_table, rows, merged)
            VALUES ($1, $2::pg_lsn, $3, $4, $5, $6)
            """, [source, lsn.description, table.stagingTable, table.relation.table.description, String(rows), String(merged)])
    }

    /// A table snapshot is in STG: its record only; the source's stream position is the full snapshot's business.
    static func markTableSnapshotApplied(_ manifest: SnapshotManifest, on connection: isolated PostgresConnection) throws {
        try connection.query("""
            UPDATE tributary.snapshots SET state = 'applied', finished_at = now() WHERE source = $1 AND snapshot_lsn = $2::pg_lsn
            """, [manifest.source, manifest.consistentPoint.description])
    }

    /// The snapshot is in STG: the stream of its source restarts at its consistent point.
    static func markApplied(_ manifest: SnapshotManifest, on connection: isolated PostgresConnection) throws {
        let lsn = manifest.consistentPoint.description
        try connection.query("""
            UPDATE tributary.snapshots SET state = 'applied', finished_at = now() WHERE source = $1 AND snapshot_lsn = $2::pg_lsn
            """, [manifest.source, lsn])
        try connection.query("""
            INSERT INTO tributary.sources AS s (source, slot, snapshot_lsn, applied_lsn)
            VALUES ($1, $2, $3::pg_lsn, $3::pg_lsn)
            ON CONFLICT (source) DO UPDATE SET slot = excluded.slot, snapshot_lsn = excluded.snapshot_lsn,
                applied_lsn = excluded.applied_lsn, applied_commit_time = NULL, updated_at = now()
            """, [manifest.source, manifest.slot, lsn])
    }

    /// Forgets a snapshot that can never be applied (its load tables are dropped by the caller).
    static func forgetSnapshot(_ source: String, snapshot lsn: LSN, on connection: isolated PostgresConnection) throws {
        for table in ["snapshot_parts", "snapshots"] {
            try connection.query("DELETE FROM tributary.\(table) WHERE source = $1 AND snapshot_lsn = $2::pg_lsn", [source, lsn.description])
        }
    }
}
