import Foundation
import Logging
import TributaryCore
import TributaryPostgres

/// What the replicator knows of each relation pgoutput has described: whether it is replicated,
/// and if so its schema as the manifest carries it (each column with its number in the source
/// catalog, so the applier can tell a rename from a drop and an add) and the encoder for its rows.
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
    /// Configured tables by relation id: a table renamed on the source is still the configured one.
    private var configuredByOID: [UInt32: TableConfiguration]
    /// The columns the DDL event trigger announced at each table's last DDL, by relation id, until
    /// the table's next Relation message takes them.
    private var announced: [UInt32: [ColumnIdentity.Numbered]] = [:]
    /// The source has the DDL event trigger: a table with no announcement since its previous
    /// Relation message had no DDL since.
    private let triggerInstalled: Bool
    private let catalog: PostgresConnection
    private let refresh: @Sendable () -> SourceConfiguration?
    private let logger: Logger
    private(set) var entries: [UInt32: Entry] = [:]

    init(source: SourceConfiguration, described: [SourceTable], catalog: PostgresConnection, triggerInstalled: Bool = false,
         refresh: @escaping @Sendable () -> SourceConfiguration? = { nil }, logger: Logger) {
        self.source = source
        self.triggerInstalled = triggerInstalled
        self.described = Dictionary(uniqueKeysWithValues: described.map { ($0.name, $0) })
        configuredByOID = Dictionary(described.map { ($0.oid, $0.configuration) }, uniquingKeysWith: { first, _ in first })
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

    /// The relation ids of the configured tables the registry follows (to notice one dropped).
    var replicatedOIDs: [UInt32: QualifiedName] {
        var result: [UInt32: QualifiedName] = [:]
        for (oid, table) in configuredByOID { result[oid] = table.table }
        return result
    }

    /// The DDL event trigger's shape of table `oid` after a DDL, at its place in the stream: the
    /// next Relation message of the table is numbered by it.
    func announce(oid: UInt32, columns: [ColumnIdentity.Numbered]) {
        announced[oid] = columns
    }

    /// Takes a Relation message. Returns true when a replicated table's schema differs from what was
    /// known (a column added, dropped, renamed or retyped on the source, the table renamed).
    @discardableResult
    /// - Parameter commitLSN: the commit LSN of the transaction the message came in, when known.
    func update(_ message: PgOutputMessage.Relation, commitLSN: LSN?) async throws -> Bool {
        let messageName = QualifiedName(schema: message.namespace, name: message.name)
        var name = messageName
        var configured: TableConfiguration?
        var catalogOID = message.oid
        var renamed = false
        if let table = configuredByOID[message.oid] {
            configured = table
            renamed = table.table != messageName
            name = table.table
        } else {
            configured = self.configured(name, oid: message.oid)
        }
        var partition: QualifiedName?
        // A partition of a configured table: pgoutput describes it beside its root even when it
        // sends the changes as the root's (publish_via_partition_root), and sends them as its own
        // otherwise. Either way they are the root's rows, in the root's STG table, and its columns
        // are the root's by name (an attached table may number them otherwise).
        if configured == nil, let root = try await partitionRoot(of: message.oid) {
            let rootTable = configuredByOID[root.oid] ?? self.configured(root.name, oid: message.oid)
            if let rootTable {
                if entries[message.oid] == nil {
                    logger.debug("a partition's changes go to its table's STG", metadata: [
                        LogKey.table: .string(rootTable.table.description), LogKey.partition: .string(name.description)])
                }
                configured = rootTable
                partition = name
                name = rootTable.table
                catalogOID = root.oid
            }
        }
        guard let configured else {
            if entries[message.oid] == nil {
                logger.warning("table is in the publication but not in the configuration: skipping its changes",
                               metadata: [LogKey.table: .string(name.description)])
            }
            entries[message.oid] = .skipped
            return false
        }
        if renamed, case .replicated(let previous)? = entries[message.oid], previous.relation.sourceName != messageName {
            logger.warning("table renamed on the source: followed by its relation id, its STG table keeps its name; name it as the source does in the configuration, with stg_table",
                           metadata: [LogKey.table: .string(name.description), LogKey.renamedTo: .string(messageName.description)])
        }
        var table = described[name]
        if table == nil {
            table = try await SourceCatalog.describeIfPresent(configured, oid: catalogOID, source: source, on: catalog)
            described[name] = table
            if let table { configuredByOID[table.oid] = configured }
        }
        for column in message.columns where configured.excludedColumns.contains(column.name) {
            throw TributaryError(.requirement, "\(source.name): pgoutput sent column \"\(column.name)\" of \(name), which is excluded: excluded columns must be left out of the publication's column list")
        }
        let attributes = try await SourceCatalog.attributes(oid: catalogOID, on: catalog)
        let identifiable = attributes.filter { !$0.generated && !configured.excludedColumns.contains($0.name) }
            .map { ColumnIdentity.CatalogColumn(attnum: $0.attnum, name: $0.name, dropped: $0.dropped) }
        var previous: [ColumnIdentity.Numbered]?
        if case .replicated(let known)? = entries[message.oid], known.relation.identifiesColumns {
            previous = known.relation.columns.map { ColumnIdentity.Numbered(attnum: $0.attnum!, name: $0.name) }
        }
        var numbers: [Int]?, announced = false, unidentified: String?
        let announcement = self.announced.removeValue(forKey: catalogOID)
        switch ColumnIdentity.identify(message.columns.map(\.name), previous: previous, announced: announcement, catalog: identifiable,
                                       unchangedSincePrevious: triggerInstalled && announcement == nil) {
        case .identified(let found, let byTrigger):
            numbers = found
            announced = byTrigger
        case .ambiguous where attributes.isEmpty:
            // Dropped since: nothing can change in STG any more; its last changes go by name.
            break
        case .ambiguous(let problem):
            unidentified = problem
            logger.error("cannot tell which column is which after a schema change: the applier stops on it with the fix",
                         metadata: [LogKey.table: .string(name.description), LogKey.reason: .string(problem)])
        }
        let columns = try await SourceCatalog.describeColumns(of: message, numbers: numbers, attributes: attributes, on: catalog)
        let relation = RelationSchema(table: name, columns: columns, key: try key(configured, message: message, described: table),
                                      oid: catalogOID, sourceName: renamed ? messageName : nil, announced: announced ? true : nil,
                                      unidentified: unidentified, unidentifiedSince: unidentified == nil ? nil : commitLSN)
        var changed = false
        if case .replicated(let previous) = entries[message.oid] {
            changed = previous.relation != relation
        }
        entries[message.oid] = .replicated(Replicated(
            relation: relation, stagingTable: configured.stagingTable,
            encoder: try ChangeRowEncoder(columnNames: relation.columnNames, key: relation.key), partition: partition))
        if changed {
            logger.notice("table schema changed on the source; the next rows carry the new schema",
                          metadata: [LogKey.table: .string(name.description)])
        }
        return changed
    }

    /// The key STG is merged on: the configured one, else the replica identity the message marks
    /// (the identity at its position in the stream), else the catalog's.
    private func key(_ configured: TableConfiguration, message: PgOutputMessage.Relation, described: SourceTable?) throws -> [String] {
        if let key = configured.key { return key }
        let marked = message.columns.filter(\.isKey).map(\.name)
        // 'd' default (the primary key), 'i' an index; with 'f' (full) every column is marked.
        if [UInt8(ascii: "d"), UInt8(ascii: "i")].contains(message.replicaIdentity), !marked.isEmpty { return marked }
        if let key = described?.relation.key { return key }
        throw TributaryError(.requirement, "table \(configured.table) on \(source.name) has no primary key and no replica identity index any more: add one, or give key: [...] for it in \(source.file)")
    }

    /// The partitioned table at the top of `oid`'s partition tree, when `oid` is a partition.
    private func partitionRoot(of oid: UInt32) async throws -> (oid: UInt32, name: QualifiedName)? {
        let root = try await catalog.query("""
            SELECT c.oid, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.oid = pg_partition_root($1::oid::regclass) AND c.oid <> $1::oid
            """, [String(oid)])
        guard let row = root.first else { return nil }
        return (try row.decode("oid"), QualifiedName(schema: try row.decode("nspname"), name: try row.decode("relname")))
    }
}
