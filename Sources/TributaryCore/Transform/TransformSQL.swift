/// The SQL of a BL model's runs (DESIGN.md §4b), generated from the model and what the catalog
/// says of its tables. A run happens in one REPEATABLE READ transaction:
///
/// - incremental: per input, the rows changed since its watermark (`changedRows`), the model keys
///   they map to now and mapped to at the last run (the input's key map), the key map brought up
///   to date; then the SELECT evaluated for those keys only (`evaluate`), keys it no longer
///   produces removed or flagged and new or changed rows written (`merge`);
/// - full: the SELECT evaluated whole (`evaluateAll`) into a table beside the model's
///   (`createReloadTable`), swapped in at the end (`swap`), every key map rebuilt.
///
/// Every SELECT of the operator's is nested on lines of its own, so a trailing `--` comment in it
/// cannot swallow what follows.
public struct TransformSQL: Sendable {
    /// What a run knows of one input besides the model's YAML.
    public struct InputShape: Sendable {
        public var input: TransformModel.Input
        /// The input's own key: its STG primary key, or the upstream model's key.
        public var key: [String]
        /// For a model input: the model that writes it.
        public var upstream: TransformModel?
        /// For a model input: every column of its table, to read its changes.
        public var columns: [String]
        /// Where the input's key map lives (inputs mapped by expressions only).
        public var keyMap: QualifiedName?
        /// The mapping reads nothing but the input's key (`mapsByKeyOnly`): an STG input's changed
        /// keys map as they are, without reading their rows.
        public var mapsByKeyOnly: Bool

        public init(input: TransformModel.Input, key: [String], upstream: TransformModel? = nil, columns: [String] = [],
                    keyMap: QualifiedName? = nil, mapsByKeyOnly: Bool = false) {
            self.input = input
            self.key = key
            self.upstream = upstream
            self.columns = columns
            self.keyMap = keyMap
            self.mapsByKeyOnly = mapsByKeyOnly
        }

        /// Whether a run maps the change log's keys (`changedKeys`) rather than the rows they
        /// name (`changedRows`). The two give the same model keys: the mapping reads only key
        /// columns, which the log holds with the STG table's types. A logged key whose row is gone
        /// from STG altogether only makes the run evaluate a key that produces nothing, which
        /// removes what BL still had of it. Reading the rows was a fifth of an incremental run.
        public var mapsLoggedKeys: Bool { mapsByKeyOnly && upstream == nil && keyMap == nil && !key.isEmpty }
    }

    public static let stateSchema = "tributary_bl"
    public static let deleted = "_deleted"
    public static let sequence = "_seq"
    public static let changed = "_tributary_changed"
    public static let affected = "_tributary_affected"
    public static let fresh = "_tributary_new"
    /// Per key of `fresh`: where its row is in the model's table now (`currentRow`, NULL when
    /// new) and its surrogate there (`currentSurrogate`).
    public static let current = "_tributary_current"
    static let currentRow = "_tributary_row"
    static let currentSurrogate = "_tributary_surrogate"
    /// In a merge: the change is one a model reading this one can see.
    static let readerSees = "_tributary_reader_sees"

    public let model: TransformModel

    public init(model: TransformModel) { self.model = model }

    var table: String { model.table.sql }
    var keyList: String { SQL.identifierList(model.key) }

    // MARK: Names

    /// `tributary_bl.<model>__keys`: key → surrogate, never emptied, so a surrogate outlives reloads.
    public var surrogateMap: QualifiedName { state(model.name, "keys") }

    /// `tributary_bl.<model>__log`: the keys each run changed, for the models that read this one.
    public var changeLog: QualifiedName { state(model.name, "log") }

    /// `tributary_bl.<model>__map_<n>`: for input `n` mapped by expressions, which model keys each
    /// of its rows mapped to at the last run (the old side of a change).
    public func keyMap(_ index: Int) -> QualifiedName { state(model.name, "map_\(index)") }

    /// The table a full reload builds beside the model's.
    public var reloadTable: QualifiedName {
        QualifiedName(schema: model.table.schema, name: SQL.truncated(model.table.name, bytes: 55) + "__reload")
    }

    private func state(_ name: String, _ suffix: String) -> QualifiedName {
        QualifiedName(schema: Self.stateSchema, name: SQL.truncated(name, bytes: 50) + "__" + suffix)
    }

    // MARK: Changes of the inputs

