import TributaryCore
import TributaryPostgres

/// What a session is for, and so which settings it gets: the one place Tributary writes session
/// settings.
public enum SessionProfile: Sendable {
    /// Control state, status, checks, verify, the source's catalog: the pinned text forms only.
    case control
    /// Loading and applying to STG, and BL runs: as `control`, and statements and open
    /// transactions without the target's timeouts, and room for temporary tables.
    case apply
    /// A source's applier, merging its change batches into STG: as `apply`, without JIT
    /// compilation. A merge of 30-column rows is estimated above `jit_above_cost` from about
    /// 60,000 changes on, and compiling its expressions took 0.3-0.6 s a batch, more than the
    /// merge itself.
    case merging
    /// A replication connection (`replication=database`) to a source.
    case replication

    /// Pinned on every connection so values come out in one canonical text form (DESIGN.md §3).
    static let textForms = """
        SET DateStyle = ISO; SET IntervalStyle = postgres; SET TimeZone = 'UTC'; \
        SET extra_float_digits = 3; SET bytea_output = hex
        """

    /// A bulk COPY, a key build or a large merge can take minutes, and a frozen run waits between
    /// parts with its transaction open, so the target's `statement_timeout` and
    /// `idle_in_transaction_session_timeout`, sensible for applications, are lifted for these
    /// sessions, as pg_restore does.
    ///
    /// A batch (up to 64 MiB of CSV) and a BL run's evaluated rows live in temporary tables; at
    /// PostgreSQL's default of 8MB of buffers for them, every larger one went to temporary files
    /// and was read back from there: on 30-column rows of 1.5 KB, 7.1 s to apply 200,000 changes,
    /// 5.2 s with 512MB. Memory is taken only as the tables fill, and the setting must come before
    /// the session's first temporary table. The reused load and changes tables' `CREATE … IF NOT
    /// EXISTS` says a NOTICE per table per batch (hundreds, at breadth), which the client drops:
    /// the server does not send them.
    static let longWork = "SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0; SET temp_buffers = '256MB'; "
        + "SET client_min_messages = warning"

    public var statements: String {
        switch self {
        case .control, .replication: Self.textForms
        case .apply: Self.textForms + "; " + Self.longWork
        case .merging: Self.textForms + "; " + Self.longWork + "; SET jit = off"
        }
    }
}

/// The endpoints of one process: the target and each source, each handing out its connections
/// with the process's command in their application name (`tributary run apply qvp`), so
/// `pg_stat_activity` tells every session apart.
public struct Endpoints: Sendable {
    public let command: String
    public let target: TargetEndpoint

    public init(_ configuration: Configuration, command: String) {
        self.command = command
        target = TargetEndpoint(configuration.target, command: command)
    }

    public func source(_ source: SourceConfiguration) -> SourceEndpoint {
        SourceEndpoint(source, command: command)
    }
}

/// The Uni PACC database: owns its connection string (never logged) and opens sessions by profile.
public struct TargetEndpoint: Sendable {
    private let conninfo: String
    public let command: String

    public init(_ target: TargetConfiguration, command: String) {
        conninfo = target.connection
        self.command = command
    }

    /// A session the caller owns and must close (a part's held connection).
    /// - Parameter purpose: what the session does, for its application name (`apply qvp`).
    public func connect(_ profile: SessionProfile = .control, for purpose: String = "") async throws -> PostgresConnection {
        try await PostgresConnection.connect(conninfo, name: "target", applicationName: applicationName(command, purpose),
                                             session: profile.statements)
    }

    /// A session for `body` only, closed when it returns or throws.
    public func withConnection<T>(_ profile: SessionProfile = .control, for purpose: String = "",
                                  _ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await scoped(try await connect(profile, for: purpose), body)
    }

    /// The control state on a session the caller owns; writers migrate the schema first, readers
    /// never change it.
    public func openControl(migrate: Bool, _ profile: SessionProfile = .control, for purpose: String = "") async throws -> ControlStore {
        let connection = try await connect(profile, for: purpose)
        do {
            if migrate { try await connection.run { try ControlSchema.migrate(on: $0) } }
            return ControlStore(connection)
        } catch {
            await connection.close()
            throw error
        }
    }

    /// The control state for `body` only.
    public func withControl<T>(migrate: Bool, _ profile: SessionProfile = .control, for purpose: String = "",
                               _ body: (ControlStore) async throws -> T) async throws -> T {
        let control = try await openControl(migrate: migrate, profile, for: purpose)
        return try await scoped(control.connection) { _ in try await body(control) }
    }
}

/// One source database: owns its connection string (never logged) and opens its sessions.
public struct SourceEndpoint: Sendable {
    private let conninfo: String
    public let name: String
    public let command: String

    public init(_ source: SourceConfiguration, command: String) {
        conninfo = source.connection
        name = source.name
        self.command = command
    }

    /// A session the caller owns and must close; `.replication` opens a replication connection.
    public func connect(_ profile: SessionProfile = .control, for purpose: String = "") async throws -> PostgresConnection {
        try await PostgresConnection.connect(conninfo, name: name, mode: profile == .replication ? .replication : .regular,
                                             applicationName: applicationName(command, purpose), session: profile.statements)
    }

    /// A session for `body` only, closed when it returns or throws.
    public func withConnection<T>(_ profile: SessionProfile = .control, for purpose: String = "",
                                  _ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await scoped(try await connect(profile, for: purpose), body)
    }
}

/// `tributary <command> <purpose>`: the one spelling of an application name.
private func applicationName(_ command: String, _ purpose: String) -> String {
    purpose.isEmpty ? "tributary \(command)" : "tributary \(command) \(purpose)"
}

/// Runs `body` with `connection` and closes it after, whatever happens: a connection is never
/// left to a fire-and-forget close.
private func scoped<T>(_ connection: PostgresConnection, _ body: (PostgresConnection) async throws -> T) async throws -> T {
    do {
        let value = try await body(connection)
        await connection.close()
        return value
    } catch {
        await connection.close()
        throw error
    }
}
