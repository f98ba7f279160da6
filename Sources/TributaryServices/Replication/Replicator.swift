import Foundation
import Logging
import TributaryCore
import TributaryPostgres
import TributaryStorage

/// Follows one source's logical replication slot and writes every committed change to the staging
/// store as micro-batches (DESIGN.md §2, §3).
///
/// Durability: a batch's data files are stored, then its manifest, and only then is its end LSN
/// reported to the server as flushed; the slot's confirmed position therefore never passes data
/// that is not in the staging store. After a crash the slot replays from there, and a replayed
/// batch gets the same deterministic name (or overlaps an earlier one), which the applier absorbs.
public struct Replicator: Sendable {
    public struct Settings: Sendable {
        public var limits: BatchLimits
        public var compressionLevel: Int
        /// While the source is idle, a heartbeat is written this often, so the slot keeps advancing
        /// and the lag clock keeps a fresh source timestamp.
        public var heartbeatInterval: Duration
        /// Standby status updates are sent at least this often (well inside wal_sender_timeout).
        public var statusInterval: Duration
        /// Stop once this LSN is durable (for benchmarks and drains); nil runs until stopped.
        public var endLSN: LSN?
        /// The source's configuration as its file says now: a table the stream brings that the
        /// configuration did not list at start (added while running, then `snapshot --table`) is
        /// looked for here before its changes are skipped.
        public var refreshSource: @Sendable () -> SourceConfiguration? = { nil }
        /// Where the replicator says it is alive and streaming (`tributary run`'s health endpoints).
        public var liveness: Liveness?
        /// The relation ids the applier recorded for configured tables: a table the source no longer
        /// has under its configured name is looked for by its id (renamed) before it is taken as dropped.
        public var recordedTableOIDs: @Sendable () async -> [QualifiedName: UInt32] = { [:] }
        /// How often the replicator looks for configured tables dropped on the source.
        public var dropCheckInterval: Duration = .seconds(10)

        public init(limits: BatchLimits, compressionLevel: Int = 1, heartbeatInterval: Duration = .seconds(10),
                    statusInterval: Duration = .seconds(10), endLSN: LSN? = nil) {
            self.limits = limits
            self.compressionLevel = compressionLevel
            self.heartbeatInterval = heartbeatInterval
            self.statusInterval = statusInterval
            self.endLSN = endLSN
        }

        /// As tributary.yaml sets them: its batch limits, compression level and heartbeat.
        public init(target: TargetConfiguration, endLSN: LSN? = nil) {
            self.init(limits: target.batch, compressionLevel: target.snapshot.compressionLevel,
                      heartbeatInterval: target.batch.heartbeatInterval, endLSN: endLSN)
        }
    }

    public struct Summary: Sendable {
        public var batches = 0
        public var transactions = 0
        public var rows = 0
        public var durableLSN = LSN.zero
        /// Configured tables the source dropped: the replicator stopped once every change before
        /// the position where it noticed was stored.
        public var droppedTables: [QualifiedName] = []
    }

    public static let heartbeatPrefix = "tributary-heartbeat"

    static func slotInUse(_ source: SourceConfiguration, pid: Int) -> TributaryError {
        TributaryError(.slotInUse, "replication slot \"\(source.slot)\" on \(source.name) is in use by process \(pid): another replicator is running for it",
                       context: [LogKey.source: source.name, LogKey.slot: source.slot])
    }

    /// The replicator's name among `run`'s parts.
    public static func part(_ source: String) -> String { "replicate \(source)" }

