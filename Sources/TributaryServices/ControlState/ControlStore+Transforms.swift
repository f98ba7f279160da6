import Foundation
import TributaryCore
import TributaryPostgres

/// The control state of the BL models (DESIGN.md §4b): per model its last runs and error, per
/// model and input the watermark up to which that input's changes are in the model. Watermarks
/// move in the transaction that writes the model's rows, so a kill never leaves them apart.
extension ControlStore {
    /// NOTIFY channel of applied batches (payload: the source): the BL runner wakes at once.
    public static let stagingChannel = "tributary_stg"

    /// A model's row of the control state.
    public struct ModelState: Sendable, Decodable {
        public var model: String
        /// An upstream model or an input table was rebuilt: the next run reloads fully.
        public var needsFull: Bool
        public var reloadedAt: Date?
        public var runAt: Date?
        /// The newest source commit the model's inputs held at its last run.
        public var asOf: Date?
        public var failedAt: Date?
        public var error: String?

        enum CodingKeys: String, CodingKey {
            case model, needsFull = "needs_full", reloadedAt = "reloaded_at", runAt = "run_at", asOf = "as_of"
            case failedAt = "failed_at", error
        }
    }

    /// How far one input's changes are in a model.
    public struct Watermark: Sendable, Decodable, Equatable {
        public var input: String
        /// For an STG input: the newest `_lsn` taken in.
        public var lsn: LSN?
        /// For a model input: the newest change-log sequence taken in.
        public var seq: Int64?
        /// For an STG input: the snapshot its table was loaded from when the watermark was set.
        public var epoch: LSN?

        public init(input: String, lsn: LSN? = nil, seq: Int64? = nil, epoch: LSN? = nil) {
            self.input = input
            self.lsn = lsn
            self.seq = seq
            self.epoch = epoch
        }
    }

    public func modelStates() async throws -> [ModelState] {
        try await connection.query("""
            SELECT model, needs_full, reloaded_at, run_at, as_of, failed_at, error FROM tributary.bl_models ORDER BY model
            """).decode(ModelState.self)
    }

    public func watermarks(of model: String) async throws -> [Watermark] {
        try await connection.query("SELECT input, lsn, seq, epoch FROM tributary.bl_watermarks WHERE model = $1", [model])
            .decode(Watermark.self)
    }

    /// A run of `model` failed: said in status until a run succeeds. Its own transaction, after the
    /// failed run's rolled back.
    public func recordFailure(of model: String, error: String) async throws {
        try await connection.query("""
            INSERT INTO tributary.bl_models (model, failed_at, error) VALUES ($1, now(), $2)
            ON CONFLICT (model) DO UPDATE SET failed_at = now(), error = excluded.error, updated_at = now()
            """, [model, error])
    }

    static func modelState(_ model: String, on connection: isolated PostgresConnection) throws -> ModelState? {
        try connection.query("""
            SELECT model, needs_full, reloaded_at, run_at, as_of, failed_at, error FROM tributary.bl_models WHERE model = $1
            """, [model]).decode(ModelState.self).first
    }

    static func watermarks(of model: String, on connection: isolated PostgresConnection) throws -> [Watermark] {
        try connection.query("SELECT input, lsn, seq, epoch FROM tributary.bl_watermarks WHERE model = $1", [model])
            .decode(Watermark.self)
    }

    /// A successful run: its watermarks, and the model's state cleared of any earlier error.
    static func recordRun(of model: String, watermarks: [Watermark], full: Bool, asOf: Date?,
                          on connection: isolated PostgresConnection) throws {
        for watermark in watermarks {
            try connection.query("""
                INSERT INTO tributary.bl_watermarks (model, input, lsn, seq, epoch) VALUES ($1, $2, $3::pg_lsn, $4, $5::pg_lsn)
                ON CONFLICT (model, input) DO UPDATE SET lsn = excluded.lsn, seq = excluded.seq, epoch = excluded.epoch
                """, [model, watermark.input, watermark.lsn?.description, watermark.seq.map(String.init), watermark.epoch?.description])
        }
        try connection.query("""
            INSERT INTO tributary.bl_models AS m (model, run_at, reloaded_at, as_of) VALUES ($1, now(), CASE WHEN $2 THEN now() END, $3)
            ON CONFLICT (model) DO UPDATE SET run_at = now(), reloaded_at = coalesce(excluded.reloaded_at, m.reloaded_at),
                as_of = coalesce(excluded.as_of, m.as_of), needs_full = m.needs_full AND NOT $2, failed_at = NULL, error = NULL,
                updated_at = now()
            """, [model, full ? "t" : "f", asOf.map(ManifestCoding.format)])
    }

    /// The oldest change-log position of a model that `readers` have all taken in.
    static func oldestPosition(in input: String, of readers: [String], on connection: isolated PostgresConnection) throws -> Int64? {
        try connection.query("SELECT min(seq) FROM tributary.bl_watermarks WHERE input = $1 AND model = ANY($2::text[])",
                             [input, PostgresArray.literal(readers)]).optionalScalar(Int64.self)
    }

