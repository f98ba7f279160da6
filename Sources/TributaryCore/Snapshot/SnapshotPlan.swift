/// One unit of snapshot work: a page range of one table, copied by one worker.
public struct SnapshotWorkItem: Sendable, Hashable {
    public var tableIndex: Int
    public var rangeIndex: Int
    /// First heap page of the range; nil for the first range.
    public var firstPage: Int?
    /// Page after the range; nil for the last range, which stays open so rows on pages added
    /// after the size was measured are never missed.
    public var endPage: Int?
    /// Only the rows written at or after this transaction (a full `xid8`): what a resume takes
    /// again from a range it keeps (`SnapshotPlanner.resume`). nil: every row of the range.
    public var changedSince: UInt64?

    public init(tableIndex: Int, rangeIndex: Int, firstPage: Int?, endPage: Int?, changedSince: UInt64? = nil) {
        self.tableIndex = tableIndex
        self.rangeIndex = rangeIndex
        self.firstPage = firstPage
        self.endPage = endPage
        self.changedSince = changedSince
    }

    public var isWholeTable: Bool { firstPage == nil && endPage == nil && changedSince == nil }

    /// A complete range of pages, worth a marker of its own (`SnapshotRangeDone`) for a resume to
    /// keep: not a whole table (its `table.json` says it), nor the changed rows of a kept range.
    public var isResumableRange: Bool { !isWholeTable && changedSince == nil }
}

/// Pages `[first, end)` of a table; `end` nil: to the table's end, however far it has grown.
public struct PageRange: Sendable, Hashable, Codable {
    public var first: Int
    public var end: Int?
    public init(first: Int, end: Int?) {
        self.first = first
        self.end = end
    }
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

    /// The work left of one table whose killed copy stored the `kept` ranges, as of a snapshot
    /// whose oldest running transaction was `changedSince`; the rest is copied under a new
    /// snapshot, later than the first. Every gap between kept ranges is copied whole, split as a
    /// fresh plan of `pages` would; from each kept range only the rows written at or after
    /// `changedSince` (a row updated since may have moved into a kept page, and the stream's update
    /// of it may leave a TOASTed value out, so its whole row must be in the copy). Rows of a kept
    /// range that changed or went since are in the stream from the slot, which starts at the first
    /// snapshot, so the table converges either way. Range numbers start at `firstRangeIndex`, past
    /// every number the killed runs used, so no new part takes the name of an old one.
    public static func resume(tableIndex: Int, kept: [PageRange], pages: Int, rangeBytes: Int, firstRangeIndex: Int,
                              changedSince: UInt64, blockSize: Int = 8192) -> [SnapshotWorkItem] {
        let pagesPerRange = max(1, rangeBytes / blockSize)
        var gaps: [PageRange] = []
        var cursor: Int? = 0
        for range in kept.sorted(by: { $0.first < $1.first }) {
            guard let from = cursor else { break }
            if range.first > from { gaps.append(PageRange(first: from, end: range.first)) }
            cursor = range.end.map { max(from, $0) }
        }
        if let from = cursor { gaps.append(PageRange(first: from, end: nil)) }
        var ranges: [PageRange] = []
        for gap in gaps {
            // An open gap is split up to the table's size now; its last piece stays open.
            let limit = gap.end ?? max(gap.first, pages)
            var first = gap.first
            while limit - first > pagesPerRange {
                ranges.append(PageRange(first: first, end: first + pagesPerRange))
                first += pagesPerRange
            }
            ranges.append(PageRange(first: first, end: gap.end))
        }
        var index = firstRangeIndex
        func item(_ range: PageRange, changedSince: UInt64?) -> SnapshotWorkItem {
            defer { index += 1 }
            return SnapshotWorkItem(tableIndex: tableIndex, rangeIndex: index, firstPage: range.first == 0 ? nil : range.first,
                                    endPage: range.end, changedSince: changedSince)
        }
        return ranges.map { item($0, changedSince: nil) } + kept.sorted { $0.first < $1.first }.map { item($0, changedSince: changedSince) }
    }
}
