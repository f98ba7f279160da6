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
        public var heartbeatSeconds: Double
        /// Standby status updates are sent at least this often (well inside wal_sender_timeout).
        public var statusSeconds: Double
        /// Stop once this LSN is durable (for benchmarks and drains); nil runs until stopped.
        public var endLSN: LSN?

        public init(limits: BatchLimits, compressionLevel: Int = 1, heartbeatSeconds: Double = 10,
                    statusSeconds: Double = 10, endLSN: LSN? = nil) {
            self.limits = limits
            self.compressionLevel = compressionLevel
            self.heartbeatSeconds = heartbeatSeconds
            self.statusSeconds = statusSeconds
            self.endLSN = endLSN
        }

        /// As tributary.yaml sets them: its batch limits, compression level and heartbeat.
        public init(target: TargetConfiguration, endLSN: LSN? = nil) {
            self.init(limits: target.batch, compressionLevel: target.snapshot.compressionLevel,
                      heartbeatSeconds: Double(target.batch.heartbeatMilliseconds) / 1000, endLSN: endLSN)
        }
    }

    public struct Summary: Sendable {
        public var batches = 0
        public var transactions = 0
        public var rows = 0
        public var durableLSN = LSN.zero
    }

    public static let heartbeatPrefix = "tributary-heartbeat"

    public let source: SourceConfiguration
    public let settings: Settings
    public let store: any StagingStore
    public let workDirectory: String
    public let logger: Logger
    public let stop: StopSignal
    /// Called after each batch is durable and acknowledged (the applier's wake-up call, metrics).
    public let onBatch: @Sendable (BatchManifest) async -> Void

    public init(source: SourceConfiguration, settings: Settings, store: any StagingStore, workDirectory: String,
                logger: Logger, stop: StopSignal, onBatch: @escaping @Sendable (BatchManifest) async -> Void = { _ in }) {
        self.source = source
        self.settings = settings
        self.store = store
        self.workDirectory = workDirectory
        self.logger = logger.with(source: source.name)
        self.stop = stop
        self.onBatch = onBatch
    }

    public func run() async throws -> Summary {
        let side = try await PostgresConnection.connect(source.connection, name: source.name, applicationName: "tributary replicate")
        try await SourceChecks.requireLogicalDecoding(on: side, source: source)
        let slot = try await side.query(
            "SELECT confirmed_flush_lsn, active_pid FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()",
            [source.slot])
        guard !slot.isEmpty else {
            throw OperatorError("replication slot \"\(source.slot)\" does not exist on \(source.name): run tributary snapshot --source \(source.name) first")
        }
        if let pid = slot.value(0, "active_pid") {
            throw OperatorError("replication slot \"\(source.slot)\" on \(source.name) is in use by process \(pid): another replicator is running for it", kind: .slotInUse)
        }
        let tables = try await SourceCatalog.describe(source.tables, source: source, on: side)
        let directory = "\(workDirectory)/replicate-\(source.name)"
        // Spill and batch files of an earlier run are worthless: the slot replays what they held.
        try? FileManager.default.removeItem(atPath: directory)
        try LocalFiles.makeDirectory(directory + "/batch")
        try LocalFiles.makeDirectory(directory + "/spill")

        let replication = try await PostgresConnection.connect(
            source.connection, name: source.name, mode: .replication, applicationName: "tributary replicate \(source.name)")
        let system = try await replication.simpleQuery("IDENTIFY_SYSTEM")
        // Transactions larger than this reach us streamed before they commit, and go to spill files.
        try await replication.execute("SET logical_decoding_work_mem = '\(max(64, settings.limits.memoryBytesMax >> 10))kB'")
        let start = slot.value(0, "confirmed_flush_lsn").flatMap(LSN.init) ?? .zero
        let publication = SQL.literal(SQL.identifier(source.publication))
        try await replication.startReplication("""
            START_REPLICATION SLOT \(SQL.identifier(source.slot)) LOGICAL \(start) \
            (proto_version '2', publication_names \(publication), messages 'true', streaming 'on')
            """)
        var log = logger
        log[metadataKey: LogKey.slot] = .string(source.slot)
        log.info("replicating", metadata: [LogKey.lsn: .string(start.description),
                                           "system": .string(system.value(0, "systemid") ?? "?"),
                                           "timeline": .string(system.value(0, "timeline") ?? "?")])
        let session = ReplicationSession(
            replicator: self, registry: RelationRegistry(source: source, described: tables, catalog: side, logger: log),
            side: side, directory: directory, durable: start, logger: log)
        let summary = try await replication.runAsync { connection in try await session.run(on: connection) }
        await replication.close()
        await side.close()
        try? FileManager.default.removeItem(atPath: directory)
        return summary
    }
}

