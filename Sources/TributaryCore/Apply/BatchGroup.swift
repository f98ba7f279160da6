/// Consecutive batches of a source that the applier merges as one while it catches up (DESIGN.md
/// §4): each STG table's files of all of them go into one load table and one MERGE, in one target
/// transaction that records every batch. At 600 tables a batch touches about 200, and each costs
/// its COPY, MERGE and change-log statements whether it holds one change or a thousand; batch by
/// batch, a backlog cost as much per batch as keeping up did, so the applier never shortened one
/// (bench-breadth). Grouped, a backlog of k batches costs about one batch's statements plus a
/// COPY per file.
///
/// The batches are consecutive, so their changes are what one longer batch would have held: the
/// merge orders a key's changes by (`_lsn`, `_seq`), which is commit order across batches (a
/// transaction lies in one batch) and `_seq` order within one. Only what merges plainly groups:
/// a file with a TRUNCATE (its merge picks changes by sequence after it), a table with two files
/// in one batch (a shape change inside it) or two shapes across the group, end the group before
/// that batch; the applier then takes it on its own.
public struct BatchGroup: Sendable, Equatable {
    public struct Limits: Sendable, Equatable {
        /// Batches in one group: each records a row, and a group is one transaction.
        public var batches = 20
        /// Changes in one group.
        public var rows = 200_000
        /// A batch of this many changes or more goes alone: it spreads its statements' cost over
        /// enough changes already, and alone it keeps what a large batch gains, its next batch
        /// COPYed on a second connection while it merges (42% of bench-apply's apply time was
        /// COPY) and unsorted merges of files whose keys all differ.
        public var batchRows = 10_000

        public init() {}
    }

    /// One STG table's files across the group, in batch order, and what they add up to.
    public struct Table: Sendable, Equatable {
        public var files: [BatchFile]
        /// A file standing for all of them: their relation and table, the changes summed, the
        /// first file's key (what an error names); `distinctKeys` unknown for more than one file
        /// (keys may repeat across batches).
        public var merged: BatchFile

        init(_ file: BatchFile) {
            files = [file]
            merged = file
        }

        mutating func add(_ file: BatchFile) {
            files.append(file)
            merged.distinctKeys = nil
            merged.file.rows += file.file.rows
            merged.file.bytes += file.file.bytes
            merged.file.uncompressedBytes += file.file.uncompressedBytes
            merged.inserts += file.inserts
            merged.updates += file.updates
            merged.deletes += file.deletes
        }
    }

    public private(set) var manifests: [BatchManifest]
    /// In the order each table first appears.
    public private(set) var tables: [Table]

    /// The group the first manifests form, in order; nil when fewer than two would (a batch alone
    /// takes the batch-by-batch path, which can load the next one ahead).
    public static func leading(_ manifests: [BatchManifest], limits: Limits = Limits()) -> BatchGroup? {
        var group = BatchGroup(manifests: [], tables: [])
        var place: [String: Int] = [:]
        var rows = 0
        for manifest in manifests.prefix(limits.batches) {
            guard groups(manifest), manifest.rows < limits.batchRows, rows + manifest.rows <= limits.rows else { break }
            guard manifest.files.allSatisfy({ file in place[file.stagingTable].map { group.tables[$0].merged.relation == file.relation } ?? true })
            else { break }
            for file in manifest.files {
                if let index = place[file.stagingTable] {
                    group.tables[index].add(file)
                } else {
                    place[file.stagingTable] = group.tables.count
                    group.tables.append(Table(file))
                }
            }
            group.manifests.append(manifest)
            rows += manifest.rows
        }
        return group.manifests.count >= 2 ? group : nil
    }

    /// No TRUNCATE, and one file per table.
    private static func groups(_ manifest: BatchManifest) -> Bool {
        var tables = Set<String>()
        return manifest.files.allSatisfy { $0.truncates == 0 && tables.insert($0.stagingTable).inserted }
    }

    public var rows: Int { manifests.reduce(0) { $0 + $1.rows } }
}
