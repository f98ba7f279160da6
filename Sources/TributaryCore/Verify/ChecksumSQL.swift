/// The row-content checksum `verify` computes identically on source and STG: a count and the sum of
/// the first 64 bits of each row's md5 over its text form. The sum is order-independent, so neither
/// side sorts; keys are unique, so equal rows cannot cancel out.
public enum ChecksumSQL {
    public static func checksum(table: QualifiedName, columns: [String], excludeTombstones: Bool) -> String {
        let row = "ROW(\(SQL.identifierList(columns)))::text"
        let filter = excludeTombstones ? " WHERE NOT \(SQL.identifier(StagingColumns.deleted))" : ""
        return """
            SELECT count(*) AS rows, \
            coalesce(sum(('x' || substr(md5(\(row)), 1, 16))::bit(64)::bigint::numeric), 0) AS checksum \
            FROM \(table.sql)\(filter)
            """
    }
}

/// Narrows a differing table down to key ranges. Keys are bucketed by their text form in "C"
/// collation, which is the same on both sides even where STG keeps a type as text (an enum, say).
public enum KeyRangeSQL {
    /// The text form of the key, as one comparable row value.
    public static func keyText(_ key: [String]) -> String {
        "ROW(" + key.map { "\(SQL.identifier($0))::text COLLATE \"C\"" }.joined(separator: ", ") + ")"
    }

    static func bound(_ values: [String?]) -> String {
        "ROW(" + values.map { $0.map { SQL.literal($0) + " COLLATE \"C\"" } ?? "NULL" }.joined(separator: ", ") + ")"
    }

    /// `lower <= key < upper`; nil bounds are open.
    public static func within(_ key: [String], lower: [String?]?, upper: [String?]?) -> String {
        var conditions: [String] = []
        if let lower { conditions.append("\(keyText(key)) >= \(bound(lower))") }
        if let upper { conditions.append("\(keyText(key)) < \(bound(upper))") }
        return conditions.isEmpty ? "true" : conditions.joined(separator: " AND ")
    }

    /// About `buckets` evenly spaced keys within the range, each column as text: the bucket bounds.
    public static func boundaries(table: QualifiedName, key: [String], lower: [String?]?, upper: [String?]?, buckets: Int) -> String {
        let texts = key.enumerated().map { "\(SQL.identifier($0.element))::text AS k\($0.offset)" }.joined(separator: ", ")
        return """
            SELECT \((0..<key.count).map { "k\($0)" }.joined(separator: ", ")) FROM (
                SELECT \(texts), row_number() OVER (ORDER BY \(keyText(key))) AS position, count(*) OVER () AS total
                FROM \(table.sql) WHERE \(within(key, lower: lower, upper: upper))) AS numbered
            WHERE position % greatest(total / \(buckets), 1) = 0
            ORDER BY position
            """
    }

    /// Count and checksum per bucket: bucket i holds `bounds[i-1] <= key < bounds[i]`.
    public static func bucketChecksums(table: QualifiedName, columns: [String], key: [String], bounds: [[String?]],
                                       lower: [String?]?, upper: [String?]?, excludeTombstones: Bool) -> String {
        let row = "ROW(\(SQL.identifierList(columns)))::text"
        var bucket = "CASE"
        for (index, value) in bounds.enumerated() { bucket += " WHEN \(keyText(key)) < \(bound(value)) THEN \(index)" }
        bucket += " ELSE \(bounds.count) END"
        var filter = within(key, lower: lower, upper: upper)
        if excludeTombstones { filter += " AND NOT \(SQL.identifier(StagingColumns.deleted))" }
        return """
            SELECT bucket, count(*) AS rows, sum(('x' || substr(md5(row_text), 1, 16))::bit(64)::bigint::numeric) AS checksum
            FROM (SELECT \(bounds.isEmpty ? "0" : bucket) AS bucket, \(row) AS row_text FROM \(table.sql) WHERE \(filter)) AS rows
            GROUP BY bucket ORDER BY bucket
            """
    }
}
