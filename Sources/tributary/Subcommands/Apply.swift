import ArgumentParser
import Foundation
import TributaryServices

struct Apply: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply what the staging store holds to STG in the target.",
        discussion: "With --once: load every complete snapshot not yet applied, then exit. Running it again does nothing.")

    @OptionGroup var global: GlobalOptions

    @Option(name: .customLong("source"), help: "Apply only this source (repeatable; default: all).")
    var sources: [String] = []

    @Flag(help: "Apply what is there now and exit.")
    var once = false

    @Option(help: "Parallel target connections (default: snapshot.jobs in tributary.yaml).")
    var jobs: Int?

    func run() async throws {
        try await CommandRunner.run {
            guard once else {
                throw ValidationErrorMessage("continuous apply is not available in this build yet: run tributary apply --once")
            }
            let configuration = try global.loadConfiguration()
            let logger = global.makeLogger("tributary.apply")
            let store = try StagingStores.open(configuration.target)
            let loader = SnapshotLoader(target: configuration.target.connection, store: store,
                                        jobs: jobs ?? configuration.target.snapshot.jobs, logger: logger)
            for source in try configuration.sources(named: sources) {
                let display = ProgressDisplay(logger: logger)
                let started = ContinuousClock.now
                let report = try await display.around { try await loader.load(source: source.name, onStart: display.start) }
                guard let report else {
                    print("apply \(source.name): nothing to apply (no new snapshot)")
                    continue
                }
                print("apply \(source.name): snapshot at \(report.consistentPoint) loaded into STG: \(report.tables) tables, "
                      + "\(Format.count(report.rows)) rows in \(Format.duration((ContinuousClock.now - started).seconds))"
                      + (report.partsAlreadyLoaded > 0 ? " (\(report.partsAlreadyLoaded) parts were loaded by an earlier run)" : ""))
            }
        }
    }
}

struct ValidationErrorMessage: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
