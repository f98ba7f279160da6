import Foundation
import TributaryCore
import TributaryPostgres

/// The control state of schema changes: the shape each STG table last followed, the changes
/// followed (for `status`), sources stopped for their operator, and the table snapshots the
/// pipeline takes by itself.
extension ControlStore {
    /// A change STG followed, as `status` lists it.
    public struct SchemaChangeRecord: Sendable, Decodable, Equatable {
        public var source: String
        public var stagingTable: String
        public var table: String
        public var kind: String
        public var change: String
        public var lsn: LSN
        public var appliedAt: Date

        enum CodingKeys: String, CodingKey {
            case source, stagingTable = "stg_table", table = "source_table", kind, change, lsn, appliedAt = "applied_at"
        }
    }

    /// A part of a source stopped on a schema change until its operator makes the fix.
    public struct SchemaStop: Sendable, Decodable, Equatable {
        public var source: String
        public var part: String
        public var change: String
        public var fix: String
        public var since: Date
    }

    // MARK: The shape each STG table follows

    /// The shape `stagingTable` last followed, with the position it is from.
    static func stagingRelation(_ stagingTable: String, on connection: isolated PostgresConnection) throws -> (relation: RelationSchema, lsn: LSN)? {
        guard let row = try connection.query("SELECT relation::text, lsn FROM tributary.staging_relations WHERE stg_table = $1",
                                             [stagingTable]).first else { return nil }
        let relation = try ManifestCoding.decode(RelationSchema.self, from: Array(try row.decode(at: 0, as: String.self).utf8))
        return (relation, try row.decode(at: 1, as: LSN.self))
    }

    /// `relation` is what `stagingTable` follows from `lsn` on (a newer position only: a batch
    /// older than a table snapshot's copy does not take it back).
    static func recordStagingRelation(_ relation: RelationSchema, stagingTable: String, source: String, at lsn: LSN,
                                      on connection: isolated PostgresConnection) throws {
        let json = String(decoding: try ManifestCoding.encode(relation), as: UTF8.self)
        try connection.query("""
            INSERT INTO tributary.staging_relations AS r (stg_table, source, source_table, source_oid, relation, lsn)
            VALUES ($1, $2, $3, $4::oid, $5::jsonb, $6::pg_lsn)
            ON CONFLICT (stg_table) DO UPDATE SET source = excluded.source, source_table = excluded.source_table,
                source_oid = coalesce(excluded.source_oid, r.source_oid), relation = excluded.relation, lsn = excluded.lsn, updated_at = now()
            WHERE r.lsn <= excluded.lsn
            """, [stagingTable, source, relation.table.description, relation.oid.map { String($0) }, json, lsn.description])
    }

    /// The relation id each configured table of `source` had when STG last followed it: a table
    /// renamed on the source is found by it.
    public func recordedTableOIDs(of source: String) async throws -> [QualifiedName: UInt32] {
        let rows = try await connection.query("""
            SELECT source_table, source_oid FROM tributary.staging_relations WHERE source = $1 AND source_oid IS NOT NULL
            """, [source])
        var result: [QualifiedName: UInt32] = [:]
        for row in rows.rows {
            if let name = QualifiedName(parsing: try row.decode(at: 0, as: String.self)) { result[name] = try row.decode(at: 1, as: UInt32.self) }
        }
        return result
    }

    /// The shapes STG follows for `source`'s tables (verify maps the source's columns by them).
    public func stagingRelations(of source: String) async throws -> [String: RelationSchema] {
        let rows = try await connection.query("SELECT stg_table, relation::text FROM tributary.staging_relations WHERE source = $1", [source])
        var result: [String: RelationSchema] = [:]
        for row in rows.rows {
            result[try row.decode(at: 0, as: String.self)] = try ManifestCoding.decode(RelationSchema.self, from: Array(try row.decode(at: 1, as: String.self).utf8))
        }
        return result
    }

    /// The newest point a snapshot copied `stagingTable` at (a full snapshot's promotion, a table
    /// snapshot's merge): the copy holds every change that committed before it.
    static func copiedAt(_ stagingTable: String, on connection: isolated PostgresConnection) throws -> LSN? {
        try connection.query("SELECT max(snapshot_lsn) FROM tributary.snapshot_tables WHERE stg_table = $1", [stagingTable]).optionalScalar(LSN.self)
    }

    // MARK: Changes followed

    static func recordSchemaChange(_ step: StagingSchemaPlanner.Step, source: String, stagingTable: String, table: QualifiedName, at lsn: LSN,
                                   on connection: isolated PostgresConnection) throws {
        try connection.query("""
            INSERT INTO tributary.schema_changes (source, stg_table, source_table, kind, change, statements, lsn)
            VALUES ($1, $2, $3, $4, $5, $6::text[], $7::pg_lsn)
            """, [source, stagingTable, table.description, step.kind.rawValue, step.description, PostgresArray.literal(step.statements), lsn.description])
    }

    /// The changes followed since `since`, newest first.
    public func schemaChanges(of source: String, since: Date) async throws -> [SchemaChangeRecord] {
        try await connection.query("""
            SELECT source, stg_table, source_table, kind, change, lsn, applied_at FROM tributary.schema_changes
            WHERE source = $1 AND applied_at >= $2::timestamptz ORDER BY id DESC LIMIT 100
            """, [source, ISO8601DateFormatter().string(from: since)]).decode(SchemaChangeRecord.self)
    }

    // MARK: Stops

    public func recordSchemaStop(_ source: String, part: String, change: String, fix: String) async throws {
        try await connection.query("""
            INSERT INTO tributary.schema_stops (source, part, change, fix) VALUES ($1, $2, $3, $4)
            ON CONFLICT (source, part) DO UPDATE SET change = excluded.change, fix = excluded.fix,
                since = CASE WHEN tributary.schema_stops.change = excluded.change THEN tributary.schema_stops.since ELSE now() END
            """, [source, part, change, fix])
    }

