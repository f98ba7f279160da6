import Foundation
import TributaryCore
import TributaryPostgres

/// The control state of the object sync (DESIGN.md §4c): per mapping its pass, what was copied,
/// and the extra objects a pass found.
extension ControlStore {
    /// A mapping's last (or running) pass.
    public struct ObjectPass: Sendable, Decodable, Equatable {
        public enum State: String, Sendable, Decodable, PostgresTextDecodable {
            case running, done, failed
            public init?(postgresText text: String) { self.init(rawValue: text) }
        }

        public var mapping: String
        public var state: State
        public var startedAt: Date
        public var finishedAt: Date?
        /// Every name up to here is done (a killed pass resumes after it).
        public var position: String?
        public var listed: Int64 = 0
        public var copied: Int64 = 0
        public var copiedBytes: Int64 = 0
        public var replaced: Int64 = 0
        public var failed: Int64 = 0
        public var pending: Int64 = 0
        public var pendingBytes: Int64 = 0
        public var extra: Int64 = 0
        public var deleted: Int64 = 0
        public var error: String?

        enum CodingKeys: String, CodingKey {
            case mapping, state, startedAt = "started_at", finishedAt = "finished_at", position, listed, copied
            case copiedBytes = "copied_bytes", replaced, failed, pending, pendingBytes = "pending_bytes", extra, deleted, error
        }
    }

    public func objectPass(_ mapping: String) async throws -> ObjectPass? {
        try await connection.query("SELECT * FROM tributary.object_passes WHERE mapping = $1", [mapping]).decode(ObjectPass.self).first
    }

    /// A new pass; what an earlier finished one found extra is forgotten.
    public func startObjectPass(_ mapping: String) async throws {
        try await connection.run { connection in
            try connection.transaction { connection in
                try connection.query("DELETE FROM tributary.object_extras WHERE mapping = $1", [mapping])
                try connection.query("""
                    INSERT INTO tributary.object_passes (mapping, state) VALUES ($1, 'running')
                    ON CONFLICT (mapping) DO UPDATE SET state = 'running', started_at = now(), finished_at = NULL, position = NULL,
                        listed = 0, copied = 0, copied_bytes = 0, replaced = 0, failed = 0, pending = 0, pending_bytes = 0,
                        extra = 0, deleted = 0, error = NULL
                    """, [mapping])
            }
        }
    }

    /// Where the pass got to, and its counts so far.
    public func checkpointObjectPass(_ pass: ObjectPass) async throws {
        try await connection.query("""
            UPDATE tributary.object_passes SET position = $2, listed = $3, copied = $4, copied_bytes = $5, replaced = $6, failed = $7,
                pending = $8, pending_bytes = $9, extra = $10 WHERE mapping = $1
            """, [pass.mapping, pass.position, String(pass.listed), String(pass.copied), String(pass.copiedBytes), String(pass.replaced),
                  String(pass.failed), String(pass.pending), String(pass.pendingBytes), String(pass.extra)])
    }

    public func finishObjectPass(_ pass: ObjectPass) async throws {
        try await checkpointObjectPass(pass)
        try await connection.query("""
            UPDATE tributary.object_passes SET state = $2, finished_at = now(), deleted = $3, error = $4 WHERE mapping = $1
            """, [pass.mapping, pass.state.rawValue, String(pass.deleted), pass.error])
    }

    /// What was copied for the names after `after`, in name order, at most `limit`.
    public func copyRecords(_ mapping: String, after: String?, limit: Int) async throws -> [CopyRecord] {
        try await connection.query("""
            SELECT name, source_size, source_md5, source_etag, target_etag FROM tributary.object_copies
            WHERE mapping = $1 AND ($2::text IS NULL OR name > $2::text COLLATE "C") ORDER BY name LIMIT $3
            """, [mapping, after, String(limit)]).rows.map { row in
            CopyRecord(name: try row.decode("name"), sourceSize: try row.decode("source_size"), sourceMD5: try row.decodeIfPresent("source_md5"),
                       sourceETag: try row.decodeIfPresent("source_etag"), targetETag: try row.decodeIfPresent("target_etag"))
        }
    }

    public func recordCopy(_ mapping: String, _ record: CopyRecord) async throws {
        try await connection.query("""
            INSERT INTO tributary.object_copies (mapping, name, source_size, source_md5, source_etag, target_etag) VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (mapping, name) DO UPDATE SET source_size = excluded.source_size, source_md5 = excluded.source_md5,
                source_etag = excluded.source_etag, target_etag = excluded.target_etag, copied_at = now()
            """, [mapping, record.name, String(record.sourceSize), record.sourceMD5, record.sourceETag, record.targetETag])
    }

    public func forgetCopy(_ mapping: String, name: String) async throws {
        try await connection.query("DELETE FROM tributary.object_copies WHERE mapping = $1 AND name = $2", [mapping, name])
    }

    public func recordExtra(_ mapping: String, name: String, size: Int64) async throws {
        try await connection.query("""
            INSERT INTO tributary.object_extras (mapping, name, size) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING
            """, [mapping, name, String(size)])
    }

    /// The extra objects a pass found, in name order after `after`.
    public func extras(_ mapping: String, after: String?, limit: Int) async throws -> [(name: String, size: Int64)] {
        try await connection.query("""
            SELECT name, size FROM tributary.object_extras WHERE mapping = $1 AND ($2::text IS NULL OR name > $2::text COLLATE "C")
            ORDER BY name LIMIT $3
            """, [mapping, after, String(limit)]).rows.map { (try $0.decode("name"), try $0.decode("size")) }
    }

    public func extraCount(_ mapping: String) async throws -> (count: Int64, bytes: Int64) {
        let row = try await connection.query("""
            SELECT count(*) AS count, coalesce(sum(size), 0)::bigint AS bytes FROM tributary.object_extras WHERE mapping = $1
            """, [mapping]).rows[0]
        return (try row.decode("count"), try row.decode("bytes"))
    }
}
