import Foundation
import TributaryCore
import TributaryPostgres
import TributaryStorage

/// What `tributary status` shows per source, read from the source (WAL and slot), the staging
/// store (batches not yet applied) and the target's control state. Works while nothing runs.
public struct SourceStatus: Sendable, Codable, Equatable {
    /// The source's state as an operator sees it.
    public enum State: String, Sendable, Codable, Equatable {
        /// No snapshot of the source has been applied to the target yet.
        case notSnapshotted = "not snapshotted"
        case running, paused, draining, drained
        /// The slot was invalidated or dropped after the source was snapshotted: changes were lost
        /// from the stream, and the source needs a new snapshot.
        case slotLost = "slot lost"

        init(_ state: SourceState) {
            switch state {
            case .running: self = .running
            case .paused: self = .paused
            case .draining: self = .draining
            case .drained: self = .drained
            }
        }

        /// Not consuming the slot is expected of a paused or drained source, and a fault otherwise.
        public var replicatorExpected: Bool { self == .running || self == .draining }
    }

    public var state: State
    public var source: String
    public var slot: String
    /// Whether a replicator is consuming the slot now.
    public var replicatorActive: Bool?
    public var sourceLSN: LSN?
    public var confirmedLSN: LSN?
    /// WAL the source still holds for Tributary: current position − slot's confirmed position.
    public var sourceLagBytes: Int?
    /// WAL the slot keeps on the source's disk (from its restart position).
    public var retainedWALBytes: Int?
    public var walStatus: String?
    public var stagedBatches: Int
    public var stagedBytes: Int
    /// Table snapshots (`snapshot --table`, a resumed snapshot) stored but not yet merged into STG.
    public var pendingTableSnapshots: Int
    /// The source's objects in the staging store at the last collection (`gc`), and what
    /// collections have removed so far.
    public var store: StoreUsage?
    public var flushedLSN: LSN?
    public var appliedLSN: LSN?
    public var appliedCommitTime: Date?
    /// now − commit time of the newest applied change (heartbeats keep it honest on idle sources).
    public var lagSeconds: Double?
    /// Changes applied per second over the last minute.
    public var changesPerSecond: Double
    public var warnings: [String]
    /// While draining or drained: the end the drain fixed.
    public var drainLSN: LSN?
    /// Schema changes STG followed over the last `StatusReader.schemaChangeDays` days, newest first.
    public var schemaChanges: [SchemaChange]?
    /// Parts of the source stopped on a schema change, until the fix they name is made.
    public var schemaStops: [SchemaStop]?
    /// WAL the slot may still retain before `max_slot_wal_keep_size` invalidates it; left out when
    /// the source sets no limit.
    public var safeWALBytes: Int?
    /// Whether the staging store answered the reading's listing of the source's batches.
    public var storeReachable: Bool?

    public struct SchemaChange: Sendable, Codable, Equatable {
        public var table: String
        public var stagingTable: String
        public var kind: String
        public var change: String
        public var lsn: LSN
        public var at: Date
    }

    public struct SchemaStop: Sendable, Codable, Equatable {
        public var part: String
        public var change: String
        public var fix: String
        public var since: Date
    }

    public init(source: SourceConfiguration) {
        state = .notSnapshotted
        self.source = source.name
        slot = source.slot
        stagedBatches = 0
        stagedBytes = 0
        pendingTableSnapshots = 0
        changesPerSecond = 0
        warnings = []
    }

    enum CodingKeys: String, CodingKey {
        case state, source, slot, replicatorActive, confirmedLSN = "confirmedLsn", sourceLSN = "sourceLsn", sourceLagBytes
        case retainedWALBytes = "retainedWalBytes", walStatus, stagedBatches, stagedBytes, pendingTableSnapshots, store, flushedLSN = "flushedLsn"
        case appliedLSN = "appliedLsn", appliedCommitTime, lagSeconds, changesPerSecond, warnings, drainLSN = "drainLsn"
        case schemaChanges, schemaStops, safeWALBytes = "safeWalBytes", storeReachable
    }
}