    public func clearSchemaStop(_ source: String, part: String) async throws {
        try await connection.query("DELETE FROM tributary.schema_stops WHERE source = $1 AND part = $2", [source, part])
    }

    public func schemaStops(of source: String) async throws -> [SchemaStop] {
        try await connection.query("SELECT source, part, change, fix, since FROM tributary.schema_stops WHERE source = $1 ORDER BY part",
                                   [source]).decode(SchemaStop.self)
    }

    // MARK: Table snapshots the pipeline takes by itself

    /// `table` of `source` needs a table snapshot taken after `lsn`: asked in the batch's
    /// transaction, so a crash can never lose the request while keeping the change.
    static func requestResync(_ source: String, table: QualifiedName, reason: String, at lsn: LSN,
                              on connection: isolated PostgresConnection) throws {
        try connection.query("""
            INSERT INTO tributary.resync_requests (source, source_table, reason, lsn) VALUES ($1, $2, $3, $4::pg_lsn)
            ON CONFLICT DO NOTHING
            """, [source, table.description, reason, lsn.description])
    }

    public func requestResync(_ source: String, table: QualifiedName, reason: String, at lsn: LSN) async throws {
        try await connection.run { try Self.requestResync(source, table: table, reason: reason, at: lsn, on: $0) }
    }

    /// Requests not yet met by a stored table snapshot, oldest first.
    public func pendingResyncs(of source: String) async throws -> [(table: QualifiedName, reason: String, lsn: LSN)] {
        try await connection.query("""
            SELECT source_table, min(reason) AS reason, max(lsn) AS lsn FROM tributary.resync_requests
            WHERE source = $1 AND done_at IS NULL GROUP BY source_table ORDER BY min(requested_at)
            """, [source]).rows.compactMap { row in
            guard let table = QualifiedName(parsing: try row.decode("source_table", as: String.self)) else { return nil }
            return (table, try row.decode("reason"), try row.decode("lsn"))
        }
    }

    /// The table snapshot at `snapshot` (after every request's position up to `lsn`) is stored.
    public func resyncStored(_ source: String, table: QualifiedName, upTo lsn: LSN, snapshot: LSN) async throws {
        try await connection.query("""
            UPDATE tributary.resync_requests SET done_at = now(), snapshot_lsn = $4::pg_lsn
            WHERE source = $1 AND source_table = $2 AND lsn <= $3::pg_lsn AND done_at IS NULL
            """, [source, table.description, lsn.description, snapshot.description])
    }

    /// Whether resyncs of `source` wait (drain waits for them, status shows them).
    public func resyncsPending(of source: String) async throws -> Int {
        try await connection.query("SELECT count(*) FROM tributary.resync_requests WHERE source = $1 AND done_at IS NULL", [source]).scalar(Int.self)
    }

    // MARK: Partition sets

    /// The partitions of a configured partitioned table as last seen (nil: never looked at).
    public func partitionSet(of source: String, table: QualifiedName) async throws -> [String]? {
        guard let json = try await connection.query("""
            SELECT to_json(partitions)::text FROM tributary.partition_sets WHERE source = $1 AND source_table = $2
            """, [source, table.description]).optionalScalar(String.self) else { return nil }
        return try JSONDecoder().decode([String].self, from: Data(json.utf8))
    }

    public func recordPartitionSet(_ partitions: [String], of source: String, table: QualifiedName) async throws {
        try await connection.query("""
            INSERT INTO tributary.partition_sets (source, source_table, partitions) VALUES ($1, $2, $3::text[])
            ON CONFLICT (source, source_table) DO UPDATE SET partitions = excluded.partitions
            """, [source, table.description, PostgresArray.literal(partitions)])
    }

    // MARK: The last verify

    /// What the status page shows of the last verify.
    public struct VerificationRecord: Sendable, Codable, Equatable {
        public struct Point: Sendable, Codable, Equatable {
            public var source: String
            public var point: String?
            public var heldSeconds: Double?

            enum CodingKeys: String, CodingKey {
                case source, point
                case heldSeconds = "held_seconds"
            }
        }

        public var finishedAt: Date
        public var matches: Bool
        public var tables: Int
        /// The tables (and checks, references, mappings) that differed, as the report names them.
        public var differing: [String]
        public var points: [Point]
    }

    public func recordVerification(_ record: VerificationRecord) async throws {
        let points = String(decoding: try ManifestCoding.encode(record.points), as: UTF8.self)
        try await connection.query("""
            INSERT INTO tributary.verifications (matches, tables, differing, points) VALUES ($1, $2, $3::text[], $4::jsonb)
            """, [record.matches ? "t" : "f", String(record.tables), PostgresArray.literal(record.differing), points])
        // The page shows the last one; a few are kept for whoever looks at the table.
        try await connection.query("DELETE FROM tributary.verifications WHERE id <= (SELECT max(id) - 100 FROM tributary.verifications)")
    }

    public func lastVerification() async throws -> VerificationRecord? {
        guard let row = try await connection.query("""
            SELECT finished_at, matches, tables, to_json(differing)::text AS differing, points::text AS points
            FROM tributary.verifications ORDER BY id DESC LIMIT 1
            """).first else { return nil }
        return VerificationRecord(
            finishedAt: try row.decode("finished_at"), matches: try row.decode("matches"), tables: try row.decode("tables"),
            differing: try JSONDecoder().decode([String].self, from: Data(try row.decode("differing", as: String.self).utf8)),
            points: try ManifestCoding.decode([VerificationRecord.Point].self, from: Array(try row.decode("points", as: String.self).utf8)))
    }
}
