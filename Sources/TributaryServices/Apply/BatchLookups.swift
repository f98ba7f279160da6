import Synchronization
import TributaryCore
import TributaryPostgres

/// What merging a file needs to know of its STG table, read for every table of a batch at its
/// start, in the batch's transaction, in three round trips instead of four per file: at 600
/// tables a batch holds hundreds of files, and these lookups were most of its statements. The
/// STG tables are locked `ROW EXCLUSIVE` first (in name order), as each file's merge did before:
/// a BL model's change log created meanwhile is then either seen here or seeded after the batch
/// commits (see `BatchApplier.changeLog`).
struct BatchLookups {
    struct Table {
        /// The shape the STG table follows and from where (`tributary.staging_relations`).
        var recorded: (relation: RelationSchema, lsn: LSN)?
        var truncatedAt: LSN?
        /// A BL model reads the table: its changes are logged.
        var changeLog: StagingChangeLog?
        /// The STG table's columns, `_lsn` and `_deleted` included (0: no table yet).
        var columns = 0
    }

    private var tables: [String: Table]

    /// - Parameter files: the batch's files; each STG table is looked up once.
    /// - Parameter awaiting: tables whose files wait for their copy (they are not merged): not
    ///   locked, since the copy's promotion locks the table before it waits for this batch's
    ///   hold on their `awaiting_copy` rows.
    static func read(_ files: [BatchFile], awaiting: Set<String>, on connection: isolated PostgresConnection) throws -> BatchLookups {
        let keys = Dictionary(files.filter { !awaiting.contains($0.stagingTable) }.map { ($0.stagingTable, $0.relation.key) },
                              uniquingKeysWith: { first, _ in first })
        let names = keys.keys.sorted()
        guard !names.isEmpty else { return BatchLookups(tables: [:]) }
        let qualified = names.map { QualifiedName(schema: StagingColumns.schema, name: $0) }
        let existing = try connection.query("SELECT t FROM unnest($1::text[]) t WHERE to_regclass(t) IS NOT NULL",
                                            [PostgresArray.literal(qualified.map(\.sql))]).column(String.self)
        if !existing.isEmpty {
            try connection.execute("LOCK TABLE \(existing.joined(separator: ", ")) IN ROW EXCLUSIVE MODE")
        }
        let rows = try connection.query("""
            SELECT n.stg_table, r.relation::text AS relation, r.lsn AS recorded_at, t.lsn AS truncated_at,
                   to_regclass(n.log) IS NOT NULL AS logged,
                   (SELECT count(*) FROM pg_attribute a WHERE a.attrelid = to_regclass(n.qualified) AND a.attnum > 0
                      AND NOT a.attisdropped)::int AS columns
            FROM unnest($1::text[], $2::text[], $3::text[]) AS n(stg_table, log, qualified)
            LEFT JOIN tributary.staging_relations r USING (stg_table)
            LEFT JOIN tributary.truncations t USING (stg_table)
            """, [PostgresArray.literal(names), PostgresArray.literal(qualified.map { StagingChangeLog.name(of: $0).sql }),
                  PostgresArray.literal(qualified.map(\.sql))])
        var tables: [String: Table] = [:]
        for row in rows.rows {
            let name = try row.decode("stg_table", as: String.self)
            var table = Table(truncatedAt: try row.decodeIfPresent("truncated_at", as: LSN.self), columns: try row.decode("columns", as: Int.self))
            if let json = try row.decodeIfPresent("relation", as: String.self), let lsn = try row.decodeIfPresent("recorded_at", as: LSN.self) {
                table.recorded = (try recordedRelations.decode(json), lsn)
            }
            if try row.decode("logged", as: Bool.self) {
                table.changeLog = StagingChangeLog(stagingTable: QualifiedName(schema: StagingColumns.schema, name: name), key: keys[name]!)
            }
            tables[name] = table
        }
        return BatchLookups(tables: tables)
    }

    /// Each recorded shape, decoded once per process: a shape changes rarely, yet decoding the
    /// JSON of hundreds of them for every batch was 1.5% of the machine's CPU at 600 tables
    /// (bench-breadth's profile). Emptied when it holds more than `limit` texts.
    private static let recordedRelations = DecodedRelations()

    final class DecodedRelations: Sendable {
        static let limit = 10_000
        private let decoded = Mutex<[String: RelationSchema]>([:])

        func decode(_ json: String) throws -> RelationSchema {
            if let relation = decoded.withLock({ $0[json] }) { return relation }
            let relation = try ManifestCoding.decode(RelationSchema.self, from: Array(json.utf8))
            decoded.withLock {
                if $0.count >= Self.limit { $0.removeAll() }
                $0[json] = relation
            }
            return relation
        }
    }

    /// The table's lookups, left for `take`.
    func table(_ stagingTable: String) -> Table? { tables[stagingTable] }

    /// The table's lookups for its first file of the batch; nil for a later one (a schema change
    /// inside the batch gives a table a file per shape), which looks up again what the earlier
    /// files may have changed (its shape, a truncation, an STG table created empty).
    mutating func take(_ stagingTable: String) -> Table? {
        tables.removeValue(forKey: stagingTable)
    }
}
