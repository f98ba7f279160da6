import Foundation
import Logging
import TributaryCore
import TributaryPostgres
import TributaryStorage

/// `tributary apply --once`: turns the OCI layer into STG for every source, once. Per source, a
/// pending snapshot first, then every batch after the source's applied LSN, in LSN order. The
/// continuous applier of `run`, `apply` and `drain` is the same work in parts (`ApplierLockPart`,
/// `SourceApplierPart`).
public struct ChangeApplier: Sendable {
    public struct Settings: Sendable {
        public var jobs: Int
        /// When a source's applier lists the store, and how many batches it applies per step.
        public var schedule = SourceApplyMachine.Settings()
        /// How a snapshot is loaded (key builds, frozen runs).
        public var snapshot = SnapshotSettings()
        /// Batch by batch through a backlog, the next batch is COPYed on a second target
        /// connection while the current one merges (`BatchPreloader`).
        public var loadAhead = true
        /// Through a backlog, consecutive batches merge together, up to these limits
        /// (`BatchGroup`); nil: batch by batch.
        public var grouping: BatchGroup.Limits? = BatchGroup.Limits()
        /// A file of updates COPYed straight into STG with at most this much CSV is read once,
        /// its rows held in memory meanwhile (`DirectInsert.holdsRows`); a larger one twice.
        public var directRowsHeldBytes = DirectInsert.rowsHeldBytes
        public init(jobs: Int) { self.jobs = jobs }
        public init(_ snapshot: SnapshotSettings, jobs: Int? = nil) {
            self.jobs = jobs ?? snapshot.jobs
            self.snapshot = snapshot
        }
    }

    public struct Report: Sendable {
        public var snapshots: [SnapshotLoader.Report] = []
        public var batches = 0
        public var rows = 0
        /// Batches whose files were loaded ahead, on the second connection.
        public var loadedAhead = 0
        /// Batches merged together with others (`BatchGroup`), and the groups they formed.
        public var grouped = 0
        public var groups = 0
        /// Inserts and updates COPYed straight into STG, no load table or merge (`DirectInsert`).
        public var insertedDirectly = 0

        mutating func add(_ other: Report) {
            snapshots += other.snapshots
            batches += other.batches
            rows += other.rows
            loadedAhead += other.loadedAhead
            grouped += other.grouped
            groups += other.groups
            insertedDirectly += other.insertedDirectly
        }
    }

    public let endpoints: Endpoints
    public let sources: [SourceConfiguration]
    public let store: any StagingStore
    public let settings: Settings
    public let logger: Logger
    public let stop: StopSignal

    public init(endpoints: Endpoints, sources: [SourceConfiguration], store: any StagingStore, settings: Settings,
                logger: Logger, stop: StopSignal = StopSignal()) {
        self.endpoints = endpoints
        self.sources = sources
        self.store = store
        self.settings = settings
        self.logger = logger
        self.stop = stop
    }

    /// Applies everything there is now, then returns: the one-applier lock held on a session of
    /// its own, and each source on a connection of its own, in parallel (a drain waits for the
    /// slowest).
    public func applyOnce(onSnapshotStart: @escaping @Sendable (TransferProgress) async -> Void = { _ in }) async throws -> Report {
        try await endpoints.target.withControl(migrate: true, for: "apply") { control in
            guard try await control.claimApplierLock() else { throw ApplierLockPart.busy }
            do {
                let report = try await applyEverySource(onSnapshotStart: onSnapshotStart)
                try? await control.releaseApplierLock()
                return report
            } catch {
                try? await control.releaseApplierLock()
                throw error
            }
        }
    }

    private func applyEverySource(onSnapshotStart: @escaping @Sendable (TransferProgress) async -> Void) async throws -> Report {
        try await withThrowingTaskGroup(of: Report.self) { group in
            for source in sources {
                group.addTask {
                    var applier = SourceApplier(source: source, endpoints: endpoints, store: store, settings: settings, logger: logger)
                    var report = Report()
                    do {
                        // Until the source has nothing more to do now: every step but the last applies or advances.
                        while !stop.isRequested {
                            if case .idle = try await applier.step(lockHeld: true, stop: stop, into: &report, onSnapshotStart: onSnapshotStart) {
                                break
                            }
                        }
                        await applier.close()
                        return report
                    } catch {
                        await applier.close()
                        throw error
                    }
                }
            }
            var total = Report()
            for try await report in group { total.add(report) }
            return total
        }
    }
}

