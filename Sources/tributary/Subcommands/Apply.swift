import ArgumentParser
import Foundation
import TributaryCore
import TributaryServices
import TributaryStorage

struct Apply: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply what the staging store holds to STG in the target: snapshots, then change batches in LSN order.",
        discussion: """
            Without --once it keeps applying, woken by the replicators' NOTIFY (and a slow poll), until SIGTERM or SIGINT. \
            With --once it applies what is there and exits. Running it again never applies anything twice.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(name: .customLong("source"), help: "Apply only this source (repeatable; default: all).")
    var sources: [String] = []

    @Flag(help: "Apply what is there now and exit.")
    var once = false

    @Option(help: "Parallel target connections for snapshot loads (default: snapshot.jobs in tributary.yaml).")
    var jobs: Int?

    @Flag(help: "Catch-up, batch by batch: load each batch on the connection that merges it, not the next one ahead on a second connection while the current one merges (for comparison).")
    var noLoadAhead = false

    func run() async throws {
        try await CommandRunner.run {
            let configuration = try global.loadConfiguration()
            let logger = global.makeLogger("apply")
            let store = try global.openStagingStore(configuration.target, command: "apply")
            var settings = ChangeApplier.Settings(configuration.target.snapshot, jobs: jobs)
            settings.loadAhead = !noLoadAhead
            let endpoints = Endpoints(configuration, command: "apply")
            let selected = try configuration.sources(named: sources)
            let started = ContinuousClock.now
            if once {
                let applier = ChangeApplier(endpoints: endpoints, sources: selected, store: store, settings: settings, logger: logger)
                let display = ProgressDisplay(logger: logger)
                let report = try await display.around { try await applier.applyOnce(onSnapshotStart: display.start) }
                for snapshot in report.snapshots {
                    print("apply \(snapshot.source): " + Self.describe(snapshot))
                }
                if report.snapshots.isEmpty && report.batches == 0 {
                    print("apply: nothing to apply")
                } else {
                    print("apply: \(report.batches) change batches, \(Format.count(report.rows)) changes applied in "
                          + Format.duration((ContinuousClock.now - started).seconds))
                }
                return
            }
            // The applier of run, alone: until SIGTERM or SIGINT, which stop it after the batch in hand.
            var pipeline = Pipeline(configuration: configuration, endpoints: endpoints, store: store,
                                    configurationDirectory: global.configurationDirectory, logger: logger)
            pipeline.applySettings = settings
            var selection = Pipeline.Selection(sources: selected)
            selection.replicate = false
            selection.collect = false
            selection.transform = false
            selection.sync = false
            try await pipeline.run(pipeline.parts(selection), shutdownTimeout: .seconds(60))
        }
    }

    /// A snapshot load in one line: the full snapshot and any table snapshots merged after it.
    static func describe(_ report: SnapshotLoader.Report) -> String {
        let merged = report.tableSnapshots.map(\.description).joined(separator: ", ")
        let head = report.tableSnapshots == [report.consistentPoint]
            ? "table snapshot at \(merged) merged into STG"
            : "snapshot at \(report.consistentPoint) loaded into STG" + (merged.isEmpty ? "" : ", then table snapshots at \(merged) merged")
        return head + ": \(report.tables) tables, \(Format.count(report.rows)) rows"
            + (report.partsAlreadyLoaded > 0 ? " (\(report.partsAlreadyLoaded) parts were loaded by an earlier run)" : "")
    }
}
