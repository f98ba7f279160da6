import Testing
import TributaryCore

/// What /healthz, /readyz and the systemd watchdog say, from the parts' reports.
@Suite struct PartHealthTests {
    let start = ContinuousClock.now
    func at(_ seconds: Int) -> ContinuousClock.Instant { start + .seconds(seconds) }

    @Test func aPartIsStalledWhenItsLoopStopsOutsideDeclaredWork() {
        var health = PartHealth()
        health.register("apply", now: at(0))
        health.register("transform", now: at(0))
        #expect(health.stalled(now: at(30), limit: .seconds(60)).isEmpty)
        health.beat("apply", now: at(50))
        health.working("transform", true, now: at(55))
        // transform is inside a long run: not stalled however long; apply has not come round.
        #expect(health.stalled(now: at(200), limit: .seconds(60)) == ["apply"])
        health.working("transform", false, now: at(300))
        #expect(health.stalled(now: at(400), limit: .seconds(60)) == ["apply", "transform"])
    }

    @Test func readyOnceEveryPartHasBeenReadyAndNotReadySaysWhy() {
        var health = PartHealth()
        health.register("replicate qvp", now: at(0))
        health.register("apply", now: at(0))
        health.ready("apply", true, reason: "applying", now: at(1))
        #expect(!health.wasReady)
        #expect(health.notReady.map(\.part) == ["replicate qvp"])
        health.ready("replicate qvp", true, reason: "streaming", now: at(2))
        #expect(health.wasReady && health.notReady.isEmpty)
        health.ready("replicate qvp", false, reason: "interrupted: connection refused", now: at(3))
        #expect(health.wasReady, "once up, READY=1 is not taken back")
        #expect(health.notReady.first?.reason == "interrupted: connection refused")
    }
}
