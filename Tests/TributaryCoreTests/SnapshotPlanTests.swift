import Testing
import TributaryCore

@Suite struct SnapshotPlanTests {
    @Test func splitsLargeTablesIntoOpenEndedRangesLargestFirst() {
        // range 1 MiB = 128 pages.
        let items = SnapshotPlanner.plan([.init(pages: 10, splittable: true), .init(pages: 300, splittable: true),
                                          .init(pages: 5000, splittable: false)], rangeBytes: 1 << 20)
        #expect(items.count == 1 + 3 + 1)
        #expect(items.first == SnapshotWorkItem(tableIndex: 2, rangeIndex: 0, firstPage: nil, endPage: nil))
        let ranges = items.filter { $0.tableIndex == 1 }.sorted { $0.rangeIndex < $1.rangeIndex }
        #expect(ranges.map(\.firstPage) == [nil, 128, 256])
        #expect(ranges.map(\.endPage) == [128, 256, nil])
        #expect(items.last?.tableIndex == 0)
    }

    @Test func emptyTableIsOneItem() {
        #expect(SnapshotPlanner.plan([.init(pages: 0, splittable: true)], rangeBytes: 1 << 20)
                == [SnapshotWorkItem(tableIndex: 0, rangeIndex: 0, firstPage: nil, endPage: nil)])
    }
}