    /// The newest change position of an input, as text: the newest `_lsn` in an STG table's change
    /// log, max sequence of an upstream model's log.
    public func newestChange(_ shape: InputShape) -> String {
        if let upstream = shape.upstream {
            return "SELECT max(\(SQL.identifier(Self.sequence)))::text FROM \(TransformSQL(model: upstream).changeLog.sql)"
        }
        return Self.stagingLog(shape).newest
    }

    /// The position a full reload is current to: max `_lsn` of an STG table itself (every row the
    /// reload read; the change log may be pruned or younger than the table), as `newestChange`
    /// for a model input.
    public func newestRow(_ shape: InputShape) -> String {
        if shape.upstream != nil { return newestChange(shape) }
        return "SELECT max(_lsn)::text FROM \(shape.input.table.sql)"
    }

    /// The change log of an STG input.
    public static func stagingLog(_ shape: InputShape) -> StagingChangeLog {
        StagingChangeLog(stagingTable: shape.input.table, key: shape.key)
    }

    /// The distinct keys of an STG input's changes in a run's range.
    public static let changedKeys = "_tributary_changed_keys"

    /// Rows of the input changed after a watermark (none: the whole input), at most `cap`. An STG
    /// input counts its change log's keys when `logged`, else (no model has run since the log
    /// came in) its rows by `_lsn`.
    public func pendingCount(_ shape: InputShape, after lsn: LSN?, seq: Int64?, cap: Int, logged: Bool = true) -> String {
        if let upstream = shape.upstream {
            return "SELECT count(*) FROM (SELECT 1 FROM \(TransformSQL(model: upstream).changeLog.sql)"
                + (seq.map { " WHERE \(SQL.identifier(Self.sequence)) > \($0)" } ?? "") + " LIMIT \(cap)) AS pending"
        }
        if let lsn, logged, !shape.key.isEmpty { return Self.stagingLog(shape).pendingCount(after: lsn, cap: cap) }
        return "SELECT count(*) FROM (SELECT 1 FROM \(shape.input.table.sql)"
            + (lsn.map { " WHERE _lsn > \(SQL.literal($0.description))::pg_lsn" } ?? "") + " LIMIT \(cap)) AS pending"
    }

    /// The input's rows changed in (from, to] into a temporary table: the current STG rows of the
    /// keys its change log holds in that range (`changedKeys` first, then `ANALYZE` of them),
    /// tombstones included; a model's keys from its log, with their current rows (`_deleted` when
    /// the row is gone).
    public func changedRows(_ shape: InputShape, fromLSN: LSN?, toLSN: LSN, fromSeq: Int64?, toSeq: Int64) -> String {
        let create = "CREATE TEMPORARY TABLE \(Self.changed) ON COMMIT DROP AS "
        guard let upstream = shape.upstream else {
            return create + "SELECT s.* FROM \(shape.input.table.sql) AS s JOIN \(Self.changedKeys) USING (\(SQL.identifierList(shape.key)))"
        }
        let sequence = SQL.identifier(Self.sequence)
        let range = (fromSeq.map { ["\(sequence) > \($0)"] } ?? []) + ["\(sequence) <= \(toSeq)"]
        let keys = SQL.identifierList(shape.key)
        let others = shape.columns.filter { !shape.key.contains($0) && $0 != Self.deleted }.map { ", b.\(SQL.identifier($0))" }
        let gone = upstream.deletes == .flag ? "coalesce(b.\(SQL.identifier(Self.deleted)), true)" : "b.\(SQL.identifier(shape.key[0])) IS NULL"
        return create + "SELECT \(shape.key.map { "l.\(SQL.identifier($0))" }.joined(separator: ", "))\(others.joined()), "
            + "\(gone) AS \(SQL.identifier(Self.deleted)) FROM (SELECT DISTINCT \(keys) FROM \(TransformSQL(model: upstream).changeLog.sql) "
            + "WHERE \(range.joined(separator: " AND "))) AS l LEFT JOIN \(shape.input.table.sql) AS b USING (\(keys))"
    }

    /// The empty set of affected keys, typed as the model's table has them.
    public var createAffected: String {
        "CREATE TEMPORARY TABLE \(Self.affected) ON COMMIT DROP AS SELECT \(keyList) FROM \(table) WITH NO DATA"
    }

