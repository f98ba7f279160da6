/// The row-content checksum `verify` computes identically on source and STG: a count and the sum
/// of a 64-bit hash of each row. The sum is order-independent, so neither side sorts; keys are
/// unique, so equal rows cannot cancel out.
public enum ChecksumSQL {
    public static func checksum(table: QualifiedName, columns: [String], hash: RowHash, excludeTombstones: Bool) -> String {
        let filter = excludeTombstones ? " WHERE NOT \(SQL.identifier(StagingColumns.deleted))" : ""
        return "SELECT count(*) AS rows, coalesce(sum(\(hash.expression(columns))), 0) AS checksum FROM \(table.sql)\(filter)"
    }
}

/// How one row is hashed, the same way on both sides (a bigint; the sum is numeric, so it cannot
/// overflow).
///
/// PostgreSQL's own hash functions (what hash partitioning uses, so stable across versions and
/// `pg_upgrade`), not the first 64 bits of an md5. A column whose STG type is its source type, and
/// whose type hashes by value exactly as it compares, is hashed by that type's hash inside
/// `hash_record_extended` (PostgreSQL 14 and later); any other (an enum STG keeps as text, say) by
/// its text form, so that both sides hash the same thing. Turning every value into text was most of
/// a verify: over the 1M-row table of bench-breadth, 0.77-0.91 s against 0.30-0.33 s by type
/// (`count(*)`: 0.1 s). Text-like values hash in collation "C": byte for byte, whatever the column's
/// collation. Hashes depend on byte order, which is the same (little-endian) on every platform both
/// sides run on.
public struct RowHash: Sendable, Equatable {
    /// How one column goes into the hash.
    enum Form: Sendable, Equatable {
        case text
        case value
        /// A text-like value, hashed byte for byte.
        case valueInCollationC
    }

    /// Per column, in order; nil: the whole row's text form (a side before PostgreSQL 14, which
    /// lacks `hash_record_extended`).
    let forms: [Form]?

    /// - Parameter byRecord: both servers run PostgreSQL 14 or later.
    public init(columns: [ColumnSchema], byRecord: Bool) {
        forms = byRecord ? columns.map { column in
            guard column.sourceType == column.stagingType, Self.hashesAsItCompares(column.sourceType) else { return .text }
            return ["text", "character"].contains { column.sourceType.hasPrefix($0) } ? .valueInCollationC : .value
        } : nil
    }

    /// Every row by its whole text form, as a server before PostgreSQL 14 can hash it.
    public static let wholeRowText = RowHash(forms: nil)

    private init(forms: [Form]?) { self.forms = forms }

    /// Per column: hashed by its own type's hash (false: by its text form).
    public var byType: [Bool] { forms?.map { $0 != .text } ?? [] }

    /// Built-in types whose equal values have one text form each (in one time zone), so that their
    /// hash is as strict as their text. Not an unconstrained numeric (1.0 and 1.00 hash alike), an
    /// interval (`1 day` and `24 hours`), a float (0 and -0), jsonb (numbers as numeric) or an array
    /// (its lower bound is not hashed).
    static func hashesAsItCompares(_ type: String) -> Bool {
        guard !type.hasSuffix("]") else { return false }
        let exact = ["smallint", "integer", "bigint", "boolean", "text", "uuid", "date", "bytea", "oid", "character varying",
                     "timestamp without time zone", "timestamp with time zone", "time without time zone"]
        if exact.contains(type) { return true }
        if type.hasPrefix("time(") { return type.hasSuffix("without time zone") }
        return ["numeric(", "character varying(", "character(", "timestamp("].contains { type.hasPrefix($0) }
    }

    /// The hash of a row whose columns are `names` on this side (in the order the hash was made for).
    public func expression(_ names: [String]) -> String {
        guard let forms else { return "hashtextextended(ROW(\(SQL.identifierList(names)))::text, 0)" }
        let values = zip(names, forms).map { name, form in
            let column = SQL.identifier(name)
            switch form {
            case .text: return "\(column)::text"
            case .value: return column
            case .valueInCollationC: return "\(column) COLLATE \"C\""
            }
        }
        return "hash_record_extended(ROW(\(values.joined(separator: ", "))), 0)"
    }
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
    public static func bucketChecksums(table: QualifiedName, columns: [String], hash: RowHash, key: [KeyColumn], bounds: [[String?]],
                                       lower: [String?]?, upper: [String?]?, excludeTombstones: Bool) -> String {
        var bucket = "CASE"
        for (index, value) in bounds.enumerated() { bucket += " WHEN \(keyRow(key)) < \(bound(key, value)) THEN \(index)" }
        bucket += " ELSE \(bounds.count) END"
        var filter = within(key, lower: lower, upper: upper)
        if excludeTombstones { filter += " AND NOT \(SQL.identifier(StagingColumns.deleted))" }
        return """
            SELECT bucket, count(*) AS rows, sum(row_hash) AS checksum
            FROM (SELECT \(bounds.isEmpty ? "0" : bucket) AS bucket, \(hash.expression(columns)) AS row_hash FROM \(table.sql) WHERE \(filter)) AS rows
            GROUP BY bucket ORDER BY bucket
            """
    }
}
