import Foundation
import Logging
import Synchronization
import TributaryCore
import TributaryPostgres
import TributaryStorage

/// One source's replicator under `run`, `replicate` and `drain`, as the control state says:
/// running, paused (the slot is left alone and keeps its position), draining (up to the drain
/// LSN, then idle) or drained. A step reads the state on a held target session, checks the slot
/// on a held source session, and runs the replicator until the state changes or a stop; a lost
/// slot stops this source only, until a new snapshot gives it one again.
struct ReplicationPart: Part {
    let kind = "replicate"
    var source: String? { configuration.name }
    let configuration: SourceConfiguration
    let endpoints: Endpoints
    let settings: Replicator.Settings
    let store: any StagingStore
    let workDirectory: String
    let logger: Logger
    /// What every replicator run of the part wrote, for the command to print.
    let totals: ReplicationTotals
    /// How often the control state is read while the replicator runs or idles.
    let pollInterval: Duration = .milliseconds(500)
    /// How often the source's catalog is compared with the configuration and STG (a dropped table
    /// sends nothing the stream could notice); the first look is at start.
    let driftInterval: Duration = .seconds(300)
    private var rules: ReplicationFailureRules
    private let sessions: ReplicationSessions
    private let notifier: TargetNotifier
    private var announced: SourceState?
    /// Why the slot is lost, while it is.
    private var lost: String?
    /// Configured tables the source dropped: replication stays stopped (after their last
    /// change) until the configuration no longer names them.
    private var dropped: [QualifiedName] = []

    /// - Parameter cooperative: a drain's replicator: another process consuming the slot is
    ///   doing the same work, and is waited for.
    init(source: SourceConfiguration, endpoints: Endpoints, settings: Replicator.Settings, store: any StagingStore, workDirectory: String,
         totals: ReplicationTotals, cooperative: Bool, logger: Logger) {
        configuration = source
        self.endpoints = endpoints
        self.settings = settings
        self.store = store
        self.workDirectory = workDirectory
        self.totals = totals
        self.logger = logger.with(source: source.name)
        rules = ReplicationFailureRules(began: .now, cooperative: cooperative)
        sessions = ReplicationSessions(endpoints: endpoints, source: source)
        notifier = TargetNotifier(target: endpoints.target, purpose: "replicate \(source.name)", logger: logger)
    }

    mutating func step(_ context: PartContext) async throws -> PartStep {
        let current = try await TargetTrouble.wrapping { [sessions, configuration] in
            try await sessions.control().state(of: configuration.name)
        } ?? SourceControlState(state: .running)
        if current.state != announced {
            logger.notice("replication \(current.state.rawValue)", metadata: current.drainLSN.map { [LogKey.lsn: .string($0.description)] } ?? [:])
            announced = current.state
        }
        await sessions.checkDrift(every: driftInterval, logger: logger)
        guard current.wantsReplication else {
            context.ready("\(current.state.rawValue) by an operator")
            return .idle(until: .now + pollInterval)
        }
        // A slot someone else recreated (or consumed) is lost as surely as an invalidated one.
        if let problem = await sessions.lostSlot(replicatedBefore: current.appliedLSN != nil, recorded: current.flushedLSN != nil, store: store) {
            return slotLost(problem, context)
        }
        if lost != nil {
            logger.notice("the slot is usable again (a new snapshot): replication resumes")
            lost = nil
        }
        // Another process consuming the slot is seen on the held session: a drain waits for it
        // there (and a restart for a walsender still exiting), without a connection a try.
        if let pid = await sessions.slotConsumer() {
            let inUse = Replicator.slotInUse(configuration, pid: pid)
            guard rules.judge(.slotInUse, now: .now) == .busy else { throw inUse }
            context.notReady("waiting: \(inUse)")
            return .idle(until: .now + .seconds(1))
        }
        // The configuration as its file says now: an operator removing a dropped table lets the
        // source go on without a restart.
        let configuration = settings.refreshSource() ?? self.configuration
        if !dropped.isEmpty {
            let stillNamed = dropped.filter { table in configuration.tables.contains { $0.table == table } }
            if !stillNamed.isEmpty { throw droppedTablesStop(stillNamed, configuration) }
            logger.notice("the dropped tables are out of the configuration: replication goes on")
            dropped = []
            try await TargetTrouble.wrapping { [sessions, name = configuration.name, kind] in
                try await sessions.control().clearSchemaStop(name, part: kind)
            }
        }
        var runSettings = settings
        runSettings.liveness = context.liveness
        runSettings.recordedTableOIDs = { [sessions, name = configuration.name] in
            (try? await sessions.control().recordedTableOIDs(of: name)) ?? [:]
        }
        if current.state == .draining { runSettings.endLSN = current.drainLSN }
        let replicatorStop = StopSignal()
        let watcher = Task { [sessions, configuration, pollInterval, driftInterval, logger, stop = context.stop] in
            await sessions.watch(configuration.name, from: current, every: pollInterval, until: stop, driftEvery: driftInterval, logger: logger)
            replicatorStop.request()
        }
        do {
            let summary = try await Replicator(source: configuration, endpoints: endpoints, settings: runSettings, store: store,
                                               workDirectory: workDirectory, logger: logger, stop: replicatorStop, notifier: notifier).run()
            watcher.cancel()
            rules.ran()
            totals.add(summary)
            try await TargetTrouble.wrapping { [sessions, configuration] in
                try await sessions.control().recordFlushed(configuration.name, at: summary.durableLSN)
            }
            if !summary.droppedTables.isEmpty {
                dropped = summary.droppedTables
                let stop = droppedTablesStop(dropped, configuration)
                try await TargetTrouble.wrapping { [sessions, name = configuration.name, kind] in
                    try await sessions.control().recordSchemaStop(name, part: kind, change: stop.context[LogKey.change] ?? stop.message,
                                                                   fix: stop.context[LogKey.fix] ?? "")
                }
                throw stop
            }
            return .again
        } catch {
            watcher.cancel()
            if let problem = await sessions.lostSlot(replicatedBefore: current.appliedLSN != nil, recorded: false, store: store) {
                return slotLost(problem, context)
            }
            throw error
        }
    }

