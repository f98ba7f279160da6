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
        #expect(machine.handle(.position(lockHeld: true, paused: false, applied: LSN(100), flushed: LSN(900)), now: at(0)) == .list(after: LSN(100)))
        #expect(machine.handle(.listed(waiting: 3), now: at(0)) == .apply(batches: 3))
        _ = machine.handle(.position(lockHeld: true, paused: false, applied: LSN(400), flushed: LSN(9000)), now: at(1))
        #expect(machine.handle(.listed(waiting: 750), now: at(1)) == .apply(batches: 200), "a backlog in steps: a pause is looked at between")
    }

    @Test func nothingStoredButConfirmedHeartbeatsMovesTheAppliedPositionOverTheIdleStretch() {
        var machine = machine()
        _ = machine.handle(.position(lockHeld: true, paused: false, applied: LSN(500), flushed: LSN(800)), now: at(0))
        #expect(machine.handle(.listed(waiting: 0), now: at(0)) == .advanceOverIdle(from: LSN(500), to: LSN(800)))
        // Caught up: wait for a wake-up call, or list again after the poll interval.
        _ = machine.handle(.position(lockHeld: true, paused: false, applied: LSN(800), flushed: LSN(800)), now: at(1))
        #expect(machine.handle(.listed(waiting: 0), now: at(1)) == .idle(until: at(6)))
    }

    @Test func aPausedSourceOrOneWithoutASnapshotOrWithoutTheLockIsNotListed() {
        var machine = machine(poll: .seconds(2))
        #expect(machine.handle(.position(lockHeld: true, paused: true, applied: LSN(1), flushed: LSN(9)), now: at(0)) == .idle(until: at(2)))
        #expect(machine.handle(.position(lockHeld: true, paused: false, applied: nil, flushed: LSN(9)), now: at(0)) == .idle(until: at(2)),
                "changes have nothing to apply to before the snapshot")
        #expect(machine.handle(.position(lockHeld: false, paused: false, applied: LSN(1), flushed: LSN(9)), now: at(0)) == .idle(until: at(2)),
                "no source applies without the one-applier lock")
        // A listing with no position read before it decides nothing.
        #expect(machine.handle(.listed(waiting: 4), now: at(3)) == .idle(until: at(5)))
    }

    @Test func aListingIsAnsweredOnceForThePositionItFollows() {
        var machine = machine()
        _ = machine.handle(.position(lockHeld: true, paused: false, applied: LSN(10), flushed: LSN(20)), now: at(0))
        #expect(machine.handle(.listed(waiting: 0), now: at(0)) == .advanceOverIdle(from: LSN(10), to: LSN(20)))
        // A second answer without a fresh position must not advance from a stale one.
        #expect(machine.handle(.listed(waiting: 0), now: at(0)) == .idle(until: at(5)))
    }
}
