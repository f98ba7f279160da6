/// The row-content checksum `verify` computes identically on source and STG: a count and the sum
/// of a 64-bit hash of each row's text form. The sum is order-independent, so neither side sorts;
/// keys are unique, so equal rows cannot cancel out.
///
/// The hash is PostgreSQL's own `hashtextextended` (what hash partitioning uses, so stable across
/// versions and `pg_upgrade`) rather than the first 64 bits of an md5: over the 2 x 300 tables of
/// bench-breadth, reading every row's checksum on both sides took 2.1 s instead of 3.6 s (`count(*)`:
/// 0.5 s). Turning each row into text is most of what is left, and it is what makes an enum on the
/// source and its text in STG compare equal. Its result depends on byte order, which is the same
/// (little-endian) on every platform both sides run on.
public enum ChecksumSQL {
    public static func checksum(table: QualifiedName, columns: [String], excludeTombstones: Bool) -> String {
        let filter = excludeTombstones ? " WHERE NOT \(SQL.identifier(StagingColumns.deleted))" : ""
        return "SELECT count(*) AS rows, coalesce(sum(\(rowHash(rowText(columns)))), 0) AS checksum FROM \(table.sql)\(filter)"
    }

    /// A row's text form: `(1,"a b",)`.
    static func rowText(_ columns: [String]) -> String { "ROW(\(SQL.identifierList(columns)))::text" }

    /// The 64-bit hash of a row's text form (a bigint; their sum is numeric, so it cannot overflow).
    static func rowHash(_ text: String) -> String { "hashtextextended(\(text), 0)" }
}

/// One key column as the key-range narrowing compares it on both sides.
public struct KeyColumn: Sendable, Hashable {
    public var name: String
    /// The type both sides have, when its order is the same on both (numbers, dates, times, uuids,
    /// and text in "C" collation): ranges then read in the key's own order (`10 <= id < 20`).
    /// Nil: the text form in "C" collation, the same on both sides even where STG keeps a type as
    /// text (an enum, say).
    public var nativeType: String?

    public init(name: String, nativeType: String? = nil) {
        self.name = name
        self.nativeType = nativeType
    }

    /// How `column` is compared: natively when STG has its source type and that type orders alike
    /// on both sides.
    public init(_ column: ColumnSchema) {
        name = column.name
        let type = column.sourceType
        let ordered = ["smallint", "integer", "bigint", "numeric", "real", "double precision", "uuid", "date", "text", "boolean", "oid",
                       "timestamp without time zone", "timestamp with time zone", "time without time zone", "character varying",
                       "character", "bpchar", "interval"]
        nativeType = type == column.stagingType && ordered.contains(where: { type == $0 || type.hasPrefix($0 + "(") }) ? type : nil
    }

    var isText: Bool {
        guard let nativeType else { return true }
        return nativeType == "text" || nativeType.hasPrefix("character") || nativeType == "bpchar"
    }

    /// The column as compared.
    var expression: String {
        guard let nativeType else { return "\(SQL.identifier(name))::text COLLATE \"C\"" }
        return isText ? "\(SQL.identifier(name))::\(nativeType) COLLATE \"C\"" : SQL.identifier(name)
    }

    /// A bound's value (its text form) as compared.
    func bound(_ value: String?) -> String {
        guard let value else { return "NULL" }
        guard let nativeType else { return SQL.literal(value) + " COLLATE \"C\"" }
        return SQL.literal(value) + "::" + nativeType + (isText ? " COLLATE \"C\"" : "")
    }
}

/// Narrows a differing table down to key ranges: the key space is cut into buckets at keys of the
/// source, each bucket's count and checksum compared, and the differing ones cut again.
public enum KeyRangeSQL {
    /// The key, as one comparable row value.
    public static func keyRow(_ key: [KeyColumn]) -> String {
        "ROW(" + key.map(\.expression).joined(separator: ", ") + ")"
    }

    static func bound(_ key: [KeyColumn], _ values: [String?]) -> String {
        "ROW(" + zip(key, values).map { $0.bound($1) }.joined(separator: ", ") + ")"
    }

    /// `lower <= key < upper`; nil bounds are open.
    public static func within(_ key: [KeyColumn], lower: [String?]?, upper: [String?]?) -> String {
        var conditions: [String] = []
        if let lower { conditions.append("\(keyRow(key)) >= \(bound(key, lower))") }
        if let upper { conditions.append("\(keyRow(key)) < \(bound(key, upper))") }
        return conditions.isEmpty ? "true" : conditions.joined(separator: " AND ")
    }

    /// About `buckets` evenly spaced keys within the range, each column as text: the bucket bounds.
    public static func boundaries(table: QualifiedName, key: [KeyColumn], lower: [String?]?, upper: [String?]?, buckets: Int) -> String {
        let texts = key.enumerated().map { "\(SQL.identifier($0.element.name))::text AS k\($0.offset)" }.joined(separator: ", ")
        return """
            SELECT \((0..<key.count).map { "k\($0)" }.joined(separator: ", ")) FROM (
                SELECT \(texts), row_number() OVER (ORDER BY \(keyRow(key))) AS position, count(*) OVER () AS total
                FROM \(table.sql) WHERE \(within(key, lower: lower, upper: upper))) AS numbered
            WHERE position % greatest(total / \(buckets), 1) = 0
            ORDER BY position
            """
    }

    /// Count and checksum per bucket: bucket i holds `bounds[i-1] <= key < bounds[i]`.
    public static func bucketChecksums(table: QualifiedName, columns: [String], key: [KeyColumn], bounds: [[String?]],
                                       lower: [String?]?, upper: [String?]?, excludeTombstones: Bool) -> String {
        var bucket = "CASE"
        for (index, value) in bounds.enumerated() { bucket += " WHEN \(keyRow(key)) < \(bound(key, value)) THEN \(index)" }
        bucket += " ELSE \(bounds.count) END"
        var filter = within(key, lower: lower, upper: upper)
        if excludeTombstones { filter += " AND NOT \(SQL.identifier(StagingColumns.deleted))" }
        return """
            SELECT bucket, count(*) AS rows, sum(\(ChecksumSQL.rowHash("row_text"))) AS checksum
            FROM (SELECT \(bounds.isEmpty ? "0" : bucket) AS bucket, \(ChecksumSQL.rowText(columns)) AS row_text FROM \(table.sql) WHERE \(filter)) AS rows
            GROUP BY bucket ORDER BY bucket
            """
    }
}
