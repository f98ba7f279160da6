import Foundation
import Logging
import TributaryCore
import TributaryPostgres

/// Runs BL models against the target (DESIGN.md §4b): `tributary transform`, the drain, and the
/// continuous `TransformPart` all come here. Models run in dependency order; a model that
/// fails stops itself and the models reading it, the others go on, and its error is recorded for
/// `status` until a run succeeds.
public struct TransformRunner: Sendable {
    public typealias Outcome = ModelOutcome

    public let configuration: Configuration
    public let endpoints: Endpoints
    public let logger: Logger

    public init(configuration: Configuration, endpoints: Endpoints, logger: Logger) {
        self.configuration = configuration
        self.endpoints = endpoints
        self.logger = logger
    }

    /// The sources whose STG tables `model` reads.
    func sources(of model: TransformModel) -> Set<String> {
        Set(model.inputs.compactMap { configuration.source(ofStagingTable: $0.table.name)?.name })
    }

    /// Runs `selected` (all when empty) once, in dependency order.
    /// - Parameters:
    ///   - full: reload the selected models whole.
    ///   - dryRun: run in a transaction that is rolled back: counts and SQL, nothing changed.
    ///   - wait: wait for another process running a model instead of skipping it.
    ///   - jobs: models at once, each on a connection of its own (default `bl.jobs`); models that
    ///     read each other still run one after the other.
    public func run(_ selected: [TransformModel] = [], full: Bool = false, dryRun: Bool = false, wait: Bool = true,
                    jobs: Int? = nil) async throws -> [Outcome] {
        let names = Set((selected.isEmpty ? configuration.models : selected).map(\.name))
        var pending = configuration.models.filter { names.contains($0.name) }
        var idle: [ControlStore] = []
        do {
            for _ in 0..<max(1, min(jobs ?? configuration.target.transform.jobs, pending.count)) {
                idle.append(try await endpoints.target.openControl(migrate: !dryRun, .apply, for: "bl"))
            }
            let outcomes = try await run(&pending, full: full, dryRun: dryRun, wait: wait, sessions: &idle)
            for control in idle { await control.close() }
            return outcomes
        } catch {
            for control in idle { await control.close() }
            throw error
        }
    }

    /// Runs `pending` on the sessions `idle`, as many at once as there are sessions.
    private func run(_ pending: inout [TransformModel], full: Bool, dryRun: Bool, wait: Bool,
                     sessions idle: inout [ControlStore]) async throws -> [Outcome] {
        var outcomes: [String: Outcome] = [:]
        var failed: Set<String> = []
        let all = configuration.models
        try await withThrowingTaskGroup(of: (Outcome, ControlStore).self) { group in
            var running: Set<String> = []
            while !pending.isEmpty || !running.isEmpty {
                let before = pending.count
                for model in TransformOrder.startable(pending, running: running, finished: Set(outcomes.keys), all: all) where !idle.isEmpty {
                    pending.removeAll { $0.name == model.name }
                    if let blocker = model.upstreamTables.first(where: { table in all.contains { $0.table == table && failed.contains($0.name) } }) {
                        outcomes[model.name] = Outcome(model: model.name, result: .skipped("\(blocker) failed"))
                        failed.insert(model.name)
                        continue
                    }
                    let control = idle.removeLast()
                    running.insert(model.name)
                    group.addTask { (await runOne(model, full: full, dryRun: dryRun, wait: wait, control: control), control) }
                }
                guard let (outcome, control) = try await group.next() else {
                    // Nothing ran: only skips were made, or (never, with sorted models) nothing could start.
                    guard pending.count < before else { throw TributaryError(.model, "BL models could not be ordered: \(pending.map(\.name))") }
                    continue
                }
                running.remove(outcome.model)
                idle.append(control)
                if outcome.isFailure { failed.insert(outcome.model) }
                outcomes[outcome.model] = outcome
            }
        }
        return configuration.models.compactMap { outcomes[$0.name] }
    }

