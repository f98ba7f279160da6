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

    public let target: String

    public init(target: String) { self.target = target }

    public func run(source: SourceConfiguration) async throws -> [Outcome] {
        guard !source.checks.isEmpty else { return [] }
        let sourceConnection = try await PostgresConnection.connect(source.connection, name: source.name, applicationName: "tributary verify")
        let targetConnection = try await PostgresConnection.connect(target, name: "target", applicationName: "tributary verify")
        var outcomes: [Outcome] = []
        for check in source.checks {
            var outcome = Outcome(source: source.name, name: check.name, sourceRows: [], targetRows: nil, problem: nil)
            do {
                outcome.sourceRows = try await sourceConnection.query(check.sourceSQL).rows.map(\.values)
            } catch let error as PostgresError {
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
        await sourceConnection.close()
        await targetConnection.close()
        return outcomes
    }
}
