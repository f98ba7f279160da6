import TributaryCore
import TributaryPostgres

/// Compares each source table with its STG table: row count and content checksum, computed the
/// same way on both sides over the replicated columns, tombstones excluded.
public struct TableComparer: Sendable {
    public struct Comparison: Sendable, Equatable {
        public var source: String
        public var table: String
        public var stagingTable: String
        public var sourceRows: Int
        public var stagingRows: Int?
        public var sourceChecksum: String
        public var stagingChecksum: String?
        public var problem: String?
        /// Where the content differs: key ranges, as narrow as the comparison got.
        public var differingRanges: [String] = []
        /// Source columns that are not replicated, so not compared: generated or excluded.
        public var notCompared: [String] = []
        /// STG columns the source table no longer has (dropped there; STG keeps them, new rows NULL).
        public var droppedOnSource: [String] = []

        public var matches: Bool { problem == nil && sourceRows == stagingRows && sourceChecksum == stagingChecksum }
    }

    public let endpoints: Endpoints

    public init(endpoints: Endpoints) { self.endpoints = endpoints }

    /// - Parameter snapshot: an exported snapshot the source side reads under (a verify's point);
    ///   nil: the source as it is now.
    public func compare(source: SourceConfiguration, tables names: [String] = [], snapshot: String? = nil) async throws -> [Comparison] {
        let selected = source.tables.filter { table in
            names.isEmpty || names.contains(table.table.description) || names.contains(table.stagingTable)
                || names.contains(table.table.name)
        }
        return try await endpoints.source(source).withConnection(for: "verify") { sourceConnection in
            try await endpoints.target.withConnection(for: "verify") { targetConnection in
                try await compare(selected, of: source, snapshot: snapshot, sourceConnection: sourceConnection, targetConnection: targetConnection)
            }
        }
    }

    private func compare(_ selected: [TableConfiguration], of source: SourceConfiguration, snapshot: String?, sourceConnection: PostgresConnection,
                         targetConnection: PostgresConnection) async throws -> [Comparison] {
        // One snapshot per side, so all tables of a side are compared as of one moment.
        try await sourceConnection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        if let snapshot { try await sourceConnection.execute("SET TRANSACTION SNAPSHOT \(SQL.literal(snapshot))") }
        try await targetConnection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        let sourceHashesRecords = try await Self.hashesRecords(sourceConnection), targetHashesRecords = try await Self.hashesRecords(targetConnection)
        let byRecord = sourceHashesRecords && targetHashesRecords
        var results: [Comparison] = []
        let described = try await SourceCatalog.describeIfPresent(selected, source: source, on: sourceConnection)
        // Every table's recorded shape and STG columns in one query each, not two queries a table:
        // at 600 tables those were 1,200 round trips before the first checksum.
        let recordedShapes = try await ControlStore(targetConnection).stagingRelations(of: source.name)
        let stagingColumns = try await SourceDrift.columns(
            of: selected.map { QualifiedName(schema: StagingColumns.schema, name: $0.stagingTable).sql }, on: targetConnection)
        for (table, byName) in zip(selected, described) {
            // By the source's current names, each mapped to its STG column by its catalog number
            // (a column or table renamed on the source that STG has not followed yet: no change since).
            let recorded = recordedShapes[table.stagingTable]
            var found = byName
            if found == nil, let oid = recorded?.oid {
                found = try await SourceCatalog.describeIfPresent(table, oid: oid, source: source, on: sourceConnection)
            }
            guard let described = found else {
                throw TributaryError(.requirement, "table \(table.table) does not exist on \(source.name): create it, or remove it from \(source.file)")
            }
            let sourceTable = described.relation.sourceName ?? table.table
            let columns = described.relation.columnNames
            let stagingNames = Self.stagingNames(of: described.relation, recorded: recorded)
            let stagingTable = QualifiedName(schema: StagingColumns.schema, name: table.stagingTable)
            let droppedOnSource = SourceDrift.droppedColumns(stagingColumns[stagingTable.sql] ?? nil, described: described)
            let hash = RowHash(columns: described.relation.columns, byRecord: byRecord)
            // Both sides at once, each on its own server: the slower one sets the time, not the sum.
            async let stagingQuery = targetConnection.query(
                ChecksumSQL.checksum(table: stagingTable, columns: described.relation.columnNames.map { stagingNames[$0] ?? $0 }, hash: hash,
                                     excludeTombstones: true))
            let sourceSide: QueryResult
            do {
                sourceSide = try await sourceConnection.query(ChecksumSQL.checksum(table: sourceTable, columns: columns, hash: hash, excludeTombstones: false))
            } catch {
                _ = try? await stagingQuery
                throw error
            }
            var comparison = Comparison(
                source: source.name, table: table.table.description, stagingTable: "stg.\(table.stagingTable)",
                sourceRows: try sourceSide.rows[0].decode("rows"), stagingRows: nil,
                sourceChecksum: try sourceSide.rows[0].decode("checksum"), stagingChecksum: nil, problem: nil)
            comparison.notCompared = described.omittedColumns
            comparison.droppedOnSource = droppedOnSource
            do {
                let stagingSide = try await stagingQuery
                comparison.stagingRows = try stagingSide.rows[0].decode("rows", as: Int.self)
                comparison.stagingChecksum = try stagingSide.rows[0].decode("checksum", as: String.self)
                if !comparison.matches {
                    let key = described.relation.key.map { name in
                        described.relation.columns.first { $0.name == name }.map(KeyColumn.init) ?? KeyColumn(name: name)
                    }
                    comparison.differingRanges = try await narrow(
                        table: sourceTable, stagingTable: stagingTable, columns: columns, hash: hash, key: key, stagingNames: stagingNames,
                        source: sourceConnection, target: targetConnection, lower: nil, upper: nil, depth: 0)
                }
            } catch let error as PostgresError where error.sqlState == PostgresError.undefinedTable || error.sqlState == PostgresError.undefinedColumn {
                comparison.problem = error.sqlState == PostgresError.undefinedTable
                    ? "\(stagingTable) does not exist: run tributary snapshot and tributary apply"
                    : "\(stagingTable) lacks a column: \(error.message)"
                try await targetConnection.execute("ROLLBACK")
                try await targetConnection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            }
            results.append(comparison)
        }
        try await sourceConnection.execute("COMMIT")
        try await targetConnection.execute("COMMIT")
        return results
    }

