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

        public var matches: Bool { problem == nil && sourceRows == stagingRows && sourceChecksum == stagingChecksum }
    }

    public let target: String

    public init(target: String) { self.target = target }

    public func compare(source: SourceConfiguration, tables names: [String] = []) async throws -> [Comparison] {
        let selected = source.tables.filter { table in
            names.isEmpty || names.contains(table.table.description) || names.contains(table.stagingTable)
                || names.contains(table.table.name)
        }
        let sourceConnection = try await PostgresConnection.connect(source.connection, name: source.name, applicationName: "tributary verify")
        let targetConnection = try await PostgresConnection.connect(target, name: "target", applicationName: "tributary verify")
        // One snapshot per side, so all tables of a side are compared as of one moment.
        try await sourceConnection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        try await targetConnection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        var results: [Comparison] = []
        for table in selected {
            let described = try await SourceCatalog.describe(table, source: source, on: sourceConnection)
            let columns = described.relation.columnNames
            let sourceSide = try await sourceConnection.query(ChecksumSQL.checksum(table: table.table, columns: columns, excludeTombstones: false))
            var comparison = Comparison(
                source: source.name, table: table.table.description, stagingTable: "stg.\(table.stagingTable)",
                sourceRows: Int(sourceSide.value(0, "rows")!)!, stagingRows: nil,
                sourceChecksum: sourceSide.value(0, "checksum")!, stagingChecksum: nil, problem: nil)
            let stagingTable = QualifiedName(schema: StagingColumns.schema, name: table.stagingTable)
            do {
                let stagingSide = try await targetConnection.query(
                    ChecksumSQL.checksum(table: stagingTable, columns: columns, excludeTombstones: true))
                comparison.stagingRows = Int(stagingSide.value(0, "rows")!)!
                comparison.stagingChecksum = stagingSide.value(0, "checksum")!
            } catch let error as PostgresError where error.sqlState == "42P01" || error.sqlState == "42703" {
                comparison.problem = error.sqlState == "42P01"
                    ? "\(stagingTable) does not exist: run tributary snapshot and tributary apply"
                    : "\(stagingTable) lacks a column: \(error.message)"
                try await targetConnection.execute("ROLLBACK")
                try await targetConnection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            }
            results.append(comparison)
        }
        try await sourceConnection.execute("COMMIT")
        try await targetConnection.execute("COMMIT")
        await sourceConnection.close()
        await targetConnection.close()
        return results
    }
}
