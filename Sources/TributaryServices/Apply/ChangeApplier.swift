import Foundation
import Logging
import TributaryCore
import TributaryPostgres
import TributaryStorage

/// `tributary apply`: turns the OCI layer into STG for every source. Per source, a pending snapshot
/// first, then every batch after the source's applied LSN, in LSN order. Continuous mode sleeps on
/// LISTEN (the replicator NOTIFYs after each manifest) with a slow listing poll as the fallback.
public struct ChangeApplier: Sendable {
    public struct Settings: Sendable {
        public var jobs: Int
        /// How often the store is listed when no notification arrives.
        public var pollSeconds: Double = 5
        /// Consecutive small batches applied per wake-up before other sources get a turn.
        public var batchesPerRound = 200
        /// How a snapshot is loaded (key builds, frozen runs).
        public var snapshot = SnapshotSettings()
        /// Catch-up: bounds of a group of waiting batches applied in one transaction. Off by
        /// default: measured on bench-apply's backlog, groups applied slower than batch by batch
        /// (see the README); `apply --group-batches N` turns it on.
        public var group = ApplyGroupPlanner.Limits.single
        /// Batch by batch through a backlog, the next batch is COPYed on a second target
        /// connection while the current one merges (`BatchPreloader`).
        public var loadAhead = true
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
    }

    public let target: String
    public let sources: [SourceConfiguration]
    public let store: any StagingStore
    public let settings: Settings
    public let logger: Logger
    public let stop: StopSignal
    /// Where the applier says it is alive and applying (`tributary run`'s health endpoints).
    public var liveness: Liveness?
    public static let part = "apply"

    public init(target: String, sources: [SourceConfiguration], store: any StagingStore, settings: Settings,
                logger: Logger, stop: StopSignal = StopSignal()) {
        self.target = target
        self.sources = sources
        self.store = store
        self.settings = settings
        self.logger = logger
        self.stop = stop
    }

    /// Applies everything there is now, then returns.
    public func applyOnce(onSnapshotStart: @escaping @Sendable (TransferProgress) async -> Void = { _ in }) async throws -> Report {
        let control = try await connectAsTheApplier(listen: false)
        do {
            let report = try await applyEverySource(onSnapshotStart: onSnapshotStart)
            await release(control)
            return report
        } catch {
            await release(control)
            throw error
        }
    }

    /// As in `run`: each source on a connection of its own, in parallel (a drain waits for the
    /// slowest), while the caller holds the lock.
    private func applyEverySource(onSnapshotStart: @escaping @Sendable (TransferProgress) async -> Void) async throws -> Report {
        try await withThrowingTaskGroup(of: Report.self) { group in
            for source in sources {
                group.addTask {
                    let connection = ControlStore(try await TargetSession.connect(target))
                    do {
                        var report = Report()
                        try await applyPending(source, on: connection, into: &report, limit: nil, onSnapshotStart: onSnapshotStart)
                        await connection.close()
                        return report
                    } catch {
                        await connection.close()
                        throw error
                    }
                }
            }
            var total = Report()
            for try await report in group {
                total.snapshots += report.snapshots
                total.batches += report.batches
                total.rows += report.rows
                total.loadedAhead += report.loadedAhead
            }
            return total
        }
    }

    /// Applies until stopped. Each source applies on a target connection of its own, in LSN order,
    /// so one source's backlog never holds another's latency back (and two backlogs catch up at
    /// once); the process's one-applier lock and the LISTEN for wake-ups live on a third. A source
    /// whose batch fails permanently is stopped and reported; the others go on. Returns the
    /// failures when every source has failed or a stop was requested.
    public func run() async throws -> [String: Error] {
        let failures = SourceFailures()
        var control: ControlStore? = try await connectAsTheApplier(listen: true)
        var backoff = Backoff(initialSeconds: 0.5, maximumSeconds: 30)
        var lockLostAt = ContinuousClock.now
        while !stop.isRequested && failures.count < sources.count {
            // No source applies without the lock: after losing it, it is claimed again first.
            guard let held = control else {
                do {
                    control = try await connectAsTheApplier(listen: true)
                    backoff.reset()
                } catch let error where TemporaryFailure.matches(error) || Self.mayBeOurOldSession(error, since: lockLostAt) {
                    let delay = backoff.next()
                    logger.warning("target connection trouble, retrying in \(delay) s: \(error)")
                    try await Task.sleep(for: .seconds(delay))
                }
                continue
            }
            liveness.ready(Self.part, true, "applying")
            // Ends when the lock's connection is lost.
            let session = StopSignal()
            let wakeups = SourceWakeups()
            let lockLost: (any Error)? = await withTaskGroup(of: (any Error)?.self) { group in
                for source in sources where failures[source.name] == nil {
                    group.addTask { await applyContinuously(source, wakeups: wakeups, session: session, failures: failures); return nil }
                }
                group.addTask {
                    defer { session.request() }
                    do {
                        while !stop.isRequested && !session.isRequested && failures.count < sources.count {
                            liveness.beat(Self.part)
                            let notifications = try await held.connection.run { try $0.waitForNotifications(timeout: min(1, settings.pollSeconds)) }
                            wakeups.wake(all: !notifications.isEmpty)
                        }
                        return nil
                    } catch {
                        return error
                    }
                }
                var first: (any Error)?
                for await error in group { first = first ?? error }
                return first
            }
            guard let lockLost else { break }
            guard TemporaryFailure.matches(lockLost) else {
                await release(held)
                throw lockLost
            }
            await held.close()
            control = nil
            lockLostAt = ContinuousClock.now
            let delay = backoff.next()
            logger.warning("target connection trouble, retrying in \(delay) s: \(lockLost)")
            liveness.ready(Self.part, false, "target connection trouble: \(lockLost)")
            try await Task.sleep(for: .seconds(delay))
        }
        if let control { await release(control) }
        return failures.all
    }

