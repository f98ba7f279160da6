import Foundation
import TributaryCore
import TributaryStorage

/// Collects whole transactions into one micro-batch: a gzip CSV file per table (a new segment when
/// the table's schema changes), counters, and the LSN and time range. Rows go to local files as
/// they arrive, so memory stays bounded whatever the batch holds.
final class BatchBuilder {
    private final class Segment {
        let relation: RelationSchema
        let stagingTable: String
        let index: Int
        let writer: GzipFileWriter
        let encoder: ChangeRowEncoder
        var counts: [ChangeOperation: Int] = [:]
        var rows = 0
        var unchangedRows = 0
        var keys: DistinctKeyCheck

        init(relation: RelationSchema, stagingTable: String, index: Int, writer: GzipFileWriter, encoder: ChangeRowEncoder) {
            self.relation = relation
            self.stagingTable = stagingTable
            self.index = index
            self.writer = writer
            self.encoder = encoder
            keys = DistinctKeyCheck(relation: relation, keyPositions: encoder.keyPositions)
        }
    }

    private let directory: String
    private let compressionLevel: Int
    private var open: [UInt32: Segment] = [:]
    private var finished: [Segment] = []
    private var segmentCounts: [QualifiedName: Int] = [:]
    private var sequence = 0
    private var line: [UInt8] = []
    private var transactionLSNText: [UInt8] = []
    private var transactionLSN = LSN.zero
    /// The commit LSN of the transaction whose changes are being appended.
    var transactionCommitLSN: LSN { transactionLSN }

    private(set) var transactions = 0
    private(set) var rows = 0
    private(set) var firstCommitLSN: LSN?
    private(set) var endLSN = LSN.zero
    private(set) var firstCommitTime: Int64 = 0
    private(set) var lastCommitTime: Int64 = 0

    init(directory: String, compressionLevel: Int) {
        self.directory = directory
        self.compressionLevel = compressionLevel
    }

    var isEmpty: Bool { transactions == 0 }

    /// Uncompressed bytes written so far.
    var bytes: Int {
        var total = 0
        for segment in open.values { total += segment.writer.uncompressedBytes }
        for segment in finished { total += segment.writer.uncompressedBytes }
        return total
    }

    /// A transaction starts; `commitLSN` tags its rows.
    func begin(commitLSN: LSN) {
        transactionLSN = commitLSN
        transactionLSNText = Array(commitLSN.description.utf8)
    }

    func append(_ message: PgOutputMessage, relationOid: UInt32, table: RelationRegistry.Replicated) throws {
        let segment = try segment(for: relationOid, table: table)
        for (operation, values) in try segment.encoder.rows(for: message) {
            sequence += 1
            try segment.encoder.write(operation, values, lsn: transactionLSNText, sequence: sequence, line: &line) { try segment.writer.write($0) }
            segment.counts[operation, default: 0] += 1
            segment.keys.record(operation, values)
            if values.contains(.unchanged) { segment.unchangedRows += 1 }
            segment.rows += 1
            rows += 1
        }
    }

    /// The table's schema changed: its next rows start a new segment.
    func schemaChanged(relationOid: UInt32) {
        if let segment = open.removeValue(forKey: relationOid) { finished.append(segment) }
    }

    func commit(commitLSN: LSN, endLSN: LSN, commitTime: Int64) {
        if firstCommitLSN == nil {
            firstCommitLSN = commitLSN
            firstCommitTime = commitTime
        }
        self.endLSN = endLSN
        lastCommitTime = commitTime
        transactions += 1
    }

    /// Finishes every file and returns them with their object keys, ready to upload; not
    /// fsynced: `StagingStore.put(files:)` makes them durable, all at once.
    func seal(source: String, slot: String) throws -> (manifest: BatchManifest, localFiles: [(path: String, key: String)]) {
        var files: [BatchFile] = []
        var local: [(String, String)] = []
        for segment in (finished + open.values).sorted(by: { ($0.relation.table, $0.index) < ($1.relation.table, $1.index) }) {
            let summary = try segment.writer.finish(sync: false)
            let key = ObjectNaming.cdcFile(source: source, endLSN: endLSN, table: segment.relation.table, segment: segment.index)
            local.append((segment.writer.path, key))
            files.append(BatchFile(
                relation: segment.relation, stagingTable: segment.stagingTable, segment: segment.index,
                file: StagedFile(key: key, rows: segment.rows, bytes: summary.bytes, uncompressedBytes: summary.uncompressedBytes,
                                 sha256: summary.sha256),
                inserts: segment.counts[.insert] ?? 0, updates: segment.counts[.update] ?? 0,
                deletes: segment.counts[.delete] ?? 0, truncates: segment.counts[.truncate] ?? 0,
                distinctKeys: segment.keys.holds, unchangedRows: segment.unchangedRows))
        }
        let manifest = BatchManifest(
            source: source, slot: slot, firstCommitLSN: firstCommitLSN ?? endLSN, endLSN: endLSN,
            firstCommitTime: PostgresTime.date(firstCommitTime), lastCommitTime: PostgresTime.date(lastCommitTime),
            transactions: transactions, rows: rows, files: files)
        return (manifest, local)
    }

    private func segment(for oid: UInt32, table: RelationRegistry.Replicated) throws -> Segment {
        if let segment = open[oid] { return segment }
        let index = segmentCounts[table.relation.table, default: 0]
        segmentCounts[table.relation.table] = index + 1
        let writer = try GzipFileWriter(path: "\(directory)/\(oid)-\(index).csv.gz", level: compressionLevel)
        try writer.write(table.encoder.header)
        let segment = Segment(relation: table.relation, stagingTable: table.stagingTable, index: index, writer: writer, encoder: table.encoder)
        open[oid] = segment
        return segment
    }
}
