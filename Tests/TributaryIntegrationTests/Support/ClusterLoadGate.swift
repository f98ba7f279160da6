import Foundation
import Testing

/// Every integration test shares the two test clusters, and every replication slot decodes the
/// whole WAL of its cluster: twenty workload tests at once on two cores starve each other until
/// their deadlines pass. The gate lets only a few heavy tests run at a time; light ones (unit
/// tests, CLI parsing) are not gated. `TRIBUTARY_TEST_PARALLEL` overrides the default.
actor ClusterLoadGate {
    static let shared = ClusterLoadGate(capacity: ProcessInfo.processInfo.environment["TRIBUTARY_TEST_PARALLEL"].flatMap(Int.init) ?? 4)

    private let capacity: Int
    private var running = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(capacity: Int) { self.capacity = max(1, capacity) }

    func enter() async {
        if running < capacity {
            running += 1
            return
        }
        // The leaving test hands its place over directly, so `running` stays counted.
        await withCheckedContinuation { waiting.append($0) }
    }

    func leave() {
        if waiting.isEmpty {
            running -= 1
        } else {
            waiting.removeFirst().resume()
        }
    }
}

/// `@Suite(.clusterLoad)`: each test of the suite runs inside the gate.
struct ClusterLoadTrait: SuiteTrait, TestTrait, TestScoping {
    var isRecursive: Bool { true }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        // Suites get a scope too; only the test functions (cases) take a place.
        guard testCase != nil else { return try await function() }
        await ClusterLoadGate.shared.enter()
        do {
            try await function()
        } catch {
            await ClusterLoadGate.shared.leave()
            throw error
        }
        await ClusterLoadGate.shared.leave()
    }
}

extension Trait where Self == ClusterLoadTrait {
    static var clusterLoad: Self { ClusterLoadTrait() }
}
