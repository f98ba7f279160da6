import Foundation
import Testing
@testable import TributaryServices

/// `snapshot --apply` keeps stored parts on local disk for the loader only within `apply_cache`:
/// however far the load falls behind, the hand-off directory never holds more than that.
@Suite struct PartHandoffTests {
    @Test func theLocalCopiesStayWithinTheBudgetAndGoWhenLoaded() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("handoff-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        func part(_ name: String) throws -> String {
            let path = root + "/" + name
            try Data(repeating: 7, count: 60).write(to: URL(fileURLWithPath: path))
            return path
        }
        let handoff = try PartHandoff(directory: root + "/handoff", bytes: 100)
        func kept() throws -> Int { try FileManager.default.contentsOfDirectory(atPath: root + "/handoff").count }

        var first = handoff.keep(try part("a"), bytes: 60)
        #expect(first != nil)
        #expect(handoff.keep(try part("b"), bytes: 60) == nil, "over the budget: the loader fetches it from the store")
        #expect(try kept() == 1)
        // Loaded: the copy goes and its share of the budget returns.
        first = nil
        #expect(try kept() == 0)
        let second = handoff.keep(try part("c"), bytes: 60)
        #expect(second != nil && FileManager.default.fileExists(atPath: second!.path))
        handoff.close()
        #expect(!FileManager.default.fileExists(atPath: root + "/handoff"))
    }
}
