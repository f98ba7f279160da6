/// The keys an STG table's writers changed, for the BL models that read it (DESIGN.md §4b): one
/// row per write (a batch's merge, a TRUNCATE's tombstones, a table snapshot's merge) with its
/// newest `_lsn` and the changed keys as arrays, one per key column, in the same order. Written in
/// the writer's transaction, so a model run sees a change in the log exactly when it sees the row.
///
/// Why a log and not an index on `_lsn`: `_lsn` changes with every write, so an index on it makes
/// every update of the row non-HOT, and a non-HOT update inserts into every index of the table,
/// the models' `indexes:` included. One log row per batch and table costs the applier far less,
/// and a run finds its changes by the log's own small index.
///
/// A key logged at its write's newest `_lsn` rather than its own only makes a run take in a key it
/// had already seen (harmless: an incremental run re-evaluating an unchanged key changes nothing).
/// Pruning (the applier, behind the oldest watermark of the table) never removes a row a run has
/// not taken in: a watermark only passes a log row that the run which set it saw.
public struct StagingChangeLog: Sendable, Hashable {
    public let stagingTable: QualifiedName
    public let key: [String]

    public init(stagingTable: QualifiedName, key: [String]) {
        self.stagingTable = stagingTable
        self.key = key
    }

    /// `tributary_bl.<STG table>__changes`; a long name is shortened with a hash of it, so two
    /// tables never share a log.
    public static func name(of stagingTable: QualifiedName) -> QualifiedName {
        let base = "\(stagingTable.schema)_\(stagingTable.name)"
        let stem: String
        if base.utf8.count <= 50 {
            stem = base
        } else {
            var hash: UInt32 = 0x811c_9dc5
            for byte in base.utf8 { hash = (hash ^ UInt32(byte)) &* 0x0100_0193 }
            let hex = String(hash, radix: 16)
            stem = SQL.truncated(base, bytes: 41) + "_" + String(repeating: "0", count: 8 - hex.count) + hex
        }
        return QualifiedName(schema: TransformSQL.stateSchema, name: stem + "__changes")
    }

    public var log: QualifiedName { Self.name(of: stagingTable) }

    private var keyList: String { SQL.identifierList(key) }
    private var keyArrays: String { key.map { "array_agg(\(SQL.identifier($0)))" }.joined(separator: ", ") }

    /// The empty log, its key arrays typed as the STG table's key columns, and its index on `_lsn`
    /// (a run's range, the applier's pruning).
    public var create: [String] {
        [
            "CREATE SCHEMA IF NOT EXISTS \(SQL.identifier(TransformSQL.stateSchema))",
            "CREATE TABLE \(log.sql) AS SELECT NULL::pg_lsn AS _lsn, "
                + key.map { "ARRAY[\(SQL.identifier($0))] AS \(SQL.identifier($0))" }.joined(separator: ", ")
                + " FROM \(stagingTable.sql) WITH NO DATA",
            "ALTER TABLE \(log.sql) ALTER COLUMN _lsn SET NOT NULL",
            storeKeysUncompressed,
            "CREATE INDEX ON \(log.sql) (_lsn)",
        ]
    }

    /// The key arrays go out of line as they are. PostgreSQL's default compression (pglz) barely
    /// shrinks them (60,000 keys: 5.0 MB against 5.5 MB) and spent 310-380 ms trying, against
    /// 37 ms to store them uncompressed. The applier appends one row per batch and table, in the
    /// batch's transaction: in a 9.4 s catch-up the appends took about 3 s of statement time.
    public var storeKeysUncompressed: String {
        "ALTER TABLE \(log.sql) " + key.map { "ALTER COLUMN \(SQL.identifier($0)) SET STORAGE EXTERNAL" }.joined(separator: ", ")
    }

