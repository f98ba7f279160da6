import Logging
import TributaryCore
import TributaryPostgres

/// The source's publication, made (or extended) to hold the tables a snapshot copies. It must hold
/// a table before the slot whose stream should carry the table's changes reads past that point:
/// pgoutput reads the publication as of each change's position.
struct PublicationSetup {
    let source: SourceConfiguration
    let logger: Logger

    /// - Parameter restart: drop a publication tributary created, and make it anew.
    func prepare(on connection: PostgresConnection, tables: [SourceTable], restart: Bool) async throws {
        let exists = try await !connection.query("SELECT 1 FROM pg_publication WHERE pubname = $1", [source.publication]).isEmpty
        if exists && restart && source.createPublication {
            try await connection.execute("DROP PUBLICATION \(SQL.identifier(source.publication))")
        } else if exists {
            try await addMissing(tables, on: connection)
            return
        } else if !source.createPublication {
            throw TributaryError(.requirement, """
                publication \(source.publication) does not exist on \(source.name): create it \
                (CREATE PUBLICATION \(SQL.identifier(source.publication)) FOR TABLE …) or set create_publication: true in \(source.file)
                """)
        }
        try await connection.execute("""
            CREATE PUBLICATION \(SQL.identifier(source.publication)) FOR TABLE \(tables.map(\.name.sql).joined(separator: ", ")) \
            WITH (publish_via_partition_root = true)
            """)
        logger.notice("created publication", metadata: [LogKey.publication: .string(source.publication)])
    }

    private func addMissing(_ tables: [SourceTable], on connection: PostgresConnection) async throws {
        // A partitioned table published without publish_via_partition_root lists as its partitions:
        // it is in the publication all the same (the replicator maps their changes to it).
        let published = try await connection.query("""
            SELECT t.schemaname, t.tablename FROM pg_publication_tables t WHERE t.pubname = $1
            UNION
            SELECT n.nspname, c.relname
            FROM pg_publication_tables t
            JOIN pg_class c ON c.oid = pg_partition_root(format('%I.%I', t.schemaname, t.tablename)::regclass)
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE t.pubname = $1
            """, [source.publication])
        let names = Set(try published.rows.map { QualifiedName(schema: try $0.decode("schemaname"), name: try $0.decode("tablename")) })
        let missing = tables.map(\.name).filter { !names.contains($0) }
        guard !missing.isEmpty else { return }
        guard source.createPublication else {
            throw TributaryError(.requirement, """
                publication \(source.publication) on \(source.name) does not include \(missing.map(\.description).joined(separator: ", ")): \
                ALTER PUBLICATION \(SQL.identifier(source.publication)) ADD TABLE …, or set create_publication: true in \(source.file)
                """)
        }
        try await connection.execute(
            "ALTER PUBLICATION \(SQL.identifier(source.publication)) ADD TABLE \(missing.map(\.sql).joined(separator: ", "))")
        logger.notice("added tables to publication", metadata: [LogKey.publication: .string(source.publication),
                                                                LogKey.tables: .string(missing.map(\.description).joined(separator: ","))])
    }
}