    /// Keys the changed rows map to now (tombstones too: they keep their last values); for an
    /// input that `mapsLoggedKeys`, what its changed keys map to.
    public func affectedNow(_ shape: InputShape) -> String {
        let rows = shape.mapsLoggedKeys ? Self.changedKeys : Self.changed
        return "INSERT INTO \(Self.affected) SELECT DISTINCT * FROM (\n\(mapping(shape, of: rows))\n) AS k (\(keyList)) "
            + "WHERE ROW(\(keyList)) IS NOT NULL"
    }

    /// Keys the changed rows mapped to at the last run.
    public func affectedBefore(_ shape: InputShape, map: QualifiedName) -> String {
        "INSERT INTO \(Self.affected) SELECT DISTINCT \(model.key.map { "m.\(SQL.identifier(Self.mapped($0)))" }.joined(separator: ", ")) "
            + "FROM \(map.sql) AS m JOIN \(Self.changed) AS c ON \(inputKeyMatch(shape, "m", "c"))"
    }

    /// The key map's rows of the changed input rows, replaced by what they map to now.
    public func refreshKeyMap(_ shape: InputShape, map: QualifiedName) -> [String] {
        guard case .expressions(let expressions) = shape.input.mapping else { return [] }
        return [
            "DELETE FROM \(map.sql) AS m USING \(Self.changed) AS c WHERE \(inputKeyMatch(shape, "m", "c"))",
            keyMapInsert(shape, map: map, expressions: expressions, from: Self.changed),
        ]
    }

    /// Creates an input's key map, empty, typed from the input's and the model's tables.
    public func createKeyMap(_ shape: InputShape, map: QualifiedName) -> [String] {
        let inputColumns = shape.key.map { "i.\(SQL.identifier($0)) AS \(SQL.identifier(Self.inputKey($0)))" }
        let modelColumns = model.key.map { "t.\(SQL.identifier($0)) AS \(SQL.identifier(Self.mapped($0)))" }
        return [
            "CREATE TABLE IF NOT EXISTS \(map.sql) AS SELECT \((inputColumns + modelColumns).joined(separator: ", ")) "
                + "FROM \(shape.input.table.sql) AS i, \(table) AS t WITH NO DATA",
            "CREATE INDEX IF NOT EXISTS \(SQL.identifier(SQL.truncated(map.name, bytes: 57) + "_input")) ON \(map.sql) "
                + "(\(SQL.identifierList(shape.key.map(Self.inputKey))))",
        ]
    }

    /// Refills an input's key map from the whole input (a full reload).
    public func rebuildKeyMap(_ shape: InputShape, map: QualifiedName) -> [String] {
        guard case .expressions(let expressions) = shape.input.mapping else { return [] }
        let whole = shape.upstream.map { upstream in
            upstream.deletes == .flag ? shape.input.table.sql
                : "(SELECT *, false AS \(SQL.identifier(Self.deleted)) FROM \(shape.input.table.sql))"
        } ?? shape.input.table.sql
        return ["TRUNCATE \(map.sql)", keyMapInsert(shape, map: map, expressions: expressions, from: whole)]
    }

    private func keyMapInsert(_ shape: InputShape, map: QualifiedName, expressions: [String], from rows: String) -> String {
        let columns = shape.key.map { SQL.identifier(Self.inputKey($0)) } + model.key.map { SQL.identifier(Self.mapped($0)) }
        return "INSERT INTO \(map.sql) SELECT * FROM (SELECT \(shape.key.map { "changed.\(SQL.identifier($0))" }.joined(separator: ", ")), "
            + "\(expressions.joined(separator: ", ")) FROM \(rows) AS changed WHERE NOT changed.\(SQL.identifier(Self.deleted))) "
            + "AS k (\(columns.joined(separator: ", "))) WHERE ROW(\(model.key.map { SQL.identifier(Self.mapped($0)) }.joined(separator: ", "))) IS NOT NULL"
    }

    private func mapping(_ shape: InputShape, of rows: String) -> String {
        switch shape.input.mapping {
        case .expressions(let expressions):
            return "SELECT \(expressions.joined(separator: ", ")) FROM \(rows) AS changed"
        case .query(let query):
            return "WITH changed AS (SELECT * FROM \(rows))\n\(query)\n"
        }
    }

    /// The view `mapsByKeyOnly` looks at.
    public static let probeMapsView = "_tributary_maps"

