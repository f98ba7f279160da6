import Foundation
import Logging
import TributaryCore
import TributaryPostgres

/// The BL part of `tributary run`: wakes when the applier commits batches (NOTIFY on the target,
/// so the applier may be another process), and runs the models whose inputs changed as the
/// `TransformScheduler` decides. A model that failed is retried with its definition read again,
/// so fixing its SQL is enough for it to catch up.
public struct TransformService: Sendable {
    public let configuration: Configuration
    /// Reads the models again from the configuration directory (after a failure).
    public let reloadModels: @Sendable () throws -> [TransformModel]
    public let logger: Logger
    public let stop: StopSignal
    /// Every model looks at its inputs this often even without a notification.
    public var sweepSeconds = 30.0
    /// Where the BL part says it is alive (`tributary run`'s health endpoints).
    public var liveness: Liveness?
    public static let part = "transform"

    public init(configuration: Configuration, reloadModels: @escaping @Sendable () throws -> [TransformModel], logger: Logger, stop: StopSignal) {
        self.configuration = configuration
        self.reloadModels = reloadModels
        self.logger = logger
        self.stop = stop
    }

    public func run() async throws {
        guard !configuration.models.isEmpty else { return }
        let settings = configuration.target.transform
        var scheduler = TransformScheduler(models: configuration.models, minInterval: .milliseconds(settings.minIntervalMilliseconds),
                                           retryInterval: .milliseconds(settings.retryMilliseconds),
                                           catchUpDeferral: .milliseconds(settings.catchUpDeferralMilliseconds))
        var configuration = self.configuration
        var control = try await connect()
        scheduler.applierBehind(sources: try await control.sourcesWithApplyBacklog(), now: .now)
        var backoff = Backoff(initialSeconds: 0.5, maximumSeconds: 30)
        var lastSweep = ContinuousClock.now
        var failed: Set<String> = []
        liveness.ready(Self.part, true, "running the models as their inputs change")
        while !stop.isRequested {
            liveness.beat(Self.part)
            do {
                if ContinuousClock.now - lastSweep >= .seconds(sweepSeconds) {
                    scheduler.changedEverything(now: .now)
                    lastSweep = .now
                }
                switch scheduler.next(now: .now) {
                case .run(let name):
                    if failed.contains(name) { configuration = refreshed(configuration) }
                    guard let model = configuration.models.first(where: { $0.name == name }) else { continue }
                    let started = ContinuousClock.now
                    let outcome = await liveness.working(Self.part) {
                        await TransformRunner(configuration: configuration, logger: logger)
                            .runOne(model, full: false, dryRun: false, wait: false, control: control)
                    }
                    if outcome.isFailure { failed.insert(name) } else { failed.remove(name) }
                    scheduler.finished(name, outcome.schedulerOutcome, startedAt: started, now: .now)
                case .wait(let until):
                    let seconds = min(0.5, until.map { max(0, ($0 - ContinuousClock.now).seconds) } ?? 0.5)
                    let notifications = try await control.connection.run { try $0.waitForNotifications(timeout: seconds) }
                    for notification in notifications where notification.channel == ControlStore.stagingChannel {
                        let change = StagingChange(payload: notification.payload)
                        scheduler.changed(source: change.source, stagingTables: configuration.sources.first { $0.name == change.source }?.tables.map(\.stagingTable) ?? [],
                                          backlog: change.backlog, now: .now)
                    }
                }
                backoff.reset()
            } catch let error as PostgresError where error.isTransient || error.kind == .connectionFailed {
                let delay = backoff.next()
                logger.warning("target connection trouble, BL runs resume in \(delay) s: \(error)")
                try await Task.sleep(for: .seconds(delay))
                if let fresh = try? await connect() {
                    await control.close()
                    control = fresh
                    scheduler.changedEverything(now: .now)
                    scheduler.applierBehind(sources: (try? await control.sourcesWithApplyBacklog()) ?? [], now: .now)
                }
            }
        }
        await control.close()
    }

    private func connect() async throws -> ControlStore {
        let control = try await ControlStore.open(configuration.target.connection, applicationName: "tributary run bl", migrate: true)
        try await control.connection.execute("SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0; LISTEN \(ControlStore.stagingChannel)")
        return control
    }

    /// The configuration with the models as the files say now; as it was when they do not parse
    /// (the failure stays, and is said).
    private func refreshed(_ configuration: Configuration) -> Configuration {
        var copy = configuration
        do {
            let models = try reloadModels()
            // The scheduler knows the models it started with; a changed definition of one of them counts.
            copy.models = configuration.models.map { old in models.first { $0.name == old.name } ?? old }
        } catch {
            logger.error("BL models could not be read again: \(error)")
        }
        return copy
    }
}
