import Foundation
import TributaryCore
import TributaryPostgres

/// The BL models' relationships (`references:`): per reference, the rows that point at nothing,
/// recorded in the control state for `status`.
public struct ReferenceCheck: Sendable {
    public struct Outcome: Sendable, Equatable {
        public var model: String
        /// `party_id → bl.party(party_id)`.
        public var reference: String
        public var orphans: Int
        /// Up to ten orphans: `(key) → (the values that point at nothing)`.
        public var sample: [String]
        public var onOrphan: TransformModel.Reference.OnOrphan
        /// The model's table is not built yet: nothing was counted.
        public var notBuilt = false

        /// No orphan, or orphans this reference only warns of.
        public var passes: Bool { orphans == 0 || onOrphan == .warn }
    }

    public let endpoints: Endpoints

    public init(endpoints: Endpoints) { self.endpoints = endpoints }

    /// Every reference of `models` whose tables exist counted; the counts recorded.
    public func run(_ models: [TransformModel]) async throws -> [Outcome] {
        guard models.contains(where: { !$0.references.isEmpty }) else { return [] }
        return try await endpoints.target.withControl(migrate: true, for: "verify") { control in
            var outcomes: [Outcome] = []
            for model in models {
                for reference in model.references {
                    var outcome = Outcome(model: model.name, reference: reference.description, orphans: 0, sample: [], onOrphan: reference.onOrphan)
                    let built = try await control.connection.query("SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL",
                                                                   [model.table.sql, reference.target.sql]).scalar(Bool.self)
                    if built {
                        let row = try await control.connection.query(
                            ReferenceSQL.orphans(model, reference, target: models.first { $0.table == reference.target })).rows[0]
                        outcome.orphans = try row.decode("orphans")
                        let sample = try row.decode("sample", as: String.self)
                        outcome.sample = (try? JSONDecoder().decode([String].self, from: Data(sample.utf8))) ?? []
                        try await control.recordReferenceCheck(model: model.name, reference: reference.description, orphans: outcome.orphans,
                                                               sample: outcome.sample)
                    } else {
                        outcome.notBuilt = true
                    }
                    outcomes.append(outcome)
                }
            }
            return outcomes
        }
    }

    /// Every reference's columns exist in the model tables that exist (a model not built yet is
    /// not checked): before anything is held or changed, a reference to a column that is not
    /// there is a configuration error naming the file and the key.
    public func validate(_ models: [TransformModel]) async throws {
        guard models.contains(where: { !$0.references.isEmpty }) else { return }
        try await endpoints.target.withConnection(for: "verify") { connection in
            var columns: [QualifiedName: Set<String>] = [:]
            func columnsOf(_ table: QualifiedName) async throws -> Set<String> {
                if let known = columns[table] { return known }
                let found = Set(try await connection.query(ReferenceSQL.columns(of: table)).column(String.self))
                columns[table] = found
                return found
            }
            for model in models {
                for (index, reference) in model.references.enumerated() {
                    let own = try await columnsOf(model.table)
                    if !own.isEmpty, let missing = reference.columns.first(where: { !own.contains($0) }) {
                        throw TributaryError.configuration(file: model.file, keyPath: "references[\(index)].columns",
                                                           problem: "\(model.table) has no column \(missing)")
                    }
                    let target = try await columnsOf(reference.target)
                    if !target.isEmpty, let missing = reference.targetColumns.first(where: { !target.contains($0) }) {
                        throw TributaryError.configuration(file: model.file, keyPath: "references[\(index)].to",
                                                           problem: "\(reference.target) has no column \(missing)")
                    }
                }
            }
        }
    }
}
