import Logging
import TributaryCore
import TributaryPostgres

/// Looks configured tables up in a source's catalog: existence, privileges, columns and their STG
/// types, the key, and the size used to plan the copy.
public enum SourceCatalog {
    public static func describe(_ tables: [TableConfiguration], source: SourceConfiguration,
                                on connection: PostgresConnection) async throws -> [SourceTable] {
        try await describeIfPresent(tables, source: source, on: connection).enumerated().map { index, described in
            guard let described else { throw missing(tables[index], source: source) }
            return described
        }
    }

    /// `tables` by their configured names, nil for one the source does not have: four catalog
    /// queries whatever their number. Per table, `verify` of 2 x 300 tables spent more time in
    /// these lookups (four queries each) than in reading the rows of all but the largest tables.
    public static func describeIfPresent(_ tables: [TableConfiguration], source: SourceConfiguration,
                                         on connection: PostgresConnection) async throws -> [SourceTable?] {
        guard !tables.isEmpty else { return [] }
        let rows = try await connection.query("""
            SELECT t.position, \(classColumns)
            FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(schema, name, position)
            JOIN pg_namespace n ON n.nspname = t.schema
            JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.name AND c.relkind IN ('r', 'p')
            """, [PostgresArray.literal(tables.map(\.table.schema)), PostgresArray.literal(tables.map(\.table.name))])
        var found: [Int: CatalogClass] = [:]
        for row in rows.rows { found[try row.decode("position", as: Int.self) - 1] = try CatalogClass(row) }
        let present = tables.indices.compactMap { index in found[index].map { (tables[index], $0) } }
        var described = try await describe(present, source: source, on: connection).makeIterator()
        return tables.indices.map { found[$0] == nil ? nil : described.next() }
    }

    /// The configured tables the source still has, for the replicator, and those it dropped. A
    /// table renamed since (its relation id, as the applier recorded it, under another name) is
    /// described under its configured name, with the name it has now.
    public static func describeReplicated(_ source: SourceConfiguration, recordedOIDs: [QualifiedName: UInt32] = [:],
                                          on connection: PostgresConnection, logger: Logger) async throws
        -> (tables: [SourceTable], dropped: [TableConfiguration]) {
        var result: [SourceTable] = [], dropped: [TableConfiguration] = []
        for (table, described) in zip(source.tables, try await describeIfPresent(source.tables, source: source, on: connection)) {
            if let described {
                result.append(described)
            } else if let oid = recordedOIDs[table.table], let renamed = try await describeIfPresent(table, oid: oid, source: source, on: connection) {
                logger.warning("table renamed on the source: followed by its relation id, its STG table keeps its name; name it as the source does in the configuration, with stg_table",
                               metadata: [LogKey.table: .string(table.table.description), LogKey.renamedTo: .string(renamed.relation.sourceName?.description ?? "?")])
                result.append(renamed)
            } else {
                dropped.append(table)
            }
        }
        return (result, dropped)
    }

    public static func describe(_ table: TableConfiguration, source: SourceConfiguration,
                                on connection: PostgresConnection) async throws -> SourceTable {
        guard let described = try await describeIfPresent(table, oid: nil, source: source, on: connection) else {
            throw missing(table, source: source)
        }
        return described
    }

    static func missing(_ table: TableConfiguration, source: SourceConfiguration) -> TributaryError {
        TributaryError(.requirement, "table \(table.table) does not exist on \(source.name): create it, or remove it from \(source.file)")
    }

    /// `table` by its configured name, or by its relation id (a table renamed since); nil when
    /// the source has no such table.
    public static func describeIfPresent(_ table: TableConfiguration, oid wanted: UInt32?, source: SourceConfiguration,
                                         on connection: PostgresConnection) async throws -> SourceTable? {
        let found = try await connection.query("""
            SELECT \(classColumns)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE (CASE WHEN $3::oid IS NULL THEN n.nspname = $1 AND c.relname = $2 ELSE c.oid = $3::oid END) AND c.relkind IN ('r', 'p')
            """, [table.table.schema, table.table.name, wanted.map { String($0) }])
        guard let row = found.first else { return nil }
        return try await describe([(table, try CatalogClass(row))], source: source, on: connection).first
    }

