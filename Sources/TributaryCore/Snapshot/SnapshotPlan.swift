/// One unit of snapshot work: a page range of one table, copied by one worker.
public struct SnapshotWorkItem: Sendable, Hashable {
    public var tableIndex: Int
    public var rangeIndex: Int
    /// First heap page of the range; nil for the first range.
    public var firstPage: Int?
    /// Page after the range; nil for the last range, which stays open so rows on pages added
    /// after the size was measured are never missed.
    public var endPage: Int?

    public init(tableIndex: Int, rangeIndex: Int, firstPage: Int?, endPage: Int?) {
        self.tableIndex = tableIndex
        self.rangeIndex = rangeIndex
        self.firstPage = firstPage
        self.endPage = endPage
    }

    public var isWholeTable: Bool { firstPage == nil && endPage == nil }
}

/// Splits tables into ctid page ranges so several workers copy one large table in parallel, and
/// orders the work in rounds: every table's first range, largest first, then every second range,
/// and so on. Workers then copy different tables at once, so `snapshot --apply` receives parts of
/// several tables together and each load worker can keep to a table of its own (a frozen run,
/// `PartLoadSchedule`); and the work left at the end is ranges, no bigger than a range each.
public enum SnapshotPlanner {
    public struct TableSize: Sendable {
        public var pages: Int
        /// Partitioned tables have no ctid order of their own: copied whole.
        public var splittable: Bool
        public init(pages: Int, splittable: Bool) {
            self.pages = pages
            self.splittable = splittable
        }
    }

    public static func plan(_ tables: [TableSize], rangeBytes: Int, blockSize: Int = 8192) -> [SnapshotWorkItem] {
        let pagesPerRange = max(1, rangeBytes / blockSize)
        var items: [(work: SnapshotWorkItem, pages: Int)] = []
        for (index, table) in tables.enumerated() {
            let ranges = table.splittable ? max(1, (table.pages + pagesPerRange - 1) / pagesPerRange) : 1
            for range in 0..<ranges {
                let first = range == 0 ? nil : range * pagesPerRange
                let end = range == ranges - 1 ? nil : (range + 1) * pagesPerRange
                let pages = ranges == 1 ? table.pages : min(pagesPerRange, max(0, table.pages - range * pagesPerRange))
                items.append((SnapshotWorkItem(tableIndex: index, rangeIndex: range, firstPage: first, endPage: end), pages))
            }
        }
        return items.sorted { ($0.work.rangeIndex, -$0.pages, $0.work.tableIndex) < ($1.work.rangeIndex, -$1.pages, $1.work.tableIndex) }
            .map(\.work)
    }
}
