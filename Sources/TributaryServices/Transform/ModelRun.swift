import Foundation
import Logging
import TributaryCore
import TributaryPostgres

/// One run of one BL model, in one REPEATABLE READ transaction on the target (DESIGN.md §4b):
/// incremental by affected keys, or a full reload built beside the model's table and swapped in.
/// The model's writes, its key maps and its watermarks commit together, so a kill anywhere leaves
/// the model as it was before the run or as it is after it, and the next run picks up from there.
struct ModelRun {
    struct Outcome: Sendable {
        enum Kind: Sendable, Equatable {
            case incremental, full, nothingToDo
            /// An input table does not exist yet (its source is not snapshotted).
            case waiting(String)
            /// Another process runs this model now.
            case busy
        }

        var model: String
        var kind: Kind
        var inserted = 0, updated = 0, removed = 0
        var affectedKeys = 0
        var seconds = 0.0
        /// Dry runs: the statements that would have run.
        var statements: [String] = []

        var changedRows: Int { inserted + updated + removed }
    }

    /// Input rows waiting beyond this are counted as "at least" this many.
    static let pendingCap = 1_000_000
    /// Above this many affected keys the SELECT is filtered by a join only: evaluating it whole is
    /// cheaper than pushing a huge list of values into its branches.
    static let pushdownKeysMax = 50_000
    /// Beyond this many values of a model's first key column, the SELECT is filtered by the join only.
    static let pushdownGroupsMax = 16

    let model: TransformModel
    let all: [TransformModel]
    /// The sources whose STG tables the model reads.
    let sources: Set<String>
    let sql: TransformSQL
    let logger: Logger
    /// Statements run, for a dry run's report.
    var statements: [String] = []
    var recording = false

    init(model: TransformModel, all: [TransformModel], sources: Set<String>, logger: Logger) {
        self.model = model
        self.all = all
        self.sources = sources
        sql = TransformSQL(model: model)
        self.logger = logger
    }

    var dependants: [TransformModel] { all.filter { $0.upstreamTables.contains(model.table) } }

    /// Runs the model; `full` forces a reload, `dryRun` rolls everything back after counting.
    mutating func run(full requested: Bool, dryRun: Bool, wait: Bool, on connection: isolated PostgresConnection) throws -> Outcome {
        let started = ContinuousClock.now
        recording = dryRun
        guard try lock(wait: wait, on: connection) else { return Outcome(model: model.name, kind: .busy) }
        defer { _ = try? connection.query("SELECT pg_advisory_unlock(hashtextextended($1, 0))", [lockKey]) }
        if requested && !model.fullRefresh {
            throw TributaryError(.model, "model \(model.name) has full_refresh: false in \(model.file): it is only ever loaded incrementally")
        }
        let shapes: [TransformSQL.InputShape]
        switch try self.shapes(on: connection) {
        case .missing(let table): return Outcome(model: model.name, kind: .waiting(table))
        case .ready(let ready): shapes = ready
        }
        try ensureChangeLogs(shapes: shapes, on: connection)
        if !dryRun { try ensureIndexes(on: connection) }
        try beginWithInputsLocked(on: connection)
        do {
            var outcome = try runInTransaction(full: requested, shapes: shapes, on: connection)
            try connection.execute(dryRun || outcome.kind == .nothingToDo ? "ROLLBACK" : "COMMIT")
            if outcome.kind == .full && !dryRun { vacuumReloaded(shapes: shapes, on: connection) }
            outcome.seconds = (ContinuousClock.now - started).seconds
            outcome.statements = statements
            return outcome
        } catch {
            try? connection.execute("ROLLBACK")
            throw error
        }
    }

    /// A reload leaves millions of rows no one has read yet: the first incremental runs would set
    /// their hint bits (dirtying the pages they read) and plan on key maps without statistics.
    /// VACUUM does both now, while the model's lock keeps its runs out, so they run at their
    /// steady pace from the first. It is housekeeping: if it fails, autovacuum does it later.
    private func vacuumReloaded(shapes: [TransformSQL.InputShape], on connection: isolated PostgresConnection) {
        let tables = sql.reloadedTables(keyMaps: shapes.compactMap(\.keyMap))
        do {
            try connection.execute("VACUUM (ANALYZE) " + tables.map(\.sql).joined(separator: ", "))
        } catch {
            logger.notice("could not vacuum the reloaded table; autovacuum will",
                          metadata: [LogKey.model: .string(model.name), LogKey.error: .string("\(error)")])
        }
    }

