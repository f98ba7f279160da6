import Foundation
import Logging
import TributaryCore
import TributaryStorage

/// `tributary snapshot`: per source, the copy (`Snapshotter`) and, with `apply`, the load into STG
/// while the copy runs (`EagerSnapshotLoad`), finished by the ordinary load (`SnapshotLoader`),
/// which picks up whatever the eager load did not do.
public struct SnapshotService: Sendable {
    public enum Event: Sendable {
        /// A source's snapshot is in the staging store (its manifest written); `resumed` when a
        /// killed one was taken up again.
        case copied(SnapshotManifest, resumed: Snapshotter.Resumed?, seconds: Double)
        /// The source's snapshot was complete already (its stream not begun): nothing copied.
        case alreadyComplete(SnapshotManifest)
        /// A table snapshot (`--table`) is in the staging store.
        case tablesCopied(SnapshotManifest, seconds: Double)
        /// `--group K/N`: the source's slot and snapshot were ready (made by this process when `made`),
        /// and the group's tables were copied as a table snapshot (`copied`, nil when every one of
        /// them had a copy already: `covered` tables were left out).
        case groupCopied(source: String, group: BulkGroup, slot: SnapshotManifest, made: Bool, copied: SnapshotManifest?,
                         covered: Int, seconds: Double)
        /// `--resync`: the slot made anew at `slotPoint`, every table copied under a table snapshot.
        case resynced(SnapshotManifest, slotPoint: LSN, seconds: Double)
        /// It is loaded into STG too; `seconds` since the copy began.
        case loaded(SnapshotLoader.Report, seconds: Double)
    }

    public let configuration: Configuration
    public let endpoints: Endpoints
    public let store: any StagingStore
    public let logger: Logger
    /// Every command here stops at the next safe point once this is requested (SIGTERM): copy workers within a
    /// block of rows, load workers after the part in hand, committing what they loaded; then it
    /// throws `interrupted`. A rerun takes the snapshot up from there.
    public let stop = StopSignal()

    public init(configuration: Configuration, endpoints: Endpoints, store: any StagingStore, logger: Logger) {
        self.configuration = configuration
        self.endpoints = endpoints
        self.store = store
        self.logger = logger
    }

    public func run(_ sources: [SourceConfiguration], options: Snapshotter.Options, apply: Bool,
                    onProgress: @escaping @Sendable (TransferProgress) async -> Void,
                    onEvent: @Sendable (Event) async -> Void) async throws {
        let settings = configuration.target.snapshot
        let jobs = options.jobs ?? settings.jobs
        for source in sources {
            let started = ContinuousClock.now
            if stop.isRequested { throw Snapshotter.interrupted(source.name) }
            let snapshotter = snapshotter(source)
            let loader = loader(source, jobs: jobs)
            let eager = apply ? EagerSnapshotLoad(loader: loader, jobs: jobs,
                                                  handoffDirectory: "\(configuration.target.workDirectory)/handoff/\(source.name)",
                                                  handoffBytes: settings.applyCacheBytes) : nil
            let outcome: Snapshotter.Outcome
            do {
                outcome = try await snapshotter.run(options: options, observer: eager, onStart: onProgress)
            } catch {
                // Its workers end after the part in hand: the queue hands out nothing once stopped.
                try? await eager?.finish()
                throw stop.isRequested ? Snapshotter.interrupted(source.name) : error
            }
            await onEvent(outcome.alreadyComplete ? .alreadyComplete(outcome.manifest)
                          : .copied(outcome.manifest, resumed: outcome.resumed, seconds: (ContinuousClock.now - started).seconds))
            guard let eager else { continue }
            do {
                try await eager.finish()
            } catch {
                logger.warning("loading while copying stopped: \(error); loading the remaining parts now")
            }
            if stop.isRequested { throw Snapshotter.interrupted(source.name) }
            if let report = try await loader.load(source: source.name) {
                await onEvent(.loaded(report, seconds: (ContinuousClock.now - started).seconds))
            }
        }
    }

    /// `snapshot --source S --resync`: a new slot and every table copied again and merged (see
    /// `TableSnapshotter.resyncAll`), loaded at once with `apply`, else by the applier.
    public func resync(_ source: SourceConfiguration, jobs: Int?, apply: Bool,
                       onProgress: @escaping @Sendable (TransferProgress) async -> Void,
                       onEvent: @Sendable (Event) async -> Void) async throws {
        let started = ContinuousClock.now
        let (point, manifest) = try await TableSnapshotter(snapshotter: snapshotter(source)).resyncAll(jobs: jobs, onStart: onProgress)
        await onEvent(.resynced(manifest, slotPoint: point, seconds: (ContinuousClock.now - started).seconds))
        guard apply else { return }
        if let report = try await loader(source, jobs: jobs ?? configuration.target.snapshot.jobs).load(source: source.name) {
            await onEvent(.loaded(report, seconds: (ContinuousClock.now - started).seconds))
        }
    }