    /// Whether the key arrays are stored uncompressed (a log made by an earlier version is not).
    public var keysStoredUncompressed: String {
        "SELECT coalesce(bool_and(attstorage = 'e'), true) FROM pg_attribute WHERE attrelid = \(SQL.literal(log.sql))::regclass "
            + "AND attname = ANY (ARRAY[\(key.map { SQL.literal($0) }.joined(separator: ", "))]::name[])"
    }

    /// One row of every STG row written after `after`, at the newest of them: for
    /// a log created while models already hold watermarks (an STG table found by an `_lsn` index
    /// before). The caller holds a SHARE lock on the STG table, so no write is missed or doubled.
    public func seed(after: LSN) -> String {
        "INSERT INTO \(log.sql) (_lsn, \(keyList)) SELECT max(_lsn), \(keyArrays) FROM \(stagingTable.sql) "
            + "WHERE _lsn > \(SQL.literal(after.description))::pg_lsn HAVING count(*) > 0"
    }

    /// The keys of a batch's changes (the applier's changes table, `changes` as `MergeSQL` names it) at the batch's
    /// newest `_lsn`. Every key in the batch is logged, also one whose change the LSN guard turned
    /// away; a key changed twice is logged twice (runs take distinct keys), which is cheaper for
    /// the applier, on the target's busiest backend, than reducing them here.
    public func append(fromChanges changes: String) -> String {
        "INSERT INTO \(log.sql) (_lsn, \(keyList)) SELECT max(_lsn), \(keyArrays) FROM \(changes) "
            + "WHERE _op <> 'T' HAVING count(*) > 0"
    }

    /// `statement` (an INSERT or UPDATE of the STG table, without RETURNING), its written keys
    /// logged at `lsn`; the query returns how many rows it wrote.
    public func logging(_ statement: String, at lsn: LSN) -> String {
        "WITH written AS (\(statement) RETURNING \(keyList)), "
            + "logged AS (INSERT INTO \(log.sql) (_lsn, \(keyList)) SELECT \(SQL.literal(lsn.description))::pg_lsn, \(keyArrays) "
            + "FROM written HAVING count(*) > 0) SELECT count(*) FROM written"
    }

    /// Removes the rows every model reading the table has taken in: at or behind the oldest of
    /// `watermarks` (a query of one `pg_lsn` column; a NULL one, a model reloaded over an empty
    /// table, holds everything).
    public func prune(watermarks: String) -> String {
        "DELETE FROM \(log.sql) WHERE _lsn <= (SELECT min(coalesce(lsn, '0/0'::pg_lsn)) FROM (\(watermarks)) AS w (lsn))"
    }

    /// The newest logged change, as text (NULL: none logged).
    public var newest: String { "SELECT max(_lsn)::text FROM \(log.sql)" }

    /// The distinct keys logged in (from, to] into the temporary table `into`.
    public func changedKeys(into temporary: String, from: LSN?, to: LSN) -> String {
        let range = (from.map { ["l._lsn > \(SQL.literal($0.description))::pg_lsn"] } ?? [])
            + ["l._lsn <= \(SQL.literal(to.description))::pg_lsn"]
        return "CREATE TEMPORARY TABLE \(SQL.identifier(temporary)) ON COMMIT DROP AS SELECT DISTINCT "
            + key.map { "u.\(SQL.identifier($0))" }.joined(separator: ", ")
            + " FROM \(log.sql) AS l CROSS JOIN LATERAL unnest(\(key.map { "l.\(SQL.identifier($0))" }.joined(separator: ", "))) "
            + "AS u (\(keyList)) WHERE \(range.joined(separator: " AND "))"
    }

    /// Keys logged after `after` (none: all), at most `cap`.
    public func pendingCount(after: LSN?, cap: Int) -> String {
        "SELECT least(\(cap), coalesce(sum(cardinality(\(SQL.identifier(key[0])))), 0))::bigint FROM \(log.sql)"
            + (after.map { " WHERE _lsn > \(SQL.literal($0.description))::pg_lsn" } ?? "")
    }
}