/// The state of one replication connection's loop. Lives on that connection's thread.
private final class ReplicationSession: @unchecked Sendable {
    let replicator: Replicator
    let registry: RelationRegistry
    let side: PostgresConnection
    let directory: String
    var logger: Logger

    var decoder = PgOutputDecoder()
    var batch: BatchBuilder
    var summary = Replicator.Summary()
    /// Confirmed to the server: everything up to here is in the staging store.
    var durable: LSN
    var inTransaction = false
    var spills: [UInt32: TransactionSpill] = [:]
    var currentStream: TransactionSpill?
    var lastStatus = ContinuousClock.now
    var lastActivity = ContinuousClock.now
    var heartbeatWarned = false

    init(replicator: Replicator, registry: RelationRegistry, side: PostgresConnection, directory: String, durable: LSN, logger: Logger) {
        self.replicator = replicator
        self.registry = registry
        self.side = side
        self.directory = directory
        self.durable = durable
        self.logger = logger
        batch = BatchBuilder(directory: directory + "/batch", compressionLevel: replicator.settings.compressionLevel)
    }

    var settings: Replicator.Settings { replicator.settings }

    func run(on connection: isolated PostgresConnection) async throws -> Replicator.Summary {
        while true {
            // Stop only between transactions: the batch in hand is closed, made durable and acknowledged.
            if !inTransaction && (replicator.stop.isRequested || reachedEnd) {
                if !batch.isEmpty { try await closeBatch(on: connection) }
                try sendStatus(on: connection)
                logger.info("stopped", metadata: [LogKey.lsn: .string(durable.description)])
                summary.durableLSN = durable
                return summary
            }
            if let bytes = try connection.nextReplicationMessage(timeout: 0.1) {
                try await handle(ReplicationMessage.decode(bytes), on: connection)
                // Drain what is already buffered before looking at timers.
                continue
            }
            try await onIdle(on: connection)
        }
    }

    var reachedEnd: Bool {
        guard let end = settings.endLSN else { return false }
        return durable >= end
    }

    func handle(_ message: ReplicationMessage, on connection: isolated PostgresConnection) async throws {
        switch message {
        case .keepalive(let walEnd, _, let replyRequested):
            // Nothing pending: every commit up to walEnd has been seen and is durable, so it is safe to
            // confirm it; an idle source's slot keeps advancing.
            if batch.isEmpty && !inTransaction && walEnd > durable {
                durable = walEnd
                try sendStatus(on: connection)
            } else if replyRequested {
                try sendStatus(on: connection)
            }
        case .xLogData(let start, _, _, let payload):
            try await handle(try decoder.decode(payload, at: start), payload: payload, on: connection)
        }
    }

    func handle(_ message: PgOutputMessage, payload: [UInt8], on connection: isolated PostgresConnection) async throws {
        switch message {
        case .begin(let begin):
            inTransaction = true
            lastActivity = .now
            batch.begin(commitLSN: begin.finalLSN)
        case .commit(let commit):
            inTransaction = false
            try await committed(commit, on: connection)
        case .relation(let relation) where relation.xid == nil:
            if try await registry.update(relation) { batch.schemaChanged(relationOid: relation.oid) }
        case .insert(nil, let oid, _), .update(nil, let oid, _, _), .delete(nil, let oid, _):
            try append(message, relationOid: oid)
        case .truncate(nil, let oids, _, _):
            for oid in oids { try append(message, relationOid: oid) }
        case .streamStart(let xid, _):
            if spills[xid] == nil { spills[xid] = try TransactionSpill(topTransaction: xid, directory: directory + "/spill") }
            currentStream = spills[xid]
        case .streamStop:
            currentStream = nil
        case .relation(let relation):
            // Inside a stream: the schema this transaction's changes were made under, replayed in
            // order at its commit. Registered now too, so a warning about skipped tables comes early.
            try currentStream?.append(xid: relation.xid!, payload: payload)
            try await registry.update(relation)
        case .insert(let xid?, _, _), .update(let xid?, _, _, _), .delete(let xid?, _, _), .truncate(let xid?, _, _, _):
            guard let spill = currentStream else { throw OperatorError("\(replicator.source.name): a streamed change arrived outside a stream block") }
            try spill.append(xid: xid, payload: payload)
        case .streamCommit(let xid, let commit):
            guard let spill = spills.removeValue(forKey: xid) else {
                throw OperatorError("\(replicator.source.name): stream commit for transaction \(xid), which never streamed")
            }
            batch.begin(commitLSN: commit.commitLSN)
            try await spill.replay { change in
                switch change {
                case .relation(let relation):
                    if try await registry.update(relation) { batch.schemaChanged(relationOid: relation.oid) }
                case .insert(_, let oid, _), .update(_, let oid, _, _), .delete(_, let oid, _):
                    try append(change, relationOid: oid)
                case .truncate(_, let oids, _, _):
                    for oid in oids { try append(change, relationOid: oid) }
                default:
                    break
                }
            }
            spill.discard()
            try await committed(commit, on: connection)
        case .streamAbort(let xid, let subtransaction):
            if xid == subtransaction {
                spills.removeValue(forKey: xid)?.discard()
            } else {
                spills[xid]?.abortSubtransaction(subtransaction)
            }
        case .type, .origin, .message:
            // Types are read from the catalog; heartbeats need no handling beyond their transaction.
            break
        }
    }

