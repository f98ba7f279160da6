import Testing
import TributaryCore

@Suite struct SnapshotPlanTests {
    @Test func splitsLargeTablesIntoOpenEndedRangesInRoundsLargestFirst() {
        // range 1 MiB = 128 pages.
        let items = SnapshotPlanner.plan([.init(pages: 10, splittable: true), .init(pages: 300, splittable: true),
                                          .init(pages: 5000, splittable: false)], rangeBytes: 1 << 20)
        #expect(items.count == 1 + 3 + 1)
        #expect(items.first == SnapshotWorkItem(tableIndex: 2, rangeIndex: 0, firstPage: nil, endPage: nil))
        let ranges = items.filter { $0.tableIndex == 1 }.sorted { $0.rangeIndex < $1.rangeIndex }
        #expect(ranges.map(\.firstPage) == [nil, 128, 256])
        #expect(ranges.map(\.endPage) == [128, 256, nil])
        // Every table's first range before any second one, so workers start on different tables.
        #expect(items.map(\.tableIndex) == [2, 1, 0, 1, 1])
    }

    @Test func emptyTableIsOneItem() {
        #expect(SnapshotPlanner.plan([.init(pages: 0, splittable: true)], rangeBytes: 1 << 20)
                == [SnapshotWorkItem(tableIndex: 0, rangeIndex: 0, firstPage: nil, endPage: nil)])
    }
    /// A resume copies every page no kept range covers, once, split like a fresh plan, and from
    /// each kept range only the rows changed since; new range numbers never reuse an old one.
    @Test func aResumeCopiesTheGapsWholeAndTheKeptRangesChangedRows() {
        // 128 pages a range; ranges 1 and 3 of a 700-page table were stored (3 = [384, 512)),
        // and the table has grown to 900 pages since.
        let kept = [PageRange(first: 128, end: 256), PageRange(first: 384, end: 512)]
        let items = SnapshotPlanner.resume(tableIndex: 4, kept: kept, pages: 900, rangeBytes: 1 << 20, firstRangeIndex: 9, changedSince: 7_000)
        let whole = items.filter { $0.changedSince == nil }
        #expect(whole.map(\.firstPage) == [nil, 256, 512, 640, 768, 896])
        #expect(whole.map(\.endPage) == [128, 384, 640, 768, 896, nil], "the last stays open: rows on pages added later are never missed")
        let changed = items.filter { $0.changedSince != nil }
        #expect(changed.map { PageRange(first: $0.firstPage ?? 0, end: $0.endPage) } == kept)
        #expect(changed.allSatisfy { $0.changedSince == 7_000 && !$0.isResumableRange })
        #expect(whole.allSatisfy { $0.isResumableRange })
        #expect(items.map(\.rangeIndex) == Array(9..<(9 + items.count)))
        #expect(items.allSatisfy { $0.tableIndex == 4 })
    }

    @Test func aResumeKeepingTheOpenLastRangeCopiesOnlyWhatLiesBeforeIt() {
        let kept = [PageRange(first: 0, end: 128), PageRange(first: 256, end: nil)]
        let items = SnapshotPlanner.resume(tableIndex: 0, kept: kept, pages: 300, rangeBytes: 1 << 20, firstRangeIndex: 3, changedSince: 1)
        #expect(items.filter { $0.changedSince == nil }.map { PageRange(first: $0.firstPage ?? 0, end: $0.endPage) }
                == [PageRange(first: 128, end: 256)])
        // A table that shrank below its kept ranges still gets one open range past them.
        let shrunk = SnapshotPlanner.resume(tableIndex: 0, kept: [PageRange(first: 0, end: 128)], pages: 40, rangeBytes: 1 << 20,
                                            firstRangeIndex: 1, changedSince: 1)
        #expect(shrunk.filter { $0.changedSince == nil }.map { PageRange(first: $0.firstPage ?? 0, end: $0.endPage) }
                == [PageRange(first: 128, end: nil)])
    }

    @Test func rangeNumbersAreReadFromPartsAndMarkers() {
        #expect(ObjectNaming.snapshotRangeIndex(ofKey: "qvp/snapshot/0000000001000000/public.t/00012-0003.csv.gz") == 12)
        #expect(ObjectNaming.snapshotRangeIndex(ofKey: ObjectNaming.snapshotRangeDone(
            source: "qvp", consistentPoint: LSN(0x1000000), table: QualifiedName(schema: "public", name: "t"), range: 41)) == 41)
        #expect(ObjectNaming.snapshotRangeIndex(ofKey: "qvp/snapshot/0000000001000000/public.t/table.json") == nil)
    }
}

@Suite struct PartLoadScheduleTests {
    typealias Schedule = PartLoadSchedule<String>

    func describe(_ job: Schedule.Job?) -> String {
        switch job {
        case .load(let table, let part, let frozen): return "load \(table) \(part)" + (frozen ? " frozen" : "")
        case .commitRun: return "commit"
        case .buildKey(let table): return "key \(table)"
        case nil: return "nothing"
        }
    }

