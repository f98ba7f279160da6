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

    @Option(help: "Write the go/no-go report to FILE.md and FILE.json.")
    var report: String?

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
            // Bad input is said before anything is changed.
            if let report { try CutoverReport.checkWritable(report) }
            try await drain.validate()
            let begun = try await drain.begin(requireReadOnly: requireReadOnly)
            // What run runs, to each source's end: the parts another process runs already are waited for.
            let pipeline = Pipeline(configuration: configuration, endpoints: endpoints, store: store,
                                    configurationDirectory: global.configurationDirectory, logger: logger)
            let selection = Pipeline.Selection(sources: selected)
            let watch = pipeline.service(drain.watch(begun, timeout: timeout) { await printer.show($0) })
            try await pipeline.run(pipeline.parts(selection, end: begun.ends) + [watch], shutdownTimeout: .seconds(60))
            let drained = try await drain.finish(begun, compareWithReload: report != nil)
            let seconds = (ContinuousClock.now - started).seconds
            if drained.drained {
                print("\ndrain: complete in \(Format.duration(seconds)); the sources are drained and their slots kept "
                      + "(drop them with tributary drop-slot --all after cutover)")
            } else {
                print("\ndrain: every source reached its end in \(Format.duration(seconds)), but BL relationships have orphans: "
                      + "the sources stay draining; fix them and run tributary drain again")
            }
            print(Format.pad("source", 8) + Format.pad("end LSN", 18) + Format.pad("batches", 10, right: true) + Format.pad("rows", 12, right: true))
            for source in drained.sources {
                print(Format.pad(source.source, 8) + Format.pad(source.endLSN.description, 18)
                      + Format.pad(Format.count(source.batches), 10, right: true) + Format.pad(Format.count(source.rows), 12, right: true))
            }
            if !drained.models.isEmpty { print("") }
            for model in drained.models { print(Status.line(model)) }
            for reference in drained.references { print(Verifier.Outcome.line(reference)) }
            for sequence in drained.sequences {
                print(Format.pad(sequence.source, 8) + "sequence \(sequence.sequence) → \(sequence.target): "
                      + (sequence.targetValue.map { "set to \($0)" } ?? sequence.note ?? "-"))
            }
            for surrogate in drained.surrogates {
                print("model \(surrogate.model): \(surrogate.column) defaults to nextval('\(surrogate.sequence)') (highest so far \(surrogate.highest.map(String.init) ?? "-"))")
            }
            if !drained.objects.isEmpty { print("") }
            for mapping in drained.objects { print(SyncObjects.lines(mapping, dryRun: false).joined(separator: "\n")) }
            var outcome: Verifier.Outcome?
            if !noVerify {
                print("")
                var options = Verifier.Options()
                options.rechecks = 0
                let verified = try await Verifier(endpoints: endpoints, configuration: configuration, store: store, logger: logger)
                    .verify(selected, options: options)
                verified.printTable()
                outcome = verified
            }
            if let report {
                let sections = drainReport(drained, verified: outcome, configuration: configuration, seconds: seconds)
                let cutover = CutoverReport(kind: "drain", sources: sections.sources, models: sections.models, objects: sections.objects)
                try cutover.write(to: report)
                print("drain: the \(cutover.verdict) report is in \(report).md and \(report).json")
            }
            if !drained.drained || !(outcome?.matches ?? true) { throw ExitCode(1) }
        }
    }
}

extension Drain {
    /// The drain's findings and its verify's as the report's sections (with the full-reload
    /// comparison of the models, which the gate wants).
    func drainReport(_ drained: DrainCoordinator.Report, verified: Verifier.Outcome?, configuration: Configuration,
                     seconds: Double) -> (sources: [CutoverReport.Source], models: [CutoverReport.Model], objects: [CutoverReport.Objects]) {
        var sources = CutoverReport.sources(verified ?? Verifier.Outcome(tables: [], checks: []), sequences: drained.sequences,
                                            sourceNames: drained.sources.map(\.source))
        for index in sources.indices {
            guard let source = drained.sources.first(where: { $0.source == sources[index].source }) else { continue }
            sources[index].point = source.endLSN.description
            sources[index].seconds = seconds
            sources[index].batches = source.batches
            sources[index].rows = source.rows
        }
        let models = CutoverReport.models(configuration.models, statuses: drained.models, references: drained.references,
                                          reload: drained.reload, surrogates: drained.surrogates)
        return (sources, models, CutoverReport.objects(verified?.objects.isEmpty == false ? verified!.objects : drained.objects))
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