    /// What `CatalogClass` reads of `pg_class c` and `pg_namespace n`.
    private static let classColumns = """
        c.oid, c.relkind, c.relreplident, n.nspname, c.relname,
        pg_relation_size(c.oid) / current_setting('block_size')::bigint AS pages,
        greatest(c.reltuples, 0)::bigint AS estimated_rows, pg_table_size(c.oid) AS estimated_bytes,
        has_table_privilege(c.oid, 'SELECT') AS readable
        """

    /// The tables found, described with three more catalog queries in all: their columns, the
    /// types those use, and their keys.
    private static func describe(_ found: [(TableConfiguration, CatalogClass)], source: SourceConfiguration,
                                 on connection: PostgresConnection) async throws -> [SourceTable] {
        guard !found.isEmpty else { return [] }
        for (table, relation) in found where !relation.readable {
            throw TributaryError(.requirement, "the role of \(source.name) may not read \(table.table): GRANT SELECT ON \(table.table.sql) TO <role>")
        }
        let oids = PostgresArray.literal(found.map { String($0.1.oid) })
        let columnRows = try await connection.query("""
            SELECT a.attrelid, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) AS formatted, a.atttypid, a.attnotnull,
                   a.attgenerated <> '' AS generated, a.atthasdef,
                   CASE WHEN a.atthasmissing THEN (a.attmissingval::text::text[])[1] END AS missing_value
            FROM pg_attribute a
            WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attrelid, a.attnum
            """, [oids])
        var attributes: [UInt32: [CatalogColumn]] = [:]
        for (row, column) in zip(columnRows.rows, try columnRows.decode(CatalogColumn.self)) {
            attributes[try row.decode("attrelid", as: UInt32.self), default: []].append(column)
        }
        let catalog = try await typeCatalog(oids: Array(Set(attributes.values.joined().map(\.typeOid))), on: connection)
        let keyRows = try await connection.query("""
            SELECT i.indrelid, i.indisprimary, i.indisreplident, a.attname
            FROM pg_index i
            CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position)
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE i.indrelid = ANY($1::oid[]) AND (i.indisprimary OR i.indisreplident)
            ORDER BY i.indrelid, i.indexrelid, k.position
            """, [oids])
        var keyMembers: [UInt32: [KeyMember]] = [:]
        for row in keyRows.rows {
            keyMembers[try row.decode("indrelid", as: UInt32.self), default: []].append(KeyMember(
                primary: try row.decode("indisprimary"), identity: try row.decode("indisreplident"), column: try row.decode("attname")))
        }
        return try found.map { table, relation in
            let (columns, omitted) = try describeColumns(attributes[relation.oid] ?? [], catalog: catalog, table: table, source: source)
            let key = try key(keyMembers[relation.oid] ?? [], replicaIdentity: relation.replicaIdentity, table: table, source: source,
                              columns: columns.map(\.name))
            return SourceTable(
                configuration: table, oid: relation.oid,
                relation: RelationSchema(table: table.table, columns: columns, key: key, oid: relation.oid,
                                         sourceName: relation.name == table.table ? nil : relation.name),
                pages: relation.pages, estimatedRows: relation.estimatedRows, estimatedBytes: relation.estimatedBytes,
                isPartitioned: relation.kind == "p", omittedColumns: omitted)
        }
    }

    static func describeColumns(_ attributes: [CatalogColumn], catalog: [UInt32: CatalogType], table: TableConfiguration,
                                source: SourceConfiguration) throws -> ([ColumnSchema], [String]) {
        for excluded in table.excludedColumns where !attributes.contains(where: { $0.name == excluded }) {
            throw TributaryError(.requirement, "\(source.file): exclude_columns names \"\(excluded)\", which \(table.table) on \(source.name) does not have")
        }
        var columns: [ColumnSchema] = []
        var omitted: [String] = []
        for attribute in attributes {
            if attribute.generated || table.excludedColumns.contains(attribute.name) {
                omitted.append(attribute.name)
                continue
            }
            let stagingType = try StagingTypeMapper.stagingType(oid: attribute.typeOid, formattedWithModifier: attribute.formatted, catalog: catalog)
            columns.append(ColumnSchema(name: attribute.name, sourceType: attribute.formatted, stagingType: stagingType,
                                        typeOid: attribute.typeOid, notNull: attribute.notNull, missingValue: attribute.missingValue,
                                        attnum: attribute.attnum, hasDefault: attribute.hasDefault))
        }
        return (columns, omitted)
    }

