import Logging
import TributaryPostgres

/// A session-level advisory lock named by text, held around some work: it keeps processes that
/// must not do the same work at once apart (two snapshots making one source's slot, two loads of
/// one source's snapshots), wherever they run, as long as they share the database.
struct AdvisoryLock: Sendable {
    let name: String

    /// Runs `body` holding the lock, waiting first for a process that holds it (said once, as `waitingFor`).
    func around<T>(on connection: PostgresConnection, waitingFor: String, logger: Logger,
                   _ body: () async throws -> T) async throws -> T {
        if try await !tryLock(on: connection) {
            logger.notice("waiting for \(waitingFor)")
            try await connection.query("SELECT pg_advisory_lock(hashtextextended($1, 0))", [name])
        }
        return try await holding(on: connection, body)
    }

    /// Runs `body` holding the lock if no process holds it now; nil, without running it, if one does.
    func ifFree<T>(on connection: PostgresConnection, _ body: () async throws -> T) async throws -> T? {
        guard try await tryLock(on: connection) else { return nil }
        return try await holding(on: connection, body)
    }

    private func tryLock(on connection: PostgresConnection) async throws -> Bool {
        try await connection.query("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", [name]).scalar(Bool.self)
    }

    /// Released before the session closes: a closed session's backend drops its locks only as it
    /// exits, and the next process must not find the lock still held.
    private func holding<T>(on connection: PostgresConnection, _ body: () async throws -> T) async throws -> T {
        let result: T
        do {
            result = try await body()
        } catch {
            _ = try? await connection.query("SELECT pg_advisory_unlock(hashtextextended($1, 0))", [name])
            throw error
        }
        try await connection.query("SELECT pg_advisory_unlock(hashtextextended($1, 0))", [name])
        return result
    }
}
