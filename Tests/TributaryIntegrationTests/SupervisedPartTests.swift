import Foundation
import Logging
import Synchronization
import Testing
import TributaryCore
@testable import TributaryServices

/// The one loop every part runs in, driven by parts made for the test (no server): temporary
/// failures are waited out with the part's sessions reset, a permanent one ends the part (or parks
/// it), an idle part wakes at its doorbell, and liveness says what it is doing.
@Suite struct SupervisedPartTests {
    /// What the test's part did, seen from outside.
    final class Record: Sendable {
        let steps = Atomic<Int>(0)
        let resets = Atomic<Int>(0)
        let finishes = Atomic<Int>(0)
    }

    struct TemporaryTrouble: Error {}

    /// Fails with `failures` in order, then finishes (or idles until `idleUntil` while it is set).
    struct ScriptedPart: Part {
        let kind = "scripted"
        let source: String? = "qvp"
        let record: Record
        var failures: [SupervisionPolicy.Failure]
        var idle: Duration?

        mutating func step(_ context: PartContext) async throws -> PartStep {
            record.steps.add(1, ordering: .relaxed)
            if !failures.isEmpty { throw TemporaryTrouble() }
            context.ready("done its work")
            if let idle {
                self.idle = nil
                return .idle(until: .now + idle)
            }
            return .finished
        }

        mutating func judge(_ error: any Error, now: ContinuousClock.Instant) -> SupervisionPolicy.Failure { failures.removeFirst() }
        mutating func reset() async { record.resets.add(1, ordering: .relaxed) }
        mutating func finish() async { record.finishes.add(1, ordering: .relaxed) }
    }

    static let quick = SupervisionPolicy(backoff: Backoff(initial: .milliseconds(10), maximum: .milliseconds(40)), busyRetry: .milliseconds(10))
    static let logger = Logger(label: "test")

    @Test func temporaryAndBusyFailuresAreWaitedOutWithTheSessionsResetThenThePartFinishes() async throws {
        let record = Record()
        let liveness = Liveness()
        let part = ScriptedPart(record: record, failures: [.temporary, .busy, .temporary])
        let supervised = SupervisedPart(part, liveness: liveness, logger: Self.logger, policy: Self.quick)
        try await supervised.run()
        #expect(record.steps.load(ordering: .relaxed) == 4)
        #expect(record.resets.load(ordering: .relaxed) == 3, "each failed step's sessions were closed")
        #expect(record.finishes.load(ordering: .relaxed) == 1)
        #expect(liveness.notReady.isEmpty, "\(liveness.notReady)")
    }

    @Test func aPermanentFailureEndsThePartWithItsErrorAndSaysWhy() async throws {
        let record = Record()
        let liveness = Liveness()
        let supervised = SupervisedPart(ScriptedPart(record: record, failures: [.temporary, .permanent]), liveness: liveness,
                                        logger: Self.logger, policy: Self.quick)
        await #expect(throws: TemporaryTrouble.self) { try await supervised.run() }
        #expect(record.finishes.load(ordering: .relaxed) == 1)
        #expect(liveness.notReady.first?.reason.hasPrefix("stopped:") == true, "\(liveness.notReady)")
        #expect(liveness.notReady.first?.part == "scripted qvp")
    }

    @Test func partsThatParkStopAloneUntilTheLastOfThemStops() async throws {
        let parked = ParkedParts()
        let liveness = Liveness()
        let first = SupervisedPart(ScriptedPart(record: Record(), failures: [.permanent]), liveness: liveness, logger: Self.logger,
                                   onPermanentFailure: .park(parked), policy: Self.quick)
        let second = SupervisedPart(ScriptedPart(record: Record(), failures: [.temporary, .permanent]), liveness: liveness,
                                    logger: Self.logger, onPermanentFailure: .park(parked), policy: Self.quick)
        // The first parks and waits; the second's failure is the last: it ends with both errors.
        let parkedFirst = Task { try await first.run() }
        await #expect(throws: TributaryError.self) { try await second.run() }
        #expect(parked.failure.message.contains("scripted qvp stopped"))
        parkedFirst.cancel()
    }

    @Test func anIdlePartWakesAtItsDoorbellNotAtTheEndOfItsWait() async throws {
        let record = Record()
        let doorbell = Doorbell()
        let supervised = SupervisedPart(ScriptedPart(record: record, failures: [], idle: .seconds(60)), liveness: Liveness(),
                                        logger: Self.logger, doorbell: doorbell, policy: Self.quick)
        let started = ContinuousClock.now
        let running = Task { try await supervised.run() }
        while record.steps.load(ordering: .relaxed) < 1 { try await Task.sleep(for: .milliseconds(5)) }
        doorbell.ring()
        try await running.value
        #expect(record.steps.load(ordering: .relaxed) == 2)
        #expect(ContinuousClock.now - started < .seconds(30), "woken by the ring, not after a minute")
    }

    @Test func aDoorbellWakesAWaitAtARingDuringItOrOneItMissedSinceItLooked() async {
        let doorbell = Doorbell()
        doorbell.ring()
        #expect(await doorbell.wait(until: .now + .milliseconds(50)) == false, "a ring before the wait is not for it")
        let seen = doorbell.rings
        doorbell.ring()
        #expect(await doorbell.wait(until: .now + .seconds(30), since: seen) == true, "rung while the waiter was busy")
        let waiting = Task { await doorbell.wait(until: .now + .seconds(30)) }
        while doorbell.waiting == 0 { await Task.yield() }
        doorbell.ring()
        #expect(await waiting.value == true)
    }
}