/// One source's applier: the I/O `SourceApplyMachine` decides. Its snapshot first, then its batches
/// in LSN order on a target connection of its own (so one source's backlog never holds another's
/// latency back, and two backlogs catch up at once), held from step to step.
struct SourceApplier {
    let source: SourceConfiguration
    let endpoints: Endpoints
    let store: any StagingStore
    let settings: ChangeApplier.Settings
    let logger: Logger
    /// Where a long snapshot load is declared (the part's health), when it runs as a part.
    var liveness: (Liveness, part: String)?
    private var machine: SourceApplyMachine
    private var control: ControlStore?
    /// The schema stop this applier last said in the control state (`.some(nil)`: none); `nil`
    /// until it first said anything (a stop an earlier process recorded is cleared then).
    private var shownStop: String??
    /// Batch by batch through a backlog, the next batch is loaded on a second connection while one
    /// merges. Opened at the first backlog, closed when the source has nothing to do.
    private var preload: LoadAhead
    /// The merging connection's own load tables, for a batch not loaded ahead.
    private let ownLoadTables: MergingLoadTables
    /// Tables whose files of inserts and updates no longer go straight into STG.
    private let directExclusions: DirectInsertExclusions
    /// Whether what a killed applier left in load tables went (at the first step under the lock).
    private var leftoversDropped = false

    init(source: SourceConfiguration, endpoints: Endpoints, store: any StagingStore, settings: ChangeApplier.Settings, logger: Logger) {
        self.source = source
        self.endpoints = endpoints
        self.store = store
        self.settings = settings
        self.logger = logger.with(source: source.name)
        machine = SourceApplyMachine(settings: settings.schedule)
        directExclusions = DirectInsertExclusions()
        preload = LoadAhead(target: endpoints.target, source: source.name, store: store, enabled: settings.loadAhead,
                            directExclusions: directExclusions)
        ownLoadTables = MergingLoadTables(source: source.name)
    }

    /// One step: a pending snapshot loaded first, then the machine's actions up to the one that
    /// ends the step, which is returned.
    mutating func step(lockHeld: Bool, stop: StopSignal, into report: inout ChangeApplier.Report,
                       onSnapshotStart: @escaping @Sendable (TransferProgress) async -> Void = { _ in }) async throws -> SourceApplyMachine.Action {
        // Without the lock nothing is read: the lock's session sets up the control state first.
        guard lockHeld else { return machine.handle(.position(.init(lockHeld: false, paused: false, applied: nil, flushed: nil)), now: .now) }
        if control == nil { control = try await endpoints.target.openControl(migrate: false, .merging, for: "apply \(source.name)") }
        let control = control!
        if !leftoversDropped {
            // A killed applier's load tables, once the lock says none is in use: a backlog merged
            // in one group leaves no load ahead to drop them, and an applier killed after its last
            // batch left them to whichever process loads next.
            let prefix = "\(source.name)-"
            _ = try await control.connection.run { try TablePromotion.dropLoadTables(startingWith: prefix, on: $0) }
            leftoversDropped = true
        }
        if let snapshot = try await loadPendingSnapshots(control: control, onSnapshotStart: onSnapshotStart) {
            report.snapshots.append(snapshot)
        }
        let position = try await control.applyPosition(of: source.name)
        var action = machine.handle(.position(.init(lockHeld: lockHeld, paused: position.paused, applied: position.applied, flushed: position.flushed,
                                                    hold: position.hold, held: position.held)), now: .now)
        var listed: [String] = []
        while true {
            switch action {
            case .list(let after):
                listed = try await nextManifests(after: after)
                let prefix = ObjectNaming.cdcPrefix(source: source.name)
                action = machine.handle(.listed(listed.compactMap { ObjectNaming.lsnComponent(of: $0, after: prefix) }), now: .now)
            case .apply(let count):
                try await apply(Array(listed.prefix(count)), backlog: listed.count, on: control, stop: stop, into: &report)
                return action
            case .applyBefore(let hold):
                // The batch across the hold: its changes before it only, not recorded as applied.
                let manifest = try await store.manifest(BatchManifest.self, at: listed[0])
                let outcome = try await BatchApplier(source: source, store: store, logger: logger).apply(manifest, before: hold, on: control.connection)
                logger.notice("held at a verify's point", metadata: [LogKey.lsn: .string(hold.description), LogKey.rows: .stringConvertible(outcome.rows)])
                try await control.recordHeld(source.name, at: hold)
                return action
            case .holdReached(let hold):
                logger.notice("held at a verify's point", metadata: [LogKey.lsn: .string(hold.description)])
                try await control.recordHeld(source.name, at: hold)
                return action
            case .advanceOverIdle(let from, let to):
                try await control.advanceAppliedOverIdle(source.name, from: from, to: to, commitTime: position.flushedCommitTime)
                return action
            case .idle:
                // Nothing to do: the second connection is not kept for the next backlog.
                await preload.finish()
                return action
            }
        }
    }

