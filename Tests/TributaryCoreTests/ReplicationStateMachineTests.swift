import Testing
@testable import TributaryCore
import TributaryTestSupport

/// The replicator's rules, pinned without a server: when a batch closes, what may be acknowledged,
/// what a keepalive confirms, what an abort drops.
@Suite struct ReplicationStateMachineTests {
    typealias Machine = ReplicationStateMachine
    let start = ContinuousClock.now

    func machine(rows: Int = 1000, ageMilliseconds: Int = 500, endLSN: LSN? = nil, durable: LSN = LSN(100)) -> Machine {
        var limits = BatchLimits()
        limits.rowsMax = rows
        limits.bytesMax = 1 << 20
        limits.ageMax = .milliseconds(ageMilliseconds)
        return Machine(settings: .init(limits: limits, heartbeatInterval: .seconds(10), statusInterval: .seconds(10), endLSN: endLSN),
                       durable: durable, now: start)
    }

    func at(_ milliseconds: Int) -> ContinuousClock.Instant { start + .milliseconds(milliseconds) }

    static func begin(_ lsn: UInt64) -> PgOutputMessage { .begin(.init(finalLSN: LSN(lsn), commitTime: 0, xid: 7)) }
    static func commit(_ lsn: UInt64) -> PgOutputMessage {
        .commit(.init(flags: 0, commitLSN: LSN(lsn), endLSN: LSN(lsn + 8), commitTime: 0))
    }
    static let insert = PgOutputMessage.insert(xid: nil, relation: 1, new: [.text(ByteSlice(copying: "1".utf8))])

    /// One whole transaction at `lsn` with `rows` rows in the batch afterwards.
    func transaction(_ machine: inout Machine, _ lsn: UInt64, rows: Int, at time: Int) throws -> [Machine.Action] {
        var actions = try machine.handle(.message(Self.begin(lsn)), now: at(time))
        actions += try machine.handle(.message(Self.insert), now: at(time))
        actions += try machine.handle(.message(Self.commit(lsn)), now: at(time))
        actions += try machine.handle(.batchSize(rows: rows, bytes: rows * 10), now: at(time))
        return actions
    }

    func flushed(_ actions: [Machine.Action]) -> [LSN] {
        actions.compactMap { if case .sendStatus(let lsn) = $0 { lsn } else { nil } }
    }

    @Test func aBatchClosesOnlyBetweenTransactions() throws {
        var machine = machine(ageMilliseconds: 500)
        _ = try machine.handle(.message(Self.begin(200)), now: at(0))
        // Long past the age limit, but inside a transaction: no cut, whatever arrives.
        for event in [Machine.Event.message(Self.insert), .idle, .keepalive(walEnd: LSN(150), replyRequested: true), .idle] {
            #expect(!(try machine.handle(event, now: at(5_000))).contains(.closeBatch))
        }
        let atCommit = try machine.handle(.message(Self.commit(200)), now: at(5_000))
        #expect(atCommit.contains(.commitTransaction(.init(flags: 0, commitLSN: LSN(200), endLSN: LSN(208), commitTime: 0))))
        #expect(atCommit.contains(.closeBatch))
    }

    /// In the middle of a long step (a replay, a batch going to the store) only a status update
    /// may happen, once per status interval, with the position already durable: no batch is
    /// closed (a replay is inside a transaction even between its messages), no heartbeat sent.
    @Test func aLongStepOnlySendsTheDurablePositionWhenAStatusIsDue() throws {
        var machine = machine(ageMilliseconds: 500)
        _ = try transaction(&machine, 200, rows: 1, at: 0)
        #expect(try machine.handle(.busy, now: at(9_000)) == [], "no status before its interval")
        #expect(try machine.handle(.busy, now: at(10_000)) == [.sendStatus(flushed: LSN(100))])
        #expect(try machine.handle(.busy, now: at(15_000)) == [], "the interval starts again")
        #expect(try machine.handle(.busy, now: at(20_000)) == [.sendStatus(flushed: LSN(100))])
        #expect(machine.hasOpenBatch, "the batch, long past its age limit, is left to the next event between transactions")
        #expect(try machine.handle(.idle, now: at(20_000)).contains(.closeBatch))
    }