    /// One model; a failure is recorded and returned, never thrown.
    func runOne(_ model: TransformModel, full: Bool, dryRun: Bool, wait: Bool, control: ControlStore) async -> Outcome {
        let (all, sources, logger) = (configuration.models, sources(of: model), logger)
        do {
            let outcome = try await control.connection.run { connection in
                var run = ModelRun(model: model, all: all, sources: sources, logger: logger)
                return try run.run(full: full, dryRun: dryRun, wait: wait, on: connection)
            }
            let result = ModelOutcome(outcome)
            log(model, result)
            return result
        } catch {
            let error = await renamedColumnError(error, model: model, control: control) ?? error
            PipelineMetrics.transformFailed(model: model.name)
            logger.error("model failed", metadata: [LogKey.model: .string(model.name), LogKey.error: .string("\(error)")])
            if !dryRun { try? await control.recordFailure(of: model.name, error: "\(error)") }
            return ModelOutcome(model: model.name, result: .failed("\(error)"))
        }
    }

    /// A model that reads a column the source renamed (and STG followed) fails on the old name:
    /// said with the model, the column and its new name, which is what the operator edits.
    func renamedColumnError(_ error: any Error, model: TransformModel, control: ControlStore) async -> TributaryError? {
        guard let error = error as? PostgresError, error.sqlState == PostgresError.undefinedColumn,
              let missing = error.message.firstMatch(of: /column "?(?:[\w.]+\.)?([^" ]+)"? does not exist/)?.1 else { return nil }
        let inputs = model.inputs.map(\.table).filter { $0.schema == StagingColumns.schema }
        for input in inputs {
            guard let changes = try? await control.connection.query("""
                SELECT change FROM tributary.schema_changes WHERE stg_table = $1 AND kind = 'rename column' ORDER BY id DESC
                """, [input.name]).column(String.self) else { continue }
            for change in changes {
                for rename in change.split(separator: ",") {
                    if let match = rename.firstMatch(of: /column (\S+) renamed to (\S+)/), match.1 == missing {
                        return TributaryError(.model, """
                            model \(model.name) reads column \(missing) of \(input), which the source renamed to \(match.2): \
                            write \(match.2) in \(model.file.replacingOccurrences(of: ".yaml", with: ".sql")) (\(error.message))
                            """, context: [LogKey.model: model.name, LogKey.column: String(missing)])
                    }
                }
            }
        }
        return nil
    }

    private func log(_ model: TransformModel, _ outcome: Outcome) {
        guard case .ran(let kind, let counts) = outcome.result else { return }
        PipelineMetrics.transformRan(model: model.name, inserted: counts.inserted, updated: counts.updated, removed: counts.removed)
        logger.info(kind == .full ? "model reloaded" : "model updated", metadata: [
            LogKey.model: .string(model.name), LogKey.inserted: .stringConvertible(counts.inserted), LogKey.updated: .stringConvertible(counts.updated),
            LogKey.removed: .stringConvertible(counts.removed), LogKey.keys: .stringConvertible(counts.affectedKeys),
            LogKey.seconds: .string(String(format: "%.3f", outcome.seconds)),
        ])
    }

    /// The whole of each model into `schema`, beside the live tables: what a full reload makes of
    /// the inputs now, for a comparison with what the incremental runs made.
    public func reload(into schema: String) async throws -> [String: Int] {
        try await endpoints.target.withConnection(.apply, for: "bl check") { connection in
            var rows: [String: Int] = [:]
            for model in configuration.models {
                let (all, sources, logger) = (configuration.models, sources(of: model), logger)
                rows[model.name] = try await connection.run { connection in
                    var run = ModelRun(model: model, all: all, sources: sources, logger: logger)
                    return try run.reload(into: schema, on: connection)
                }
            }
            return rows
        }
    }
}

/// What one model's run did.
public struct ModelOutcome: Sendable {
    public enum Kind: Sendable, Equatable { case incremental, full }