    /// The run's transaction, its inputs and its own table locked before its snapshot is taken.
    /// A reload elsewhere swaps a table in by a DROP and a rename, which is not MVCC-safe: a
    /// snapshot older than the swap would find the new table and none of its rows. Holding the
    /// locks first, the snapshot is taken after any swap that got in before, and none gets in after.
    /// The lock is ROW SHARE, not the ACCESS SHARE a read needs: a table snapshot's merge takes
    /// EXCLUSIVE (`TablePromotion`), so it and the runs reading its table exclude each other. It logs
    /// its keys at its consistent point, behind changes the applier logged since; a run whose
    /// snapshot missed the merge but saw those later changes would set its watermark past the
    /// merge's keys and never take them in (CI caught it: a resynced table's BL rows left stale).
    /// Nothing before the LOCK may take the snapshot, hence the catalog is asked first.
    mutating func beginWithInputsLocked(on connection: isolated PostgresConnection) throws {
        var tables: [QualifiedName] = []
        for table in model.inputs.map(\.table) + [model.table] where try TargetCatalog.exists(table, on: connection) {
            tables.append(table)
        }
        let lz4 = try TargetCatalog.hasLZ4(on: connection)
        try connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        // A run touches few rows of large tables, mostly in memory: priced at the default random
        // page cost, the planner reads whole tables where a few index probes would do.
        try connection.execute("SET LOCAL random_page_cost = 1.1")
        // The temporary tables and the model's table store large values with lz4 (see TargetCatalog.hasLZ4).
        if lz4 { try connection.execute("SET LOCAL default_toast_compression = lz4") }
        // The run analyzes its temporary tables for row counts and key distributions: a sample of
        // 3,000 rows tells the planner enough, at a tenth of the default's cost.
        try connection.execute("SET LOCAL default_statistics_target = 10")
        guard !tables.isEmpty else { return }
        try connection.execute("LOCK TABLE \(tables.map(\.sql).joined(separator: ", ")) IN \(Self.inputLockMode) MODE")
    }

    private mutating func runInTransaction(full requested: Bool, shapes: [TransformSQL.InputShape],
                                           on connection: isolated PostgresConnection) throws -> Outcome {
        let state = try ControlStore.modelState(model.name, on: connection)
        let watermarks = Dictionary(uniqueKeysWithValues: try ControlStore.watermarks(of: model.name, on: connection).map { ($0.input, $0) })
        if let reason = try fullReloadReason(requested: requested, state: state, watermarks: watermarks, shapes: shapes, on: connection) {
            if !requested && !model.fullRefresh && reason != "the model's table does not exist yet" {
                throw TributaryError(.model, "model \(model.name) needs a full reload (\(reason)), but \(model.file) says full_refresh: false: "
                                    + "allow it, or drop \(model.table) to build it anew")
            }
            logger.info("full reload", metadata: [LogKey.model: .string(model.name), LogKey.reason: .string(reason)])
            return try reload(shapes: shapes, on: connection)
        }
        try connection.execute("SAVEPOINT incremental")
        do {
            return try incremental(shapes: shapes, watermarks: watermarks, on: connection)
        } catch let drift as SchemaDrift where model.schemaDrift == .rebuild {
            try connection.execute("ROLLBACK TO SAVEPOINT incremental")
            logger.notice("full reload", metadata: [LogKey.model: .string(model.name), LogKey.reason: .string(drift.message)])
            return try reload(shapes: shapes, on: connection)
        }
    }

    /// How a run locks its inputs: what a table snapshot's merge (EXCLUSIVE) waits for.
    static let inputLockMode = "ROW SHARE"

    var lockKey: String { "tributary-bl:" + model.name }

    /// One run per model at a time, across processes. A session lock, taken before the run's
    /// transaction: a lock taken inside it would come after its snapshot, which could then be
    /// older than the run that held the lock before.
    private func lock(wait: Bool, on connection: isolated PostgresConnection) throws -> Bool {
        if try connection.query("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", [lockKey]).scalar(Bool.self) { return true }
        guard wait else { return false }
        logger.notice("another process is running this model: waiting for it", metadata: [LogKey.model: .string(model.name)])
        try connection.query("SELECT pg_advisory_lock(hashtextextended($1, 0))", [lockKey])
        return true
    }