    @Test(arguments: ["rows", "bytes", "age"])
    func aBatchClosesAtEachLimit(_ limit: String) throws {
        var limits = BatchLimits()
        limits.rowsMax = 10
        limits.bytesMax = 1000
        limits.ageMax = .milliseconds(500)
        var machine = Machine(settings: .init(limits: limits, heartbeatInterval: .seconds(60), statusInterval: .seconds(60)),
                              durable: LSN(100), now: start)
        _ = try transaction(&machine, 200, rows: 1, at: 0)
        _ = try machine.handle(.message(Self.begin(300)), now: at(10))
        _ = try machine.handle(.message(Self.commit(300)), now: at(10))
        let (rows, bytes, time) = switch limit {
        case "rows": (10, 100, 20)
        case "bytes": (2, 1000, 20)
        default: (2, 100, 600)
        }
        let below = try machine.handle(.batchSize(rows: rows - (limit == "rows" ? 1 : 0), bytes: bytes - (limit == "bytes" ? 1 : 0)),
                                       now: at(limit == "age" ? 400 : time))
        #expect(!below.contains(.closeBatch), "below the \(limit) limit")
        #expect(try machine.handle(.batchSize(rows: rows, bytes: bytes), now: at(time)).contains(.closeBatch), "at the \(limit) limit")
    }

    @Test func theFlushedPositionNeverPassesTheLastStoredManifest() throws {
        var machine = machine(ageMilliseconds: 10_000)
        _ = try transaction(&machine, 200, rows: 1, at: 0)
        // The server is far ahead and asks for a reply: the answer is the old position.
        let reply = try machine.handle(.keepalive(walEnd: LSN(900), replyRequested: true), now: at(10))
        #expect(flushed(reply) == [LSN(100)])
        #expect(reply.contains(.closeBatch), "the server waits for us: the open batch closes now")
        // Not even the batch's own end is acknowledged before its manifest is stored.
        let stored = try machine.handle(.batchStored(endLSN: LSN(208)), now: at(20))
        #expect(flushed(stored) == [LSN(208)])
        #expect(machine.durable == LSN(208))
    }

    @Test func aKeepaliveIsConfirmedOnlyWhenNothingIsPending() throws {
        var machine = machine(ageMilliseconds: 10_000)
        // Idle: confirmed at once.
        #expect(flushed(try machine.handle(.keepalive(walEnd: LSN(150), replyRequested: false), now: at(0))) == [LSN(150)])
        // Inside a transaction: the WAL end may lie past its commit, which is not stored yet.
        _ = try machine.handle(.message(Self.begin(300)), now: at(1))
        _ = try machine.handle(.message(Self.insert), now: at(1))
        #expect(flushed(try machine.handle(.keepalive(walEnd: LSN(400), replyRequested: false), now: at(2))).isEmpty)
        #expect(flushed(try machine.handle(.keepalive(walEnd: LSN(400), replyRequested: true), now: at(3))) == [LSN(150)])
        // Committed but not stored: still pending.
        _ = try machine.handle(.message(Self.commit(300)), now: at(4))
        _ = try machine.handle(.batchSize(rows: 1, bytes: 10), now: at(4))
        #expect(flushed(try machine.handle(.keepalive(walEnd: LSN(500), replyRequested: false), now: at(5))).isEmpty)
        #expect(machine.durable == LSN(150))
    }

    @Test func aFastShutdownsKeepalivesCloseAnAgedBatchAndAreThenConfirmed() throws {
        // A walsender shutting down sends nothing but keepalives asking for a reply, and exits once
        // the flushed position reaches its WAL end. The batch must close although the server never
        // goes quiet, and the WAL end must then be confirmed.
        var machine = machine(ageMilliseconds: 500)
        _ = try transaction(&machine, 200, rows: 1, at: 0)
        var closed = false
        for step in 1...20 {
            let actions = try machine.handle(.keepalive(walEnd: LSN(1000), replyRequested: true), now: at(step * 100))
            if actions.contains(.closeBatch) {
                closed = true
                _ = try machine.handle(.batchStored(endLSN: LSN(208)), now: at(step * 100))
                break
            }
        }
        #expect(closed)
        #expect(flushed(try machine.handle(.keepalive(walEnd: LSN(1000), replyRequested: true), now: at(3000))) == [LSN(1000)])
    }

    @Test func anAgedBatchClosesWhileMessagesKeepArriving() throws {
        // Other databases' traffic: the server keeps sending (non-replying) keepalives, never idle.
        var machine = machine(ageMilliseconds: 500)
        _ = try transaction(&machine, 200, rows: 1, at: 0)
        #expect(!(try machine.handle(.keepalive(walEnd: LSN(300), replyRequested: false), now: at(100))).contains(.closeBatch))
        #expect(try machine.handle(.keepalive(walEnd: LSN(300), replyRequested: false), now: at(600)).contains(.closeBatch))
    }