    /// Every column of the relation `oid` as the catalog has it now, dropped ones included (by
    /// their number), for `ColumnIdentity`.
    static func attributes(oid: UInt32, on connection: PostgresConnection) async throws -> [CatalogAttribute] {
        try await connection.query("""
            SELECT a.attnum, a.attname, a.attisdropped, a.attgenerated <> '' AS generated, a.attnotnull, a.atthasdef,
                   CASE WHEN a.atthasmissing THEN (a.attmissingval::text::text[])[1] END AS missing_value
            FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 ORDER BY a.attnum
            """, [String(oid)]).decode(CatalogAttribute.self)
    }

    /// The columns of a Relation message in the types it gives them (the types at its position in
    /// the stream; the catalog may have changed them since), numbered as `ColumnIdentity` found.
    static func describeColumns(of message: PgOutputMessage.Relation, numbers: [Int]?, attributes: [CatalogAttribute],
                                on connection: PostgresConnection) async throws -> [ColumnSchema] {
        let formatted = try await connection.query("""
            SELECT format_type(t.oid, t.typmod) FROM unnest($1::oid[], $2::int[]) WITH ORDINALITY AS t(oid, typmod, position) ORDER BY position
            """, [PostgresArray.literal(message.columns.map { String($0.typeOid) }),
                  PostgresArray.literal(message.columns.map { String($0.typeModifier) })]).column(String.self)
        let catalog = try await typeCatalog(oids: message.columns.map(\.typeOid), on: connection)
        return try message.columns.enumerated().map { index, column in
            let attnum = numbers?[index]
            let attribute = attnum.flatMap { number in attributes.first { $0.attnum == number && !$0.dropped } }
            return ColumnSchema(name: column.name, sourceType: formatted[index],
                                stagingType: try StagingTypeMapper.stagingType(oid: column.typeOid, formattedWithModifier: formatted[index], catalog: catalog),
                                typeOid: column.typeOid, notNull: attribute?.notNull ?? false, missingValue: attribute?.missingValue,
                                attnum: attnum, hasDefault: attribute?.hasDefault)
        }
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
    static func key(_ members: [KeyMember], replicaIdentity: String, table: TableConfiguration, source: SourceConfiguration,
                    columns: [String]) throws -> [String] {
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

/// A member column of a table's primary key or replica identity index.
struct KeyMember {
    var primary: Bool
    var identity: Bool
    var column: String
}

/// A table as `pg_class` has it, with its size for planning the copy.
struct CatalogClass {
    var oid: UInt32
    var kind: String
    var replicaIdentity: String
    var name: QualifiedName
    var pages: Int
    var estimatedRows: Int
    var estimatedBytes: Int
    var readable: Bool

    init(_ row: QueryRow) throws {
        oid = try row.decode("oid")
        kind = try row.decode("relkind")
        replicaIdentity = try row.decode("relreplident")
        name = QualifiedName(schema: try row.decode("nspname"), name: try row.decode("relname"))
        pages = try row.decode("pages")
        estimatedRows = try row.decode("estimated_rows")
        estimatedBytes = try row.decode("estimated_bytes")
        readable = try row.decode("readable")
    }
}

/// One column as `pg_attribute` has it now, dropped or not.
struct CatalogAttribute: Decodable {
    var attnum: Int
    var name: String
    var dropped: Bool
    var generated: Bool
    var notNull: Bool
    var hasDefault: Bool
    var missingValue: String?

    enum CodingKeys: String, CodingKey {
        case attnum, name = "attname", dropped = "attisdropped", generated, notNull = "attnotnull", hasDefault = "atthasdef",
             missingValue = "missing_value"
    }
}

/// One column as `pg_attribute` describes it.
struct CatalogColumn: Decodable {
    var attnum: Int
    var name: String
    /// `format_type` with the modifier: `numeric(12,2)`.
    var formatted: String
    var typeOid: UInt32
    var notNull: Bool
    /// A generated column: pgoutput never sends it.
    var generated: Bool
    var missingValue: String?
    var hasDefault: Bool

    enum CodingKeys: String, CodingKey {
        case attnum, name = "attname", formatted, typeOid = "atttypid", notNull = "attnotnull", generated, missingValue = "missing_value",
             hasDefault = "atthasdef"
    }
}
