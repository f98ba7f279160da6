import Logging
import TributaryCore
import TributaryPostgres

/// Looks configured tables up in a source's catalog: existence, privileges, columns and their STG
/// types, the key, and the size used to plan the copy.
public enum SourceCatalog {
    public static func describe(_ tables: [TableConfiguration], source: SourceConfiguration,
                                on connection: PostgresConnection) async throws -> [SourceTable] {
        var result: [SourceTable] = []
        for table in tables {
            result.append(try await describe(table, source: source, on: connection))
        }
        return result
    }

    /// The configured tables the source still has, for the replicator. A table dropped there is
    /// said in the log and left out: no change can come for it and its STG table keeps its rows
    /// (`status` says so too), unless `schema_changes: stop`, which stops the source.
    public static func describeReplicated(_ source: SourceConfiguration, on connection: PostgresConnection,
                                          logger: Logger) async throws -> [SourceTable] {
        var result: [SourceTable] = []
        for table in source.tables {
            guard try await connection.query("SELECT to_regclass($1) IS NOT NULL", [table.table.sql]).scalar(Bool.self) else {
                if source.schemaChanges == .stop {
                    throw TributaryError(.schemaChange, "table \(table.table) was dropped on \(source.name) and schema_changes is stop: remove it from \(source.file), then start again")
                }
                logger.warning("table dropped on the source: no changes come for it, its STG table keeps its rows; remove it from the configuration once that is intended",
                               metadata: [LogKey.table: .string(table.table.description)])
                continue
            }
            result.append(try await describe(table, source: source, on: connection))
        }
        return result
    }

    public static func describe(_ table: TableConfiguration, source: SourceConfiguration,
                                on connection: PostgresConnection) async throws -> SourceTable {
        let found = try await connection.query("""
            SELECT c.oid, c.relkind, c.relreplident,
                   pg_relation_size(c.oid) / current_setting('block_size')::bigint AS pages,
                   greatest(c.reltuples, 0)::bigint AS estimated_rows, pg_table_size(c.oid) AS estimated_bytes,
                   has_table_privilege(c.oid, 'SELECT') AS readable
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
            """, [table.table.schema, table.table.name])
        guard let row = found.first else {
            throw TributaryError(.requirement, "table \(table.table) does not exist on \(source.name): create it, or remove it from \(source.file)")
        }
        let oid = try row.decode("oid", as: UInt32.self)
        guard try row.decode("readable", as: Bool.self) else {
            throw TributaryError(.requirement, "the role of \(source.name) may not read \(table.table): GRANT SELECT ON \(table.table.sql) TO <role>")
        }
        let replicaIdentity = try row.decode("relreplident", as: String.self)
        let (columns, omitted) = try await describeColumns(oid: oid, table: table, source: source, on: connection)
        let key = try await key(oid: oid, replicaIdentity: replicaIdentity, table: table, source: source,
                                columns: columns.map(\.name), on: connection)
        return SourceTable(
            configuration: table, oid: oid,
            relation: RelationSchema(table: table.table, columns: columns, key: key),
            pages: try row.decode("pages"), estimatedRows: try row.decode("estimated_rows"),
            estimatedBytes: try row.decode("estimated_bytes"), isPartitioned: try row.decode("relkind", as: String.self) == "p",
            omittedColumns: omitted)
    }

    static func describeColumns(oid: UInt32, table: TableConfiguration, source: SourceConfiguration,
                                on connection: PostgresConnection) async throws -> ([ColumnSchema], [String]) {
        let rows = try await connection.query("""
            SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS formatted, a.atttypid, a.attnotnull,
                   a.attgenerated <> '' AS generated,
                   CASE WHEN a.atthasmissing THEN (a.attmissingval::text::text[])[1] END AS missing_value
            FROM pg_attribute a
            WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """, [String(oid)])
        let attributes = try rows.decode(CatalogColumn.self)
        for excluded in table.excludedColumns where !attributes.contains(where: { $0.name == excluded }) {
            throw TributaryError(.requirement, "\(source.file): exclude_columns names \"\(excluded)\", which \(table.table) on \(source.name) does not have")
        }
        let catalog = try await typeCatalog(oids: attributes.map(\.typeOid), on: connection)
        var columns: [ColumnSchema] = []
        var omitted: [String] = []
        for attribute in attributes {
            if attribute.generated || table.excludedColumns.contains(attribute.name) {
                omitted.append(attribute.name)
                continue
            }
            let stagingType = try StagingTypeMapper.stagingType(oid: attribute.typeOid, formattedWithModifier: attribute.formatted, catalog: catalog)
            columns.append(ColumnSchema(name: attribute.name, sourceType: attribute.formatted, stagingType: stagingType,
                                        typeOid: attribute.typeOid, notNull: attribute.notNull, missingValue: attribute.missingValue))
        }
        return (columns, omitted)
    }

    /// A column a Relation message names but the catalog no longer has (dropped since the change
    /// was written): its STG type from the type the message gives.
    static func describeDroppedColumn(_ name: String, typeOid: UInt32, typeModifier: Int32, source: SourceConfiguration,
                                      on connection: PostgresConnection) async throws -> ColumnSchema {
        let formatted = try await connection.query("SELECT format_type($1::oid, $2::int)", [String(typeOid), String(typeModifier)]).scalar(String.self)
        let stagingType = try StagingTypeMapper.stagingType(oid: typeOid, formattedWithModifier: formatted,
                                                            catalog: try await typeCatalog(oids: [typeOid], on: connection))
        return ColumnSchema(name: name, sourceType: formatted, stagingType: stagingType, typeOid: typeOid, notNull: false)
    }