    public let source: SourceConfiguration
    public let endpoint: SourceEndpoint
    public let settings: Settings
    public let store: any StagingStore
    public let workDirectory: String
    public let logger: Logger
    public let stop: StopSignal
    /// Called after each batch is durable and acknowledged (the applier's wake-up call, metrics).
    public let onBatch: @Sendable (BatchManifest) async -> Void
    /// Called when an idle source's heartbeat was confirmed with nothing to store: its end LSN and
    /// commit time (the flushed position and the lag clock's fresh timestamp).
    public var onIdle: @Sendable (LSN, Date) async -> Void = { _, _ in }
    /// Called before a position past the last stored batch (a keepalive's, with nothing pending) is
    /// confirmed to the source: true once it is recorded where the slot-continuity check reads it.
    public var onAcknowledge: @Sendable (LSN) async -> Bool = { _ in false }

    public init(source: SourceConfiguration, endpoints: Endpoints, settings: Settings, store: any StagingStore, workDirectory: String,
                logger: Logger, stop: StopSignal, onBatch: @escaping @Sendable (BatchManifest) async -> Void = { _ in }) {
        self.source = source
        endpoint = endpoints.source(source)
        self.settings = settings
        self.store = store
        self.workDirectory = workDirectory
        self.logger = logger.with(source: source.name)
        self.stop = stop
        self.onBatch = onBatch
    }

    /// A replicator that tells the target of every stored batch and every confirmed heartbeat:
    /// what `run`, `replicate` and `drain` use, so the applier and `status` see both.
    public init(source: SourceConfiguration, endpoints: Endpoints, settings: Settings, store: any StagingStore, workDirectory: String,
                logger: Logger, stop: StopSignal, notifier: TargetNotifier) {
        self.init(source: source, endpoints: endpoints, settings: settings, store: store, workDirectory: workDirectory, logger: logger, stop: stop,
                  onBatch: { await notifier.batchWritten($0) })
        onIdle = { [name = source.name] in await notifier.idleConfirmed(name, at: $0, commitTime: $1) }
        onAcknowledge = { [name = source.name] in await notifier.acknowledging(name, at: $0) }
    }

    public func run() async throws -> Summary {
        try await endpoint.withConnection(for: "replicate \(source.name)") { side in try await run(side: side) }
    }

    private func run(side: PostgresConnection) async throws -> Summary {
        try await SourceChecks.requireLogicalDecoding(on: side, source: source)
        guard let slot = try await ReplicationSlot.find(source.slot, on: side), slot.inThisDatabase else {
            throw TributaryError(.slotMissing, "replication slot \"\(source.slot)\" does not exist on \(source.name): run tributary snapshot --source \(source.name) first")
        }
        if let pid = slot.activePID { throw Self.slotInUse(source, pid: pid) }
        let (tables, dropped) = try await SourceCatalog.describeReplicated(source, recordedOIDs: await settings.recordedTableOIDs(),
                                                                           on: side, logger: logger)
        // A directory per process: a drain's replicator waiting for the slot must not touch the
        // files of the replicator that holds it now (`tributary run`'s, beside the drain).
        let directory = "\(workDirectory)/replicate-\(source.name)-\(getpid())"
        // Spill and batch files of an earlier run, or of a process that is gone, are worthless:
        // the slot replays what they held.
        try? FileManager.default.removeItem(atPath: directory)
        LocalFiles.removeDirectoriesOfEndedProcesses(in: workDirectory, prefix: "replicate-\(source.name)-")
        try LocalFiles.makeDirectory(directory + "/batch")
        try LocalFiles.makeDirectory(directory + "/spill")

        let summary = try await endpoint.withConnection(.replication, for: "replicate \(source.name)") { replication in
            try await stream(on: replication, side: side, slot: slot, tables: tables, dropped: dropped.map(\.table), directory: directory)
        }
        try? FileManager.default.removeItem(atPath: directory)
        return summary
    }