    func schedule(_ parts: [[String]], frozenRunBytes: Int = 0, complete: Bool = true) -> Schedule {
        var schedule = Schedule(tables: parts.count, frozenRunBytes: frozenRunBytes)
        for (table, names) in parts.enumerated() {
            for name in names { schedule.add(table: table, part: name, bytes: 100) }
            if complete { schedule.complete(table: table) }
        }
        return schedule
    }

    @Test func workersKeepToTheirTableAndTheLastPartBuildsTheKey() {
        var schedule = schedule([["a0", "a1", "a2"], ["b0", "b1"]])
        // Most bytes left first; the second worker goes to the table nobody loads, not to a1.
        #expect(describe(schedule.next(worker: 0)) == "load 0 a0")
        #expect(describe(schedule.next(worker: 1)) == "load 1 b0")
        #expect(schedule.loaded(worker: 1, table: 1) == false)
        #expect(describe(schedule.next(worker: 1)) == "load 1 b1")
        #expect(schedule.loaded(worker: 1, table: 1) == true, "b1 was table 1's last part: its worker builds the key")
        // That worker is free again: it helps with table 0 while the other worker is on it.
        #expect(describe(schedule.next(worker: 1)) == "load 0 a1")
        #expect(schedule.loaded(worker: 1, table: 0) == false)
        #expect(describe(schedule.next(worker: 1)) == "load 0 a2")
        #expect(schedule.loaded(worker: 1, table: 0) == false, "a0 is still loading")
        #expect(schedule.loaded(worker: 0, table: 0) == true)
        #expect(describe(schedule.next(worker: 0)) == "nothing")
        #expect(schedule.isDone)
    }

    @Test func aTableCopiedAfterItsPartsLoadedGetsItsKeyBuiltOnce() {
        var schedule = schedule([["a0"], []], complete: false)
        #expect(describe(schedule.next(worker: 0)) == "load 0 a0")
        #expect(schedule.loaded(worker: 0, table: 0) == false, "more parts of table 0 may still come")
        #expect(describe(schedule.next(worker: 0)) == "nothing")
        #expect(!schedule.isDone)
        schedule.complete(table: 0)
        #expect(describe(schedule.next(worker: 1)) == "key 0")
        #expect(describe(schedule.next(worker: 0)) == "nothing")
        // A table with nothing left to load (a resumed apply) still gets its key; a promoted one does not.
        schedule.complete(table: 1)
        #expect(describe(schedule.next(worker: 0)) == "key 1")
        #expect(schedule.isDone)
        var promoted = Schedule(tables: 1)
        promoted.skip(table: 0)
        #expect(describe(promoted.next(worker: 0)) == "nothing")
        #expect(promoted.isDone)
    }

    @Test func eachWorkerLoadsAnUntouchedTableFrozenAndTheKeyFollowsTheCommit() {
        var schedule = schedule([["a0", "a1"], ["b0"]], frozenRunBytes: 1000)
        #expect(describe(schedule.next(worker: 0)) == "load 0 a0 frozen")
        #expect(describe(schedule.next(worker: 1)) == "load 1 b0 frozen", "table 0 is held by worker 0's run")
        #expect(schedule.loaded(worker: 1, table: 1) == false, "the key waits for the run's commit")
        #expect(describe(schedule.next(worker: 1)) == "commit")
        #expect(describe(schedule.next(worker: 1)) == "key 1")
        // Table 0 is held and has a part left: one table's backlog stays in its run, frozen
        // (sharing a table, two workers wait on its extension lock).
        #expect(describe(schedule.next(worker: 1)) == "nothing", "does not ask worker 0's run to end")
        #expect(schedule.loaded(worker: 0, table: 0) == false)
        #expect(describe(schedule.next(worker: 0)) == "load 0 a1 frozen")
        #expect(schedule.loaded(worker: 0, table: 0) == false)
        #expect(describe(schedule.next(worker: 0)) == "commit")
        #expect(describe(schedule.next(worker: 1)) == "key 0")
        #expect(schedule.isDone)
    }

    @Test func aFreeWorkerTakesATableOffARunHoldingTheBacklogOfTwo() {
        // Worker 0's run takes in table 1 while table 0's next parts are still being copied.
        var schedule = schedule([["a0"], ["b0"]], frozenRunBytes: 1000, complete: false)
        #expect(describe(schedule.next(worker: 0)) == "load 0 a0 frozen")
        _ = schedule.loaded(worker: 0, table: 0)
        #expect(describe(schedule.next(worker: 0)) == "load 1 b0 frozen", "the run takes in an untouched table")
        for (table, part) in [(0, "a1"), (0, "a2"), (1, "b1")] { schedule.add(table: table, part: part, bytes: 100) }
        schedule.complete(table: 0)
        schedule.complete(table: 1)
        #expect(describe(schedule.next(worker: 1)) == "nothing", "asks worker 0's run, with two tables' backlog, to end")
        _ = schedule.loaded(worker: 0, table: 1)
        #expect(describe(schedule.next(worker: 0)) == "commit")
        #expect(describe(schedule.next(worker: 1)) == "load 0 a1")
        #expect(describe(schedule.next(worker: 0)) == "load 1 b1", "each worker a table of its own")
    }

