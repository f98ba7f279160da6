import ArgumentParser
import Foundation
import TributaryCore
import Logging
import TributaryServices
import TributaryStorage

struct Snapshot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create each source's replication slot with an exported snapshot and copy every table into the staging store.",
        discussion: "A source whose slot exists is refused unless --restart, which drops the slot and takes a new snapshot.")

    @OptionGroup var global: GlobalOptions

    @Option(name: .customLong("source"), help: "Snapshot only this source (repeatable; default: all).")
    var sources: [String] = []

    @Option(help: "Parallel COPY workers per source (default: snapshot.jobs in tributary.yaml).")
    var jobs: Int?

    @Flag(help: "Drop the existing slot (and a publication tributary created) and take a new snapshot.")
    var restart = false

    @Flag(help: "Also load the snapshot into STG, part by part while it is being taken (same as apply --once, sooner).")
    var apply = false

    func validate() throws {
        if let jobs, !(1...64).contains(jobs) { throw ValidationError("--jobs must be from 1 to 64") }
    }

    func run() async throws {
        try await CommandRunner.run {
            let configuration = try global.loadConfiguration()
            let logger = global.makeLogger("tributary.snapshot")
            let store = try global.openStagingStore(configuration.target)
            for source in try configuration.sources(named: sources) {
                let snapshotter = Snapshotter(source: source, settings: configuration.target.snapshot, store: store,
                                              workDirectory: configuration.target.workDirectory, logger: logger)
                let display = ProgressDisplay(logger: logger)
                let started = ContinuousClock.now
                let loader = SnapshotLoader(target: configuration.target.connection, store: store,
                                            jobs: jobs ?? configuration.target.snapshot.jobs,
                                            settings: configuration.target.snapshot, logger: logger)
                let eager = apply ? EagerSnapshotLoad(loader: loader, jobs: jobs ?? configuration.target.snapshot.jobs,
                                                      handoffDirectory: "\(configuration.target.workDirectory)/handoff/\(source.name)",
                                                      handoffBytes: configuration.target.snapshot.applyCacheBytes) : nil
                let manifest: SnapshotManifest
                do {
                    manifest = try await display.around {
                        try await snapshotter.run(options: .init(restart: restart, jobs: jobs), observer: eager, onStart: display.start)
                    }
                } catch {
                    try? await eager?.finish()
                    throw error
                }
                let rows = manifest.tables.reduce(0) { $0 + $1.rows }
                let bytes = manifest.tables.flatMap(\.parts).reduce(0) { $0 + $1.bytes }
                print("snapshot \(source.name): \(manifest.tables.count) tables, \(Format.count(rows)) rows, \(Format.bytes(bytes)) gzip "
                      + "in \(Format.duration((ContinuousClock.now - started).seconds)); slot \(source.slot) at \(manifest.consistentPoint); "
                      + "\(store)/\(ObjectNaming.snapshotManifest(source: source.name, consistentPoint: manifest.consistentPoint))")
                guard let eager else { continue }
                do {
                    try await eager.finish()
                } catch {
                    logger.warning("loading while copying stopped: \(error); loading the remaining parts now")
                }
                if let report = try await loader.load(source: source.name) {
                    print("apply \(source.name): snapshot at \(report.consistentPoint) loaded into STG: \(report.tables) tables, "
                          + "\(Format.count(report.rows)) rows; \(Format.duration((ContinuousClock.now - started).seconds)) in all")
                }
            }
        }
    }
}