public struct StatusReader: Sendable {
    /// How far back `status` lists the schema changes followed.
    public static let schemaChangeDays = 7
    public let endpoints: Endpoints
    public let store: any StagingStore
    public let models: [TransformModel]

    public init(endpoints: Endpoints, store: any StagingStore, models: [TransformModel] = []) {
        self.endpoints = endpoints
        self.store = store
        self.models = models
    }

    /// Sources, models and object-sync mappings: what `status` shows, on sessions opened for this
    /// reading and closed after it.
    public func report(_ sources: [SourceConfiguration]) async throws -> StatusReport {
        var sessions = StatusSessions(endpoints: endpoints)
        do {
            let report = try await report(sources, sessions: &sessions)
            await sessions.close()
            return report
        } catch {
            await sessions.close()
            throw error
        }
    }

    /// The same on `sessions`, which stay open for the next reading (the status refresher of
    /// `run`): a reading opens no connection while its sessions last.
    public func report(_ sources: [SourceConfiguration], sessions: inout StatusSessions) async throws -> StatusReport {
        let control = try await sessions.target()
        let migrated = try await control.isMigrated()
        // The tables of the newest migrations (schema changes, verifications) are read only when there.
        let current = migrated ? try await control.isCurrent() : false
        var statuses: [SourceStatus] = []
        for source in sources {
            var status = SourceStatus(source: source)
            if migrated { try await readControlState(into: &status, control: control, current: current) }
            await readSource(source, into: &status, sessions: &sessions, target: migrated ? control.connection : nil)
            if !migrated {
                status.warnings.append("the target has no tributary schema yet: nothing was applied to it (tributary apply or run does)")
            }
            statuses.append(status)
        }
        var lastVerify: ControlStore.VerificationRecord?
        if current { lastVerify = try await control.lastVerification() }
        let mappings = sources.flatMap(\.objects)
        guard !models.isEmpty || !mappings.isEmpty else {
            var report = StatusReport(generatedAt: Date(), sources: statuses)
            report.lastVerify = lastVerify
            return report
        }
        let modelStatuses = migrated
            ? try await ModelStatusReader(models: models, sourceOfTable: Dictionary(
                sources.flatMap { source in source.tables.map { ($0.stagingTable, source.name) } }, uniquingKeysWith: { first, _ in first }))
                .read(control: control, sources: statuses)
            : models.map { ModelStatus(model: $0.name, table: $0.table.description, state: .notBuilt, rowsWaiting: 0) }
        var objects: [ObjectSyncStatus] = []
        for mapping in mappings {
            objects.append(ObjectSyncStatus(mapping: mapping, pass: migrated ? try await control.objectPass(mapping.id) : nil))
        }
        var report = StatusReport(generatedAt: Date(), sources: statuses, models: modelStatuses)
        report.objects = objects.isEmpty ? nil : objects
        report.lastVerify = lastVerify
        return report
    }