    /// A view of an input's mapping expressions over the input table, made (in a transaction
    /// rolled back) so that the catalog says what they read; nil for a query mapping.
    public func mappingProbe(_ shape: InputShape) -> String? {
        guard case .expressions(let expressions) = shape.input.mapping else { return nil }
        let columns = expressions.enumerated().map { "(\($1)) AS _key_\($0)" }
        return "CREATE TEMPORARY VIEW \(Self.probeMapsView) AS SELECT \(columns.joined(separator: ", ")) FROM \(shape.input.table.sql) AS changed"
    }

    /// Whether the probe view's expressions read nothing but the input's key columns and no
    /// whole row (`changed.*`; a `.*` in a string literal only costs the key map), and call no
    /// function or operator of the database's own unless it is immutable (built-in ones are
    /// pinned and never recorded: a key mapped through `random()` is not a key). Then a row maps
    /// to the same model keys before and after any change (a change of its key is a delete of
    /// the old key and an insert of the new one, both logged), and the input needs no key map:
    /// the demo's inputs all map this way, and their key maps were a third of an incremental run
    /// (reading, deleting and rewriting the map rows of every changed input row).
    public static func mapsByKeyOnly(input: QualifiedName, key: [String]) -> String {
        let keys = "ARRAY[" + key.map(SQL.literal).joined(separator: ", ") + "]"
        return """
            SELECT coalesce(bool_and(CASE \
            WHEN d.refclassid = 'pg_class'::regclass THEN d.refobjid = w.ev_class OR (d.refobjid = \(SQL.literal(input.sql))::regclass AND (d.refobjsubid = 0 \
            OR EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = d.refobjid AND a.attnum = d.refobjsubid AND a.attname = ANY (\(keys)::name[])))) \
            WHEN d.refclassid = 'pg_proc'::regclass THEN EXISTS (SELECT 1 FROM pg_proc p WHERE p.oid = d.refobjid AND p.oid < 16384 AND p.provolatile = 'i') \
            WHEN d.refclassid = 'pg_operator'::regclass THEN EXISTS (SELECT 1 FROM pg_operator o JOIN pg_proc p ON p.oid = o.oprcode \
            WHERE o.oid = d.refobjid AND o.oid < 16384 AND p.provolatile = 'i') \
            ELSE d.refobjid < 16384 END), true) AND strpos(pg_get_viewdef(\(SQL.literal(probeMapsView))::regclass), '.*') = 0 \
            FROM pg_depend d JOIN pg_rewrite w ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid \
            WHERE w.ev_class = \(SQL.literal(probeMapsView))::regclass
            """
    }

    static func mapped(_ column: String) -> String { "m_" + column }
    static func inputKey(_ column: String) -> String { "i_" + column }

    /// `left.k = right.k AND …` over the model's key.
    private func keyMatch(_ left: String, _ right: String) -> String {
        model.key.map { "\(left).\(SQL.identifier($0)) = \(right).\(SQL.identifier($0))" }.joined(separator: " AND ")
    }

    /// The model's key columns of `alias`, as a list.
    private func keys(_ alias: String) -> String {
        model.key.map { "\(alias).\(SQL.identifier($0))" }.joined(separator: ", ")
    }

    private func inputKeyMatch(_ shape: InputShape, _ map: String, _ changed: String) -> String {
        shape.key.map { "\(map).\(SQL.identifier(Self.inputKey($0))) = \(changed).\(SQL.identifier($0))" }.joined(separator: " AND ")
    }

    // MARK: Evaluation and merge

    /// The affected keys grouped by their first column (`source_system`, typically): per value of
    /// it, the distinct values of every other key column as array literals.
    public var affectedGroups: String {
        let first = SQL.identifier(model.key[0])
        let others = model.key.dropFirst().map { "array_agg(DISTINCT \(SQL.identifier($0)))::text" }
        return "SELECT \(first)::text\(others.map { ", " + $0 }.joined()) FROM \(Self.affected) GROUP BY \(first)"
    }

    /// A restriction on the SELECT's rows that PostgreSQL pushes into its branches, where the
    /// indexes on the inputs apply: per value of the first key column, the other columns' values
    /// (`groups`, as `affectedGroups` reads them; `types` of the key columns). A branch whose
    /// first column is a constant (`'qvp' AS source_system`) keeps only its own group once planned.
    public static func restriction(key: [String], types: [String], groups: [[String?]]) -> String {
        let terms = groups.map { group in
            ([ "m.\(SQL.identifier(key[0])) = \(SQL.literal(group[0] ?? ""))::\(types[0])" ]
             + zip(key.dropFirst(), zip(group.dropFirst(), types.dropFirst())).map { column, valueAndType in
                "m.\(SQL.identifier(column)) = ANY (\(SQL.literal(valueAndType.0 ?? "{}"))::\(valueAndType.1)[])"
             }).joined(separator: " AND ")
        }
        return terms.isEmpty ? "false" : "(" + terms.map { "(\($0))" }.joined(separator: " OR ") + ")"
    }

