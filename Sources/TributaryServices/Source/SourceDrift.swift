import TributaryCore
import TributaryPostgres

/// What changed on a source behind the pipeline's back and is not an error in the stream: a
/// configured table dropped (no change for it will ever come again) and columns dropped (STG keeps
/// them, as `schema_changes` allows, and new rows get NULL). Said by `status` and `verify`.
public enum SourceDrift {
    /// Of `stagingColumns` (an STG table's, from `columns(of:on:)`; nil: no such table), those the
    /// source table `described` no longer has, metadata columns and columns deliberately not
    /// replicated left aside.
    public static func droppedColumns(_ stagingColumns: [String]?, described: SourceTable) -> [String] {
        let known = Set(described.relation.columnNames + described.omittedColumns + [StagingColumns.lsn, StagingColumns.deleted])
        return (stagingColumns ?? []).filter { !known.contains($0) }
    }

    /// Warnings for `status`: configured tables gone from the source, and columns STG has that the
    /// source dropped. Two catalog queries whatever the number of tables (status runs on every scrape).
    public static func warnings(_ source: SourceConfiguration, on connection: PostgresConnection,
                                target: PostgresConnection) async throws -> [String] {
        let sourceColumns = try await columns(of: source.tables.map(\.table.sql), on: connection)
        let stagingColumns = try await columns(of: source.tables.map { QualifiedName(schema: StagingColumns.schema, name: $0.stagingTable).sql },
                                               on: target)
        var warnings: [String] = []
        let recorded = (try? await ControlStore(target).recordedTableOIDs(of: source.name)) ?? [:]
        for table in source.tables {
            guard let onSource = sourceColumns[table.table.sql] ?? nil else {
                if let oid = recorded[table.table], let renamed = try await name(of: oid, on: connection) {
                    warnings.append("table \(table.table) was renamed to \(renamed) on \(source.name): followed by its relation id into "
                                    + "stg.\(table.stagingTable); \(source.file) names the old name: write name: \(renamed) with stg_table: \(table.stagingTable)")
                } else {
                    warnings.append("table \(table.table) was dropped on \(source.name): replication of \(source.name) stops after its last change; "
                                    + "stg.\(table.stagingTable) keeps its rows. Remove it from \(source.file) and replication goes on")
                }
                continue
            }
            let staged = stagingColumns[QualifiedName(schema: StagingColumns.schema, name: table.stagingTable).sql] ?? nil
            let dropped = (staged ?? []).filter { !onSource.contains($0) && $0 != StagingColumns.lsn && $0 != StagingColumns.deleted }
            if !dropped.isEmpty {
                warnings.append("\(table.table) on \(source.name) dropped \(dropped.joined(separator: ", ")): stg.\(table.stagingTable) keeps "
                                + (dropped.count == 1 ? "it" : "them") + " and new rows get NULL there")
            }
        }
        return warnings
    }

    /// The table's name now, by relation id; nil when there is no such table.
    static func name(of oid: UInt32, on connection: PostgresConnection) async throws -> QualifiedName? {
        guard let row = try await connection.query("""
            SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1::oid AND c.relkind IN ('r', 'p')
            """, [String(oid)]).first else { return nil }
        return QualifiedName(schema: try row.decode(at: 0, as: String.self), name: try row.decode(at: 1, as: String.self))
    }

    /// Each named table's live column names, in order; nil for a name that resolves to no table.
    static func columns(of tables: [String], on connection: PostgresConnection) async throws -> [String: [String]?] {
        let rows = try await connection.query("""
            SELECT t.name, c.oid IS NOT NULL AS present, a.attname
            FROM unnest($1::text[]) AS t(name)
            LEFT JOIN pg_class c ON c.oid = to_regclass(t.name)
            LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY t.name, a.attnum
            """, [PostgresArray.literal(tables)])
        var result: [String: [String]?] = [:]
        for row in rows.rows {
            let name = try row.decode("name", as: String.self)
            guard try row.decode("present", as: Bool.self) else {
                result[name] = .some(nil)
                continue
            }
            let column = try row.decodeIfPresent("attname", as: String.self)
            result[name] = .some(((result[name] ?? nil) ?? []) + (column.map { [$0] } ?? []))
        }
        return result
    }
}
