import Logging
import TributaryCore
import TributaryPostgres

/// What the replicator knows of each relation pgoutput has described: whether it is replicated,
/// and if so its schema as the manifest carries it and the encoder for its rows.
final class RelationRegistry {
    struct Replicated {
        var relation: RelationSchema
        var stagingTable: String
        var encoder: ChangeRowEncoder
        /// Set when the relation is a partition whose changes are its root's (`relation.table`).
        var partition: QualifiedName? = nil
    }

    enum Entry {
        case replicated(Replicated)
        /// In the publication but not in the configuration: skipped, warned about once.
        case skipped
    }

    private var source: SourceConfiguration
    private var described: [QualifiedName: SourceTable]
    private let catalog: PostgresConnection
    private let refresh: @Sendable () -> SourceConfiguration?
    private let logger: Logger
    private(set) var entries: [UInt32: Entry] = [:]

    init(source: SourceConfiguration, described: [SourceTable], catalog: PostgresConnection,
         refresh: @escaping @Sendable () -> SourceConfiguration? = { nil }, logger: Logger) {
        self.source = source
        self.described = Dictionary(uniqueKeysWithValues: described.map { ($0.name, $0) })
        self.catalog = catalog
        self.refresh = refresh
        self.logger = logger
    }

    /// The table's configuration; a table not configured at start is looked for in the file as it
    /// is now (once per relation), so a table added while running is followed from its first change.
    private func configured(_ name: QualifiedName, oid: UInt32) -> TableConfiguration? {
        if let table = source.tables.first(where: { $0.table == name }) { return table }
        guard entries[oid] == nil, let fresh = refresh(), let table = fresh.tables.first(where: { $0.table == name }) else { return nil }
        source = fresh
        logger.notice("following a table added to the configuration", metadata: [LogKey.table: .string(name.description)])
        return table
    }

    subscript(oid: UInt32) -> Entry? { entries[oid] }

    /// Takes a Relation message. Returns true when a replicated table's schema differs from what was
    /// known (a column added, dropped or retyped on the source).
    @discardableResult
    func update(_ message: PgOutputMessage.Relation) async throws -> Bool {
        var name = QualifiedName(schema: message.namespace, name: message.name)
        var configured = configured(name, oid: message.oid)
        var partition: QualifiedName?
        // A partition of a configured table: pgoutput describes it beside its root even when it
        // sends the changes as the root's (publish_via_partition_root), and sends them as its own
        // otherwise. Either way they are the root's rows, in the root's STG table.
        if configured == nil, let root = try await partitionRoot(of: message.oid), let table = self.configured(root, oid: message.oid) {
            if entries[message.oid] == nil {
                logger.debug("a partition's changes go to its table's STG", metadata: [
                    LogKey.table: .string(root.description), LogKey.partition: .string(name.description)])
            }
            configured = table
            partition = name
            name = root
        }
        guard let configured else {
            if entries[message.oid] == nil {
                logger.warning("table is in the publication but not in the configuration: skipping its changes",
                               metadata: [LogKey.table: .string(name.description)])
            }
            entries[message.oid] = .skipped
            return false
        }
        let columnNames = message.columns.map(\.name)
        var table = described[name]
        // A column the catalog description lacks, or a different type: the table changed since.
        if table == nil || !matches(table!.relation, message) {
            table = try await SourceCatalog.describe(configured, source: source, on: catalog)
            described[name] = table
        }
        guard let table else { return false }
        var columns: [ColumnSchema] = []
        for column in message.columns {
            if let known = table.relation.columns.first(where: { $0.name == column.name }) {
                columns.append(known)
            } else if configured.excludedColumns.contains(column.name) {
                throw TributaryError(.requirement, "\(source.name): pgoutput sent column \"\(column.name)\" of \(name), which is excluded: excluded columns must be left out of the publication's column list")
            } else {
                // Changes from before the column was dropped, replayed after: the catalog no longer
                // has it, the message says its type.
                columns.append(try await SourceCatalog.describeDroppedColumn(column.name, typeOid: column.typeOid, typeModifier: column.typeModifier,
                                                                            source: source, on: catalog))
            }
        }
        let relation = RelationSchema(table: name, columns: columns, key: table.relation.key)
        var changed = false
        if case .replicated(let previous) = entries[message.oid] {
            changed = previous.relation != relation
            let dropped = previous.relation.columnNames.filter { !columnNames.contains($0) }
            if !dropped.isEmpty {
                logger.warning("columns dropped on the source: STG keeps them and new rows get NULL there", metadata: [
                    LogKey.table: .string(name.description), LogKey.columns: .string(dropped.joined(separator: ",")),
                ])
            }
        }
        entries[message.oid] = .replicated(Replicated(
            relation: relation, stagingTable: configured.stagingTable,
            encoder: try ChangeRowEncoder(columnNames: columnNames, key: relation.key), partition: partition))
        if changed {
            logger.notice("table schema changed on the source; the next rows carry the new schema",
                          metadata: [LogKey.table: .string(name.description)])
        }
        return changed
    }

    /// The partitioned table at the top of `oid`'s partition tree, when `oid` is a partition.
    private func partitionRoot(of oid: UInt32) async throws -> QualifiedName? {
        let root = try await catalog.query("""
            SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.oid = pg_partition_root($1::oid::regclass) AND c.oid <> $1::oid
            """, [String(oid)])
        guard let row = root.first else { return nil }
        return QualifiedName(schema: try row.decode("nspname"), name: try row.decode("relname"))
    }

    private func matches(_ relation: RelationSchema, _ message: PgOutputMessage.Relation) -> Bool {
        message.columns.allSatisfy { column in relation.columns.contains { $0.name == column.name && $0.typeOid == column.typeOid } }
    }
}