    /// Splits the key range in buckets, compares each bucket's count and checksum, and descends into
    /// the ones that differ, three levels deep: a mismatch in a million rows is named to within a few hundred keys.
    private func narrow(table: QualifiedName, stagingTable: QualifiedName, columns: [String], hash: RowHash, key: [KeyColumn],
                        stagingNames: [String: String],
                        source: PostgresConnection, target: PostgresConnection,
                        lower: [String?]?, upper: [String?]?, depth: Int) async throws -> [String] {
        let buckets = 16
        let bounds = try await source.query(KeyRangeSQL.boundaries(table: table, key: key, lower: lower, upper: upper, buckets: buckets))
            .rows.map(\.values)
        // STG's side in its own column names, tombstones left out.
        func sums(_ connection: PostgresConnection, _ name: QualifiedName, staging: Bool) async throws -> [String: String] {
            let sideColumns = staging ? columns.map { stagingNames[$0] ?? $0 } : columns
            let sideKey = staging ? key.map { KeyColumn(name: stagingNames[$0.name] ?? $0.name, nativeType: $0.nativeType) } : key
            let result = try await connection.query(KeyRangeSQL.bucketChecksums(table: name, columns: sideColumns, hash: hash, key: sideKey, bounds: bounds,
                                                                               lower: lower, upper: upper, excludeTombstones: staging))
            return Dictionary(uniqueKeysWithValues: try result.rows.map { row in
                (try row.decode(at: 0, as: String.self),
                 "\(try row.decode(at: 1, as: String.self))/\(try row.decodeIfPresent(at: 2, as: String.self) ?? "")")
            })
        }
        let sourceSums = try await sums(source, table, staging: false)
        let targetSums = try await sums(target, stagingTable, staging: true)
        var ranges: [String] = []
        for bucket in 0...bounds.count where sourceSums[String(bucket)] != targetSums[String(bucket)] {
            let from = bucket == 0 ? lower : bounds[bucket - 1]
            let to = bucket == bounds.count ? upper : bounds[bucket]
            if depth < 2 && !bounds.isEmpty && ranges.count < 3 {
                ranges += try await narrow(table: table, stagingTable: stagingTable, columns: columns, hash: hash, key: key, stagingNames: stagingNames,
                                           source: source, target: target, lower: from, upper: to, depth: depth + 1)
            } else {
                ranges.append(Self.describe(key: key, from: from, to: to))
            }
            if ranges.count >= 5 { break }
        }
        return ranges
    }

    /// The server has `hash_record_extended` (PostgreSQL 14 and later).
    static func hashesRecords(_ connection: PostgresConnection) async throws -> Bool {
        try await connection.query("SELECT current_setting('server_version_num')::int >= 140000").scalar(Bool.self)
    }

    /// Source column name → STG column name where they differ: a column renamed on the source that
    /// STG follows under its old name until a change of the table arrives (by catalog number).
    static func stagingNames(of relation: RelationSchema, recorded: RelationSchema?) -> [String: String] {
        guard let recorded, recorded.identifiesColumns else { return [:] }
        var names: [String: String] = [:]
        for column in relation.columns {
            if let attnum = column.attnum, let followed = recorded.column(attnum: attnum), followed.name != column.name {
                names[column.name] = followed.name
            }
        }
        return names
    }

    static func describe(key: [KeyColumn], from: [String?]?, to: [String?]?) -> String {
        func text(_ values: [String?]) -> String { "(" + values.map { $0 ?? "NULL" }.joined(separator: ", ") + ")" }
        let name = key.count == 1 ? key[0].name : "(" + key.map(\.name).joined(separator: ", ") + ")"
        switch (from, to) {
        case (nil, nil): return "all keys"
        case (let from?, nil): return "\(name) >= \(text(from))"
        case (nil, let to?): return "\(name) < \(text(to))"
        case (let from?, let to?): return "\(text(from)) <= \(name) < \(text(to))"
        }
    }
}