    public struct Counts: Sendable, Equatable {
        public var inserted = 0, updated = 0, removed = 0, affectedKeys = 0
        public var changedRows: Int { inserted + updated + removed }
    }

    public enum Result: Sendable {
        case ran(Kind, Counts)
        case nothingToDo
        /// An input table does not exist yet.
        case waiting(String)
        /// Another process runs the model now.
        case busy
        /// A model it reads failed.
        case skipped(String)
        case failed(String)
    }

    public var model: String
    public var result: Result
    public var seconds = 0.0
    /// Dry runs: the statements that would have run.
    public var statements: [String] = []

    init(model: String, result: Result) {
        self.model = model
        self.result = result
    }

    init(_ outcome: ModelRun.Outcome) {
        model = outcome.model
        let counts = Counts(inserted: outcome.inserted, updated: outcome.updated, removed: outcome.removed, affectedKeys: outcome.affectedKeys)
        switch outcome.kind {
        case .incremental: result = .ran(.incremental, counts)
        case .full: result = .ran(.full, counts)
        case .nothingToDo: result = .nothingToDo
        case .waiting(let table): result = .waiting(table)
        case .busy: result = .busy
        }
        seconds = outcome.seconds
        statements = outcome.statements
    }

    public var isFailure: Bool { if case .failed = result { return true } else { return false } }

    /// For the scheduler: whether models reading this one have work now.
    public var schedulerOutcome: TransformScheduler.Outcome {
        switch result {
        case .ran(_, let counts): return counts.changedRows > 0 ? .changed : .unchanged
        case .nothingToDo, .busy: return .unchanged
        case .waiting: return .waiting
        case .skipped, .failed: return .failed
        }
    }
}

/// Whether each BL table equals a full reload of its model now: the invariant of incremental runs.
public struct TransformCheck: Sendable {
    public struct Difference: Sendable, Equatable {
        public var model: String
        /// Rows in the model's table that a full reload would not make.
        public var onlyInTable: Int
        /// Rows a full reload would make that the table lacks.
        public var onlyInReload: Int
        public var reloadRows: Int
        public var matches: Bool { onlyInTable == 0 && onlyInReload == 0 }
    }

    public static let schema = "tributary_bl_check"

    public let runner: TransformRunner

    public init(runner: TransformRunner) { self.runner = runner }

    /// Builds every model whole into a scratch schema and compares it with the live table, row for
    /// row (as text, so any type compares); drops the scratch schema after.
    public func run() async throws -> [Difference] {
        let rows = try await runner.reload(into: Self.schema)
        return try await runner.endpoints.target.withConnection(for: "bl check") { connection in
            try await compare(rows: rows, on: connection)
        }
    }

    private func compare(rows: [String: Int], on connection: PostgresConnection) async throws -> [Difference] {
        var differences: [Difference] = []
        for model in runner.configuration.models {
            // A flagging model keeps the rows of keys it no longer makes, flagged: those are not a reload's.
            let live = model.deletes == .flag ? "(SELECT * FROM \(model.table.sql) WHERE NOT \(SQL.identifier(TransformSQL.deleted)))" : model.table.sql
            let scratch = QualifiedName(schema: Self.schema, name: model.table.name).sql
            let counts = try await connection.query("""
                SELECT (SELECT count(*) FROM (SELECT t::text FROM \(live) t EXCEPT ALL SELECT s::text FROM \(scratch) s) a) AS only_table,
                       (SELECT count(*) FROM (SELECT s::text FROM \(scratch) s EXCEPT ALL SELECT t::text FROM \(live) t) b) AS only_reload
                """).rows[0]
            differences.append(Difference(model: model.name, onlyInTable: try counts.decode("only_table"),
                                          onlyInReload: try counts.decode("only_reload"), reloadRows: rows[model.name] ?? 0))
        }
        try await connection.execute("DROP SCHEMA \(SQL.identifier(Self.schema)) CASCADE")
        return differences
    }
}
