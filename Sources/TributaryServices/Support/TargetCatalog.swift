import TributaryCore
import TributaryPostgres

/// What the target's catalog says of a table: whether it exists, its columns, its key.
enum TargetCatalog {
    struct Column: Decodable, Equatable {
        var name: String
        /// `format_type` with the modifier.
        var type: String

        enum CodingKeys: String, CodingKey { case name = "attname", type }
    }

    /// Whether the server was built with lz4, for TOAST: it compresses (or gives up on) a large
    /// value some 20 times faster than the default pglz, which costs a model with large text
    /// columns most of its run (13 KB values: 267 µs each with pglz, 13 µs with lz4). Asked once
    /// per session: every model run needs it, and `pg_settings` builds a row of every setting,
    /// 0.7 ms of the target's time a run (2% of the BL connection's at 600 tables, bench-breadth).
    static func hasLZ4(on connection: isolated PostgresConnection) throws -> Bool {
        if let known = connection.serverFacts["lz4"] { return known }
        let lz4 = try connection.query("SELECT coalesce('lz4' = ANY (enumvals), false) FROM pg_settings WHERE name = 'default_toast_compression'")
            .optionalScalar(Bool.self) ?? false
        connection.serverFacts["lz4"] = lz4
        return lz4
    }

    static func exists(_ table: QualifiedName, on connection: isolated PostgresConnection) throws -> Bool {
        try connection.query("SELECT to_regclass($1) IS NOT NULL", [table.sql]).scalar(Bool.self)
    }

    /// Columns in order; empty when the table does not exist.
    static func columns(of table: QualifiedName, on connection: isolated PostgresConnection) throws -> [Column] {
        try connection.query("""
            SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type FROM pg_attribute a
            WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
            """, [table.sql]).decode(Column.self)
    }

    /// Columns of a temporary table this session made.
    static func temporaryColumns(of name: String, on connection: isolated PostgresConnection) throws -> [Column] {
        try columns(of: QualifiedName(schema: "pg_temp", name: name), on: connection)
    }

    static func primaryKey(of table: QualifiedName, on connection: isolated PostgresConnection) throws -> [String] {
        try connection.query("""
            SELECT a.attname FROM pg_index i
            CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position)
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE i.indrelid = to_regclass($1) AND i.indisprimary ORDER BY k.position
            """, [table.sql]).column(String.self)
    }
}
