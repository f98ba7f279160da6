/// Every decision of a replicator (DESIGN.md §2), as a value: events in, actions out. The session
/// that owns the replication connection performs the actions (files, uploads, messages to the
/// server) and reports their outcome as events; nothing here touches a socket, a file or a clock,
/// so the rules that keep the pipeline from losing a row are unit-tested without a server:
///
/// - a batch closes only between transactions, once it reaches its row, byte or age limit, when a
///   stop or the end LSN is reached, or when the server waits for our position (a fast shutdown
///   waits for exactly that);
/// - the position reported as flushed only moves to the end of a batch whose manifest is stored,
///   or to a keepalive's WAL end while nothing is pending;
/// - timers (batch age, status updates, heartbeats) are looked at after every event, not only when
///   the server is quiet: a server that keeps talking (as a shutting-down walsender does) must not
///   keep a batch open for ever;
/// - a streamed transaction's abort drops only the subtransaction it names.
public struct ReplicationStateMachine: Sendable {
    public typealias Instant = ContinuousClock.Instant

    public struct Settings: Sendable {
        public var limits: BatchLimits
        /// While the source is idle, a heartbeat is emitted this often.
        public var heartbeatInterval: Duration
        /// A standby status update goes out at least this often (well inside wal_sender_timeout).
        public var statusInterval: Duration
        /// Finish once everything up to here is durable; nil runs until a stop.
        public var endLSN: LSN?

        public init(limits: BatchLimits, heartbeatInterval: Duration, statusInterval: Duration, endLSN: LSN? = nil) {
            self.limits = limits
            self.heartbeatInterval = heartbeatInterval
            self.statusInterval = statusInterval
            self.endLSN = endLSN
        }
    }

    public enum Event: Sendable, Equatable {
        /// A decoded pgoutput message (the payload of an XLogData message).
        case message(PgOutputMessage)
        /// The server's keepalive: everything before `walEnd` has been sent.
        case keepalive(walEnd: LSN, replyRequested: Bool)
        /// Nothing arrived within the poll interval.
        case idle
        /// After a `commitTransaction`: what the open batch holds now.
        case batchSize(rows: Int, bytes: Int)
        /// The batch a `closeBatch` asked for is stored, data files first, manifest last.
        case batchStored(endLSN: LSN)
        /// A signal, the operator or the control state asks for a stop at the next safe point.
        case stopRequested
        /// Stop once everything before `lsn` is stored (a configured table was dropped on the
        /// source: its last changes come before the position where that was noticed).
        case stopAt(LSN)
        /// A long step is under way and the stream is not read meanwhile: a streamed transaction's
        /// replay, a batch going to the store. The server hears from the replicator only through
        /// status updates, and ends the connection after `wal_sender_timeout` (60 s by default)
        /// without one; the step then starts over on the next connection, as slowly, for ever.
        /// Only a status update, when due, answers it: nothing else may happen in the middle of a step.
        case busy
    }

    public enum Action: Sendable, Equatable {
        /// A transaction begins; its rows carry `commitLSN`.
        case beginTransaction(commitLSN: LSN)
        /// An insert, update, delete or truncate of the open transaction goes into the batch (or
        /// the DDL event trigger's announcement is taken in, at its place).
        case append(PgOutputMessage)
        /// A relation's schema. `outsideStream`: when it differs from the one known, the table's
        /// next rows start a new segment of the batch.
        case registerRelation(PgOutputMessage.Relation, outsideStream: Bool)
        /// The current message's payload goes to the spill of streamed transaction `topTransaction`.
        case spill(topTransaction: UInt32, subtransaction: UInt32)
        /// A committed streamed transaction: its spilled changes go into the batch, in order.
        case replayStream(xid: UInt32)
        /// A streamed transaction aborted as a whole: its spill goes.
        case dropStream(xid: UInt32)
        /// Only this subtransaction of a streamed transaction aborted: its changes are skipped at replay.
        case abortSubtransaction(xid: UInt32, subtransaction: UInt32)
        case commitTransaction(PgOutputMessage.Commit)
        /// A transaction with no change (a heartbeat) committed while no batch is pending: nothing to
        /// store; its end is confirmed like a keepalive's, and its commit time keeps the lag clock fresh.
        case idleCommit(PgOutputMessage.Commit)
        /// Seal the batch, store its data files, then its manifest; report `batchStored`.
        case closeBatch
        /// A standby status update: written = flushed = applied = `flushed`.
        case sendStatus(flushed: LSN)
        /// Emit a heartbeat transaction on the source (the source is idle).
        case emitHeartbeat
        /// Stopped: everything up to `durable` is stored and acknowledged.
        case finish(durable: LSN)
    }

