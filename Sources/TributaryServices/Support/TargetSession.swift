import TributaryPostgres

/// A connection to the target for loading and applying. A bulk COPY, a key build or a large
/// merge can take minutes, and a frozen run waits between parts with its transaction open, so
/// the target's `statement_timeout` and `idle_in_transaction_session_timeout`, sensible for
/// applications, are lifted for these sessions, as pg_restore does.
enum TargetSession {
    static func connect(_ target: String) async throws -> PostgresConnection {
        let connection = try await PostgresConnection.connect(target, name: "target", applicationName: "tributary apply")
        try await connection.execute("SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0; \(temporaryBuffers)")
        return connection
    }

    /// A batch (up to 64 MiB of CSV, a group up to 256 MiB) and a BL run's evaluated rows live in
    /// temporary tables; at PostgreSQL's default of 8MB of buffers for them, every larger one went
    /// to temporary files and was read back from there: on 30-column rows of 1.5 KB, 7.1 s to
    /// apply 200,000 changes, 5.2 s with 512MB. Memory is taken only as the tables fill, and
    /// the setting must come before the session's first temporary table.
    static let temporaryBuffers = "SET temp_buffers = '256MB'"
}