    private func stream(on replication: PostgresConnection, side: PostgresConnection, slot: ReplicationSlot, tables: [SourceTable],
                        dropped: [QualifiedName], directory: String) async throws -> Summary {
        let system = try await replication.simpleQuery("IDENTIFY_SYSTEM")
        // Transactions larger than this reach us streamed before they commit, and go to spill files.
        try await replication.execute("SET logical_decoding_work_mem = '\(max(64, settings.limits.memoryBytesMax >> 10))kB'")
        let start = slot.confirmedFlushLSN ?? .zero
        let publication = SQL.literal(SQL.identifier(source.publication))
        try await replication.startReplication("""
            START_REPLICATION SLOT \(SQL.identifier(source.slot)) LOGICAL \(start) \
            (proto_version '2', publication_names \(publication), messages 'true', streaming 'on')
            """)
        var log = logger
        log[metadataKey: LogKey.slot] = .string(source.slot)
        let (systemID, timeline) = (try system.first?.decodeIfPresent("systemid", as: String.self),
                                    try system.first?.decodeIfPresent("timeline", as: String.self))
        settings.liveness.ready(Self.part(source.name), true, "streaming from \(start)")
        log.info("replicating", metadata: [LogKey.lsn: .string(start.description),
                                           LogKey.system: .string(systemID ?? "?"), LogKey.timeline: .string(timeline ?? "?")])
        let triggerInstalled = try await side.query(DDLAnnouncement.installedSQL).scalar(Int.self) == DDLAnnouncement.triggers.count
        let session = ReplicationSession(
            replicator: self, registry: RelationRegistry(source: source, described: tables, catalog: side, triggerInstalled: triggerInstalled,
                                                         refresh: settings.refreshSource, logger: log),
            side: side, directory: directory, durable: start, logger: log)
        if !dropped.isEmpty { try await session.stopForDropped(dropped, at: nil) }
        let summary = try await replication.runAsync { connection in try await session.run(on: connection) }
        // A clean end, so the walsender has read the last acknowledgement before the connection goes.
        await replication.endReplication(timeout: 5)
        return summary
    }
}

/// The I/O of one replication connection: reads messages, hands them to the
/// `ReplicationStateMachine` and performs what it decides (batch files, spills, uploads, status
/// updates, heartbeats). Lives on that connection's thread.
private final class ReplicationSession: @unchecked Sendable {
    let replicator: Replicator
    let registry: RelationRegistry
    let side: PostgresConnection
    let directory: String
    let logger: Logger

    var machine: ReplicationStateMachine
    var decoder = PgOutputDecoder()
    var batch: BatchBuilder
    var summary = Replicator.Summary()
    /// The raw pgoutput payload of the message being handled, for spills.
    var payload = noPayload
    static let noPayload = ByteSlice(copying: [])
    var spills: [UInt32: TransactionSpill] = [:]
    var stopReported = false
    var heartbeatWarned = false
    /// Where the stream ends because a configured table was dropped (set between events).
    var dropStop: LSN?
    var lastDropCheck = ContinuousClock.now
    /// When the loop last told `Liveness` it came round: at most every `beatInterval`, since a
    /// beat per message (a lock, the clock and a dictionary lookup by name) was 5% of the
    /// replicator's CPU on wide rows, and a stall is judged in tens of seconds.
    var lastBeat = ContinuousClock.now - .seconds(1)
    static let beatInterval = Duration.milliseconds(100)
    /// The newest position stored (a batch's manifest) or recorded in the control state: a
    /// confirmation past it is recorded first.
    var recorded: LSN

    init(replicator: Replicator, registry: RelationRegistry, side: PostgresConnection, directory: String, durable: LSN, logger: Logger) {
        self.replicator = replicator
        self.registry = registry
        self.side = side
        self.directory = directory
        self.logger = logger
        recorded = durable
        let settings = replicator.settings
        machine = ReplicationStateMachine(
            settings: .init(limits: settings.limits, heartbeatInterval: settings.heartbeatInterval,
                            statusInterval: settings.statusInterval, endLSN: settings.endLSN),
            durable: durable, now: .now)
        batch = BatchBuilder(directory: directory + "/batch", compressionLevel: settings.compressionLevel)
    }