    /// The lock still held right after its connection was lost: most likely by this applier's own
    /// old session, whose server process has not noticed yet. Another applier it is only if that
    /// lasts longer than the server could take to notice.
    static func mayBeOurOldSession(_ error: any Error, since lost: ContinuousClock.Instant) -> Bool {
        guard let error = error as? OperatorError, error.kind == .applierBusy else { return false }
        return ContinuousClock.now - lost < .seconds(120)
    }

    /// One source's applier: its batches in LSN order on its own target connection, reopened after
    /// a connection trouble; waits for a wake-up (or the listing poll) when there is nothing to do.
    private func applyContinuously(_ source: SourceConfiguration, wakeups: SourceWakeups, session: StopSignal,
                                   failures: SourceFailures) async {
        let log = logger.with(source: source.name)
        var control: ControlStore?
        var backoff = Backoff(initialSeconds: 0.5, maximumSeconds: 30)
        var lastListing = ContinuousClock.now
        while !stop.isRequested && !session.isRequested {
            do {
                if control == nil { control = ControlStore(try await TargetSession.connect(target)) }
                var report = Report()
                try await applyPending(source, on: control!, into: &report, limit: settings.batchesPerRound)
                lastListing = ContinuousClock.now
                backoff.reset()
                if report.batches == 0 {
                    await wakeups.wait(source.name, until: lastListing + .seconds(settings.pollSeconds), unless: { stop.isRequested || session.isRequested })
                }
            } catch let error where TemporaryFailure.matches(error) {
                PipelineMetrics.error(source: source.name, part: "apply")
                let delay = backoff.next()
                if error is PostgresError {
                    log.warning("target connection trouble, retrying in \(delay) s: \(error)")
                    await control?.close()
                    control = nil
                } else {
                    // Nothing of the batch in hand was applied; it is read again once this passes.
                    log.error("cannot read batches, retrying in \(delay) s: \(error)")
                }
                try? await Task.sleep(for: .seconds(delay))
            } catch {
                log.error("source stopped: \(error)")
                if let error = error as? PostgresError, error.detailMayHoldData {
                    log.debug("the server's detail", metadata: ["detail": .string(error.fullDescription)])
                }
                PipelineMetrics.error(source: source.name, part: "apply")
                failures[source.name] = error
                break
            }
        }
        await control?.close()
    }

    private func release(_ control: ControlStore) async {
        try? await control.releaseApplierLock()
        await control.close()
    }

    /// The applier's own target session: migrated, holding the one-applier lock, and (for the
    /// continuous applier) listening for batches and for pause and resume.
    private func connectAsTheApplier(listen: Bool) async throws -> ControlStore {
        let control = ControlStore(try await TargetSession.connect(target))
        do {
            try await control.migrate()
            guard try await control.claimApplierLock() else {
                throw OperatorError("another tributary apply (or run, or drain) is applying to this target: let it finish, or stop it first",
                                    kind: .applierBusy)
            }
            if listen { try await control.listenForBatchesAndControl() }
            return control
        } catch {
            await control.close()
            throw error
        }
    }