    /// Closes the source's sessions (the next step opens them again).
    /// Says in the control state that this source's applier stopped on a schema change (or, with
    /// nil, that it no longer is). Best effort: the log says it too.
    mutating func showSchemaStop(_ error: TributaryError?, part: String) async {
        guard shownStop != .some(error?.message) else { return }
        do {
            if control == nil { control = try await endpoints.target.openControl(migrate: false, .merging, for: "apply \(source.name)") }
            if let error {
                try await control!.recordSchemaStop(source.name, part: part, change: error.context[LogKey.change] ?? error.message,
                                                    fix: error.context[LogKey.fix] ?? "")
            } else {
                try await control!.clearSchemaStop(source.name, part: part)
            }
            shownStop = .some(error?.message)
        } catch {
            logger.debug("the schema stop could not be recorded", metadata: [LogKey.error: .string("\(error)")])
        }
    }

    mutating func close() async {
        await preload.close(loadedOwn: ownLoadTables.wereUsed)
        ownLoadTables.forget()
        await control?.close()
        control = nil
    }

    /// A pending snapshot and table snapshots of the source, loaded (a cheap look first: the load
    /// itself opens its own connections).
    private func loadPendingSnapshots(control: ControlStore, onSnapshotStart: @escaping @Sendable (TransferProgress) async -> Void)
        async throws -> SnapshotLoader.Report? {
        let snapshots = SnapshotLoader(target: endpoints.target, store: store, jobs: settings.jobs, settings: settings.snapshot, sources: [source],
                                       logger: logger)
        var pending = try await snapshots.pendingSnapshot(source: source.name, control: control) != nil
        if !pending { pending = !(try await snapshots.pendingTableSnapshots(source: source.name, control: control).isEmpty) }
        guard pending else { return nil }
        // A `snapshot --apply` loading them now is not waited for: the stream goes on meanwhile.
        let load = { try await snapshots.load(source: source.name, waiting: false, onStart: onSnapshotStart) }
        if let (liveness, part) = liveness { return try await liveness.working(part, load) }
        return try await load()
    }

    /// Applies `keys` in order. Where two or more of them wait, they merge together
    /// (`BatchGroup`), one target transaction per group; one at a time otherwise, each in a
    /// transaction of its own with the next loaded ahead while it merges.
    /// - Parameter listed: batches listed in all; those after each one are its backlog.
    private mutating func apply(_ keys: [String], backlog listed: Int, on control: ControlStore, stop: StopSignal,
                                into report: inout ChangeApplier.Report) async throws {
        let applier = BatchApplier(source: source, store: store, logger: logger, ownLoadTables: ownLoadTables, directExclusions: directExclusions,
                                   directRowsHeldBytes: settings.directRowsHeldBytes)
        var manifests = ManifestWindow(keys: keys, store: store, limits: settings.grouping)
        var index = 0
        // After a group that did not merge plainly, its batches go one at a time.
        var aloneUntil = 0
        do {
            while index < keys.count, !stop.isRequested {
                let started = ContinuousClock.now
                manifests.forget(below: index)
                if index >= aloneUntil, let group = try await manifests.group(at: index) {
                    // A batch loaded ahead for the group's first is not used (its rows stay until its set's next load).
                    _ = try await preload.take(group.manifests[0])
                    aloneUntil = index + group.manifests.count
                    do {
                        if let outcome = try await applier.apply(group, backlog: listed - index - group.manifests.count, on: control.connection) {
                            index += group.manifests.count
                            record(outcome, loadedAhead: false, first: group.manifests[0], last: group.manifests[group.manifests.count - 1],
                                   since: started, into: &report)
                            continue
                        }
                    } catch let error as StorageError {
                        // A damaged or missing file: the batches before its own still land, one at
                        // a time, and its batch stops the source as it would have alone.
                        logger.warning("a batch of a group cannot be read: applying them one at a time",
                                       metadata: [LogKey.error: .string("\(error)")])
                    }
                }
                let manifest = try await manifests.manifest(at: index)
                let loaded = try await preload.take(manifest)
                index += 1
                if index < keys.count, preload.enabled {
                    // Not the next batch when a group starts there: the group does not use it.
                    let grouped = index >= aloneUntil ? try await manifests.group(at: index) != nil : false
                    if !grouped { try await preload.start(try await manifests.manifest(at: index)) }
                }
                let outcome = if let loaded {
                    try await applier.apply(loaded, backlog: listed - index, on: control.connection)
                } else {
                    try await applier.apply(manifest, backlog: listed - index, on: control.connection)
                }
                guard outcome.applied else { continue }
                record(outcome, loadedAhead: loaded != nil, first: manifest, last: manifest, since: started, into: &report)
            }
        } catch {
            await preload.finish()
            throw error
        }
        // Stopped early: a batch loaded ahead and not merged goes.
        if index < keys.count { await preload.finish() }
    }

