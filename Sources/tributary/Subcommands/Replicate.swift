import ArgumentParser
import Dispatch
import Foundation
import TributaryCore
import TributaryServices
import TributaryStorage

struct Replicate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Follow a source's replication slot and write its changes to the staging store as micro-batches.",
        discussion: """
            Runs until SIGTERM or SIGINT, then finishes the batch in hand, makes it durable, acknowledges it and exits 0. \
            It obeys pause, resume and drain like tributary run. With --end-lsn it stops at that LSN and ignores them. \
            The slot must exist: run tributary snapshot first.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(name: .customLong("source"), help: "The source to follow.")
    var source: String

    @Option(help: "Stop once everything up to this LSN (e.g. 0/16B3748) is durable in the staging store.")
    var endLSN: String?

    func validate() throws {
        if let endLSN, LSN(endLSN) == nil { throw ValidationError("--end-lsn \(endLSN) is not an LSN such as 0/16B3748") }
    }

    func run() async throws {
        try await CommandRunner.run {
            let configuration = try global.loadConfiguration()
            let logger = global.makeLogger("replicate")
            let store = try global.openStagingStore(configuration.target, command: "replicate")
            let sourceConfiguration = try configuration.sources(named: [source])[0]
            let endpoints = Endpoints(configuration, command: "replicate")
            let summary: Replicator.Summary
            if let end = endLSN.flatMap(LSN.init) {
                let stop = StopSignal()
                let signals = SignalHandlers.install([SIGTERM, SIGINT]) { signal in
                    logger.notice("signal \(signal): finishing the batch in hand")
                    stop.request()
                }
                defer { _ = signals }
                var settings = Replicator.Settings(target: configuration.target, endLSN: end)
                settings.refreshSource = ConfigurationLoader.refresher(directory: global.configurationDirectory, source: source)
                let notifier = TargetNotifier(target: endpoints.target, purpose: "replicate \(source)", logger: logger)
                summary = try await Replicator(source: sourceConfiguration, endpoints: endpoints, settings: settings, store: store,
                                               workDirectory: configuration.target.workDirectory, logger: logger, stop: stop,
                                               notifier: notifier).run()
                await notifier.close()
            } else {
                // A replicator of run, alone, under the control state: pause, resume and drain reach it.
                let pipeline = Pipeline(configuration: configuration, endpoints: endpoints, store: store,
                                        configurationDirectory: global.configurationDirectory, logger: logger)
                var selection = Pipeline.Selection(sources: [sourceConfiguration])
                selection.apply = false
                selection.transform = false
                selection.sync = false
                try await pipeline.run(pipeline.parts(selection), shutdownTimeout: .seconds(60))
                summary = pipeline.replicationTotals.summary
            }
            print("replicate \(source): \(summary.batches) batches, \(Format.count(summary.transactions)) transactions, "
                  + "\(Format.count(summary.rows)) rows; durable and acknowledged up to \(summary.durableLSN)")
        }
    }
}

/// Turns signals into calls, off the signal handler's restricted context.
enum SignalHandlers {
    static func install(_ signals: [Int32], _ handler: @escaping @Sendable (Int32) -> Void) -> [any DispatchSourceSignal] {
        signals.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { handler(number) }
            source.resume()
            return source
        }
    }
}