    /// The SELECT for the affected keys only, into `_tributary_new`: `restriction` (see
    /// `restriction(key:types:groups:)`) narrows the branches, the join with the affected keys is
    /// the exact filter.
    public func evaluate(restriction: String?) -> String {
        "CREATE TEMPORARY TABLE \(Self.fresh) ON COMMIT DROP AS SELECT m.* FROM (\n\(model.sql)\n) AS m "
            + "WHERE ROW(\(keys("m"))) IN (SELECT \(keyList) FROM \(Self.affected))"
            + (restriction.map { " AND " + $0 } ?? "")
    }

    /// The whole SELECT, into `_tributary_new` (a full reload).
    public var evaluateAll: String {
        "CREATE TEMPORARY TABLE \(Self.fresh) ON COMMIT DROP AS SELECT * FROM (\n\(model.sql)\n) AS m"
    }

    /// A key the SELECT produced twice, if any.
    public var duplicateKey: String {
        "SELECT \(model.key.map { "\(SQL.identifier($0))::text" }.joined(separator: ", ")) FROM \(Self.fresh) GROUP BY \(keyList) HAVING count(*) > 1 LIMIT 1"
    }

    /// A key with a NULL in it, if any: a key identifies a row.
    public var nullKey: String {
        "SELECT 1 FROM \(Self.fresh) WHERE NOT (ROW(\(keyList)) IS NOT NULL) LIMIT 1"
    }

    /// Creates the surrogate map (typed from the SELECT's key columns) if it does not exist.
    public func createSurrogateMap(surrogate: String) -> [String] {
        [
            "CREATE TABLE IF NOT EXISTS \(surrogateMap.sql) AS SELECT \(keyList) FROM \(Self.fresh) WITH NO DATA",
            "ALTER TABLE \(surrogateMap.sql) ADD COLUMN IF NOT EXISTS \(SQL.identifier(surrogate)) bigint GENERATED ALWAYS AS IDENTITY",
            "CREATE UNIQUE INDEX IF NOT EXISTS \(SQL.identifier(SQL.truncated(surrogateMap.name, bytes: 58) + "_key")) ON \(surrogateMap.sql) (\(keyList))",
        ]
    }

    /// New keys get their surrogate, in key order.
    public var assignSurrogates: String {
        let match = keyMatch("s", "n")
        return "INSERT INTO \(surrogateMap.sql) (\(keyList)) SELECT DISTINCT \(keys("n")) "
            + "FROM \(Self.fresh) AS n WHERE NOT EXISTS (SELECT 1 FROM \(surrogateMap.sql) AS s WHERE \(match)) ORDER BY 1"
    }

    /// Finds each fresh key's row in the model's table, once: one index probe per key, which
    /// the surrogate assignment and the merge then share (they probed the surrogate map, the
    /// table and the table's key index again each, a fifth of contract's incremental run).
    /// A row's `ctid` stays valid for the run: its REPEATABLE READ snapshot keeps the version
    /// alive, and the model's lock keeps other writers out. One that got in regardless makes the
    /// merge fail with a serialization error, not go astray.
    public var findCurrentRows: String {
        let match = keyMatch("t", "n")
        let surrogate = model.surrogate.map { ", t.\(SQL.identifier($0)) AS \(Self.currentSurrogate)" } ?? ""
        return "CREATE TEMPORARY TABLE \(Self.current) ON COMMIT DROP AS SELECT \(keys("n")), "
            + "t.ctid AS \(Self.currentRow)\(surrogate) FROM \(Self.fresh) AS n LEFT JOIN \(table) AS t ON \(match)"
    }

    /// `assignSurrogates` for the keys the model's table does not hold (with a surrogate) now:
    /// only those can be new to the map.
    public var assignNewSurrogates: String {
        let match = keyMatch("s", "c")
        return "INSERT INTO \(surrogateMap.sql) (\(keyList)) SELECT DISTINCT \(keys("c")) "
            + "FROM \(Self.current) AS c WHERE c.\(Self.currentSurrogate) IS NULL "
            + "AND NOT EXISTS (SELECT 1 FROM \(surrogateMap.sql) AS s WHERE \(match)) ORDER BY 1"
    }

