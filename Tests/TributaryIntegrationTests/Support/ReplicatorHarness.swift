import Foundation
import TributaryCore
import TributaryPostgres
import TributaryServices
import TributaryStorage

/// Runs the replicator in process until the source's current WAL position is durable in the store.
extension PipelineFixture {
    /// - Parameter store: where batches go; the fixture's own store by default.
    func replicateUntilCaughtUp(_ sourceName: String, limits: BatchLimits = BatchLimits(),
                                heartbeatInterval: Duration = .seconds(60), store: (any StagingStore)? = nil) async throws -> Replicator.Summary {
        let source = try await connectSource(sourceName)
        // The insert position: with asynchronous commit, pg_current_wal_lsn() (the write position)
        // can lag behind commits that already returned.
        let end = LSN(try await source.query("SELECT pg_current_wal_insert_lsn()").scalar!)!
        await source.close()
        let configuration = try configuration()
        var settings = Replicator.Settings(limits: limits, heartbeatInterval: heartbeatInterval, endLSN: end)
        settings.statusInterval = .seconds(1)
        return try await Replicator(source: try configuration.sources(named: [sourceName])[0], endpoints: try endpoints(), settings: settings,
                                    store: try store ?? self.store(),
                                    workDirectory: configuration.target.workDirectory, logger: Self.logger, stop: StopSignal()).run()
    }

    func stagedChanges(_ source: String) async throws -> StagedChanges {
        try await StagedChanges.read(source: source, store: try store())
    }
}
