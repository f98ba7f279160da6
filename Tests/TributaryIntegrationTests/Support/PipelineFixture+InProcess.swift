import Foundation
import Testing
import TributaryCore
import TributaryServices

/// The pipeline of `run` in the test's own process, and the random-workload round trip that
/// several suites run over it (over the local store, over the OCI emulator).
extension PipelineFixture {
    /// The replicators and the applier of `run`, in this process, until `stop`.
    func runPipeline(stop: StopSignal) async throws {
        let configuration = try configuration()
        var pipeline = Pipeline(configuration: configuration, endpoints: try endpoints(), store: try store(),
                                configurationDirectory: nil, logger: Self.logger)
        pipeline.applySettings = ChangeApplier.Settings(jobs: 2)
        pipeline.applySettings.schedule.pollInterval = .seconds(2)
        var selection = Pipeline.Selection(sources: configuration.sources)
        selection.collect = false
        selection.transform = false
        selection.sync = false
        try await pipeline.run(pipeline.parts(selection), shutdownTimeout: .seconds(30), signals: false, stop: stop)
    }

    /// The pipeline runs while a seeded random workload (with a column added mid-stream on qvp)
    /// runs on both sources; afterwards every table equals its STG table.
    func randomWorkloadEndsEqual(steps: Int) async throws {
        let stop = StopSignal()
        let pipeline = Task { try await runPipeline(stop: stop) }
        do {
            for (index, source) in ["qvp", "svp"].enumerated() {
                var workload = RandomWorkload(seed: UInt64.random(in: 1...UInt64.max))
                let one = try await connectSource(source), two = try await connectSource(source)
                for step in 0..<steps {
                    try await workload.step(one, two, addColumnAt: index == 0 ? steps / 2 : nil, step: step)
                }
            }
            try await waitUntilApplied(["qvp", "svp"])
        } catch {
            // Background work must end before the test does, whatever happened.
            stop.request()
            _ = try? await pipeline.value
            throw error
        }
        stop.request()
        try await pipeline.value

        for source in ["qvp", "svp"] {
            let comparisons = try await verify(source)
            #expect(comparisons.count == 2)
            for comparison in comparisons {
                #expect(comparison.matches, """
                    \(source) \(comparison.table): \(comparison.sourceRows) rows vs \(comparison.stagingRows ?? -1), \
                    differs where \(comparison.differingRanges)
                    """)
            }
        }
        let target = try await connectTarget()
        // The column added mid-stream is in STG with the values the source has.
        #expect(try await target.query("SELECT count(*) FROM stg.qvp_accounts WHERE region = 'eu' AND NOT _deleted").scalar
                == (try await connectSource("qvp").query("SELECT count(*) FROM accounts").scalar))
        #expect(try await target.query("SELECT count(*) FROM tributary.applied_batches").scalar.map { Int($0)! }! > 4)
    }
}