    mutating func execute(_ statement: String, on connection: isolated PostgresConnection) throws {
        if recording { statements.append(statement) }
        let started = ContinuousClock.now
        try connection.execute(statement)
        // At trace level each statement's time, to see where a slow model spends it.
        if logger.logLevel <= .trace {
            logger.trace("statement", metadata: [LogKey.model: .string(model.name), LogKey.seconds: .string(String(format: "%.3f", (ContinuousClock.now - started).seconds)),
                                                 LogKey.sql: .string(String(statement.prefix(100)).replacingOccurrences(of: "\n", with: " "))])
        }
    }

    mutating func execute(_ statements: [String], on connection: isolated PostgresConnection) throws {
        for statement in statements { try execute(statement, on: connection) }
    }

    // MARK: What the run works with

    enum Shapes {
        case ready([TransformSQL.InputShape])
        case missing(String)
    }

    private func shapes(on connection: isolated PostgresConnection) throws -> Shapes {
        var shapes: [TransformSQL.InputShape] = []
        for (index, input) in model.inputs.enumerated() {
            guard try TargetCatalog.exists(input.table, on: connection) else { return .missing(input.table.description) }
            var shape = TransformSQL.InputShape(input: input, key: [])
            if let upstream = all.first(where: { $0.table == input.table }) {
                shape.upstream = upstream
                shape.key = upstream.key
                shape.columns = try TargetCatalog.columns(of: input.table, on: connection).map(\.name)
            } else {
                shape.key = try TargetCatalog.primaryKey(of: input.table, on: connection)
                guard !shape.key.isEmpty else { throw TributaryError(.model, "\(input.table), read by model \(model.name), has no primary key") }
            }
            if case .expressions = input.mapping {
                if try mapsByKeyOnly(shape, on: connection) {
                    shape.mapsByKeyOnly = true
                    // A map kept from before (or from a mapping since changed) would go stale.
                    if !recording, try TargetCatalog.exists(sql.keyMap(index), on: connection) {
                        try connection.execute("DROP TABLE \(sql.keyMap(index).sql)")
                    }
                } else {
                    shape.keyMap = sql.keyMap(index)
                }
            }
            shapes.append(shape)
        }
        return .ready(shapes)
    }

    /// Whether an input's mapping expressions read only its key (`TransformSQL.mapsByKeyOnly`),
    /// asked of the catalog in a transaction that is rolled back.
    private func mapsByKeyOnly(_ shape: TransformSQL.InputShape, on connection: isolated PostgresConnection) throws -> Bool {
        guard let probe = sql.mappingProbe(shape) else { return false }
        try connection.execute("BEGIN")
        defer { _ = try? connection.execute("ROLLBACK") }
        do {
            try connection.execute(probe)
        } catch {
            // The expressions do not compile against the table: the run itself will say why.
            return false
        }
        return try connection.query(TransformSQL.mapsByKeyOnly(input: shape.input.table, key: shape.key)).scalar(Bool.self)
    }

