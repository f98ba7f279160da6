import Foundation

/// One CDC file of a batch: a table's changes under one relation schema. A table whose schema
/// changes inside a batch gets a second segment, with its own schema.
public struct BatchFile: Sendable, Hashable, Codable {
    public var relation: RelationSchema
    public var stagingTable: String
    public var segment: Int
    public var file: StagedFile
    public var inserts: Int
    public var updates: Int
    public var deletes: Int
    public var truncates: Int
    /// Every change in the file has a key of its own (`DistinctKeyCheck`): the merge needs no
    /// sort. Absent when unknown (the key's type, or a manifest written before tributary checked).
    public var distinctKeys: Bool?
    /// Changes that keep a stored value (`_unchanged`: TOAST pgoutput did not send). Absent in a
    /// manifest written before tributary counted them.
    public var unchangedRows: Int?

    enum CodingKeys: String, CodingKey {
        case relation, segment, file, inserts, updates, deletes, truncates
        case stagingTable = "staging_table", distinctKeys = "distinct_keys", unchangedRows = "unchanged_rows"
    }

    public init(relation: RelationSchema, stagingTable: String, segment: Int, file: StagedFile,
                inserts: Int, updates: Int, deletes: Int, truncates: Int, distinctKeys: Bool? = nil, unchangedRows: Int? = nil) {
        self.relation = relation
        self.stagingTable = stagingTable
        self.segment = segment
        self.file = file
        self.inserts = inserts
        self.updates = updates
        self.deletes = deletes
        self.truncates = truncates
        self.distinctKeys = distinctKeys
        self.unchangedRows = unchangedRows
    }
}

/// `manifest.json` of a CDC micro-batch: whole transactions in commit order. Written after every
/// data file; the batch exists only once its manifest does, and only then is `endLSN` reported to
/// the source as flushed.
public struct BatchManifest: VersionedManifest, Hashable {
    public static let currentFormat = "tributary-batch/1"

    public var format: String
    public var source: String
    public var slot: String
    /// Commit LSN of the first transaction in the batch.
    public var firstCommitLSN: LSN
    /// End LSN of the last transaction's commit record: the position confirmed after this batch.
    public var endLSN: LSN
    public var firstCommitTime: Date
    public var lastCommitTime: Date
    public var transactions: Int
    public var rows: Int
    public var files: [BatchFile]

    enum CodingKeys: String, CodingKey {
        case format, source, slot, transactions, rows, files
        case firstCommitLSN = "first_commit_lsn", endLSN = "end_lsn", firstCommitTime = "first_commit_time", lastCommitTime = "last_commit_time"
    }

    public init(source: String, slot: String, firstCommitLSN: LSN, endLSN: LSN, firstCommitTime: Date, lastCommitTime: Date,
                transactions: Int, rows: Int, files: [BatchFile]) {
        self.format = Self.currentFormat
        self.source = source
        self.slot = slot
        self.firstCommitLSN = firstCommitLSN
        self.endLSN = endLSN
        self.firstCommitTime = firstCommitTime
        self.lastCommitTime = lastCommitTime
        self.transactions = transactions
        self.rows = rows
        self.files = files
    }
}

/// When a micro-batch closes: on a transaction boundary, once any limit is reached.
public struct BatchPolicy: Sendable {
    public var limits: BatchLimits

    public init(limits: BatchLimits) { self.limits = limits }

    public func shouldClose(rows: Int, bytes: Int, age: Duration) -> Bool {
        rows >= limits.rowsMax || bytes >= limits.bytesMax || age >= limits.ageMax
    }
}
