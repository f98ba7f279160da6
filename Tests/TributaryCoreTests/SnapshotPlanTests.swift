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

@Suite struct PartLoadScheduleTests {
    typealias Schedule = PartLoadSchedule<String>

    func describe(_ job: Schedule.Job?) -> String {
        switch job {
        case .load(let table, let part): return "load \(table) \(part)"
        case .buildKey(let table): return "key \(table)"
        case nil: return "nothing"
        }
    }

    @Test func workersKeepToTheirTableAndTheLastPartBuildsTheKey() {
        var schedule = Schedule(tables: 2)
        for part in ["a0", "a1", "a2"] { schedule.add(table: 0, part: part, bytes: 100) }
        for part in ["b0", "b1"] { schedule.add(table: 1, part: part, bytes: 100) }
        schedule.complete(table: 0)
        schedule.complete(table: 1)
        // Most bytes left first; the second worker goes to the table nobody loads, not to a1.
        #expect(describe(schedule.next(after: nil)) == "load 0 a0")
        #expect(describe(schedule.next(after: nil)) == "load 1 b0")
        #expect(schedule.loaded(table: 1) == false)
        #expect(describe(schedule.next(after: 1)) == "load 1 b1")
        #expect(schedule.loaded(table: 1) == true, "b1 was table 1's last part: its worker builds the key")
        // That worker is free again: it helps with table 0 while the other worker is on it.
        #expect(describe(schedule.next(after: 1)) == "load 0 a1")
        #expect(schedule.loaded(table: 0) == false)
        #expect(describe(schedule.next(after: 0)) == "load 0 a2")
        #expect(schedule.loaded(table: 0) == false, "a2 is still loading")
        #expect(schedule.loaded(table: 0) == true)
        #expect(describe(schedule.next(after: 0)) == "nothing")
    }

    @Test func aTableCopiedAfterItsPartsLoadedGetsItsKeyBuiltOnce() {
        var schedule = Schedule(tables: 2)
        schedule.add(table: 0, part: "a0", bytes: 10)
        #expect(describe(schedule.next(after: nil)) == "load 0 a0")
        #expect(schedule.loaded(table: 0) == false, "more parts of table 0 may still come")
        #expect(describe(schedule.next(after: 0)) == "nothing")
        #expect(!schedule.isDone)
        schedule.complete(table: 0)
        #expect(describe(schedule.next(after: nil)) == "key 0")
        #expect(describe(schedule.next(after: nil)) == "nothing")
        // A table with nothing left to load (a resumed apply) still gets its key; a promoted one does not.
        schedule.complete(table: 1)
        #expect(describe(schedule.next(after: nil)) == "key 1")
        #expect(schedule.isDone)
        var promoted = Schedule(tables: 1)
        promoted.skip(table: 0)
        #expect(describe(promoted.next(after: nil)) == "nothing")
        #expect(promoted.isDone)
    }
}