    private func record(_ outcome: BatchApplier.Outcome, loadedAhead: Bool, first: BatchManifest, last: BatchManifest,
                        since started: ContinuousClock.Instant, into report: inout ChangeApplier.Report) {
        report.batches += outcome.batches
        report.rows += outcome.rows
        if loadedAhead { report.loadedAhead += outcome.batches }
        report.insertedDirectly += outcome.insertedDirectly
        if outcome.batches > 1 {
            report.grouped += outcome.batches
            report.groups += 1
        }
        PipelineMetrics.batchApplied(source: source.name, rows: outcome.rows, batches: outcome.batches)
        logger.info(outcome.batches > 1 ? "batches applied together" : "batch applied", metadata: [
            LogKey.batch: .string(last.endLSN.paddedHex), LogKey.batches: .stringConvertible(outcome.batches),
            LogKey.loadedAhead: .stringConvertible(loadedAhead),
            LogKey.lsn: .string("\(first.firstCommitLSN)..\(last.endLSN)"),
            LogKey.inserts: .stringConvertible(outcome.inserts), LogKey.updates: .stringConvertible(outcome.updates),
            LogKey.deletes: .stringConvertible(outcome.deletes), LogKey.truncates: .stringConvertible(outcome.truncates),
            LogKey.insertedDirectly: .stringConvertible(outcome.insertedDirectly),
            LogKey.seconds: .string(String(format: "%.3f", (ContinuousClock.now - started).seconds)),
        ])
    }

    /// Manifests of batches ending after `lsn`, in LSN order, from a start key: never a full rescan.
    private func nextManifests(after lsn: LSN) async throws -> [String] {
        // "~" sorts after every key inside the applied batch's directory and before the next one.
        try await store.list(prefix: ObjectNaming.cdcPrefix(source: source.name),
                             startAfter: ObjectNaming.cdcDirectory(source: source.name, endLSN: lsn) + "~")
            .map(\.key).filter { $0.hasSuffix("/" + ObjectNaming.manifestName) }
    }
}

/// The manifests of one pass's batches, each read from the store once, and the group that
/// those from a place on form.
private struct ManifestWindow {
    let keys: [String]
    let store: any StagingStore
    let limits: BatchGroup.Limits?
    private var read: [Int: BatchManifest] = [:]
    /// The last group asked for: a batch applied alone asks whether one starts after it (not to
    /// load it ahead for nothing), and the next step asks again.
    private var asked: (index: Int, group: BatchGroup?)?

    init(keys: [String], store: any StagingStore, limits: BatchGroup.Limits?) {
        self.keys = keys
        self.store = store
        self.limits = limits
    }

    mutating func manifest(at index: Int) async throws -> BatchManifest {
        if let manifest = read[index] { return manifest }
        let manifest = try await store.manifest(BatchManifest.self, at: keys[index])
        read[index] = manifest
        return manifest
    }

    /// The pass is at `index`: the manifests before it are not asked for again.
    mutating func forget(below index: Int) {
        read = read.filter { $0.key >= index }
    }

    /// The group the batches from `index` on form; nil when grouping is off or fewer than two would.
    mutating func group(at index: Int) async throws -> BatchGroup? {
        guard let limits, keys.count - index >= 2 else { return nil }
        if let asked, asked.index == index { return asked.group }
        var manifests: [BatchManifest] = []
        // One more than a group needs would not change it; stop where a batch ends the group.
        for place in index..<min(keys.count, index + limits.batches) {
            manifests.append(try await manifest(at: place))
            if manifests.count >= 2, BatchGroup.leading(manifests, limits: limits)?.manifests.count ?? 0 < manifests.count { break }
        }
        let group = BatchGroup.leading(manifests, limits: limits)
        asked = (index, group)
        return group
    }
}

extension Optional {
    /// The wrapped value transformed by an async function, or nil.
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let self else { return nil }
        return try await transform(self)
    }
}