    public struct ProtocolViolation: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// The batch being built: whole transactions only.
    struct OpenBatch: Equatable {
        var transactions = 0
        var rows = 0
        var bytes = 0
        var openedAt: Instant?
        var endLSN = LSN.zero
    }

    public let settings: Settings
    /// Acknowledged to the server: everything before it is in the staging store.
    public private(set) var durable: LSN
    public private(set) var isFinished = false
    /// Where the stream ends: the settings' end, or an earlier one a `stopAt` set.
    public private(set) var endLSN: LSN?
    var batch = OpenBatch()
    var inTransaction = false
    /// A `closeBatch` is out and its `batchStored` has not come back.
    var closing = false
    var stopRequested = false
    /// The server asked for a reply while a batch was open: close it at the next boundary.
    var serverWaiting = false
    var streams: Set<UInt32> = []
    /// Changes in the transaction being received (outside streams).
    var changesInTransaction = 0
    var currentStream: UInt32?
    var lastStatus: Instant
    var lastActivity: Instant

    public init(settings: Settings, durable: LSN, now: Instant) {
        self.settings = settings
        self.durable = durable
        endLSN = settings.endLSN
        lastStatus = now
        lastActivity = now
    }

    /// Whether committed transactions wait in a batch that is not stored yet.
    public var hasOpenBatch: Bool { batch.transactions > 0 }

    /// Between transactions, with no batch on its way to the store.
    var atBoundary: Bool { !inTransaction && !closing }

    public mutating func handle(_ event: Event, now: Instant) throws -> [Action] {
        guard !isFinished else { return [] }
        if case .busy = event {
            return now - lastStatus >= settings.statusInterval ? [status(now)] : []
        }
        var actions: [Action] = []
        switch event {
        case .message(let message):
            actions = try receive(message, now: now)
        case .keepalive(let walEnd, let replyRequested):
            if batch.transactions == 0 && atBoundary && walEnd > durable {
                // Nothing pending: every commit before walEnd has been seen and is stored, so the
                // position is safe to confirm and an idle slot advances without writing anything.
                durable = walEnd
                actions.append(status(now))
            } else if replyRequested {
                actions.append(status(now))
                if batch.transactions > 0 { serverWaiting = true }
            }
        case .idle:
            break
        case .batchSize(let rows, let bytes):
            batch.rows = rows
            batch.bytes = bytes
        case .batchStored(let endLSN):
            guard closing else { throw ProtocolViolation(description: "a batch was stored that was never closed") }
            closing = false
            durable = max(durable, endLSN)
            batch = OpenBatch()
            serverWaiting = false
            actions.append(status(now))
        case .stopRequested:
            stopRequested = true
        case .stopAt(let lsn):
            endLSN = min(endLSN ?? lsn, lsn)
        case .busy:
            break
        }
        timers(now: now, into: &actions)
        return actions
    }

