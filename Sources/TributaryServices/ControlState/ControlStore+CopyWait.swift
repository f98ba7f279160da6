import Foundation
import TributaryCore
import TributaryPostgres

/// The control state of STG tables that wait for their first copy, and of the files that wait
/// with them (see `TablePromotion.replayDeferredFiles`).
extension ControlStore {
    /// The tables of `source` that wait for their copy, each row locked (FOR SHARE) until the
    /// caller's transaction ends: a copy's merge, which deletes the row, waits for a batch that
    /// is deferring files to it, and then replays them too.
    static func tablesAwaitingCopy(of source: String, on connection: isolated PostgresConnection) throws -> Set<String> {
        Set(try connection.query("SELECT stg_table FROM tributary.awaiting_copy WHERE source = $1 FOR SHARE", [source]).column(String.self))
    }

    /// `stagingTable` was created empty at `lsn`: its changes wait for its copy.
    static func awaitCopy(_ stagingTable: String, source: String, since lsn: LSN, on connection: isolated PostgresConnection) throws {
        try connection.query("""
            INSERT INTO tributary.awaiting_copy (stg_table, source, since) VALUES ($1, $2, $3::pg_lsn) ON CONFLICT DO NOTHING
            """, [stagingTable, source, lsn.description])
    }

    /// A file of the batch ending at `batchEnd`, kept to be merged once its table's copy is in.
    static func deferFile(_ file: BatchFile, position: Int, batchEnd: LSN, source: String, on connection: isolated PostgresConnection) throws {
        let json = String(decoding: try ManifestCoding.encode(file), as: UTF8.self)
        try connection.query("""
            INSERT INTO tributary.deferred_files (stg_table, source, batch_end, position, file) VALUES ($1, $2, $3::pg_lsn, $4, $5::jsonb)
            ON CONFLICT DO NOTHING
            """, [file.stagingTable, source, batchEnd.description, String(position), json])
    }

    /// Ends `stagingTable`'s wait (waiting for a batch deferring files to it to commit first);
    /// false when it was not waiting.
    static func endCopyWait(_ stagingTable: String, on connection: isolated PostgresConnection) throws -> Bool {
        !(try connection.query("DELETE FROM tributary.awaiting_copy WHERE stg_table = $1 RETURNING stg_table", [stagingTable]).isEmpty)
    }

    /// The files deferred to `stagingTable` from batches ending after `lsn`, in the order they
    /// were staged.
    static func deferredFiles(of stagingTable: String, after lsn: LSN, on connection: isolated PostgresConnection) throws
        -> [(batchEnd: LSN, file: BatchFile)] {
        try connection.query("""
            SELECT batch_end, file::text FROM tributary.deferred_files WHERE stg_table = $1 AND batch_end > $2::pg_lsn
            ORDER BY batch_end, position
            """, [stagingTable, lsn.description]).rows.map { row in
            (try row.decode(at: 0, as: LSN.self), try ManifestCoding.decode(BatchFile.self, from: Array(try row.decode(at: 1, as: String.self).utf8)))
        }
    }

    /// `stagingTable` no longer waits for a copy, nor do its deferred files (a copy took them in,
    /// or a full snapshot replaced the table).
    static func forgetCopyWait(_ stagingTable: String, on connection: isolated PostgresConnection) throws {
        try connection.query("DELETE FROM tributary.deferred_files WHERE stg_table = $1", [stagingTable])
        try connection.query("DELETE FROM tributary.awaiting_copy WHERE stg_table = $1", [stagingTable])
    }

    /// `source`'s tables waiting for their copy (STG's name and the source's), with the files
    /// waiting with them.
    public func tablesAwaitingCopy(of source: String) async throws -> [(stagingTable: String, table: String, files: Int)] {
        try await connection.query("""
            SELECT a.stg_table, r.source_table, (SELECT count(*) FROM tributary.deferred_files f WHERE f.stg_table = a.stg_table) AS files
            FROM tributary.awaiting_copy a JOIN tributary.staging_relations r USING (stg_table) WHERE a.source = $1 ORDER BY a.stg_table
            """, [source]).rows.map { (try $0.decode(at: 0, as: String.self), try $0.decode(at: 1, as: String.self), try $0.decode(at: 2, as: Int.self)) }
    }
}
