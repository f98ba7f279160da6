import ArgumentParser
import Dispatch
import Foundation
import Logging
import TributaryCore
import TributaryServices

struct Snapshot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create each source's replication slot with an exported snapshot and copy every table into the staging store.",
        discussion: """
            A source whose slot exists and whose snapshot is complete is refused unless --restart, which drops the slot and \
            takes a new snapshot. A snapshot that was killed (or failed) resumes on a plain rerun: the tables and ranges it \
            stored whole are kept, and the parts it loaded; the rest is copied again. SIGTERM or SIGINT stops it \
            within a block or part, keeping what it stored and loaded, and exits 75: rerun to resume. --table copies some tables of a \
            source that has its snapshot, consistently with its stream, while tributary run goes on: a table added to the \
            source's YAML (it joins the publication), or one whose STG copy is suspect; it is merged into STG by LSN. \
            --group K/N spreads the bulk over N processes: each makes sure of the slot (the first makes it with an empty \
            snapshot) and copies every N-th table as a table snapshot.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(name: .customLong("source"), help: "Snapshot only this source (repeatable; default: all).")
    var sources: [String] = []

    @Option(help: "Parallel COPY workers per source (default: snapshot.jobs in tributary.yaml).")
    var jobs: Int?

    @Option(name: .customLong("table"), help: "Copy only this table (schema.table, or a name unique in the source; repeatable) under a temporary slot, and merge it into STG.")
    var tables: [String] = []

    @Option(help: ArgumentHelp("Copy group K of N of each source's tables (every N-th table as configured) as a table snapshot, making the source's slot with an empty snapshot first if it has none: N processes, one per group, spread the bulk load over machines. Tables a complete snapshot holds already are left out, so a failed group is simply run again.", valueName: "K/N"))
    var group: String?

    @Flag(help: "Drop the existing slot (and a publication tributary created) and take a new snapshot.")
    var restart = false

    @Flag(help: "Recover a source whose slot was lost: make the slot anew and copy every table again, merged into STG by LSN while the other sources (and STG's readers) go on.")
    var resync = false
    @Flag(help: "Also load the snapshot into STG, part by part while it is being taken (same as apply --once, sooner).")
    var apply = false

    func validate() throws {
        if let jobs, !(1...64).contains(jobs) { throw ValidationError("--jobs must be from 1 to 64") }
        if !tables.isEmpty && restart { throw ValidationError("--table and --restart do not go together: --restart retakes the whole snapshot") }
        if resync && (restart || !tables.isEmpty) { throw ValidationError("--resync copies every table under a new slot: it goes with neither --restart nor --table") }
        if resync && sources.count != 1 { throw ValidationError("--resync recovers one source: name it with --source") }
        if let group {
            do { _ = try BulkGroup(parsing: group) } catch { throw ValidationError(error.description) }
            if restart || resync || !tables.isEmpty { throw ValidationError("--group copies a group of every table: it goes with neither --table, --restart nor --resync") }
        }
    }

    func run() async throws {
        try await CommandRunner.run {
            let configuration = try global.loadConfiguration()
            let logger = global.makeLogger("snapshot")
            let store = try global.openStagingStore(configuration.target, command: "snapshot")
            let display = ProgressDisplay(logger: logger)
            let service = SnapshotService(configuration: configuration, endpoints: Endpoints(configuration, command: "snapshot"), store: store,
                                          logger: logger)
            let signals = Self.stopGracefully(service.stop, logger: logger)
            defer { _ = signals }
            let onEvent: @Sendable (SnapshotService.Event) async -> Void = { event in
                display.stop()
                print(Self.line(event, store: store))
            }
            try await display.around {
                if resync {
                    try await service.resync(try configuration.sources(named: sources)[0], jobs: jobs, apply: apply, onProgress: display.start,
                                             onEvent: onEvent)
                } else if let group {
                    try await service.runGroup(try BulkGroup(parsing: group), of: try configuration.sources(named: sources), jobs: jobs,
                                               apply: apply, onProgress: display.start, onEvent: onEvent)
                } else if !tables.isEmpty {
                    let (source, names) = try Self.resolve(tables, sources: sources, in: configuration)
                    try await service.runTables(names, of: source, jobs: jobs, apply: apply, onProgress: display.start, onEvent: onEvent)
                } else {
                    try await service.run(try configuration.sources(named: sources), options: .init(restart: restart, jobs: jobs), apply: apply,
                                          onProgress: display.start, onEvent: onEvent)
                }
            }
        }
    }

    /// A stop (systemd, Kubernetes, Ctrl-C) keeps what a kill would lose: the parts stored, and the
    /// loads of open frozen runs, which commit. A second signal exits at once.
    static func stopGracefully(_ stop: StopSignal, logger: Logger) -> [any DispatchSourceSignal] {
        SignalHandlers.install([SIGTERM, SIGINT]) { signal in
            if stop.isRequested { Foundation.exit(128 + signal) }
            logger.notice("signal \(signal): stopping after the block or part in hand; what is stored and loaded is kept (signal again to exit at once)")
            stop.request()
        }
    }

    /// The source and tables `--table` (and `--source`) name: each table must be in that source's YAML.
    static func resolve(_ tables: [String], sources: [String], in configuration: Configuration) throws -> (SourceConfiguration, [QualifiedName]) {
        let candidates = sources.isEmpty ? configuration.sources : try configuration.sources(named: sources)
        var found: [(SourceConfiguration, QualifiedName)] = []
        for text in tables {
            let matches = candidates.flatMap { source in
                source.tables.filter { $0.table.description == text || (!text.contains(".") && $0.table.name == text) }.map { (source, $0.table) }
            }
            guard matches.count == 1 else {
                throw TributaryError(.requirement, matches.isEmpty
                    ? "table \(text) is not in \(candidates.map(\.file).joined(separator: " or ")): add it under tables: first, then snapshot it"
                    : "table \(text) is in more than one source (\(matches.map(\.0.name).joined(separator: ", "))): say which with --source")
            }
            found.append(matches[0])
        }
        guard let source = found.first?.0, found.allSatisfy({ $0.0.name == source.name }) else {
            throw TributaryError(.usage, "--table names tables of several sources: snapshot one source's tables at a time (--source)")
        }
        return (source, found.map(\.1))
    }

    static func line(_ event: SnapshotService.Event, store: any CustomStringConvertible) -> String {
        switch event {
        case .copied(let manifest, let resumed, let seconds):
            let rows = manifest.tables.reduce(0) { $0 + $1.rows }
            let bytes = manifest.tables.flatMap(\.parts).reduce(0) { $0 + $1.bytes }
            var line = "snapshot \(manifest.source): \(manifest.tables.count) tables, \(Format.count(rows)) rows, \(Format.bytes(bytes)) gzip "
                + "in \(Format.duration(seconds)); slot \(manifest.slot) at \(manifest.consistentPoint); "
                + "\(store)/\(ObjectNaming.snapshotManifest(source: manifest.source, consistentPoint: manifest.consistentPoint))"
            if let resumed {
                let copied = resumed.tableSnapshot?.tables.count ?? 0
                line = "snapshot \(manifest.source): resumed a snapshot that did not finish: \(resumed.keptTables) tables kept from it "
                    + "(\(Format.bytes(resumed.keptBytes)) gzip); \(resumed.continuedTables) continued, keeping \(resumed.keptRanges) ranges "
                    + "(\(Format.bytes(resumed.keptRangeBytes)) gzip) and copying the rest (\(Format.bytes(resumed.rangesCopiedAgainBytes)) gzip); "
                    + "\(copied) copied again (\(Format.bytes(resumed.recopiedBytes)) gzip)"
                    + (resumed.tableSnapshot.map { " under a temporary slot at \($0.consistentPoint)" } ?? "")
                    + " in \(Format.duration(seconds)); slot \(manifest.slot) at \(manifest.consistentPoint)"
            }
            return line
        case .alreadyComplete(let manifest):
            return "snapshot \(manifest.source): complete already at \(manifest.consistentPoint) (\(manifest.tables.count) tables, "
                + "\(Format.count(manifest.tables.reduce(0) { $0 + $1.rows })) rows): nothing copied; --restart takes a new one"
        case .tablesCopied(let manifest, let seconds):
            let rows = manifest.tables.reduce(0) { $0 + $1.rows }
            let bytes = manifest.tables.flatMap(\.parts).reduce(0) { $0 + $1.bytes }
            return "table snapshot \(manifest.source): \(manifest.tables.map(\.relation.table.description).joined(separator: ", ")): "
                + "\(Format.count(rows)) rows, \(Format.bytes(bytes)) gzip in \(Format.duration(seconds)), consistent at \(manifest.consistentPoint); "
                + "merged into STG by tributary apply (or run), or now with --apply"
        case .groupCopied(let source, let group, let slot, let made, let copied, let covered, let seconds):
            let slotPart = made ? "made slot \(slot.slot) at \(slot.consistentPoint) with an empty snapshot"
                : "slot \(slot.slot) at \(slot.consistentPoint)"
            let leftOut = covered > 0 ? "; \(covered) left out: a complete snapshot holds them" : ""
            guard let copied else {
                return "group \(group) of \(source): \(slotPart); every table of the group has a copy already: nothing copied\(leftOut)"
            }
            let rows = copied.tables.reduce(0) { $0 + $1.rows }
            let bytes = copied.tables.flatMap(\.parts).reduce(0) { $0 + $1.bytes }
            return "group \(group) of \(source): \(slotPart); \(copied.tables.count) tables, \(Format.count(rows)) rows, \(Format.bytes(bytes)) gzip "
                + "in \(Format.duration(seconds)), consistent at \(copied.consistentPoint)\(leftOut); merged into STG by tributary apply (or run), or now with --apply"
        case .resynced(let manifest, let slotPoint, let seconds):
            let rows = manifest.tables.reduce(0) { $0 + $1.rows }
            return "resync \(manifest.source): replication slot made anew at \(slotPoint); \(manifest.tables.count) tables, "
                + "\(Format.count(rows)) rows copied again in \(Format.duration(seconds)), consistent at \(manifest.consistentPoint); "
                + "merged into STG by tributary apply (or run), or now with --apply"
        case .loaded(let report, let seconds):
            return "apply \(report.source): " + Apply.describe(report) + "; \(Format.duration(seconds)) in all"
        }
    }
}