    /// `snapshot --group K/N`: per source, the slot with an empty snapshot if there is none yet
    /// (processes started together wait for the one that makes it), then group K of the source's
    /// tables copied as one table snapshot, leaving out tables a complete snapshot holds already,
    /// so a group that failed is run again for what it lacks. With `apply`, loaded into STG
    /// (after any other process loading the source's snapshots).
    public func runGroup(_ group: BulkGroup, of sources: [SourceConfiguration], jobs: Int?, apply: Bool,
                         onProgress: @escaping @Sendable (TransferProgress) async -> Void,
                         onEvent: @Sendable (Event) async -> Void) async throws {
        let settings = configuration.target.snapshot
        for source in sources {
            if stop.isRequested { throw Snapshotter.interrupted(source.name) }
            let started = ContinuousClock.now
            let snapshotter = snapshotter(source)
            let slot = try await snapshotter.run(options: .init(jobs: jobs, slotOnly: true))
            let covered = try await tablesWithACopy(source: source.name, after: slot.manifest)
            let wanted = group.members(of: source.tables.map(\.table)).filter { !covered.contains($0) }
            var copied: SnapshotManifest?
            if !wanted.isEmpty {
                copied = try await TableSnapshotter(snapshotter: snapshotter).run(tables: wanted, jobs: jobs, onStart: onProgress)
            }
            await onEvent(.groupCopied(source: source.name, group: group, slot: slot.manifest, made: !slot.alreadyComplete, copied: copied,
                                       covered: group.members(of: source.tables).count - wanted.count,
                                       seconds: (ContinuousClock.now - started).seconds))
            guard apply else { continue }
            if let report = try await loader(source, jobs: jobs ?? settings.jobs).load(source: source.name) {
                await onEvent(.loaded(report, seconds: (ContinuousClock.now - started).seconds))
            }
        }
    }

    /// Tables a complete snapshot of `source` holds: the full one, and table snapshots after it.
    /// A table snapshot without its manifest may be another group's, still copying: its tables
    /// count as not copied (a second copy is merged by LSN like any other).
    private func tablesWithACopy(source: String, after full: SnapshotManifest) async throws -> Set<QualifiedName> {
        var covered = Set(full.tables.map(\.relation.table))
        let prefix = ObjectNaming.tableSnapshotPrefix(source: source)
        for object in try await store.list(prefix: prefix, startAfter: nil) where object.key.hasSuffix("/" + ObjectNaming.manifestName) {
            guard let lsn = ObjectNaming.lsnComponent(of: object.key, after: prefix), lsn > full.consistentPoint else { continue }
            covered.formUnion(try await store.manifest(SnapshotManifest.self, at: object.key).tables.map(\.relation.table))
        }
        return covered
    }

    /// `snapshot --source S --table T…`: a table snapshot of `tables` of `source` (adding to the
    /// publication those not in it yet), loaded at once with `apply`, else by the applier.
    public func runTables(_ tables: [QualifiedName], of source: SourceConfiguration, jobs: Int?, apply: Bool,
                          onProgress: @escaping @Sendable (TransferProgress) async -> Void,
                          onEvent: @Sendable (Event) async -> Void) async throws {
        let started = ContinuousClock.now
        let manifest = try await TableSnapshotter(snapshotter: snapshotter(source)).run(tables: tables, jobs: jobs, onStart: onProgress)
        await onEvent(.tablesCopied(manifest, seconds: (ContinuousClock.now - started).seconds))
        guard apply else { return }
        if let report = try await loader(source, jobs: jobs ?? configuration.target.snapshot.jobs).load(source: source.name) {
            await onEvent(.loaded(report, seconds: (ContinuousClock.now - started).seconds))
        }
    }

    /// The copy of `source`, stopping on `stop`.
    private func snapshotter(_ source: SourceConfiguration) -> Snapshotter {
        var snapshotter = Snapshotter(source: source, endpoints: endpoints, settings: configuration.target.snapshot, store: store,
                                      workDirectory: configuration.target.workDirectory, logger: logger)
        snapshotter.stop = stop
        return snapshotter
    }

    /// The load of `source`'s snapshots into STG, stopping on `stop`.
    private func loader(_ source: SourceConfiguration, jobs: Int) -> SnapshotLoader {
        var loader = SnapshotLoader(target: endpoints.target, store: store, jobs: jobs, settings: configuration.target.snapshot,
                                    sources: [source], logger: logger)
        loader.stop = stop
        return loader
    }
}
