/// Catch-up mode: how many of the waiting batches of one source apply together in one target
/// transaction. Each table's changes across the group are then reduced and merged once, in
/// (`_lsn`, `_seq`) order, which is batch order (batches are consecutive in LSN order). Pure.
///
/// A group holds consecutive batches only, stops at the row and byte bounds (one batch is always
/// taken, however large; bytes are the files' uncompressed sizes), and never spans a schema change
/// of a table: every file of one STG table in a group has the same relation schema, and a batch
/// that splits a table into segments (a schema change inside it) applies alone.
public enum ApplyGroupPlanner {
    public struct Limits: Sendable, Equatable {
        public var batches: Int
        public var rows: Int
        public var bytes: Int

        public init(batches: Int = 64, rows: Int = 500_000, bytes: Int = 256 << 20) {
            self.batches = batches
            self.rows = rows
            self.bytes = bytes
        }

        /// One batch per transaction: what a source that is caught up gets, for latency.
        public static let single = Limits(batches: 1, rows: .max, bytes: .max)
    }

    /// How many of `waiting` (consecutive, in LSN order) to apply as one group: at least 1.
    public static func groupSize(_ waiting: [BatchManifest], limits: Limits) -> Int {
        guard !waiting.isEmpty else { return 0 }
        var relations: [String: RelationSchema] = [:]
        var rows = 0, bytes = 0
        for (index, manifest) in waiting.prefix(limits.batches).enumerated() {
            let tables = manifest.files.map(\.stagingTable)
            let segmented = Set(tables).count != tables.count
            let size = manifest.files.reduce(0) { $0 + $1.file.uncompressedBytes }
            if index > 0 {
                if segmented || rows + manifest.rows > limits.rows || bytes + size > limits.bytes { return index }
                if manifest.files.contains(where: { file in relations[file.stagingTable].map { $0 != file.relation } ?? false }) { return index }
            } else if segmented {
                return 1
            }
            for file in manifest.files { relations[file.stagingTable] = file.relation }
            rows += manifest.rows
            bytes += size
        }
        return min(waiting.count, limits.batches)
    }

    /// The offset added to a batch's `_seq` in a group: sequences of later batches sort after
    /// those of earlier ones, and a key change's delete and upsert stay adjacent.
    public static func sequenceOffset(batchIndex: Int) -> Int { batchIndex << 32 }
}