    /// Stopped after the last change of tables the source dropped: STG keeps their rows, and the
    /// configuration must say that is intended.
    private func droppedTablesStop(_ tables: [QualifiedName], _ configuration: SourceConfiguration) -> TributaryError {
        let names = tables.map(\.description).joined(separator: ", ")
        let staging = tables.compactMap { table in configuration.tables.first { $0.table == table }.map { "stg.\($0.stagingTable)" } }
        return .schemaStop("table \(names) was dropped on \(configuration.name): replication of \(configuration.name) stopped after its last change",
                           fix: "remove \(names) from \(configuration.file) (\(staging.isEmpty ? "STG" : staging.joined(separator: ", ")) keeps its rows); replication goes on by itself",
                           source: configuration.name)
    }

    /// A lost slot stops this source only: the process and the other sources go on. Looked at
    /// again every few polls, until the operator's new snapshot gives the source a usable slot.
    private mutating func slotLost(_ problem: String, _ context: PartContext) -> PartStep {
        if lost != problem {
            logger.error("slot lost, replication of this source stopped: \(problem): \(ReplicationSlot.recovery(source: configuration.name))")
            PipelineMetrics.error(source: configuration.name, part: kind)
            lost = problem
        }
        context.notReady("slot lost: \(problem)")
        return .idle(until: .now + pollInterval * 4)
    }

    mutating func judge(_ error: any Error, now: ContinuousClock.Instant) -> SupervisionPolicy.Failure {
        if let trouble = error as? TargetTrouble { return TemporaryFailure.matches(trouble.underlying) ? .temporary : .permanent }
        if TributaryError.Code.schemaChange ~= error { return .awaitingFix }
        let kind: ReplicationFailureRules.Kind = switch error {
        case let error as PostgresError where error.sqlState == PostgresError.objectInUse: .slotInUse
        case let error as PostgresError where error.isTransient: .sourceInterrupted
        case let error as PostgresError where error.kind == .connectionFailed: .connectionRefused
        case let error where TemporaryFailure.isStorage(error): .storage
        case let error where TributaryError.Code.slotInUse ~= error: .slotInUse
        default: .other
        }
        return rules.judge(kind, now: now)
    }

    mutating func reset() async {
        await sessions.close()
        await notifier.close()
    }
}