    func readControlState(into status: inout SourceStatus, control: ControlStore, current: Bool) async throws {
        guard let row = try await control.statusRow(of: status.source) else { return }
        status.state = .init(row.state)
        status.flushedLSN = row.flushedLSN
        status.drainLSN = row.drainLSN
        status.appliedLSN = row.appliedLSN
        status.appliedCommitTime = row.appliedCommitTime
        status.lagSeconds = row.lagSeconds
        // Drained: every change through the end is applied and none comes after it, so the target
        // is not behind, however old its last change is (and a lag alert must not fire at cutover).
        if status.state == .drained, let applied = row.appliedLSN, let end = row.drainLSN, applied >= end { status.lagSeconds = 0 }
        status.changesPerSecond = row.changesPerSecond
        if current {
            let changes = try await control.schemaChanges(of: status.source, since: Date(timeIntervalSinceNow: -Double(Self.schemaChangeDays) * 86400))
            status.schemaChanges = changes.isEmpty ? nil : changes.map {
                .init(table: $0.table, stagingTable: $0.stagingTable, kind: $0.kind, change: $0.change, lsn: $0.lsn, at: $0.appliedAt)
            }
            let stops = try await control.schemaStops(of: status.source)
            status.schemaStops = stops.isEmpty ? nil : stops.map { .init(part: $0.part, change: $0.change, fix: $0.fix, since: $0.since) }
            status.warnings += stops.map { "\($0.part) stopped on a schema change: \($0.change): \($0.fix)" }
            let resyncs = try await control.resyncsPending(of: status.source)
            if resyncs > 0 { status.warnings.append("\(resyncs) table snapshots asked for by schema changes are yet to be taken (tributary run takes them)") }
            for (stagingTable, table, files) in try await control.tablesAwaitingCopy(of: status.source) {
                status.warnings.append("stg.\(stagingTable) waits for its first copy, and \(files) files of its changes with it: "
                                       + "tributary snapshot --source \(status.source) --table \(table)")
            }
        }
        // Staged but not applied: batches after the applied position.
        if let applied = row.appliedLSN {
            let pending: [StoredObject]
            do {
                pending = try await store.list(prefix: ObjectNaming.cdcPrefix(source: status.source),
                                               startAfter: ObjectNaming.cdcDirectory(source: status.source, endLSN: applied) + "~")
                status.storeReachable = true
            } catch {
                // Said, and the rest of the reading goes on: the sources and the target may be fine.
                status.storeReachable = false
                status.warnings.append("the staging store is unreachable: \(error)")
                return
            }
            status.stagedBatches = pending.filter { $0.key.hasSuffix("/" + ObjectNaming.manifestName) }.count
            status.stagedBytes = pending.reduce(0) { $0 + $1.size }
            status.pendingTableSnapshots = try await SnapshotLoader.pendingTableSnapshotPoints(source: status.source, store: store,
                                                                                              control: control).count
            status.store = try await control.storeUsage(of: status.source)
            // Everything stored is applied: an idle source's heartbeat (stored as no object) is as
            // fresh a reading as a change would be.
            if status.stagedBatches == 0, let flushedLag = row.flushedLagSeconds {
                status.lagSeconds = min(status.lagSeconds ?? flushedLag, flushedLag)
            }
        }
    }

    func readSource(_ source: SourceConfiguration, into status: inout SourceStatus, sessions: inout StatusSessions,
                    target: PostgresConnection?) async {
        do {
            let connection = try await sessions.source(source)
            do {
                try await readSource(source, into: &status, on: connection, target: target)
            } catch let error as PostgresError where error.isTransient || error.kind == .connectionFailed {
                // Its session is gone: the next reading opens another.
                await sessions.drop(source)
                throw error
            }
        } catch {
            status.warnings.append("source unreachable: \(error)")
        }
    }

    private func readSource(_ source: SourceConfiguration, into status: inout SourceStatus, on connection: PostgresConnection,
                            target: PostgresConnection?) async throws {
        status.sourceLSN = try await connection.query("SELECT pg_current_wal_lsn()").scalar(LSN.self)
        guard let slot = try await ReplicationSlot.find(source.slot, on: connection) else {
            if status.state == .notSnapshotted {
                status.warnings.append("replication slot \(source.slot) does not exist on \(source.name): run tributary snapshot --source \(source.name)")
            } else if status.state != .drained {
                // Replicated before, and its slot is gone: someone dropped it.
                status.state = .slotLost
                status.warnings.append("replication slot \(source.slot) was dropped on \(source.name): \(ReplicationSlot.recovery(source: source.name))")
            }
            return
        }
        status.confirmedLSN = slot.confirmedFlushLSN
        status.replicatorActive = slot.isActive
        status.sourceLagBytes = slot.lagBytes
        status.retainedWALBytes = slot.retainedBytes
        status.walStatus = slot.walStatus
        status.safeWALBytes = slot.safeWALSize
        if slot.isLost && status.state != .notSnapshotted { status.state = .slotLost }
        if !slot.isLost, status.state != .notSnapshotted, status.state != .drained, status.appliedLSN != nil,
           let problem = try? await SlotContinuityCheck.problem(slot, source: source, recorded: { [flushed = status.flushedLSN] in
               guard let target, let state = try? await ControlStore(target).state(of: source.name) else { return flushed }
               return state.flushedLSN
           }, store: store) {
            status.state = .slotLost
            status.warnings.append(problem + ": " + ReplicationSlot.recovery(source: source.name))
            return
        }
        status.warnings += Self.slotWarnings(slot, status: status, source: source)
        if let target, status.state != .notSnapshotted {
            status.warnings += (try? await SourceDrift.warnings(source, on: connection, target: target)) ?? []
        }
    }

