import Foundation
import TributaryCore
import TributaryStorage

/// Everything the replicator wrote for a source, read back from the store: manifests in object-name
/// (= LSN) order, their files checked against the manifest and parsed with a CSV reader of the
/// test's own.
struct StagedChanges {
    struct Row: Equatable {
        var table: String
        var operation: String
        var lsn: LSN
        var sequence: Int
        var unchanged: String?
        var values: [String: String?]

        subscript(column: String) -> String? { values[column] ?? nil }
    }

    var manifests: [BatchManifest] = []
    /// Rows per batch, in manifest order, each batch's rows in `_seq` order.
    var batches: [[Row]] = []

    var rows: [Row] { batches.flatMap { $0 } }

    static func read(source: String, store: any StagingStore) async throws -> StagedChanges {
        var result = StagedChanges()
        let keys = try await store.list(prefix: ObjectNaming.cdcPrefix(source: source), startAfter: nil)
            .map(\.key).filter { $0.hasSuffix("/manifest.json") }
        for key in keys {
            let manifest = try ManifestCoding.decode(BatchManifest.self, from: try await store.get(key: key))
            var rows: [Row] = []
            for file in manifest.files {
                let local = try await store.fetch(key: file.file.key)
                var text: [UInt8] = []
                try GzipFileReader.read(path: local.path, key: file.file.key, expected: file.file) { text.append(contentsOf: $0) }
                let records = CSVReader.parse(text)
                let header = records[0].map { $0! }
                for record in records.dropFirst() {
                    var values: [String: String?] = [:]
                    for (index, name) in header.enumerated().dropFirst(4) { values[name] = record[index] }
                    rows.append(Row(table: file.stagingTable, operation: record[0]!, lsn: LSN(record[1]!)!,
                                    sequence: Int(record[2]!)!, unchanged: record[3], values: values))
                }
                guard records.count - 1 == file.file.rows else { throw TestFailure("\(file.file.key): row count differs from manifest") }
            }
            result.manifests.append(manifest)
            result.batches.append(rows.sorted { $0.sequence < $1.sequence })
        }
        return result
    }
}

/// RFC 4180 with PostgreSQL's NULL rule: an unquoted empty field is NULL, `""` is the empty string.
enum CSVReader {
    static func parse(_ bytes: [UInt8]) -> [[String?]] {
        var records: [[String?]] = []
        var record: [String?] = []
        var field: [UInt8] = []
        var quoted = false, wasQuoted = false
        var index = 0
        func endField() {
            record.append(field.isEmpty && !wasQuoted ? nil : String(decoding: field, as: UTF8.self))
            field.removeAll()
            wasQuoted = false
        }
        while index < bytes.count {
            let byte = bytes[index]
            if quoted {
                if byte == UInt8(ascii: "\"") {
                    if index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "\"") {
                        field.append(byte)
                        index += 1
                    } else {
                        quoted = false
                    }
                } else {
                    field.append(byte)
                }
            } else if byte == UInt8(ascii: "\"") {
                quoted = true
                wasQuoted = true
            } else if byte == UInt8(ascii: ",") {
                endField()
            } else if byte == 10 {
                endField()
                records.append(record)
                record = []
            } else {
                field.append(byte)
            }
            index += 1
        }
        return records
    }
}