    func run(on connection: isolated PostgresConnection) async throws -> Replicator.Summary {
        let part = Replicator.part(replicator.source.name), liveness = replicator.settings.liveness
        while !machine.isFinished {
            let now = ContinuousClock.now
            if now - lastBeat >= Self.beatInterval {
                liveness.beat(part)
                lastBeat = now
            }
            if replicator.stop.isRequested && !stopReported {
                stopReported = true
                try await feed(.stopRequested, on: connection)
                continue
            }
            if now - lastDropCheck >= replicator.settings.dropCheckInterval {
                lastDropCheck = now
                try await checkDroppedTables()
            }
            if let stop = dropStop {
                dropStop = nil
                try await feed(.stopAt(stop), on: connection)
                continue
            }
            try await feed(try nextEvent(on: connection), on: connection)
            // The message is handled: its memory goes before the next one arrives.
            payload = Self.noPayload
        }
        for spill in spills.values { spill.discard() }
        logger.info("stopped", metadata: [LogKey.lsn: .string(machine.durable.description)])
        summary.durableLSN = machine.durable
        return summary
    }

    func nextEvent(on connection: isolated PostgresConnection) throws -> ReplicationStateMachine.Event {
        guard let bytes = try connection.nextReplicationMessage(timeout: 0.1) else { return .idle }
        switch try ReplicationMessage.decode(bytes) {
        case .keepalive(let walEnd, _, let replyRequested):
            return .keepalive(walEnd: walEnd, replyRequested: replyRequested)
        case .xLogData(let start, _, _, let payload):
            self.payload = payload
            return .message(try decoder.decode(payload, at: start))
        }
    }

    /// Hands `event` to the state machine and performs its actions in order; an action's outcome
    /// is itself an event, handled before the next action.
    func feed(_ event: ReplicationStateMachine.Event, on connection: isolated PostgresConnection) async throws {
        let actions: [ReplicationStateMachine.Action]
        do {
            actions = try machine.handle(event, now: .now)
        } catch let violation as ReplicationStateMachine.ProtocolViolation {
            throw TributaryError(.protocolViolation, "\(replicator.source.name): \(violation.description)")
        }
        for action in actions {
            if let outcome = try await perform(action, on: connection) { try await feed(outcome, on: connection) }
        }
    }

    func perform(_ action: ReplicationStateMachine.Action, on connection: isolated PostgresConnection) async throws
        -> ReplicationStateMachine.Event? {
        switch action {
        case .beginTransaction(let commitLSN):
            batch.begin(commitLSN: commitLSN)
        case .append(let message):
            try append(message)
        case .registerRelation(let relation, let outsideStream):
            // A streamed transaction's commit LSN is not known until its replay registers it again.
            if try await registry.update(relation, commitLSN: outsideStream ? batch.transactionCommitLSN : nil), outsideStream {
                batch.schemaChanged(relationOid: relation.oid)
            }
        case .spill(let top, let subtransaction):
            if spills[top] == nil { spills[top] = try TransactionSpill(topTransaction: top, directory: directory + "/spill") }
            try spills[top]!.append(xid: subtransaction, payload: payload)
        case .replayStream(let xid):
            try await replay(xid, on: connection)
        case .dropStream(let xid):
            spills.removeValue(forKey: xid)?.discard()
        case .abortSubtransaction(let xid, let subtransaction):
            spills[xid]?.abortSubtransaction(subtransaction)
        case .commitTransaction(let commit):
            batch.commit(commitLSN: commit.commitLSN, endLSN: commit.endLSN, commitTime: commit.commitTime)
            return .batchSize(rows: batch.rows, bytes: batch.bytes)
        case .idleCommit(let commit):
            await replicator.onIdle(commit.endLSN, PostgresTime.date(commit.commitTime))
        case .closeBatch:
            let manifest = try await closeBatch(on: connection)
            try await feed(.batchStored(endLSN: manifest.endLSN), on: connection)
            // Acknowledged first: the applier's wake-up call and metrics must not delay the source.
            await replicator.onBatch(manifest)
        case .sendStatus(let flushed):
            if flushed > recorded, await replicator.onAcknowledge(flushed) { recorded = flushed }
            try connection.sendReplicationMessage(ReplicationMessage.standbyStatus(
                durable: flushed, clientTime: PostgresTime.microseconds(Date())))
        case .emitHeartbeat:
            await emitHeartbeat()
        case .finish:
            break
        }
        return nil
    }

