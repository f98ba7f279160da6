import TributaryPostgres
import TributaryServices

extension PostgresConnection {
    /// A test's own connection (a workload, a check of what tributary wrote), with the session
    /// settings tributary's control sessions have, so values read back in the same text forms.
    static func connect(_ conninfo: String, name: String) async throws -> PostgresConnection {
        try await connect(conninfo, name: name, applicationName: "tributary test", session: SessionProfile.control.statements)
    }
}
