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

    @Option(help: "How long a graceful stop may take before the parts are cancelled (seconds, or 90s, 2m).")
    var shutdownTimeout: Duration = .seconds(60)

    func validate() throws {
        if noReplicate && noApply && noTransform { throw ValidationError("--no-replicate, --no-apply and --no-transform leave nothing to run") }
    }

    func run() async throws {
        try await CommandRunner.run {
            let configuration = try global.loadConfiguration()
            let logger = global.makeLogger("run")
            let store = try global.openStagingStore(configuration.target, command: "run")
            let selected = try configuration.sources(named: sources)
            let pipeline = Pipeline(configuration: configuration, endpoints: Endpoints(configuration, command: "run"), store: store,
                                    configurationDirectory: global.configurationDirectory, logger: logger)
            var selection = Pipeline.Selection(sources: selected)
            selection.replicate = !noReplicate
            selection.apply = !noApply
            selection.collect = !noApply
            selection.transform = !noTransform
            selection.sync = !noSync
            var services = pipeline.parts(selection)
            guard !services.isEmpty else { throw TributaryError(.usage, "run: nothing to run (no models in bl/, and replicate and apply are off)") }
            if let metricsPort {
                let board = StatusBoard()
                let server = try OperationsServer(address: metricsAddress, port: metricsPort, board: board, liveness: pipeline.liveness,
                                                  logger: logger)
                // First: a graceful stop reaches it last, so health answers while the parts stop.
                services.insert(.init(service: server, successTerminationBehavior: .gracefullyShutdownGroup,
                                      failureTerminationBehavior: .gracefullyShutdownGroup), at: 0)
                services.insert(pipeline.statusRefresher(selected, board: board), at: 1)
            }
            // Last: a graceful stop reaches the parts in reverse order, so systemd hears STOPPING=1 first.
            if let notifier = SystemdNotifier.fromEnvironment(liveness: pipeline.liveness, logger: logger) {
                services.append(.init(service: notifier, successTerminationBehavior: .gracefullyShutdownGroup,
                                      failureTerminationBehavior: .gracefullyShutdownGroup))
            }
            logger.notice("running", metadata: [LogKey.sources: "\(selected.map(\.name).joined(separator: ","))",
                                                LogKey.replicate: "\(!noReplicate)", LogKey.apply: "\(!noApply)",
                                                LogKey.models: "\(noTransform ? 0 : configuration.models.count)"])
            try await pipeline.run(services, shutdownTimeout: shutdownTimeout)
            print("run: stopped cleanly: every batch in hand is durable and acknowledged")
        }
    }
}
