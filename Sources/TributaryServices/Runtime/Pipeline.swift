import Logging
import ServiceLifecycle
import TributaryCore
import TributaryStorage

/// The one place a long-running process is put together: what `run` runs, what `drain` runs with
/// each source's end fixed, what `apply` and `replicate` run of it. Each part (`Part`) is a service
/// of one `ServiceGroup`, supervised alike (`SupervisedPart`); a graceful stop reaches them in
/// reverse order, so the replicators, listed first, are the last to stop.
public struct Pipeline: Sendable {
    /// Which parts run.
    public struct Selection: Sendable {
        public var sources: [SourceConfiguration]
        public var replicate = true
        public var apply = true
        /// Retention, beside the applier.
        public var collect = true
        public var transform = true
        public var sync = true

        public init(sources: [SourceConfiguration]) { self.sources = sources }
    }

    public let configuration: Configuration
    public let endpoints: Endpoints
    public let store: any StagingStore
    public let liveness: Liveness
    public let logger: Logger
    /// Where the configuration is read again while running (a table added to a source, a model
    /// fixed); nil: never.
    public let configurationDirectory: String?
    public var applySettings: ChangeApplier.Settings
    public var replicatorSettings: Replicator.Settings
    /// What the replicators wrote, summed (`tributary replicate` prints it).
    public let replicationTotals = ReplicationTotals()

    public init(configuration: Configuration, endpoints: Endpoints, store: any StagingStore, liveness: Liveness = Liveness(),
                configurationDirectory: String?, logger: Logger) {
        self.configuration = configuration
        self.endpoints = endpoints
        self.store = store
        self.liveness = liveness
        self.configurationDirectory = configurationDirectory
        self.logger = logger
        applySettings = ChangeApplier.Settings(configuration.target.snapshot)
        replicatorSettings = Replicator.Settings(target: configuration.target)
    }

    /// The parts `selection` leaves on. With `ends` (a drain): the replicators follow the control
    /// state to each end, and neither retention nor the periodic object sync runs (the drain makes
    /// its own last pass). A drain's parts, and `cooperative` ones (a verify's), wait for a slot or
    /// the applier lock another process holds: it does the same work.
    public func parts(_ selection: Selection, end ends: [String: LSN]? = nil, cooperative: Bool = false)
        -> [ServiceGroupConfiguration.ServiceConfiguration] {
        let draining = ends != nil
        let cooperative = cooperative || draining
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if selection.replicate {
            for source in selection.sources {
                var settings = replicatorSettings
                settings.refreshSource = ConfigurationLoader.refresher(directory: configurationDirectory, source: source.name)
                services.append(service(ReplicationPart(source: source, endpoints: endpoints, settings: settings, store: store,
                                                        workDirectory: configuration.target.workDirectory, totals: replicationTotals,
                                                        cooperative: cooperative, logger: logger),
                                        policy: SupervisionPolicy(backoff: Backoff(initial: .seconds(1), maximum: .seconds(30)))))
                services.append(service(TableResyncPart(source: source, service: SnapshotService(configuration: configuration, endpoints: endpoints,
                                                                                                  store: store, logger: logger))))
            }
        }
        if selection.apply {
            let lease = ApplierLease(sources: selection.sources.map(\.name))
            services.append(service(ApplierLockPart(endpoints: endpoints, lease: lease, cooperative: cooperative)))
            let parked = ParkedParts()
            for source in selection.sources {
                let applier = SourceApplier(source: source, endpoints: endpoints, store: store, settings: applySettings, logger: logger)
                services.append(service(SourceApplierPart(applier, lease: lease), doorbell: lease.doorbells[source.name]!,
                                        onPermanentFailure: .park(parked)))
            }
            if selection.collect && !draining {
                services.append(service(CollectorPart(endpoints: endpoints, store: store, settings: configuration.target.retention,
                                                      sources: selection.sources)))
            }
        }
        if selection.transform && !configuration.models.isEmpty {
            let directory = configurationDirectory
            services.append(service(TransformPart(configuration: configuration, endpoints: endpoints, reloadModels: {
                guard let directory else { return [] }
                return try ConfigurationLoader.load(directory: directory).models
            }, logger: logger)))
        }
        if selection.sync && !draining && !configuration.sources.flatMap(\.objects).isEmpty {
            services.append(service(ObjectSyncPart(configuration: configuration, endpoints: endpoints, sources: configuration.sources)))
        }
        return services
    }

    /// The part that keeps the status of `sources` fresh on `board` (the operations endpoints).
    public func statusRefresher(_ sources: [SourceConfiguration], board: StatusBoard) -> ServiceGroupConfiguration.ServiceConfiguration {
        let reader = StatusReader(endpoints: endpoints, store: store, models: configuration.models)
        return service(StatusRefresherPart(reader: reader, sources: sources, board: board), doorbell: board.refresherDoorbell)
    }

    /// `part` as a supervised service of the group: a part that ends, or fails for good, ends the group.
    public func service<P: Part>(_ part: P, doorbell: Doorbell = Doorbell(),
                                 onPermanentFailure: SupervisedPart<P>.OnPermanentFailure = .stopProcess,
                                 policy: SupervisionPolicy = SupervisionPolicy()) -> ServiceGroupConfiguration.ServiceConfiguration {
        .init(service: SupervisedPart(part, liveness: liveness, logger: logger, doorbell: doorbell, onPermanentFailure: onPermanentFailure,
                                      policy: policy),
              successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup)
    }

    /// Runs `services` until SIGTERM or SIGINT (a graceful stop, bounded by `shutdownTimeout`), a
    /// part that finishes, or one that fails for good (its error is thrown).
    /// - Parameters:
    ///   - signals: whether SIGTERM and SIGINT stop the parts (not for a library caller's run).
    ///   - stop: also stops the parts gracefully when requested (a library caller's signal).
    public func run(_ services: [ServiceGroupConfiguration.ServiceConfiguration], shutdownTimeout: Duration?,
                    signals: Bool = true, stop: StopSignal? = nil) async throws {
        var configuration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: signals ? [.sigterm, .sigint] : [],
                                                      cancellationSignals: [], logger: logger)
        configuration.maximumGracefulShutdownDuration = shutdownTimeout
        let group = ServiceGroup(configuration: configuration)
        do {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                if let stop {
                    tasks.addTask {
                        while !stop.isRequested { try await Task.sleep(for: .milliseconds(50)) }
                        await group.triggerGracefulShutdown()
                    }
                }
                // The group's end ends the stop's watch (its cancellation is no failure).
                try await tasks.next()
                tasks.cancelAll()
            }
        } catch let error as ServiceGroupError {
            throw TributaryError(.stopped, "\(error)")
        }
    }
}