    /// The rows a merge writes, with where each is now (`findCurrentRows`): a key the table
    /// holds keeps the surrogate it has there (the map's, as every write took it from the map),
    /// only a new one reads the map.
    private func currentFreshRows(columns: [String]) -> String {
        let values = columns.map { "n.\(SQL.identifier($0))" }
        let match = keyMatch("c", "n")
        let surrogate: [String] = model.surrogate.map { surrogate -> [String] in
            let mapMatch = keyMatch("s", "n")
            return ["coalesce(c.\(Self.currentSurrogate), (SELECT s.\(SQL.identifier(surrogate)) FROM \(surrogateMap.sql) AS s WHERE \(mapMatch)))"]
        } ?? []
        return "SELECT \((surrogate + values).joined(separator: ", "))\(model.deletes == .flag ? ", false" : ""), c.\(Self.currentRow) "
            + "FROM \(Self.fresh) AS n JOIN \(Self.current) AS c ON \(match)"
    }

    /// The rows to write: the SELECT's, with their surrogate (and `_deleted` false when flagged).
    private func freshRows(columns: [String]) -> String {
        let values = columns.map { "n.\(SQL.identifier($0))" }
        guard let surrogate = model.surrogate else {
            return "SELECT \(values.joined(separator: ", "))\(model.deletes == .flag ? ", false" : "") FROM \(Self.fresh) AS n"
        }
        let match = keyMatch("s", "n")
        return "SELECT s.\(SQL.identifier(surrogate)), \(values.joined(separator: ", "))\(model.deletes == .flag ? ", false" : "") "
            + "FROM \(Self.fresh) AS n JOIN \(surrogateMap.sql) AS s ON \(match)"
    }

    /// The model table's columns in order: surrogate, the SELECT's, then `_deleted` when flagged.
    public func tableColumns(selectColumns columns: [String]) -> [String] {
        (model.surrogate.map { [$0] } ?? []) + columns + (model.deletes == .flag ? [Self.deleted] : [])
    }

    // MARK: What the models reading this one use of it

    /// What the catalog says one reading model uses of this model's table.
    public struct ReaderColumns: Sendable, Equatable {
        /// Columns of this model's table that the reader's SELECT or its input mapping names.
        public var columns: Set<String>
        /// The reader names a whole row (`k.*`, `row_to_json(k)`): every column counts.
        public var wholeRow: Bool
        /// The reader's SELECT names the table at all. One that does not must read it some way
        /// the catalog does not record (inside a function), so every column counts.
        public var selectNamesTable: Bool

        public init(columns: Set<String>, wholeRow: Bool, selectNamesTable: Bool) {
            self.columns = columns
            self.wholeRow = wholeRow
            self.selectNamesTable = selectNamesTable
        }
    }

    /// Names of the temporary objects a reader probe creates (inside a savepoint, rolled back).
    public static let probeSelectView = "_tributary_reads_select"
    public static let probeMappingView = "_tributary_reads_mapping"

    /// Statements that make PostgreSQL record which columns of this model's table a reader uses:
    /// its SELECT, and its input mapping over a stand-in `changed` table shaped as this model's
    /// table (a view's rule depends on each column it names). Run in a savepoint, rolled back.
    public func readerProbe(_ reader: TransformModel) -> [String] {
        var statements = ["CREATE TEMPORARY VIEW \(Self.probeSelectView) AS SELECT * FROM (\n\(reader.sql)\n) AS r"]
        guard let input = reader.inputs.first(where: { $0.table == model.table }) else { return statements }
        statements.append("CREATE TEMPORARY TABLE changed AS SELECT * FROM \(table) WITH NO DATA")
        switch input.mapping {
        case .expressions(let expressions):
            statements.append("CREATE TEMPORARY VIEW \(Self.probeMappingView) AS SELECT \(expressions.joined(separator: ", ")) FROM changed")
        case .query(let query):
            statements.append("CREATE TEMPORARY VIEW \(Self.probeMappingView) AS\n\(query)\n")
        }
        return statements
    }

    /// The columns of `table` a probe view's rule depends on, one per row.
    public static func probeColumns(view: String, table: String) -> String {
        "SELECT a.attname::text FROM pg_depend d JOIN pg_rewrite w ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid "
            + "JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid "
            + "WHERE w.ev_class = \(SQL.literal(view))::regclass AND d.refobjid = \(SQL.literal(table))::regclass"
    }

