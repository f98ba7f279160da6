import TributaryCore
import TributaryPostgres

/// Requirements a source must meet before a slot can be created or consumed.
enum SourceChecks {
    static func requireLogicalDecoding(on connection: PostgresConnection, source: SourceConfiguration) async throws {
        let settings = try await connection.query("""
            SELECT current_setting('wal_level') AS wal_level,
                   (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS may_replicate,
                   current_user AS role
            """)
        let row = settings.rows[0]
        let walLevel = try row.decode("wal_level", as: String.self)
        guard walLevel == "logical" else {
            throw TributaryError(.requirement, "wal_level is \(walLevel) on \(source.name): set wal_level = logical in postgresql.conf and restart the server")
        }
        guard try row.decodeIfPresent("may_replicate", as: Bool.self) == true else {
            let role = try row.decode("role", as: String.self)
            throw TributaryError(.requirement, "role \(role) on \(source.name) may not replicate: ALTER ROLE \(SQL.identifier(role)) WITH REPLICATION")
        }
    }
}
