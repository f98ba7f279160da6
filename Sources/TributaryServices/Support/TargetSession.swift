import TributaryPostgres

/// A connection to the target for loading and applying. A bulk COPY, a key build or a large
/// merge can take minutes, and a frozen run waits between parts with its transaction open, so
/// the target's `statement_timeout` and `idle_in_transaction_session_timeout`, sensible for
/// applications, are lifted for these sessions, as pg_restore does.
enum TargetSession {
    static func connect(_ target: String) async throws -> PostgresConnection {
        let connection = try await PostgresConnection.connect(target, name: "target", applicationName: "tributary apply")
        try await connection.execute("SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0")
        return connection
    }
}