    @Test func aStreamedAbortDropsOnlyItsSubtransaction() throws {
        var machine = machine()
        let change = PgOutputMessage.insert(xid: 42, relation: 1, new: [.null])
        _ = try machine.handle(.message(.streamStart(xid: 41, firstSegment: true)), now: at(0))
        #expect(try machine.handle(.message(change), now: at(0)).contains(.spill(topTransaction: 41, subtransaction: 42)))
        _ = try machine.handle(.message(.streamStop), now: at(0))
        #expect(try machine.handle(.message(.streamAbort(xid: 41, subtransaction: 42)), now: at(1))
            .contains(.abortSubtransaction(xid: 41, subtransaction: 42)))
        // The top transaction goes on and commits: its spill is replayed, not dropped.
        let commit = PgOutputMessage.Commit(flags: 0, commitLSN: LSN(500), endLSN: LSN(508), commitTime: 0)
        let committed = try machine.handle(.message(.streamCommit(xid: 41, commit: commit)), now: at(2))
        let expected: [Machine.Action] = [.beginTransaction(commitLSN: LSN(500)), .replayStream(xid: 41), .commitTransaction(commit)]
        #expect(Array(committed.prefix(3)) == expected)
        // A whole abort drops the whole spill.
        _ = try machine.handle(.message(.streamStart(xid: 50, firstSegment: true)), now: at(3))
        _ = try machine.handle(.message(.streamStop), now: at(3))
        #expect(try machine.handle(.message(.streamAbort(xid: 50, subtransaction: 50)), now: at(4)).contains(.dropStream(xid: 50)))
        #expect(throws: ReplicationStateMachine.ProtocolViolation.self) {
            try machine.handle(.message(.streamCommit(xid: 50, commit: commit)), now: at(5))
        }
    }

    @Test func aStopWaitsForTheTransactionThenStoresAcknowledgesAndFinishes() throws {
        var machine = machine(ageMilliseconds: 10_000)
        _ = try machine.handle(.message(Self.begin(200)), now: at(0))
        let stop = try machine.handle(.stopRequested, now: at(1))
        #expect(!stop.contains(.closeBatch) && !machine.isFinished)
        _ = try machine.handle(.message(Self.insert), now: at(2))
        #expect(try machine.handle(.message(Self.commit(200)), now: at(3)).contains(.closeBatch))
        let stored = try machine.handle(.batchStored(endLSN: LSN(208)), now: at(4))
        #expect(stored.contains(.finish(durable: LSN(208))))
        #expect(flushed(stored).last == LSN(208))
        #expect(machine.isFinished)
    }

    @Test func itFinishesAtTheEndLSN() throws {
        var machine = machine(ageMilliseconds: 10_000, endLSN: LSN(200))
        // The batch reaching the end closes at once; once stored, the machine finishes.
        #expect(try transaction(&machine, 196, rows: 1, at: 0).contains(.closeBatch))
        #expect(try machine.handle(.batchStored(endLSN: LSN(204)), now: at(1)).contains(.finish(durable: LSN(204))))
        // An idle source: a keepalive past the end finishes it.
        var idle = self.machine(endLSN: LSN(200))
        #expect(try idle.handle(.keepalive(walEnd: LSN(250), replyRequested: false), now: at(0)).contains(.finish(durable: LSN(250))))
    }

    /// A table dropped on the source is noticed at some position: the replicator stores every
    /// change before it, then stops, never earlier than an end it had already.
    @Test func aStopPositionGivenMidStreamEndsTheStreamOnceEverythingBeforeItIsStored() throws {
        var machine = machine(ageMilliseconds: 10_000)
        _ = try transaction(&machine, 150, rows: 1, at: 0)
        #expect(try machine.handle(.stopAt(LSN(300)), now: at(1)).isEmpty, "the open batch waits: the stop lies ahead")
        #expect(machine.endLSN == LSN(300))
        #expect(try transaction(&machine, 296, rows: 2, at: 2).contains(.closeBatch), "the batch reaching it closes at once")
        let stored = try machine.handle(.batchStored(endLSN: LSN(304)), now: at(3))
        #expect(stored.contains(.finish(durable: LSN(304))) && machine.isFinished)

        var ending = self.machine(endLSN: LSN(200))
        _ = try ending.handle(.stopAt(LSN(400)), now: at(0))
        #expect(ending.endLSN == LSN(200), "an earlier end stays")
    }

    @Test func aHeartbeatWithNothingPendingStoresNothingAndIsConfirmed() throws {
        var machine = machine(ageMilliseconds: 500)
        _ = try machine.handle(.message(Self.begin(300)), now: at(0))
        let committed = try machine.handle(.message(Self.commit(300)), now: at(0))
        #expect(committed.contains(.idleCommit(.init(flags: 0, commitLSN: LSN(300), endLSN: LSN(308), commitTime: 0))))
        #expect(flushed(committed) == [LSN(308)] && machine.durable == LSN(308) && !machine.hasOpenBatch)
        #expect(!(try machine.handle(.idle, now: at(5_000))).contains(.closeBatch), "no empty batch, ever")
        // Beside an open batch it is one more transaction of the batch.
        _ = try transaction(&machine, 400, rows: 1, at: 6_000)
        _ = try machine.handle(.message(Self.begin(500)), now: at(6_000))
        #expect(try machine.handle(.message(Self.commit(500)), now: at(6_000))
            .contains(.commitTransaction(.init(flags: 0, commitLSN: LSN(500), endLSN: LSN(508), commitTime: 0))))
    }

    @Test func heartbeatsOnlyWhenIdleAndStatusUpdatesOnTime() throws {
        var machine = machine(ageMilliseconds: 60_000)
        #expect(!(try machine.handle(.idle, now: at(9_000))).contains(.emitHeartbeat))
        #expect(try machine.handle(.idle, now: at(10_000)).contains(.emitHeartbeat))
        // A batch waiting to close is activity enough: no heartbeat beside it.
        _ = try transaction(&machine, 300, rows: 1, at: 11_000)
        #expect(!(try machine.handle(.idle, now: at(25_000))).contains(.emitHeartbeat))
        var quiet = self.machine()
        #expect(flushed(try quiet.handle(.idle, now: at(5_000))).isEmpty)
        #expect(flushed(try quiet.handle(.idle, now: at(10_000))) == [LSN(100)])
    }

    /// Seeded random event sequences: whatever happens, a batch never closes inside a transaction,
    /// and no position is acknowledged beyond what was stored or confirmed idle.
    @Test func randomEventsKeepTheAcknowledgementRule() throws {
        let seed = UInt64.random(in: 1...UInt64.max)
        print("ReplicationStateMachine random seed \(seed)")
        var generator = SeededGenerator(seed: seed)
        var machine = machine(rows: 5, ageMilliseconds: 300)
        var time = 0, lsn: UInt64 = 200
        var inTransaction = false, closing = false, changes = 0
        var safe = LSN(100)
        for _ in 0..<5_000 where !machine.isFinished {
            time += Int.random(in: 0...120, using: &generator)
            var event: Machine.Event
            switch Int.random(in: 0..<10, using: &generator) {
            case 0..<3 where !closing:
                lsn += 16
                event = .message(inTransaction ? Self.commit(lsn) : Self.begin(lsn))
            case 3 where inTransaction: event = .message(Self.insert)
            case 4..<6: event = .keepalive(walEnd: LSN(lsn + UInt64.random(in: 0...64, using: &generator)), replyRequested: Bool.random(using: &generator))
            case 6 where closing: event = .batchStored(endLSN: machine.durable < LSN(lsn) ? LSN(lsn + 8) : machine.durable)
            case 7: event = .batchSize(rows: Int.random(in: 0...6, using: &generator), bytes: 10)
            case 8 where Int.random(in: 0..<200, using: &generator) == 0: event = .stopRequested
            default: event = .idle
            }
            if case .message(.begin) = event { inTransaction = true; changes = 0 }
            if case .message(.insert) = event { changes += 1 }
            // A transaction without a change, nothing else pending: nothing to store, its end confirmed.
            if case .message(.commit(let commit)) = event, changes == 0, !closing, !machine.hasOpenBatch { safe = max(safe, commit.endLSN) }
            if case .message(.commit) = event { inTransaction = false }
            if case .batchStored(let end) = event { closing = false; safe = max(safe, end) }
            // What the machine may confirm from an idle keepalive: its WAL end, if nothing was pending.
            let pendingBefore = inTransaction || closing || machine.hasOpenBatch
            if case .keepalive(let walEnd, _) = event, !pendingBefore { safe = max(safe, walEnd) }
            let actions = try machine.handle(event, now: at(time))
            if actions.contains(.closeBatch) {
                #expect(!inTransaction, "seed \(seed): a batch closed inside a transaction")
                closing = true
            }
            for position in flushed(actions) { #expect(position <= safe, "seed \(seed): acknowledged \(position) past \(safe)") }
        }
    }
}

@Suite struct SlotContinuityTests {
    @Test func aSlotConfirmedPastEverythingTributaryKnowsIsNotItsOwn() {
        let known = LSN(0x3000)
        #expect(SlotContinuity.isContinuous(confirmed: LSN(0x3000), known: known), "confirmed exactly where tributary confirmed")
        #expect(SlotContinuity.isContinuous(confirmed: LSN(0x2000), known: known), "behind: replayed from there, harmless")
        #expect(!SlotContinuity.isContinuous(confirmed: LSN(0x3001), known: known), "past it: made anew or consumed by another")
        #expect(SlotContinuity.isContinuous(confirmed: LSN(0x9000), known: nil), "nothing known yet: nothing to compare")
        #expect(SlotContinuity.isContinuous(confirmed: nil, known: known))
        #expect(SlotContinuity.problem(slot: "s", source: "qvp", confirmed: LSN(0x3001), known: known).contains("not in STG"))
    }
}