    /// Whether a probe view has a whole-row reference: PostgreSQL records no column for one, and
    /// prints it as `alias.*` (a `.*` in a string literal only makes the answer "every column").
    public static func probeWholeRow(view: String) -> String {
        "SELECT strpos(pg_get_viewdef(\(SQL.literal(view))::regclass), '.*') > 0"
    }

    /// The compared columns whose change the readers can see, or nil when every change counts.
    /// A reader's output for a key is a function of the columns it names: a change to others
    /// (a premium, when a claim reads only its contract's surrogate) cannot change it, so the key
    /// is not logged for it. New and removed keys are always logged, and so is `_deleted`.
    public static func loggedColumns(compared: [String], readers: [ReaderColumns?]) -> [String]? {
        var read: Set<String> = [deleted]
        for reader in readers {
            guard let reader, !reader.wholeRow, reader.selectNamesTable else { return nil }
            read.formUnion(reader.columns)
        }
        return compared.filter(read.contains)
    }

    /// Removes (or flags) the affected keys the SELECT no longer produces, writes new and changed
    /// rows, logs the keys it changed when other models read this one, and returns the counts:
    /// removed, inserted, updated, and `changed` (the rows it meant to write: inserted + updated
    /// must equal it). Needs `findCurrentRows` first. Rows are compared by their text form before
    /// anything is written, so a row that did not change is not touched at all (an ON CONFLICT
    /// upsert would lock, and so write, every row it meets). A changed row is updated where it is
    /// (by `ctid`), a new one inserted. When logged, `loggedColumns` (nil: all) are the columns
    /// whose change the readers see (see `loggedColumns(compared:readers:)`): an updated key is
    /// logged only when one of them changed.
    public func merge(selectColumns columns: [String], logged: Bool, loggedColumns: [String]? = nil) -> String {
        let gone = "NOT EXISTS (SELECT 1 FROM \(Self.fresh) AS n WHERE \(keyMatch("n", "a")))"
        let removal = model.deletes == .delete
            ? "DELETE FROM \(table) AS t USING \(Self.affected) AS a WHERE \(keyMatch("t", "a")) AND \(gone) RETURNING \(keys("t"))"
            : "UPDATE \(table) AS t SET \(SQL.identifier(Self.deleted)) = true FROM \(Self.affected) AS a WHERE \(keyMatch("t", "a")) AND \(gone) "
                + "AND NOT t.\(SQL.identifier(Self.deleted)) RETURNING \(keys("t"))"
        let all = tableColumns(selectColumns: columns)
        let compared = all.filter { !model.key.contains($0) }
        let differs = { (compared: [String]) in
            compared.isEmpty ? "false"
                : "ROW(\(compared.map { "t.\(SQL.identifier($0))" }.joined(separator: ", ")))::text IS DISTINCT FROM "
                    + "ROW(\(compared.map { "f.\(SQL.identifier($0))" }.joined(separator: ", ")))::text"
        }
        let isNew = "t.\(SQL.identifier(model.key[0])) IS NULL"
        let seen = logged ? ", \(isNew) OR \(differs(loggedColumns ?? compared)) AS \(Self.readerSees)" : ""
        let changed = "SELECT f.*\(seen) FROM (\(currentFreshRows(columns: columns))) AS f (\(SQL.identifierList(all + [Self.currentRow]))) "
            + "LEFT JOIN \(table) AS t ON t.ctid = f.\(Self.currentRow) WHERE \(isNew) OR \(differs(compared))"
        let insert = "INSERT INTO \(table) AS t (\(SQL.identifierList(all))) SELECT \(SQL.identifierList(all)) FROM changed "
            + "WHERE \(Self.currentRow) IS NULL ON CONFLICT (\(keyList)) DO "
            + (compared.isEmpty ? "NOTHING" : "UPDATE SET \(compared.map { "\(SQL.identifier($0)) = excluded.\(SQL.identifier($0))" }.joined(separator: ", "))")
            + " RETURNING \(keys("t"))"
        var statement = "WITH removed AS (\(removal)), changed AS (\(changed)), inserted AS (\(insert))"
        if !compared.isEmpty {
            statement += ", updated AS (UPDATE \(table) AS t SET \(compared.map { "\(SQL.identifier($0)) = c.\(SQL.identifier($0))" }.joined(separator: ", ")) "
                + "FROM changed AS c WHERE t.ctid = c.\(Self.currentRow) RETURNING \(keys("t")))"
        }
        if logged {
            statement += ", logged AS (INSERT INTO \(changeLog.sql) (\(keyList), \(SQL.identifier(Self.sequence))) "
                + "SELECT \(keyList), nextval('tributary.bl_seq') FROM (SELECT \(keyList) FROM removed "
                + "UNION SELECT \(keyList) FROM changed WHERE \(Self.readerSees)) AS k)"
        }
        return statement + " SELECT (SELECT count(*) FROM removed) AS removed, (SELECT count(*) FROM inserted) AS inserted, "
            + (compared.isEmpty ? "0::bigint" : "(SELECT count(*) FROM updated)") + " AS updated, (SELECT count(*) FROM changed) AS changed"
    }

