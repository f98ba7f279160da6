import ArgumentParser
import Foundation
import TributaryCore
import TributaryServices
import TributaryStorage

struct Drain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "For switchover: bring STG exactly up to each source's current WAL position, then mark the sources drained.",
        discussion: """
            Make the sources read-only first. drain records each source's end LSN, waits until every change up to it \
            is in the staging store and applied to STG (doing the replicating or applying itself where no tributary \
            run, replicate or apply does), marks the sources drained (replication stops; the slots stay until you drop \
            them), prints a report and verifies every table. Exit 0 only when the target is complete and matches.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(name: .customLong("source"), help: "Drain only this source (repeatable; default: all).")
    var sources: [String] = []

    @Option(help: "Give up after this long (seconds, or 10m; the sources stay draining: run drain again to go on).")
    var timeout: Duration?

    @Flag(help: "Refuse when a source still has write transactions open.")
    var requireReadOnly = false

    @Flag(help: "Skip the verification at the end.")
    var noVerify = false

    func run() async throws {
        try await CommandRunner.run {
            let configuration = try global.loadConfiguration()
            let logger = global.makeLogger("drain")
            let store = try global.openStagingStore(configuration.target, command: "drain")
            let selected = try configuration.sources(named: sources)
            let endpoints = Endpoints(configuration, command: "drain")
            let started = ContinuousClock.now
            let printer = DrainProgressPrinter()
            let drain = DrainCoordinator(configuration: configuration, endpoints: endpoints, sources: selected, store: store, logger: logger)
            let begun = try await drain.begin(requireReadOnly: requireReadOnly)
            // What run runs, to each source's end: the parts another process runs already are waited for.
            let pipeline = Pipeline(configuration: configuration, endpoints: endpoints, store: store,
                                    configurationDirectory: global.configurationDirectory, logger: logger)
            let selection = Pipeline.Selection(sources: selected)
            let watch = pipeline.service(drain.watch(begun, timeout: timeout) { await printer.show($0) })
            try await pipeline.run(pipeline.parts(selection, end: begun.ends) + [watch], shutdownTimeout: .seconds(60))
            let report = try await drain.finish(begun)
            let seconds = (ContinuousClock.now - started).seconds
            print("\ndrain: complete in \(Format.duration(seconds)); the sources are drained and their slots kept "
                  + "(drop them with tributary drop-slot --all after cutover)")
            print(Format.pad("source", 8) + Format.pad("end LSN", 18) + Format.pad("batches", 10, right: true) + Format.pad("rows", 12, right: true))
            for source in report.sources {
                print(Format.pad(source.source, 8) + Format.pad(source.endLSN.description, 18)
                      + Format.pad(Format.count(source.batches), 10, right: true) + Format.pad(Format.count(source.rows), 12, right: true))
            }
            if !report.models.isEmpty { print("") }
            for model in report.models { print(Status.line(model)) }
            if !report.objects.isEmpty { print("") }
            for mapping in report.objects { print(SyncObjects.lines(mapping, dryRun: false).joined(separator: "\n")) }
            guard !noVerify else { return }
            print("")
            let outcome = try await Verifier(endpoints: endpoints, configuration: configuration, logger: logger)
                .verify(selected, rechecks: 0)
            outcome.printTable()
            if !outcome.matches { throw ExitCode(1) }
        }
    }
}

/// One line per source at most every two seconds while the drain waits.
private actor DrainProgressPrinter {
    private var last = ContinuousClock.now - .seconds(10)

    func show(_ progress: [DrainProgress.SourceProgress]) {
        guard ContinuousClock.now - last >= .seconds(2) || progress.allSatisfy(\.done) else { return }
        last = ContinuousClock.now
        for item in progress {
            print("drain \(item.source): end \(item.end), flushed \(item.flushed?.description ?? "-"), applied \(item.applied?.description ?? "-")"
                  + (item.done ? " — done" : ""))
        }
    }
}