    private func applyPending(_ source: SourceConfiguration, on control: ControlStore, into report: inout Report,
                              limit: Int?, onSnapshotStart: @Sendable (TransferProgress) async -> Void = { _ in }) async throws {
        let log = logger.with(source: source.name)
        let snapshots = SnapshotLoader(target: target, store: store, jobs: settings.jobs, settings: settings.snapshot, logger: logger)
        // A cheap look first: the load itself opens its own connections.
        var pending = try await snapshots.pendingSnapshot(source: source.name, control: control) != nil
        if !pending { pending = !(try await snapshots.pendingTableSnapshots(source: source.name, control: control).isEmpty) }
        if pending, let snapshot = try await liveness.working(Self.part, { try await snapshots.load(source: source.name, onStart: onSnapshotStart) }) {
            report.snapshots.append(snapshot)
        }
        let position = try await control.applyPosition(of: source.name)
        // Paused by an operator, or no snapshot applied yet (changes have nothing to apply to).
        guard !position.paused, let applied = position.applied else { return }
        let applier = BatchApplier(source: source, store: store, logger: log)
        // Batch by batch through a backlog, the next batch is loaded on a second connection while
        // one merges. Opened at the first backlog; what it loaded and nothing merged is dropped.
        var preload = LoadAhead(target: target, source: source.name, store: store, enabled: settings.loadAhead && settings.group.batches == 1)
        do {
            try await applyPending(source, from: applied, position: position, on: control, applier: applier, preload: &preload,
                                   into: &report, limit: limit)
        } catch {
            await preload.finish()
            throw error
        }
        await preload.finish()
    }

    private func applyPending(_ source: SourceConfiguration, from applied: LSN, position: ApplyPosition, on control: ControlStore,
                              applier: BatchApplier, preload: inout LoadAhead, into report: inout Report, limit: Int?) async throws {
        let log = logger.with(source: source.name)
        let connection = control.connection
        var after = applied
        var count = 0
        while limit.map({ count < $0 }) ?? true, !stop.isRequested {
            let next = try await nextManifests(source: source.name, after: after)
            if next.isEmpty {
                // `flushed` was read before this listing, and the replicator records it only after
                // the batches up to it are stored: none is missing, the rest were idle heartbeats.
                if let flushed = position.flushed, flushed > after {
                    try await control.advanceAppliedOverIdle(source.name, from: after, to: flushed, commitTime: position.flushedCommitTime)
                }
                break
            }
            var waiting = next[...]
            var read: [BatchManifest] = []
            while !waiting.isEmpty || !read.isEmpty, limit.map({ count < $0 }) ?? true, !stop.isRequested {
                // A backlog is applied in groups; the last batch waiting alone, for latency.
                let limits = waiting.count + read.count > 1 ? settings.group : .single
                while read.count < limits.batches, let key = waiting.popFirst() {
                    read.append(try await store.manifest(BatchManifest.self, at: key))
                }
                let group = Array(read.prefix(ApplyGroupPlanner.groupSize(read, limits: limits)))
                read.removeFirst(group.count)
                let started = ContinuousClock.now
                let loaded = try await preload.take(group)
                if preload.enabled, limit.map({ count + group.count < $0 }) ?? true {
                    if read.isEmpty, let key = waiting.popFirst() { read.append(try await store.manifest(BatchManifest.self, at: key)) }
                    if let next = read.first { try await preload.start(next) }
                }
                let outcome = if let loaded {
                    try await applier.apply(loaded, backlog: waiting.count + read.count, on: connection)
                } else {
                    try await applier.applyGroup(group, backlog: waiting.count + read.count, on: connection)
                }
                after = max(after, group.last!.endLSN)
                count += group.count
                guard outcome.applied else { continue }
                report.batches += outcome.batches
                report.rows += outcome.rows
                if loaded != nil { report.loadedAhead += outcome.batches }
                PipelineMetrics.batchApplied(source: source.name, rows: outcome.rows, batches: outcome.batches)
                log.info(group.count == 1 ? "batch applied" : "batches applied together", metadata: [
                    LogKey.batch: .string(group.last!.endLSN.paddedHex), "batches": .stringConvertible(outcome.batches),
                    "loaded_ahead": .stringConvertible(loaded != nil),
                    LogKey.lsn: .string("\(group[0].firstCommitLSN)..\(group.last!.endLSN)"),
                    "inserts": .stringConvertible(outcome.inserts), "updates": .stringConvertible(outcome.updates),
                    "deletes": .stringConvertible(outcome.deletes), "truncates": .stringConvertible(outcome.truncates),
                    LogKey.seconds: .string(String(format: "%.3f", (ContinuousClock.now - started).seconds)),
                ])
            }
            // Stopped early (a limit, a stop): the next round lists again from `after`.
            if !waiting.isEmpty || !read.isEmpty { break }
        }
    }

    /// Manifests of batches ending after `lsn`, in LSN order, from a start key: never a full rescan.
    private func nextManifests(source: String, after lsn: LSN) async throws -> [String] {
        // "~" sorts after every key inside the applied batch's directory and before the next one.
        try await store.list(prefix: ObjectNaming.cdcPrefix(source: source), startAfter: ObjectNaming.cdcDirectory(source: source, endLSN: lsn) + "~")
            .map(\.key).filter { $0.hasSuffix("/" + ObjectNaming.manifestName) }
    }
}
