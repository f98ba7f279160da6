import Foundation
import Logging
import TributaryCore
import TributaryPostgres
import TributaryStorage

/// Runs one source's replicator as the control state says: running, paused (the slot is left
/// alone and keeps its position), draining (up to the drain LSN, then idle) or drained. A lost
/// connection is retried with backoff; anything else is permanent and ends `run` with its reason.
public struct ReplicationSupervisor: Sendable {
    public let source: SourceConfiguration
    public let settings: Replicator.Settings
    public let store: any StagingStore
    public let target: String
    public let workDirectory: String
    public let logger: Logger
    public let stop: StopSignal
    /// How often the control state is read while the replicator runs or idles.
    public var pollSeconds = 0.5
    /// At start-up a busy slot may be a previous replicator's walsender that is still exiting (a
    /// restart right after a stop): it is retried this long before it counts as a second replicator.
    public var startupGraceSeconds = 10.0

    public init(source: SourceConfiguration, settings: Replicator.Settings, store: any StagingStore, target: String,
                workDirectory: String, logger: Logger, stop: StopSignal) {
        self.source = source
        self.settings = settings
        self.store = store
        self.target = target
        self.workDirectory = workDirectory
        self.logger = logger.with(source: source.name)
        self.stop = stop
    }

    /// Runs until stopped; returns what all its replicator runs wrote.
    @discardableResult
    public func run() async throws -> Replicator.Summary {
        var total = Replicator.Summary()
        var control = try await connectControl()
        let notifier = TargetNotifier(target: target, logger: logger)
        var backoff = 1.0
        var announced: SourceState?
        var started = false
        /// The source answered once: from then on a refused connection is worth waiting out.
        var reached = false
        let began = ContinuousClock.now
        while !stop.isRequested {
            let current: SourceControlState
            do {
                current = try await SourceControl.state(of: source.name, on: control)
                    ?? SourceControlState(state: .running, applyPaused: false, drainLSN: nil, flushedLSN: nil, appliedLSN: nil)
            } catch let error as PostgresError where error.isTransient {
                logger.warning("target connection lost, reconnecting in \(backoff) s: \(error)")
                try await Task.sleep(for: .seconds(backoff))
                backoff = min(backoff * 2, 30)
                if let fresh = try? await connectControl() { control = fresh }
                continue
            }
            if current.state != announced {
                logger.notice("replication \(current.state.rawValue)", metadata: current.drainLSN.map { [LogKey.lsn: .string($0.description)] } ?? [:])
                announced = current.state
            }
            var drainDone = false
            if current.state == .draining, let end = current.drainLSN, let flushed = current.flushedLSN { drainDone = flushed >= end }
            if current.state == .paused || current.state == .drained || drainDone {
                try await Task.sleep(for: .seconds(pollSeconds))
                continue
            }
            var partSettings = settings
            if current.state == .draining { partSettings.endLSN = current.drainLSN }
            let partStop = StopSignal()
            let watcher = Task { [stop, source, pollSeconds] in
                // Its own connection, opened again whenever it is lost: a pause must reach the replicator
                // even while the target connection of the main loop is away.
                var watch: PostgresConnection?
                while !Task.isCancelled && !stop.isRequested {
                    if watch == nil {
                        watch = try? await PostgresConnection.connect(target, name: "target", applicationName: "tributary run \(source.name) control")
                    }
                    if let connection = watch {
                        do {
                            let now = try await SourceControl.state(of: source.name, on: connection)
                            if let now, now.state != current.state || now.drainLSN != current.drainLSN { break }
                        } catch {
                            await connection.close()
                            watch = nil
                        }
                    }
                    try? await Task.sleep(for: .seconds(pollSeconds))
                }
                await watch?.close()
                partStop.request()
            }
            do {
                let summary = try await Replicator(source: source, settings: partSettings, store: store, workDirectory: workDirectory,
                                                   logger: logger, stop: partStop, onBatch: { await notifier.batchWritten($0) }).run()
                watcher.cancel()
                started = true
                reached = true
                total.batches += summary.batches
                total.transactions += summary.transactions
                total.rows += summary.rows
                total.durableLSN = max(total.durableLSN, summary.durableLSN)
                try await SourceControl.recordFlushed(source.name, at: summary.durableLSN, on: control)
                backoff = 1
            } catch let error as PostgresError where error.isTransient || (reached && error.kind == .connectionFailed) {
                // Once the source has been reached, a refused connection is the source restarting
                // (or briefly away): wait for it rather than give up.
                if error.kind != .connectionFailed { reached = true }
                watcher.cancel()
                PipelineMetrics.error(source: source.name, part: "replicate")
                logger.warning("replication interrupted, resuming in \(backoff) s: \(error)")
                try await Task.sleep(for: .seconds(backoff))
                backoff = min(backoff * 2, 30)
            } catch let error as OperatorError
                        where error.kind == .slotInUse && (started || ContinuousClock.now - began < .seconds(startupGraceSeconds)) {
                // After a pause or during a drain, `tributary drain` may be finishing this source itself;
                // at start-up, the walsender of a replicator that just stopped may still be exiting.
                watcher.cancel()
                logger.info("slot busy, retrying in \(min(backoff, 1)) s: \(error)")
                try await Task.sleep(for: .seconds(min(backoff, 1)))
                backoff = min(backoff * 2, 5)
            } catch {
                // Two replicators for one slot at start-up, a missing slot, a type change: permanent.
                watcher.cancel()
                throw error
            }
        }
        await control.close()
        return total
    }

    private func connectControl() async throws -> PostgresConnection {
        let connection = try await PostgresConnection.connect(target, name: "target", applicationName: "tributary run \(source.name)")
        try await ControlSchema.migrate(on: connection)
        return connection
    }
}