    private mutating func receive(_ message: PgOutputMessage, now: Instant) throws -> [Action] {
        switch message {
        case .begin(let begin):
            guard !inTransaction else { throw ProtocolViolation(description: "BEGIN inside a transaction") }
            opened(now)
            return [.beginTransaction(commitLSN: begin.finalLSN)]
        case .commit(let commit):
            guard inTransaction else { throw ProtocolViolation(description: "COMMIT outside a transaction") }
            inTransaction = false
            if changesInTransaction == 0 && batch.transactions == 0 && !closing {
                // Nothing to store: an idle source writes no object, its slot still advances.
                durable = max(durable, commit.endLSN)
                batch.openedAt = nil
                return [.idleCommit(commit), status(now)]
            }
            return [committed(commit)]
        case .relation(let relation) where relation.xid == nil:
            return [.registerRelation(relation, outsideStream: true)]
        case .insert(nil, _, _), .update(nil, _, _, _), .delete(nil, _, _), .truncate(nil, _, _, _):
            guard inTransaction else { throw ProtocolViolation(description: "a change arrived outside a transaction") }
            changesInTransaction += 1
            return [.append(message)]
        case .streamStart(let xid, _):
            streams.insert(xid)
            currentStream = xid
            return []
        case .streamStop:
            currentStream = nil
            return []
        case .relation(let relation):
            guard let top = currentStream, let xid = relation.xid else { throw outsideStream }
            // Registered now as well, so a warning about a skipped table comes early.
            return [.spill(topTransaction: top, subtransaction: xid), .registerRelation(relation, outsideStream: false)]
        case .insert(let xid?, _, _), .update(let xid?, _, _, _), .delete(let xid?, _, _), .truncate(let xid?, _, _, _):
            guard let top = currentStream else { throw outsideStream }
            return [.spill(topTransaction: top, subtransaction: xid)]
        case .streamCommit(let xid, let commit):
            guard streams.remove(xid) != nil else {
                throw ProtocolViolation(description: "stream commit for transaction \(xid), which never streamed")
            }
            opened(now)
            inTransaction = false
            return [.beginTransaction(commitLSN: commit.commitLSN), .replayStream(xid: xid), committed(commit)]
        case .streamAbort(let xid, let subtransaction):
            guard xid != subtransaction else {
                streams.remove(xid)
                return [.dropStream(xid: xid)]
            }
            return [.abortSubtransaction(xid: xid, subtransaction: subtransaction)]
        case .message(nil, true, _, DDLAnnouncement.prefix, _):
            // The DDL event trigger's: in the transaction, in order with its changes.
            guard inTransaction else { throw ProtocolViolation(description: "a transactional message arrived outside a transaction") }
            return [.append(message)]
        case .message(let xid?, true, _, DDLAnnouncement.prefix, _):
            guard let top = currentStream else { throw outsideStream }
            return [.spill(topTransaction: top, subtransaction: xid)]
        case .type, .origin, .message:
            // Types are read from the catalog; a heartbeat needs nothing beyond its transaction.
            return []
        }
    }

    private var outsideStream: ProtocolViolation {
        ProtocolViolation(description: "a streamed change arrived outside a stream block")
    }

    private mutating func opened(_ now: Instant) {
        inTransaction = true
        changesInTransaction = 0
        lastActivity = now
        if batch.openedAt == nil { batch.openedAt = now }
    }

    private mutating func committed(_ commit: PgOutputMessage.Commit) -> Action {
        batch.transactions += 1
        batch.endLSN = commit.endLSN
        return .commitTransaction(commit)
    }

    private mutating func status(_ now: Instant) -> Action {
        lastStatus = now
        return .sendStatus(flushed: durable)
    }

    private var endReached: Bool { endLSN.map { durable >= $0 } ?? false }

    /// What is due now, whatever the event was.
    private mutating func timers(now: Instant, into actions: inout [Action]) {
        if atBoundary && batch.transactions > 0 && shouldClose(now: now) {
            closing = true
            actions.append(.closeBatch)
        } else if atBoundary && batch.transactions == 0 {
            if stopRequested || endReached {
                isFinished = true
                actions += [status(now), .finish(durable: durable)]
                return
            }
            if now - lastActivity >= settings.heartbeatInterval {
                lastActivity = now
                actions.append(.emitHeartbeat)
            }
        }
        if now - lastStatus >= settings.statusInterval { actions.append(status(now)) }
    }

    private func shouldClose(now: Instant) -> Bool {
        let age = batch.openedAt.map { now - $0 } ?? .zero
        return BatchPolicy(limits: settings.limits).shouldClose(rows: batch.rows, bytes: batch.bytes, age: age)
            || stopRequested || serverWaiting
            || endLSN.map { batch.endLSN >= $0 } ?? false
    }
}