    /// Every type the columns use, with the domains' base types and the arrays' element types.
    static func typeCatalog(oids: [UInt32], on connection: PostgresConnection) async throws -> [UInt32: CatalogType] {
        let rows = try await connection.query("""
            WITH RECURSIVE used(oid) AS (
                SELECT unnest($1::oid[])
                UNION
                SELECT next.oid FROM used JOIN pg_type t ON t.oid = used.oid
                CROSS JOIN LATERAL (VALUES (t.typbasetype), (t.typelem)) AS next(oid)
                WHERE next.oid <> 0
            )
            SELECT t.oid, n.nspname, t.typtype, t.typbasetype, format_type(t.typbasetype, t.typtypmod) AS base_formatted,
                   t.typelem, t.typcategory = 'A' AND t.typelem <> 0 AS is_array
            FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
            WHERE t.oid IN (SELECT oid FROM used)
            """, ["{" + oids.map(String.init).joined(separator: ",") + "}"])
        var catalog: [UInt32: CatalogType] = [:]
        for row in rows.rows {
            let kind: CatalogType.Kind = switch try row.decode("typtype", as: String.self) {
            case "c": .composite
            case "d": .domain
            case "e": .enumeration
            case "p": .pseudo
            case "r": .range
            case "m": .multirange
            default: .base
            }
            let oid = try row.decode("oid", as: UInt32.self)
            catalog[oid] = CatalogType(oid: oid, schema: try row.decode("nspname"), kind: kind, baseTypeOID: try row.decode("typbasetype"),
                                       baseFormatted: try row.decodeIfPresent("base_formatted") ?? "", elementOID: try row.decode("typelem"),
                                       isArray: try row.decode("is_array"))
        }
        return catalog
    }

    /// The key the STG table is merged on. It must be what logical replication sends as the old key
    /// of updates and deletes (the replica identity), or a deletion could not be matched.
    static func key(oid: UInt32, replicaIdentity: String, table: TableConfiguration, source: SourceConfiguration,
                    columns: [String], on connection: PostgresConnection) async throws -> [String] {
        let rows = try await connection.query("""
            SELECT i.indisprimary, i.indisreplident, a.attname
            FROM pg_index i
            CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position)
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE i.indrelid = $1 AND (i.indisprimary OR i.indisreplident)
            ORDER BY i.indexrelid, k.position
            """, [String(oid)])
        let members = try rows.rows.map { (primary: try $0.decode("indisprimary", as: Bool.self),
                                           identity: try $0.decode("indisreplident", as: Bool.self), column: try $0.decode("attname", as: String.self)) }
        let primaryKey = members.filter(\.primary).map(\.column)
        let identityIndex = members.filter(\.identity).map(\.column)
        let identity: [String]? = switch replicaIdentity {
        case "d": primaryKey.isEmpty ? nil : primaryKey
        case "i": identityIndex
        case "f": primaryKey.isEmpty ? nil : primaryKey
        default: nil
        }
        if let configured = table.key {
            for column in configured where !columns.contains(column) {
                throw TributaryError(.requirement, "\(source.file): key of \(table.table) names \"\(column)\", which is not a replicated column of the table on \(source.name)")
            }
            // With REPLICA IDENTITY FULL the old row carries every column, so any key works.
            guard replicaIdentity == "f" || Set(configured) == Set(identity ?? []) else {
                throw TributaryError(.requirement, """
                    key [\(configured.joined(separator: ", "))] of \(table.table) in \(source.file) is not its replica identity on \(source.name): \
                    ALTER TABLE \(table.table.sql) REPLICA IDENTITY FULL, or remove key to use [\((identity ?? []).joined(separator: ", "))]
                    """)
            }
            return configured
        }
        guard let identity, !identity.isEmpty else {
            throw TributaryError(.requirement, """
                table \(table.table) on \(source.name) has no primary key and no replica identity index, so updates and deletes \
                cannot be matched: add a primary key, or ALTER TABLE \(table.table.sql) REPLICA IDENTITY USING INDEX <unique index>, \
                or set REPLICA IDENTITY FULL and give key: [...] for it in \(source.file)
                """)
        }
        for column in identity where !columns.contains(column) {
            throw TributaryError(.requirement, "key column \"\(column)\" of \(table.table) on \(source.name) is excluded or generated: it must be replicated")
        }
        return identity
    }
}

/// One column as `pg_attribute` describes it.
struct CatalogColumn: Decodable {
    var name: String
    /// `format_type` with the modifier: `numeric(12,2)`.
    var formatted: String
    var typeOid: UInt32
    var notNull: Bool
    /// A generated column: pgoutput never sends it.
    var generated: Bool
    var missingValue: String?

    enum CodingKeys: String, CodingKey {
        case name = "attname", formatted, typeOid = "atttypid", notNull = "attnotnull", generated, missingValue = "missing_value"
    }
}
