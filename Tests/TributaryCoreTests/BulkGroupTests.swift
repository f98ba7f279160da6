import Testing
import TributaryCore

/// `snapshot --group K/N`: the groups a bulk load spread over processes deals.
struct BulkGroupTests {
    @Test func everyTableIsInExactlyOneGroupAndGroupsDifferByAtMostOne() throws {
        let tables = (1...10).map { "t\($0)" }
        let groups = try (1...3).map { try BulkGroup(index: $0, count: 3).members(of: tables) }
        #expect(groups == [["t1", "t4", "t7", "t10"], ["t2", "t5", "t8"], ["t3", "t6", "t9"]])
        #expect(groups.flatMap { $0 }.sorted() == tables.sorted())
        #expect(try BulkGroup(index: 1, count: 1).members(of: tables) == tables)
        // More groups than tables: the last are empty, none fails.
        #expect(try BulkGroup(index: 12, count: 12).members(of: tables).isEmpty)
    }

    @Test func theCommandLineFormIsReadAndBadOnesAreRefused() throws {
        #expect(try BulkGroup(parsing: "2/3") == BulkGroup(index: 2, count: 3))
        #expect(try BulkGroup(parsing: "2/3").description == "2/3")
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", "/3", "1/2/3", "-1/3"] {
            #expect(throws: BulkGroupError.self, "\(bad)") { try BulkGroup(parsing: bad) }
        }
    }
}
