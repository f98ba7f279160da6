import Foundation
import Logging
import TributaryCore
import TributaryPostgres

/// The BL models under `run` and `drain`: wakes when the applier commits batches (NOTIFY on the
/// target, so the applier may be another process), and runs the models whose inputs changed as the
/// `TransformScheduler` decides. A model that failed is retried with its definition read again,
/// so fixing its SQL is enough for it to catch up.
struct TransformPart: Part {
    let kind = "transform"
    let source: String? = nil
    let endpoints: Endpoints
    /// Reads the models again from the configuration directory (after a failure).
    let reloadModels: @Sendable () throws -> [TransformModel]
    let logger: Logger
    /// Every model looks at its inputs this often even without a notification.
    let sweepInterval: Duration = .seconds(30)
    /// The longest a wait for notifications lasts before the loop comes round.
    let listenTimeout: Duration = .milliseconds(500)
    private var configuration: Configuration
    private var scheduler: TransformScheduler
    private var control: ControlStore?
    private var connectedBefore = false
    private var lastSweep = ContinuousClock.now
    private var failed: Set<String> = []

    init(configuration: Configuration, endpoints: Endpoints, reloadModels: @escaping @Sendable () throws -> [TransformModel], logger: Logger) {
        self.configuration = configuration
        self.endpoints = endpoints
        self.reloadModels = reloadModels
        self.logger = logger
        let settings = configuration.target.transform
        scheduler = TransformScheduler(models: configuration.models, minInterval: settings.minInterval, retryInterval: settings.retryInterval,
                                       catchUpDeferral: settings.catchUpDeferral)
    }

    mutating func step(_ context: PartContext) async throws -> PartStep {
        let control = try await session(context)
        if ContinuousClock.now - lastSweep >= sweepInterval {
            scheduler.changedEverything(now: .now)
            lastSweep = .now
        }
        switch scheduler.next(now: .now) {
        case .run(let name):
            if failed.contains(name) { configuration = refreshed(configuration) }
            guard let model = configuration.models.first(where: { $0.name == name }) else { return .again }
            let started = ContinuousClock.now
            let outcome = await context.working { [configuration, endpoints, logger] in
                await TransformRunner(configuration: configuration, endpoints: endpoints, logger: logger)
                    .runOne(model, full: false, dryRun: false, wait: false, control: control)
            }
            if outcome.isFailure { failed.insert(name) } else { failed.remove(name) }
            scheduler.finished(name, outcome.schedulerOutcome, startedAt: started, now: .now)
        case .wait(let until):
            let timeout = min(listenTimeout, until.map { max(.zero, $0 - .now) } ?? listenTimeout)
            let notifications = try await control.connection.run { try $0.waitForNotifications(timeout: timeout.seconds) }
            for notification in notifications where notification.channel == ControlStore.stagingChannel {
                let change = StagingChange(payload: notification.payload)
                scheduler.changed(source: change.source,
                                  stagingTables: configuration.sources.first { $0.name == change.source }?.tables.map(\.stagingTable) ?? [],
                                  backlog: change.backlog, now: .now)
            }
        }
        return .again
    }

    /// The part's target session, listening for STG changes; opened again after a failure, when
    /// every model looks at its inputs again (notifications may have been missed meanwhile).
    private mutating func session(_ context: PartContext) async throws -> ControlStore {
        if let control { return control }
        let opened = try await endpoints.target.openControl(migrate: true, .apply, for: "bl")
        do {
            try await opened.connection.execute("LISTEN \(ControlStore.stagingChannel)")
            if connectedBefore { scheduler.changedEverything(now: .now) }
            scheduler.applierBehind(sources: try await opened.sourcesWithApplyBacklog(), now: .now)
        } catch {
            await opened.close()
            throw error
        }
        control = opened
        connectedBefore = true
        context.ready("running the models as their inputs change")
        return opened
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

    mutating func reset() async {
        await control?.close()
        control = nil
    }
}