    @Test func aTableStillBeingCopiedStaysInItsRun() {
        var schedule = schedule([["a0", "a1", "a2"]], frozenRunBytes: 1000, complete: false)
        #expect(describe(schedule.next(worker: 0)) == "load 0 a0 frozen")
        #expect(describe(schedule.next(worker: 1)) == "nothing", "more parts may come for either worker")
        _ = schedule.loaded(worker: 0, table: 0)
        #expect(describe(schedule.next(worker: 0)) == "load 0 a1 frozen", "no release was asked for")
        schedule.complete(table: 0)
        #expect(describe(schedule.next(worker: 1)) == "nothing", "the backlog is one table's: the run keeps it")
        _ = schedule.loaded(worker: 0, table: 0)
        #expect(describe(schedule.next(worker: 0)) == "load 0 a2 frozen")
    }

    @Test func aRunWithNobodyWaitingLoadsItsWholeTableFrozen() {
        var schedule = schedule([["a0", "a1", "a2"]], frozenRunBytes: 1000)
        for part in ["a0", "a1", "a2"] {
            #expect(describe(schedule.next(worker: 0)) == "load 0 \(part) frozen")
            #expect(schedule.loaded(worker: 0, table: 0) == false)
        }
        #expect(describe(schedule.next(worker: 0)) == "commit")
        #expect(describe(schedule.next(worker: 0)) == "key 0")
        #expect(schedule.isDone)
    }

    @Test func aRunCommitsAtItsLimitAndTheRestLoadsPartByPart() {
        var schedule = schedule([["a0", "a1", "a2", "a3"]], frozenRunBytes: 200)
        for part in ["a0", "a1"] {
            #expect(describe(schedule.next(worker: 0)) == "load 0 \(part) frozen")
            _ = schedule.loaded(worker: 0, table: 0)
        }
        #expect(describe(schedule.next(worker: 0)) == "commit", "200 bytes loaded: what a kill can undo is bounded")
        #expect(describe(schedule.next(worker: 0)) == "load 0 a2")
        _ = schedule.loaded(worker: 0, table: 0)
        #expect(describe(schedule.next(worker: 0)) == "load 0 a3", "the table was loaded into: it is never emptied again")
        #expect(schedule.loaded(worker: 0, table: 0) == true)
    }

    @Test func aPartlyLoadedTableNeverStartsARun() {
        var schedule = Schedule(tables: 1, frozenRunBytes: 1000)
        schedule.add(table: 0, part: "a1", bytes: 100)
        schedule.partlyLoaded(table: 0)
        schedule.complete(table: 0)
        #expect(describe(schedule.next(worker: 0)) == "load 0 a1")
    }

    @Test func aRunWaitingForItsTableTakesInUntouchedTablesButNotOthersParts() {
        var schedule = schedule([["a0"], [], []], frozenRunBytes: 1000, complete: false)
        #expect(describe(schedule.next(worker: 0)) == "load 0 a0 frozen")
        _ = schedule.loaded(worker: 0, table: 0)
        #expect(describe(schedule.next(worker: 0)) == "nothing", "table 0's next parts may still come: the run waits")
        schedule.add(table: 1, part: "b0", bytes: 100)
        #expect(describe(schedule.next(worker: 0)) == "load 1 b0 frozen", "an untouched table joins the run")
        _ = schedule.loaded(worker: 0, table: 1)
        schedule.complete(table: 1)
        #expect(describe(schedule.next(worker: 0)) == "nothing", "table 1's key waits for the commit")
        schedule.add(table: 0, part: "a1", bytes: 100)
        schedule.complete(table: 0)
        #expect(describe(schedule.next(worker: 0)) == "load 0 a1 frozen")
        _ = schedule.loaded(worker: 0, table: 0)
        #expect(describe(schedule.next(worker: 0)) == "commit")
        #expect(Set([describe(schedule.next(worker: 0)), describe(schedule.next(worker: 1))]) == ["key 0", "key 1"],
                "the keys are free for any worker")
        // A table another worker loaded into has parts waiting: a run ends to help rather than wait.
        var other = self.schedule([["a0"], []], frozenRunBytes: 1000, complete: false)
        #expect(describe(other.next(worker: 0)) == "load 0 a0 frozen")
        _ = other.loaded(worker: 0, table: 0)
        other.partlyLoaded(table: 1)
        other.add(table: 1, part: "b0", bytes: 100)
        #expect(describe(other.next(worker: 0)) == "commit")
        #expect(describe(other.next(worker: 0)) == "load 1 b0")
    }
}