    static func slotWarnings(_ slot: ReplicationSlot, status: SourceStatus, source: SourceConfiguration) -> [String] {
        var warnings: [String] = []
        if slot.isLost {
            // Nothing else matters until it is recovered: no replicator can consume it.
            return ["the slot lost WAL it still needed (max_slot_wal_keep_size): \(ReplicationSlot.recovery(source: source.name))"]
        }
        if !slot.isActive && status.state.replicatorExpected {
            warnings.append("no replicator is consuming the slot: the source retains WAL until tributary run (or replicate --source \(source.name)) runs")
        }
        if status.state == .paused {
            warnings.append("paused: the source retains WAL for the slot until tributary resume \(source.name)")
        }
        if let safe = slot.safeWALSize, let retained = slot.retainedBytes, safe < retained / 4 {
            warnings.append("the slot nears max_slot_wal_keep_size: \(safe) bytes left before the source invalidates it")
        }
        return warnings
    }
}

/// `tributary status --json`: `{"generated_at": …, "sources": [SourceStatus…]}`, snake_case keys,
/// LSNs in PostgreSQL's text form, times ISO 8601 with microseconds. Fields are only ever added.
public struct StatusReport: Sendable, Codable, Equatable {
    public var generatedAt: Date
    public var sources: [SourceStatus]
    /// The BL models, in running order; left out when none are configured.
    public var models: [ModelStatus]?
    /// The object-sync mappings; left out when none are configured.
    public var objects: [ObjectSyncStatus]?
    /// The last verify's result (any process's), when one has run.
    public var lastVerify: ControlStore.VerificationRecord?

    public init(generatedAt: Date, sources: [SourceStatus], models: [ModelStatus] = []) {
        self.generatedAt = generatedAt
        self.sources = sources
        self.models = models.isEmpty ? nil : models
    }
}

/// The sessions a status reading uses: one on the target, one per source, each opened when first
/// needed. Held between readings by the status refresher of `run`; a session that broke is
/// dropped and opened again by the next reading.
public struct StatusSessions: Sendable {
    let endpoints: Endpoints
    private var control: ControlStore?
    private var sources: [String: PostgresConnection] = [:]

    public init(endpoints: Endpoints) { self.endpoints = endpoints }

    mutating func target() async throws -> ControlStore {
        if let control { return control }
        let opened = try await endpoints.target.openControl(migrate: false, for: "status")
        control = opened
        return opened
    }

    mutating func source(_ source: SourceConfiguration) async throws -> PostgresConnection {
        if let connection = sources[source.name] { return connection }
        let opened = try await endpoints.source(source).connect(for: "status")
        sources[source.name] = opened
        return opened
    }

    mutating func drop(_ source: SourceConfiguration) async {
        await sources.removeValue(forKey: source.name)?.close()
    }

    /// Closes every session (the next reading opens them again).
    public mutating func close() async {
        await control?.close()
        control = nil
        for connection in sources.values { await connection.close() }
        sources = [:]
    }
}