/// The sessions a source's replicator part holds from step to step: one on the target (the
/// control state) and one on the source (slot checks and the drift check), each opened when
/// first needed and dropped when it breaks.
actor ReplicationSessions {
    let endpoints: Endpoints
    let source: SourceConfiguration
    private var control: ControlStore?
    private var catalog: PostgresConnection?
    private var nextDriftCheck = ContinuousClock.now
    private var driftSaid: Set<String> = []

    init(endpoints: Endpoints, source: SourceConfiguration) {
        self.endpoints = endpoints
        self.source = source
    }

    func control() async throws -> ControlStore {
        if let control { return control }
        let opened = try await endpoints.target.openControl(migrate: true, for: "replicate \(source.name)")
        if let control {
            await opened.close()
            return control
        }
        control = opened
        return opened
    }

    func catalog() async throws -> PostgresConnection {
        if let catalog { return catalog }
        let opened = try await endpoints.source(source).connect(for: "replicate \(source.name)")
        if let catalog {
            await opened.close()
            return catalog
        }
        catalog = opened
        return opened
    }

    /// Why the slot can no longer serve this source (invalidated, dropped after the source was
    /// replicated, or confirmed past anything tributary recorded or stored: recreated); nil when
    /// it can, or when the source cannot be asked (the usual retries decide).
    /// - Parameter recorded: whether the control state holds a recorded position to compare with.
    ///   It is read again after the slot: another process replicating the source (`run`, while
    ///   this is a `verify` or `drain`) records a position and then confirms it, so a reading
    ///   taken before the slot's could be behind it, and a slot it had just moved on looked
    ///   recreated ("slot lost … resync", seen in bench-breadth's verify).
    func lostSlot(replicatedBefore: Bool, recorded: Bool, store: any StagingStore) async -> String? {
        do {
            guard let slot = try await ReplicationSlot.find(source.slot, on: try await catalog()) else {
                return replicatedBefore ? "replication slot \(source.slot) was dropped on \(source.name)" : nil
            }
            if slot.isLost { return "replication slot \(source.slot) lost WAL it still needed (max_slot_wal_keep_size)" }
            guard replicatedBefore, recorded else { return nil }
            let control = try await control(), name = source.name
            return try await SlotContinuityCheck.problem(slot, source: source, recorded: { try? await control.state(of: name)?.flushedLSN },
                                                         store: store)
        } catch {
            await dropCatalog(after: error)
            return nil
        }
    }

    /// The process consuming the slot, if any.
    func slotConsumer() async -> Int? {
        do {
            return try await ReplicationSlot.find(source.slot, on: try await catalog())?.activePID
        } catch {
            await dropCatalog(after: error)
            return nil
        }
    }

    /// Returns once the control state moves away from `current` (a pause, a drain, a resume) or
    /// `stop` is requested: the running replicator then stops at a safe point. Looks for drift
    /// meanwhile.
    func watch(_ name: String, from current: SourceControlState, every interval: Duration, until stop: StopSignal,
               driftEvery driftInterval: Duration, logger: Logger) async {
        while !Task.isCancelled && !stop.isRequested {
            await checkDrift(every: driftInterval, logger: logger)
            do {
                if let now = try await control().state(of: name), now.state != current.state || now.drainLSN != current.drainLSN { return }
            } catch {
                // A pause must reach the replicator even while the target restarts: opened again next time.
                await control?.close()
                control = nil
            }
            try? await Task.sleep(for: interval)
        }
    }

    /// Logs, once each, what changed on the source behind the stream's back: a configured table
    /// dropped, columns dropped (`SourceDrift`, which `status` shows too). Best effort.
    func checkDrift(every interval: Duration, logger: Logger) async {
        guard ContinuousClock.now >= nextDriftCheck else { return }
        nextDriftCheck = .now + interval
        guard let catalog = try? await catalog(), let control = try? await control() else { return }
        for warning in (try? await SourceDrift.warnings(source, on: catalog, target: control.connection)) ?? [] where !driftSaid.contains(warning) {
            driftSaid.insert(warning)
            logger.warning("source drift: \(warning)")
        }
    }

    private func dropCatalog(after error: any Error) async {
        guard let error = error as? PostgresError, error.isTransient || error.kind == .connectionFailed else { return }
        await catalog?.close()
        catalog = nil
    }

    func close() async {
        await control?.close()
        control = nil
        await catalog?.close()
        catalog = nil
    }
}

/// A failure of the target's control state inside a part whose own work is elsewhere (a
/// replicator): the target's troubles are not the source's, and are waited out as temporary
/// whenever the target's own kind says so.
struct TargetTrouble: Error, CustomStringConvertible {
    let underlying: any Error
    var description: String { "\(underlying)" }

    static func wrapping<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            throw TargetTrouble(underlying: error)
        }
    }
}

/// What every run of a source's replicator wrote, summed (`tributary replicate` prints it).
public final class ReplicationTotals: Sendable {
    private let total = Mutex(Replicator.Summary())

    public init() {}

    func add(_ summary: Replicator.Summary) { total.withLock { $0.add(summary) } }

    public var summary: Replicator.Summary { total.withLock { $0 } }
}

extension SourceControlState {
    /// Running, or draining with the end not reached yet.
    var wantsReplication: Bool {
        switch state {
        case .running: return true
        case .draining:
            guard let end = drainLSN, let flushed = flushedLSN else { return true }
            return flushed < end
        case .paused, .drained: return false
        }
    }
}

extension Replicator.Summary {
    mutating func add(_ other: Replicator.Summary) {
        batches += other.batches
        transactions += other.transactions
        rows += other.rows
        durableLSN = max(durableLSN, other.durableLSN)
    }
}
