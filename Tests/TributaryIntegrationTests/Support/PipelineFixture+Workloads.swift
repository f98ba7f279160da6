import Foundation
import TributaryServices

/// The workloads suites run on a fixture's sources, and the BL check they end with.
extension PipelineFixture {
    /// One seeded random workload per source (qvp, svp); the seed is the first's.
    static func randomWorkloads() -> [RandomWorkload] {
        let seed = UInt64.random(in: 1...UInt64.max / 2)
        return [RandomWorkload(seed: seed), RandomWorkload(seed: seed + 1)]
    }

    /// Runs steps of one seeded random workload per source; the workloads carry on where the last
    /// call stopped.
    func randomWorkload(steps: Range<Int>, _ workloads: inout [RandomWorkload]) async throws {
        for (index, source) in ["qvp", "svp"].enumerated() {
            let one = try await connectSource(source), two = try await connectSource(source)
            for step in steps { try await workloads[index].step(one, two, addColumnAt: nil, step: step) }
        }
    }

    /// Runs `steps` of the demo's workload on qvp and svp.
    func demoWorkload(_ workload: inout DemoWorkload, steps: Int) async throws {
        let qvp = try await connectSource("qvp"), svp = try await connectSource("svp")
        try await workload.prepare(qvp: qvp, svp: svp)
        for _ in 0..<steps { try await workload.step(qvp: qvp, svp: svp) }
    }

    /// Every BL model built whole and compared with its table (`tributary transform --check`).
    func blCheck() async throws -> [TransformCheck.Difference] {
        try await TransformCheck(runner: TransformRunner(configuration: try configuration(), endpoints: try endpoints(),
                                                         logger: Self.logger)).run()
    }
}