    /// The change log of every STG input (`StagingChangeLog`), before the run's transaction: the
    /// run finds its changes there. A log comes into being under a SHARE lock on its STG table, so
    /// the applier, which checks for the log under its own lock on the table, either logs a batch
    /// or wrote it before, where the seed finds it (rows after the oldest watermark of the table;
    /// none when no model has one yet: a model without a watermark reloads whole). Then the `_lsn`
    /// index earlier versions found changes by goes: it made every update of the table non-HOT.
    private mutating func ensureChangeLogs(shapes: [TransformSQL.InputShape], on connection: isolated PostgresConnection) throws {
        for shape in shapes where shape.upstream == nil {
            let log = TransformSQL.stagingLog(shape)
            if try !TargetCatalog.exists(log.log, on: connection) {
                let created = try connection.transaction { connection -> Bool in
                    // Two models reading one table may get here at once: one creates, the other finds it.
                    try connection.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", ["tributary-bl-log:" + log.log.description])
                    guard try !TargetCatalog.exists(log.log, on: connection) else { return false }
                    try connection.execute("LOCK TABLE \(shape.input.table.sql) IN SHARE MODE")
                    for statement in log.create { try connection.execute(statement) }
                    if let oldest = try ControlStore.oldestWatermark(of: shape.input.table.description, on: connection) {
                        try connection.execute(log.seed(after: oldest))
                    }
                    return true
                }
                if created { logger.info("created the change log of an input", metadata: [LogKey.model: .string(model.name), LogKey.table: .string(shape.input.table.description)]) }
            } else if try !connection.query(log.keysStoredUncompressed).scalar(Bool.self) {
                // A log made by an earlier version: its later rows are stored uncompressed.
                try execute(log.storeKeysUncompressed, on: connection)
            }
            let legacy = QualifiedName(schema: shape.input.table.schema, name: SQL.truncated(shape.input.table.name, bytes: 55) + "_lsn")
            if try TargetCatalog.exists(legacy, on: connection) {
                try execute("DROP INDEX CONCURRENTLY IF EXISTS \(legacy.sql)", on: connection)
                logger.notice("dropped the _lsn index of an input: its change log replaces it", metadata: [LogKey.table: .string(shape.input.table.description)])
            }
        }
    }

    /// The model's own `indexes:`. An STG table replaced by a new snapshot loses them; they come
    /// back here, built concurrently outside the run's transaction, so the applier's writes never
    /// wait for them.
    private mutating func ensureIndexes(on connection: isolated PostgresConnection) throws {
        for index in model.indexes {
            let qualified = QualifiedName(schema: index.table.schema, name: index.name)
            let valid = try connection.query("""
                SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass($1)
                """, [qualified.sql]).first.map { try $0.decode(at: 0, as: Bool.self) }
            if valid == true { continue }
            // A concurrent build that failed leaves an invalid index behind: it goes first.
            if valid == false { try execute("DROP INDEX CONCURRENTLY IF EXISTS \(qualified.sql)", on: connection) }
            logger.info("building an index an incremental run needs", metadata: [LogKey.model: .string(model.name), LogKey.index: .string(qualified.description)])
            try execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS \(SQL.identifier(index.name)) ON \(index.table.sql) \(index.columns)", on: connection)
            // An index on an expression has statistics only once its table is analyzed: without
            // them the planner guesses, and scans the table instead.
            try execute("ANALYZE \(index.table.sql)", on: connection)
        }
    }

    /// Why the run must rebuild the model whole, or nil when an incremental run is exact.
    private func fullReloadReason(requested: Bool, state: ControlStore.ModelState?, watermarks: [String: ControlStore.Watermark],
                                  shapes: [TransformSQL.InputShape], on connection: isolated PostgresConnection) throws -> String? {
        if requested { return "asked for" }
        guard try TargetCatalog.exists(model.table, on: connection) else { return "the model's table does not exist yet" }
        if state?.needsFull == true { return "a model it reads was rebuilt" }
        for shape in shapes {
            guard let watermark = watermarks[shape.input.table.description] else { return "\(shape.input.table) is a new input" }
            // Its mapping came to read more than the input's key: what rows mapped to before is unknown.
            if let map = shape.keyMap, try !TargetCatalog.exists(map, on: connection) { return "\(shape.input.table) has no key map yet" }
            if shape.upstream == nil,
               try ControlStore.loadedSnapshot(of: shape.input.table.name, on: connection) != watermark.epoch {
                return "\(shape.input.table) was loaded from a new snapshot"
            }
        }
        return nil
    }
}

extension ModelRun {
    /// An error in the model's rows, named by model and key.
    static func checkKeys(_ model: TransformModel, sql: TransformSQL, on connection: isolated PostgresConnection) throws {
        if !(try connection.query(sql.nullKey).isEmpty) {
            throw TributaryError(.model, "model \(model.name) produced a row with a NULL in its key (\(model.key.joined(separator: ", "))): fix \(model.file)")
        }
        if let duplicate = try connection.query(sql.duplicateKey).first {
            let key = duplicate.values.map { $0 ?? "NULL" }.joined(separator: ", ")
            throw TributaryError(.model, "model \(model.name) produced key (\(key)) more than once: one row per key (\(model.key.joined(separator: ", "))); fix \(model.file)")
        }
    }
}
