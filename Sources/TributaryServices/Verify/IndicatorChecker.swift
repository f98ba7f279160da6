import Foundation
import TributaryCore
import TributaryPostgres

/// Runs a source's key-indicator queries (`checks:` in its YAML) on the source and on the target and
/// compares their results row for row, as text.
public struct IndicatorChecker: Sendable {
    public struct Outcome: Sendable, Equatable {
        public var source: String
        public var name: String
        public var sourceRows: [[String?]]
        public var targetRows: [[String?]]?
        public var problem: String?

        public var matches: Bool { problem == nil && sourceRows == targetRows }
    }

    public let endpoints: Endpoints

    public init(endpoints: Endpoints) { self.endpoints = endpoints }

    /// - Parameter snapshot: an exported snapshot the source's queries run under (a verify's point).
    public func run(source: SourceConfiguration, snapshot: String? = nil) async throws -> [Outcome] {
        guard !source.checks.isEmpty else { return [] }
        return try await endpoints.source(source).withConnection(for: "verify") { sourceConnection in
            if let snapshot {
                try await sourceConnection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                try await sourceConnection.execute("SET TRANSACTION SNAPSHOT \(SQL.literal(snapshot))")
            }
            return try await endpoints.target.withConnection(for: "verify") { targetConnection in
                try await run(source.checks, of: source, inTransaction: snapshot != nil, sourceConnection: sourceConnection,
                              targetConnection: targetConnection)
            }
        }
    }

    /// - Parameter inTransaction: the source's queries run inside the snapshot's transaction: one
    ///   that fails must not end it for the next.
    private func run(_ checks: [IndicatorCheck], of source: SourceConfiguration, inTransaction: Bool, sourceConnection: PostgresConnection,
                     targetConnection: PostgresConnection) async throws -> [Outcome] {
        var outcomes: [Outcome] = []
        for check in checks {
            var outcome = Outcome(source: source.name, name: check.name, sourceRows: [], targetRows: nil, problem: nil)
            do {
                if inTransaction { try await sourceConnection.execute("SAVEPOINT tributary_check") }
                outcome.sourceRows = try await sourceConnection.query(check.sourceSQL).rows.map(\.values)
            } catch let error as PostgresError {
                if inTransaction { try await sourceConnection.execute("ROLLBACK TO SAVEPOINT tributary_check") }
                outcome.problem = "the source query failed (fix checks: \(check.name) in \(source.file)): \(error)"
            }
            if outcome.problem == nil {
                do {
                    outcome.targetRows = try await targetConnection.query(check.targetSQL).rows.map(\.values)
                } catch let error as PostgresError {
                    outcome.problem = "the target query failed (fix checks: \(check.name) in \(source.file)): \(error)"
                }
            }
            outcomes.append(outcome)
        }
        return outcomes
    }
}