    func append(_ message: PgOutputMessage, relationOid oid: UInt32) throws {
        switch registry[oid] {
        case .replicated(let table)?:
            try batch.append(message, relationOid: oid, table: table)
        case .skipped?:
            break
        case nil:
            throw OperatorError("\(replicator.source.name): a change for relation \(oid) arrived before its Relation message")
        }
    }

    func committed(_ commit: PgOutputMessage.Commit, on connection: isolated PostgresConnection) async throws {
        batch.commit(commitLSN: commit.commitLSN, endLSN: commit.endLSN, commitTime: commit.commitTime)
        if shouldClose { try await closeBatch(on: connection) }
    }

    var shouldClose: Bool {
        guard !batch.isEmpty, let opened = batch.openedAt else { return false }
        let age = Int((ContinuousClock.now - opened).seconds * 1000)
        return BatchPolicy(limits: settings.limits).shouldClose(rows: batch.rows, bytes: batch.bytes, ageMilliseconds: age)
            || (settings.endLSN.map { batch.endLSN >= $0 } ?? false)
    }

    func onIdle(on connection: isolated PostgresConnection) async throws {
        if !inTransaction && shouldClose { try await closeBatch(on: connection) }
        if ContinuousClock.now - lastStatus >= .seconds(settings.statusSeconds) { try sendStatus(on: connection) }
        if !inTransaction && batch.isEmpty && ContinuousClock.now - lastActivity >= .seconds(settings.heartbeatSeconds) {
            lastActivity = .now
            // Its own transaction, so it arrives with a commit time: the lag clock's fresh timestamp.
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
    }

    /// Data files, then the manifest, then the acknowledgement: in that order, always.
    func closeBatch(on connection: isolated PostgresConnection) async throws {
        let started = ContinuousClock.now
        let (manifest, files) = try batch.seal(source: replicator.source.name, slot: replicator.source.slot)
        for file in files {
            try await replicator.store.put(key: file.key, file: file.path)
        }
        try await replicator.store.put(key: ObjectNaming.cdcManifest(source: manifest.source, endLSN: manifest.endLSN),
                                       bytes: ManifestCoding.encode(manifest))
        durable = max(durable, manifest.endLSN)
        try sendStatus(on: connection)
        summary.batches += 1
        summary.transactions += manifest.transactions
        summary.rows += manifest.rows
        batch = BatchBuilder(directory: directory + "/batch", compressionLevel: settings.compressionLevel)
        logger.info("batch written", metadata: [
            LogKey.batch: .string(manifest.endLSN.paddedHex), LogKey.lsn: .string(manifest.endLSN.description),
            LogKey.rows: .stringConvertible(manifest.rows), "transactions": .stringConvertible(manifest.transactions),
            LogKey.seconds: .string(String(format: "%.3f", (ContinuousClock.now - started).seconds)),
        ])
        PipelineMetrics.batchWritten(source: manifest.source, rows: manifest.rows, bytes: manifest.files.reduce(0) { $0 + $1.file.bytes })
        await replicator.onBatch(manifest)
    }

    func sendStatus(on connection: isolated PostgresConnection) throws {
        try connection.sendReplicationMessage(ReplicationMessage.standbyStatus(
            durable: durable, clientTime: PostgresTime.microseconds(Date())))
        lastStatus = .now
    }
}
