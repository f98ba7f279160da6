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

    @Option(help: "Serve Prometheus metrics on this port at /metrics (lag, backlog, batches, rows, errors).")
    var metricsPort: Int?

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
            var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
            let metrics = try metricsPort.map {
                try MetricsEndpoint(port: $0, reader: StatusReader(target: configuration.target.connection, store: store, models: configuration.models),
                                   sources: selected, logger: logger)
            }
            defer { _ = metrics }
            if !noReplicate {
                for source in selected {
                    let settings = Replicator.Settings(target: configuration.target)
                    // A stop signal per part: the service group shuts the parts down one by one, and a
                    // part that ended before its turn would count as a failure.
                    let stop = StopSignal()
                    let supervisor = ReplicationSupervisor(source: source, settings: settings, store: store, target: configuration.target.connection,
                                                           workDirectory: configuration.target.workDirectory, logger: logger, stop: stop)
                    services.append(.init(service: Part(name: "replicate \(source.name)", stop: stop) { try await supervisor.run() },
                                          successTerminationBehavior: .gracefullyShutdownGroup,
                                          failureTerminationBehavior: .gracefullyShutdownGroup))
                }
            }
            if !noApply {
                let stop = StopSignal()
                let applier = ChangeApplier(target: configuration.target.connection, sources: selected, store: store,
                                            settings: .init(configuration.target.snapshot), logger: logger, stop: stop)
                services.append(.init(service: Part(name: "apply", stop: stop) {
                    let failures = try await applier.run()
                    if let (source, error) = failures.sorted(by: { $0.key < $1.key }).first {
                        throw OperatorError("apply stopped for \(source): \(error)")
                    }
                }, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup))
            }
            if !noTransform && !configuration.models.isEmpty {
                let stop = StopSignal()
                let directory = global.configurationDirectory
                let transforms = TransformService(configuration: configuration,
                                                  reloadModels: { try ConfigurationLoader.load(directory: directory).models },
                                                  logger: logger, stop: stop)
                services.append(.init(service: Part(name: "transform", stop: stop) { try await transforms.run() },
                                      successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup))
            }
            if !noSync && !configuration.sources.flatMap(\.objects).isEmpty {
                let stop = StopSignal()
                let sync = ObjectSyncService(configuration: configuration, logger: logger, stop: stop)
                services.append(.init(service: Part(name: "sync-objects", stop: stop) { try await sync.runContinuously() },
                                      successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup))
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
