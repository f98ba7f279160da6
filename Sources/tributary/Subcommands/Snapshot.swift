import ArgumentParser
import Foundation
import TributaryCore
import TributaryServices

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
            let logger = global.makeLogger("snapshot")
            let store = try global.openStagingStore(configuration.target, command: "snapshot")
            let display = ProgressDisplay(logger: logger)
            try await display.around {
                try await SnapshotService(configuration: configuration, store: store, logger: logger)
                    .run(try configuration.sources(named: sources), options: .init(restart: restart, jobs: jobs), apply: apply,
                         onProgress: display.start) { event in
                        display.stop()
                        print(Self.line(event, store: store))
                    }
            }
        }
    }

    static func line(_ event: SnapshotService.Event, store: any CustomStringConvertible) -> String {
        switch event {
        case .copied(let manifest, let seconds):
            let rows = manifest.tables.reduce(0) { $0 + $1.rows }
            let bytes = manifest.tables.flatMap(\.parts).reduce(0) { $0 + $1.bytes }
            return "snapshot \(manifest.source): \(manifest.tables.count) tables, \(Format.count(rows)) rows, \(Format.bytes(bytes)) gzip "
                + "in \(Format.duration(seconds)); slot \(manifest.slot) at \(manifest.consistentPoint); "
                + "\(store)/\(ObjectNaming.snapshotManifest(source: manifest.source, consistentPoint: manifest.consistentPoint))"
        case .loaded(let report, let seconds):
            return "apply \(report.source): snapshot at \(report.consistentPoint) loaded into STG: \(report.tables) tables, "
                + "\(Format.count(report.rows)) rows; \(Format.duration(seconds)) in all"
        }
    }
}
