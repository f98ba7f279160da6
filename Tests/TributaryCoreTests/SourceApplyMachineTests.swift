import Testing
import TributaryCore

/// One source's applier: when it lists, applies, moves over idle stretches and waits, decided
/// without a server or a store.
@Suite struct SourceApplyMachineTests {
    let start = ContinuousClock.now
    func at(_ seconds: Double) -> ContinuousClock.Instant { start + .milliseconds(Int(seconds * 1000)) }

    func machine(poll: Duration = .seconds(5), perStep: Int = 200) -> SourceApplyMachine {
        var settings = SourceApplyMachine.Settings()
        settings.pollInterval = poll
        settings.batchesPerStep = perStep
        return SourceApplyMachine(settings: settings)
    }

    @Test func waitingBatchesAreAppliedAfterTheAppliedPositionAtMostAStepsWorth() {
        var machine = machine(perStep: 200)
        #expect(machine.handle(.position(.init(lockHeld: true, paused: false, applied: LSN(100), flushed: LSN(900))), now: at(0)) == .list(after: LSN(100)))
        #expect(machine.handle(.listed([LSN(200), LSN(300), LSN(400)]), now: at(0)) == .apply(batches: 3))
        _ = machine.handle(.position(.init(lockHeld: true, paused: false, applied: LSN(400), flushed: LSN(9000))), now: at(1))
        #expect(machine.handle(.listed((1...750).map { LSN(UInt64(400 + $0 * 10)) }), now: at(1)) == .apply(batches: 200), "a backlog in steps: a pause is looked at between")
    }

    @Test func nothingStoredButConfirmedHeartbeatsMovesTheAppliedPositionOverTheIdleStretch() {
        var machine = machine()
        _ = machine.handle(.position(.init(lockHeld: true, paused: false, applied: LSN(500), flushed: LSN(800))), now: at(0))
        #expect(machine.handle(.listed([]), now: at(0)) == .advanceOverIdle(from: LSN(500), to: LSN(800)))
        // Caught up: wait for a wake-up call, or list again after the poll interval.
        _ = machine.handle(.position(.init(lockHeld: true, paused: false, applied: LSN(800), flushed: LSN(800))), now: at(1))
        #expect(machine.handle(.listed([]), now: at(1)) == .idle(until: at(6)))
    }

    @Test func aPausedSourceOrOneWithoutASnapshotOrWithoutTheLockIsNotListed() {
        var machine = machine(poll: .seconds(2))
        #expect(machine.handle(.position(.init(lockHeld: true, paused: true, applied: LSN(1), flushed: LSN(9))), now: at(0)) == .idle(until: at(2)))
        #expect(machine.handle(.position(.init(lockHeld: true, paused: false, applied: nil, flushed: LSN(9))), now: at(0)) == .idle(until: at(2)),
                "changes have nothing to apply to before the snapshot")
        #expect(machine.handle(.position(.init(lockHeld: false, paused: false, applied: LSN(1), flushed: LSN(9))), now: at(0)) == .idle(until: at(2)),
                "no source applies without the one-applier lock")
        // A listing with no position read before it decides nothing.
        #expect(machine.handle(.listed([LSN(5)]), now: at(3)) == .idle(until: at(5)))
    }

    @Test func aListingIsAnsweredOnceForThePositionItFollows() {
        var machine = machine()
        _ = machine.handle(.position(.init(lockHeld: true, paused: false, applied: LSN(10), flushed: LSN(20))), now: at(0))
        #expect(machine.handle(.listed([]), now: at(0)) == .advanceOverIdle(from: LSN(10), to: LSN(20)))
        // A second answer without a fresh position must not advance from a stale one.
        #expect(machine.handle(.listed([]), now: at(0)) == .idle(until: at(5)))
    }

    // A verify's hold at S = 1000: STG stops at exactly the transactions that committed before it.

    func held(_ machine: inout SourceApplyMachine, applied: UInt64, flushed: UInt64, held: UInt64? = nil) -> SourceApplyMachine.Action {
        machine.handle(.position(.init(lockHeld: true, paused: false, applied: LSN(applied), flushed: LSN(flushed), hold: LSN(1000),
                                       held: held.map(LSN.init))), now: at(0))
    }

    @Test func underAHoldOnlyBatchesEndingAtOrBeforeItApplyWhole() {
        var machine = machine()
        #expect(held(&machine, applied: 100, flushed: 3000) == .list(after: LSN(100)))
        #expect(machine.handle(.listed([LSN(400), LSN(1000), LSN(1400), LSN(2000)]), now: at(0)) == .apply(batches: 2))
    }

    @Test func theBatchAcrossTheHoldAppliesItsChangesBeforeItThenTheApplierWaits() {
        var machine = machine()
        _ = held(&machine, applied: 1000 - 1, flushed: 3000)
        #expect(machine.handle(.listed([LSN(1400), LSN(2000)]), now: at(0)) == .applyBefore(hold: LSN(1000)))
        // Said once: then nothing applies past the hold, however much is stored.
        _ = held(&machine, applied: 999, flushed: 3000, held: 1000)
        #expect(machine.handle(.listed([LSN(1400), LSN(2000)]), now: at(0)) == .idle(until: at(5)))
    }

    @Test func theHoldIsReachedAtOnceWhenTheAppliedPositionIsPastItOrWhenNothingBeforeItIsStillToCome() {
        var machine = machine()
        #expect(held(&machine, applied: 1200, flushed: 1200) == .holdReached(LSN(1000)))
        #expect(held(&machine, applied: 1200, flushed: 1200, held: 1000) == .idle(until: at(5)))
        // Nothing stored after 800, and the replicator confirmed past the hold: idle heartbeats.
        _ = held(&machine, applied: 800, flushed: 1100)
        #expect(machine.handle(.listed([]), now: at(0)) == .advanceOverIdle(from: LSN(800), to: LSN(1100)))
        // Not confirmed past it yet: a transaction before it may still come. The confirmation
        // (a keepalive's, no NOTIFY) is looked for again soon, not at the 5 s poll: a verify waits.
        _ = held(&machine, applied: 800, flushed: 900)
        #expect(machine.handle(.listed([]), now: at(0)) == .idle(until: at(0) + .milliseconds(100)))
    }

    @Test func withoutAHoldTheBatchesAfterAnOldPointApplyAsUsual() {
        var machine = machine()
        _ = machine.handle(.position(.init(lockHeld: true, paused: false, applied: LSN(999), flushed: LSN(3000), hold: nil, held: nil)), now: at(0))
        #expect(machine.handle(.listed([LSN(1400), LSN(2000)]), now: at(0)) == .apply(batches: 2))
    }
}
