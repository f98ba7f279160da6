import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import TributaryCore
import TributaryServices
import TributaryStorage

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a replicator per source and the applier in one supervised process.",
        discussion: """
            SIGTERM or SIGINT stops every part gracefully: each finishes the batch in hand, makes it durable, \
            acknowledges it and the process exits 0 (within --shutdown-timeout). A part that fails for good stops \
            the process with exit 1 and the reason, for a supervisor such as systemd to restart it. The parts obey \
            pause, resume and drain within a second.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(name: .customLong("source"), help: "Replicate only this source (repeatable; default: all).")
    var sources: [String] = []

    @Flag(help: "Do not run the replicators (another process does).")
    var noReplicate = false

    @Flag(help: "Do not run the applier (another process does).")
    var noApply = false

    @Flag(help: "Do not run the BL models (another process does, or tributary transform by hand).")
    var noTransform = false

    @Flag(help: "Do not sync the object files (tributary sync-objects does, by hand or from a scheduler).")
    var noSync = false

    @Option(help: "Serve Prometheus metrics at /metrics (lag, backlog, batches, rows, errors) and health at /healthz and /readyz on this port.")
    var metricsPort: Int?

    @Option(help: "The address the metrics and health endpoints listen on (0.0.0.0: every interface).")
    var metricsAddress = "127.0.0.1"

    @Option(help: "Seconds a graceful stop may take before the parts are cancelled.")
    var shutdownTimeout: Double = 60

    func validate() throws {
        if noReplicate && noApply && noTransform { throw ValidationError("--no-replicate, --no-apply and --no-transform leave nothing to run") }
    }

    func run() async throws {
        try await CommandRunner.run {
            let configuration = try global.loadConfiguration()
            let logger = global.makeLogger("run")
            let store = try global.openStagingStore(configuration.target, command: "run")
            let selected = try configuration.sources(named: sources)
            let liveness = Liveness()
            let endpoints = try metricsPort.map {
                try OperationsServer(address: metricsAddress, port: $0,
                                     reader: StatusReader(target: configuration.target.connection, store: store, models: configuration.models),
                                     sources: selected, liveness: liveness, logger: logger)
            }
            defer { _ = endpoints }
            var services = parts(configuration, selected: selected, store: store, liveness: liveness, logger: logger)
            // Last: a graceful stop reaches the parts in reverse order, so systemd hears STOPPING=1 first.
            if !services.isEmpty, let notifier = SystemdNotifier.fromEnvironment(liveness: liveness, logger: logger) {
                services.append(.init(service: notifier, successTerminationBehavior: .gracefullyShutdownGroup,
                                      failureTerminationBehavior: .gracefullyShutdownGroup))
            }
            guard !services.isEmpty else { throw OperatorError("run: nothing to run (no models in bl/, and replicate and apply are off)") }
            var groupConfiguration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint],
                                                               cancellationSignals: [], logger: logger)
            groupConfiguration.maximumGracefulShutdownDuration = .milliseconds(Int(shutdownTimeout * 1000))
            logger.notice("running", metadata: ["sources": "\(selected.map(\.name).joined(separator: ","))",
                                                "replicate": "\(!noReplicate)", "apply": "\(!noApply)",
                                                "models": "\(noTransform ? 0 : configuration.models.count)"])
            do {
                try await ServiceGroup(configuration: groupConfiguration).run()
            } catch let error as ServiceGroupError {
                throw OperatorError("run: \(error)")
            }
            print("run: stopped cleanly: every batch in hand is durable and acknowledged")
        }
    }

    /// The parts the options leave on: a replicator per source, the applier, the BL models, the object sync.
    private func parts(_ configuration: Configuration, selected: [SourceConfiguration], store: any StagingStore, liveness: Liveness,
                       logger: Logger) -> [ServiceGroupConfiguration.ServiceConfiguration] {
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if !noReplicate {
            for source in selected {
                var settings = Replicator.Settings(target: configuration.target)
                settings.refreshSource = global.refreshSource(named: source.name)
                settings.liveness = liveness
                liveness.register(Replicator.part(source.name))
                services.append(Self.part("replicate \(source.name)") { [settings] stop in
                    try await ReplicationSupervisor(source: source, settings: settings, store: store, target: configuration.target.connection,
                                                    workDirectory: configuration.target.workDirectory, logger: logger, stop: stop).run()
                })
            }
        }
        if !noApply {
            liveness.register(ChangeApplier.part)
            services.append(Self.part("apply") { stop in
                var applier = ChangeApplier(target: configuration.target.connection, sources: selected, store: store,
                                            settings: .init(configuration.target.snapshot), logger: logger, stop: stop)
                applier.liveness = liveness
                if let (source, error) = try await applier.run().sorted(by: { $0.key < $1.key }).first {
                    throw OperatorError("apply stopped for \(source): \(error)")
                }
            })
            // Retention beside the applier: what it applied is what becomes collectable.
            liveness.register(StoreCollector.part)
            services.append(Self.part(StoreCollector.part) { stop in
                try await StoreCollector(target: configuration.target.connection, store: store, settings: configuration.target.retention,
                                         logger: logger, stop: stop).runContinuously(selected, liveness: liveness)
            })
        }
        if !noTransform && !configuration.models.isEmpty {
            let directory = global.configurationDirectory
            liveness.register(TransformService.part)
            services.append(Self.part("transform") { stop in
                var transforms = TransformService(configuration: configuration,
                                                  reloadModels: { try ConfigurationLoader.load(directory: directory).models }, logger: logger, stop: stop)
                transforms.liveness = liveness
                try await transforms.run()
            })
        }
        if !noSync && !configuration.sources.flatMap(\.objects).isEmpty {
            liveness.register(ObjectSyncService.part)
            services.append(Self.part("sync-objects") { stop in
                try await ObjectSyncService(configuration: configuration, logger: logger, stop: stop).runContinuously(liveness: liveness)
            })
        }
        return services
    }

    /// A part with a stop signal of its own: the service group shuts the parts down one by one, and
    /// a part that ended before its turn would count as a failure.
    private static func part(_ name: String, _ body: @escaping @Sendable (StopSignal) async throws -> Void) -> ServiceGroupConfiguration.ServiceConfiguration {
        let stop = StopSignal()
        return .init(service: Part(name: name, stop: stop) { try await body(stop) },
                     successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup)
    }
}

/// One part of `run`: its body runs until the shared stop signal, which a graceful shutdown sets.
private struct Part: Service {
    let name: String
    let stop: StopSignal
    let body: @Sendable () async throws -> Void

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await body()
        } onGracefulShutdown: {
            stop.request()
        }
    }
}