    // MARK: Full reload

    /// Free space left in each page of a reloaded table: incremental runs update rows in place,
    /// and an update that finds room on its row's page (and changes no key) is a HOT update, which
    /// writes no index entry. Packed full, every page's first update after a reload moves its row
    /// to another page and adds an entry to the key's index.
    public static let reloadFillFactor = 90

    /// The model's table (or a scratch copy) from the SELECT's rows, with its key.
    public func createReloadTable(_ name: QualifiedName, selectColumns columns: [String]) -> [String] {
        [
            "DROP TABLE IF EXISTS \(name.sql)",
            "CREATE TABLE \(name.sql) (\(SQL.identifierList(tableColumns(selectColumns: columns)))) WITH (fillfactor = \(Self.reloadFillFactor)) "
                + "AS \(freshRows(columns: columns))",
            "ALTER TABLE \(name.sql) ADD CONSTRAINT \(SQL.identifier(SQL.truncated(name.name, bytes: 55) + "_pkey")) PRIMARY KEY (\(keyList))",
            "ANALYZE \(name.sql)",
        ]
    }

    /// A flagging model's reload keeps the keys the old table had and the SELECT no longer makes,
    /// flagged, as incremental runs would have left them. Only when its columns are the same.
    public func carryFlaggedKeys(selectColumns columns: [String]) -> String {
        let match = keyMatch("r", "t")
        let kept = tableColumns(selectColumns: columns).filter { $0 != Self.deleted }
        return "INSERT INTO \(reloadTable.sql) (\(SQL.identifierList(kept + [Self.deleted]))) "
            + "SELECT \(kept.map { "t.\(SQL.identifier($0))" }.joined(separator: ", ")), true FROM \(table) AS t "
            + "WHERE NOT EXISTS (SELECT 1 FROM \(reloadTable.sql) AS r WHERE \(match))"
    }

    /// Swaps the reload table in for the model's, keeping the key's name: the only moment readers wait.
    public var swap: [String] {
        [
            "DROP TABLE IF EXISTS \(table)",
            "ALTER TABLE \(reloadTable.sql) RENAME TO \(SQL.identifier(model.table.name))",
            "ALTER INDEX \(SQL.identifier(model.table.schema)).\(SQL.identifier(SQL.truncated(reloadTable.name, bytes: 55) + "_pkey")) "
                + "RENAME TO \(SQL.identifier(SQL.truncated(model.table.name, bytes: 58) + "_pkey"))",
        ]
    }

    /// The change log of a model others read: created if missing.
    public var createChangeLog: [String] {
        [
            "CREATE TABLE IF NOT EXISTS \(changeLog.sql) AS SELECT \(keyList), 0::bigint AS \(SQL.identifier(Self.sequence)) FROM \(table) WITH NO DATA",
            "CREATE INDEX IF NOT EXISTS \(SQL.identifier(SQL.truncated(changeLog.name, bytes: 58) + "_seq")) ON \(changeLog.sql) (\(SQL.identifier(Self.sequence)))",
        ]
    }

    /// What a reload built, for a VACUUM after it commits: the model's table, its surrogate map and
    /// its inputs' key maps.
    public func reloadedTables(keyMaps: [QualifiedName]) -> [QualifiedName] {
        [model.table] + (model.surrogate == nil ? [] : [surrogateMap]) + keyMaps
    }

    /// Drops log entries every reader has taken in.
    public func pruneChangeLog(below seq: Int64) -> String {
        "DELETE FROM \(changeLog.sql) WHERE \(SQL.identifier(Self.sequence)) <= \(seq)"
    }
}