    /// `models` read a model that was just rebuilt as a whole: they rebuild too, at their next run.
    static func requireFullReload(of models: [String], on connection: isolated PostgresConnection) throws {
        guard !models.isEmpty else { return }
        try connection.query("""
            INSERT INTO tributary.bl_models (model, needs_full) SELECT unnest($1::text[]), true
            ON CONFLICT (model) DO UPDATE SET needs_full = true, updated_at = now()
            """, [PostgresArray.literal(models)])
    }

    /// The snapshot an STG table was last loaded from: a different one than a watermark's means
    /// the table was replaced, rows gone without tombstones, and only a full reload is exact.
    static func loadedSnapshot(of stagingTable: String, on connection: isolated PostgresConnection) throws -> LSN? {
        try connection.query("SELECT max(snapshot_lsn) FROM tributary.snapshot_tables WHERE stg_table = $1 AND NOT merged", [stagingTable])
            .optionalScalar(LSN.self)
    }

    /// The sources with batches stored that the applier has not applied yet (a catch-up to come).
    public func sourcesWithApplyBacklog() async throws -> [String] {
        try await connection.query("SELECT source FROM tributary.sources WHERE flushed_lsn > applied_lsn").column(String.self)
    }

    /// Each source's newest applied commit time, as the caller's transaction sees it.
    static func appliedCommitTimes(on connection: isolated PostgresConnection) throws -> [String: Date] {
        var times: [String: Date] = [:]
        for row in try connection.query("SELECT source, applied_commit_time FROM tributary.sources").rows {
            if let time = try row.decodeIfPresent("applied_commit_time", as: Date.self) { times[try row.decode("source")] = time }
        }
        return times
    }

    /// Every model's watermark of an STG table (`stg.<table>`), as `$1`: a query of one `pg_lsn`
    /// column, for `StagingChangeLog.prune`.
    static let watermarkPositions = "SELECT lsn FROM tributary.bl_watermarks WHERE input = $1"

    /// `watermarkPositions` of one input, without a parameter: for a multi-statement string.
    static func watermarkPositions(of input: String) -> String {
        "SELECT lsn FROM tributary.bl_watermarks WHERE input = \(SQL.literal(input))"
    }

    /// The oldest watermark any model holds of `input` (`stg.<table>`); a NULL one (a reload over
    /// an empty table) counts as the start. Nil when no model has one.
    static func oldestWatermark(of input: String, on connection: isolated PostgresConnection) throws -> LSN? {
        try connection.query("SELECT min(coalesce(lsn, '0/0'::pg_lsn)) FROM tributary.bl_watermarks WHERE input = $1", [input])
            .optionalScalar(LSN.self)
    }

    /// Rows of `stagingTable` were merged as of `lsn` (a table snapshot): models that took in the
    /// table past that point take in again from just before it, so they see the merged rows.
    static func rewindWatermarks(of stagingTable: String, before lsn: LSN, on connection: isolated PostgresConnection) throws {
        try connection.query("""
            UPDATE tributary.bl_watermarks SET lsn = $2::pg_lsn - 1 WHERE input = $1 AND lsn >= $2::pg_lsn
            """, [QualifiedName(schema: StagingColumns.schema, name: stagingTable).description, lsn.description])
    }

    /// Wakes the BL runner: STG tables of `source` changed (delivered when the caller commits);
    /// `backlog`: batches the applier has in hand after this one (the BL runner holds back meanwhile).
    static func announceStagingChange(of source: String, backlog: Int = 0, on connection: isolated PostgresConnection) throws {
        try connection.query("SELECT pg_notify($1, $2)", [stagingChannel, StagingChange(source: source, backlog: backlog).payload])
    }

    /// The last count of a model's relationship (`verify`, `drain`, `transform --check`), for `status`.
    public func recordReferenceCheck(model: String, reference: String, orphans: Int, sample: [String]) async throws {
        try await connection.query("""
            INSERT INTO tributary.reference_checks AS r (model, reference, orphans, sample) VALUES ($1, $2, $3, $4::text[])
            ON CONFLICT (model, reference) DO UPDATE SET orphans = excluded.orphans, sample = excluded.sample, checked_at = now()
            """, [model, reference, String(orphans), PostgresArray.literal(sample)])
    }

    /// Each model's orphans at the last count, summed over its relationships; empty before one.
    public func referenceChecks() async throws -> [String: Int] {
        guard try await connection.query("SELECT to_regclass('tributary.reference_checks') IS NOT NULL").scalar(Bool.self) else { return [:] }
        var orphans: [String: Int] = [:]
        for row in try await connection.query("SELECT model, sum(orphans)::bigint AS orphans FROM tributary.reference_checks GROUP BY model").rows {
            orphans[try row.decode("model")] = try row.decode("orphans")
        }
        return orphans
    }
}