    func append(_ message: PgOutputMessage) throws {
        switch message {
        case .insert(_, let oid, _), .update(_, let oid, _, _), .delete(_, let oid, _):
            try append(message, relationOid: oid)
        case .truncate(_, let oids, _, _):
            for oid in oids { try append(message, relationOid: oid) }
        case .message(_, _, let lsn, let prefix, let content):
            guard prefix == DDLAnnouncement.prefix else { break }
            guard let announcement = DDLAnnouncement.decode(prefix: prefix, content: content) else {
                logger.warning("a DDL announcement this tributary cannot read: schema changes are identified from the catalog",
                               metadata: [LogKey.lsn: .string(lsn.description), LogKey.detail: .string(String(decoding: content.prefix(200), as: UTF8.self))])
                break
            }
            switch announcement.event {
            case .ddl:
                registry.announce(oid: announcement.oid, columns: (announcement.columns ?? []).map { .init(attnum: $0.attnum, name: $0.name) })
            case .drop:
                // At its exact place: every change of the table came before.
                guard let table = registry.replicatedOIDs[announcement.oid] else { break }
                noteDropped([table], at: lsn)
            }
        default:
            break
        }
    }

    /// Configured tables the source dropped: the stream goes on until everything before `lsn`
    /// (the source's WAL position now when nil: past the drop) is stored, then ends.
    func stopForDropped(_ tables: [QualifiedName], at lsn: LSN?) async throws {
        if let lsn { return noteDropped(tables, at: lsn) }
        noteDropped(tables, at: try await side.query("SELECT pg_current_wal_lsn()").scalar(LSN.self))
    }

    private func noteDropped(_ tables: [QualifiedName], at lsn: LSN) {
        let new = tables.filter { !summary.droppedTables.contains($0) }
        guard !new.isEmpty else { return }
        summary.droppedTables += new
        dropStop = min(dropStop ?? lsn, lsn)
        logger.error("configured table dropped on the source: replication stops once every change before this position is stored",
                     metadata: [LogKey.tables: .string(new.map(\.description).joined(separator: ", ")), LogKey.lsn: .string(lsn.description)])
    }

    /// One catalog look for the configured tables' relation ids (a drop sends nothing else the
    /// stream would show without the DDL event trigger).
    func checkDroppedTables() async throws {
        let followed = registry.replicatedOIDs
        guard !followed.isEmpty else { return }
        let gone = try await side.query("""
            SELECT t.oid FROM unnest($1::oid[]) AS t(oid) WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.oid)
            """, [PostgresArray.literal(followed.keys.map { String($0) })]).column(UInt32.self)
        guard !gone.isEmpty else { return }
        try await stopForDropped(gone.compactMap { followed[$0] }.sorted(), at: nil)
    }

    func append(_ message: PgOutputMessage, relationOid oid: UInt32) throws {
        switch registry[oid] {
        case .replicated(let table)? where table.partition != nil && message.isTruncate:
            // STG holds the whole table: a truncate of one partition has no exact form there.
            logger.error("""
                TRUNCATE of partition \(table.partition!) is not applied to \(table.relation.table)'s STG table (it holds every \
                partition): resync it with tributary snapshot --source \(replicator.source.name) --table \(table.relation.table)
                """)
        case .replicated(let table)?:
            try batch.append(message, relationOid: oid, table: table)
        case .skipped?:
            break
        case nil:
            throw TributaryError(.corrupt, "\(replicator.source.name): a change for relation \(oid) arrived before its Relation message")
        }
    }

