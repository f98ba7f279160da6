import Testing
import TributaryCore

/// What a part's supervisor does after a failed step, and which failures the replicator's and the
/// applier's supervisors wait out: decided without a server, at instants the test chooses.
@Suite struct SupervisionTests {
    let start = ContinuousClock.now
    func at(_ seconds: Double) -> ContinuousClock.Instant { start + .milliseconds(Int(seconds * 1000)) }

    @Test func temporaryFailuresWaitLongerEachTimeUntilAStepSucceeds() {
        var policy = SupervisionPolicy(backoff: Backoff(initial: .milliseconds(500), maximum: .seconds(4)))
        let delays = (0..<6).map { index in policy.failed(.temporary, started: at(Double(index)), now: at(Double(index) + 0.1)) }
        #expect(delays == [.retry(after: .milliseconds(500)), .retry(after: .seconds(1)), .retry(after: .seconds(2)),
                           .retry(after: .seconds(4)), .retry(after: .seconds(4)), .retry(after: .seconds(4))])
        #expect(policy.failures == 6)
        policy.succeeded()
        #expect(policy.failures == 0)
        #expect(policy.failed(.temporary, started: at(10), now: at(10.1)) == .retry(after: .milliseconds(500)))
    }

    @Test func aStepThatWorkedForAWhileBeforeFailingStartsItsWaitsAfresh() {
        var policy = SupervisionPolicy(backoff: Backoff(initial: .seconds(1), maximum: .seconds(30)), freshAfter: .seconds(30))
        for second in 0..<4 { _ = policy.failed(.temporary, started: at(Double(second)), now: at(Double(second))) }
        // A replicator streamed for a minute, then its connection broke: a new trouble.
        #expect(policy.failed(.temporary, started: at(10), now: at(70)) == .retry(after: .seconds(1)))
        // Failing at once again: the wait grows from there.
        #expect(policy.failed(.temporary, started: at(71), now: at(71)) == .retry(after: .seconds(2)))
    }

    @Test func aBusyResourceIsLookedAtAgainSoonWithoutGrowingTheWait() {
        var policy = SupervisionPolicy(backoff: Backoff(initial: .seconds(1), maximum: .seconds(30)), busyRetry: .seconds(1))
        for second in 0..<10 {
            #expect(policy.failed(.busy, started: at(Double(second)), now: at(Double(second))) == .retry(after: .seconds(1)))
        }
        #expect(policy.failed(.temporary, started: at(20), now: at(20)) == .retry(after: .seconds(1)), "busy waits did not grow the backoff")
        #expect(policy.failed(.permanent, started: at(21), now: at(21)) == .stop)
    }

    /// A source stopped on a schema change it cannot follow looks again every few seconds, so it
    /// goes on by itself once the operator has made the fix; the wait never grows.
    @Test func aPartAwaitingAFixLooksAgainAtAFixedPace() {
        var policy = SupervisionPolicy(backoff: Backoff(initial: .seconds(1), maximum: .seconds(30)), fixRetry: .seconds(5))
        for second in stride(from: 0.0, to: 100, by: 5) {
            #expect(policy.failed(.awaitingFix, started: at(second), now: at(second)) == .retry(after: .seconds(5)))
        }
        #expect(policy.failed(.temporary, started: at(200), now: at(200)) == .retry(after: .seconds(1)), "the waits for a fix did not grow the backoff")
    }

    @Test func aReplicatorWaitsOutWhatEndsByItselfAndStopsOnTheRest() {
        var rules = ReplicationFailureRules(began: at(0), startupGrace: .seconds(10))
        // At start-up a refused connection is a configuration or a source down: said at once.
        #expect(rules.judge(.connectionRefused, now: at(1)) == .permanent)
        // A slot busy right after start is a previous replicator's walsender still exiting.
        #expect(rules.judge(.slotInUse, now: at(5)) == .busy)
        #expect(rules.judge(.slotInUse, now: at(11)) == .permanent, "a second replicator for the slot")
        #expect(rules.judge(.storage, now: at(12)) == .temporary)
        #expect(rules.judge(.other, now: at(12)) == .permanent)
        // Once the source answered, a refused connection is the source restarting.
        #expect(rules.judge(.sourceInterrupted, now: at(13)) == .temporary)
        #expect(rules.reached)
        #expect(rules.judge(.connectionRefused, now: at(14)) == .temporary)
        // After a run ended normally (a pause, a drain's end), a drain may be finishing the source itself.
        rules.ran()
        #expect(rules.judge(.slotInUse, now: at(600)) == .busy)
    }

    /// A full work directory or a store down comes only from a stream: the source had answered,
    /// so its restart while the replicator waits is waited out too.
    @Test func aSourceRestartWhileAStorageFailureIsWaitedOutIsWaitedOutToo() {
        var rules = ReplicationFailureRules(began: at(0), startupGrace: .seconds(10))
        #expect(rules.judge(.storage, now: at(30)) == .temporary)
        #expect(rules.judge(.connectionRefused, now: at(38)) == .temporary)
    }

    @Test func aDrainsReplicatorWaitsForAnotherProcessConsumingTheSlot() {
        var rules = ReplicationFailureRules(began: at(0), startupGrace: .seconds(10), cooperative: true)
        #expect(rules.judge(.slotInUse, now: at(3600)) == .busy)
        var plain = ReplicationFailureRules(began: at(0), startupGrace: .seconds(10))
        #expect(plain.judge(.slotInUse, now: at(3600)) == .permanent)
    }

    @Test func theApplierLockHeldBySomeoneElseIsAFailureUnlessItIsMostLikelyOurOwnLostSession() {
        var rules = ApplierLockRules(ownSessionGrace: .seconds(120))
        #expect(rules.judgeBusy(now: at(0)) == .permanent, "another applier at start-up: run refuses to start")
        rules.lost(now: at(100))
        #expect(rules.judgeBusy(now: at(150)) == .busy, "the server has not noticed our old session is gone")
        #expect(rules.judgeBusy(now: at(221)) == .permanent, "longer than a server takes to notice: another applier")
        rules.claimed()
        #expect(rules.lostAt == nil)
        #expect(ApplierLockRules(cooperative: true).judgeBusy(now: at(0)) == .busy, "a drain waits for the applier of run")
    }
}