    /// A committed streamed transaction: its spilled messages, Relation messages included, so each
    /// change meets the schema it was made under. A replay of millions of changes takes minutes
    /// on a loaded machine: the server is answered meanwhile (`ReplicationStateMachine.Event.busy`).
    func replay(_ xid: UInt32, on connection: isolated PostgresConnection) async throws {
        guard let spill = spills.removeValue(forKey: xid) else { return }
        var replayed = 0
        try await spill.replay { change in
            if case .relation(let relation) = change {
                if try await registry.update(relation, commitLSN: batch.transactionCommitLSN) { batch.schemaChanged(relationOid: relation.oid) }
            } else {
                try append(change)
            }
            replayed += 1
            if replayed % 4096 == 0 { try await feed(.busy, on: connection) }
        }
        spill.discard()
    }

    /// Runs `step`, which does not read the stream (a batch going to the store, slow for a large
    /// batch or a slow link), while answering the server each second it is not done
    /// (`ReplicationStateMachine.Event.busy`).
    func answeringWhileBusy(on connection: isolated PostgresConnection, _ step: @escaping @Sendable () async throws -> Void) async throws {
        enum Finished: Sendable { case step, tick }
        try await withThrowingTaskGroup(of: Finished.self) { group in
            group.addTask { try await step(); return .step }
            while true {
                group.addTask { try await Task.sleep(for: .seconds(1)); return .tick }
                if try await group.next() == .step { break }
                try await feed(.busy, on: connection)
            }
            group.cancelAll()
        }
    }

    /// Its own transaction, so it arrives with a commit time: the lag clock's fresh timestamp.
    func emitHeartbeat() async {
        do {
            try await side.query("SELECT pg_logical_emit_message(true, $1, now()::text)", [Replicator.heartbeatPrefix])
        } catch {
            // Not worth stopping for; worth saying once.
            guard !heartbeatWarned else { return }
            heartbeatWarned = true
            logger.warning("""
                heartbeat failed, so an idle source's slot advances only on server keepalives and its lag has no fresh \
                timestamp: GRANT EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) to the role (\(error))
                """)
        }
    }

    /// Data files, then the manifest: only then may the state machine acknowledge the batch's end.
    func closeBatch(on connection: isolated PostgresConnection) async throws -> BatchManifest {
        let started = ContinuousClock.now
        let (manifest, files) = try batch.seal(source: replicator.source.name, slot: replicator.source.slot)
        let store = replicator.store, uploads = files.map { (key: $0.key, file: $0.path) }
        let manifestKey = ObjectNaming.cdcManifest(source: manifest.source, endLSN: manifest.endLSN), encoded = try ManifestCoding.encode(manifest)
        try await answeringWhileBusy(on: connection) {
            try await store.put(files: uploads)
            try await store.put(key: manifestKey, bytes: encoded)
        }
        recorded = max(recorded, manifest.endLSN)
        summary.batches += 1
        summary.transactions += manifest.transactions
        summary.rows += manifest.rows
        batch = BatchBuilder(directory: directory + "/batch", compressionLevel: replicator.settings.compressionLevel)
        logger.info("batch written", metadata: [
            LogKey.batch: .string(manifest.endLSN.paddedHex), LogKey.lsn: .string(manifest.endLSN.description),
            LogKey.rows: .stringConvertible(manifest.rows), LogKey.transactions: .stringConvertible(manifest.transactions),
            LogKey.seconds: .string(String(format: "%.3f", (ContinuousClock.now - started).seconds)),
        ])
        PipelineMetrics.batchWritten(source: manifest.source, rows: manifest.rows, bytes: manifest.files.reduce(0) { $0 + $1.file.bytes })
        return manifest
    }
}
