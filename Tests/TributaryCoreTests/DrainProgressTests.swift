import Foundation
import Testing
import TributaryCore

/// When a drain is done, still waiting, failed or out of time, from readings of the control state
/// and the models: decided without a server.
@Suite struct DrainProgressTests {
    let start = ContinuousClock.now
    let began = Date(timeIntervalSince1970: 1_800_000_000)
    func at(_ seconds: Double) -> ContinuousClock.Instant { start + .milliseconds(Int(seconds * 1000)) }

    func drain(deadline: Double? = nil) -> DrainProgress {
        DrainProgress(ends: ["qvp": LSN(1000), "svp": LSN(2000)], began: began, deadline: deadline.map(at))
    }

    typealias Reading = DrainProgress.SourceReading

    @Test func aSourceIsDoneOnceItsAppliedPositionReachesItsEndAndNoTableSnapshotWaits() {
        let drain = drain()
        let behind = drain.assess([Reading(source: "qvp", flushed: LSN(1200), applied: LSN(900)),
                                   Reading(source: "svp", flushed: LSN(1900), applied: LSN(1900))], models: nil, now: at(1))
        guard case .waiting(let progress) = behind else { Issue.record("\(behind)"); return }
        #expect(progress.map(\.done) == [false, false])
        #expect(progress[0].end == LSN(1000) && progress[1].end == LSN(2000))
        // qvp at its end: its table snapshots are counted before it counts as done.
        let reached = drain.assess([Reading(source: "qvp", flushed: LSN(1200), applied: LSN(1200)),
                                    Reading(source: "svp", flushed: LSN(1900), applied: LSN(1900))], models: nil, now: at(2))
        #expect(reached == .countTableSnapshots(["qvp"]))
        let counted = drain.assess([Reading(source: "qvp", flushed: LSN(1200), applied: LSN(1200), pendingTableSnapshots: 0),
                                    Reading(source: "svp", flushed: LSN(1900), applied: LSN(1900))], models: nil, now: at(2))
        guard case .waiting(let after) = counted else { Issue.record("\(counted)"); return }
        #expect(after.map(\.done) == [true, false])
        // A table snapshot still to merge holds the source back.
        let pending = drain.assess([Reading(source: "qvp", flushed: LSN(1200), applied: LSN(1200), pendingTableSnapshots: 1),
                                    Reading(source: "svp", flushed: LSN(2100), applied: LSN(2100), pendingTableSnapshots: 0)], models: nil, now: at(3))
        guard case .waiting(let held) = pending else { Issue.record("\(pending)"); return }
        #expect(held.map(\.done) == [false, true])
    }

    @Test func aSourceNeverSnapshottedHasNothingAppliedAndIsNeverDone() {
        let result = drain().assess([Reading(source: "qvp", flushed: LSN(5000), applied: nil, pendingTableSnapshots: 0),
                                     Reading(source: "svp", flushed: LSN(5000), applied: LSN(5000), pendingTableSnapshots: 0)], models: nil, now: at(1))
        guard case .waiting(let progress) = result else { Issue.record("\(result)"); return }
        #expect(progress.map(\.done) == [false, true])
    }

    func allDone() -> [Reading] {
        [Reading(source: "qvp", flushed: LSN(1000), applied: LSN(1000), pendingTableSnapshots: 0),
         Reading(source: "svp", flushed: LSN(2500), applied: LSN(2500), pendingTableSnapshots: 0)]
    }

    @Test func onceTheSourcesAreDoneTheModelsDecide() {
        let drain = drain()
        guard case .readModels = drain.assess(allDone(), models: nil, now: at(1)) else { Issue.record("models first"); return }
        let behind = drain.assess(allDone(), models: [.init(model: "party", state: .current), .init(model: "claim", state: .behind)], now: at(1))
        guard case .modelsBehind(_, let models) = behind else { Issue.record("\(behind)"); return }
        #expect(models == ["claim"])
        // A model reading a table of a source this drain leaves alone, not there yet, is not waited for.
        let done = drain.assess(allDone(), models: [.init(model: "party", state: .current),
                                                    .init(model: "claim", state: .behind, waitsOnUndrainedSource: true)], now: at(1))
        guard case .done(let progress) = done else { Issue.record("\(done)"); return }
        #expect(progress.allSatisfy { $0.done })
        guard case .done = drain.assess(allDone(), models: [], now: at(1)) else { Issue.record("no models: done"); return }
    }

    @Test func aModelFailureDuringTheDrainEndsItButOneFromBeforeIsWaitedOut() {
        let drain = drain()
        let old = drain.assess(allDone(), models: [.init(model: "claim", state: .failed(error: "boom", at: began - 60))], now: at(1))
        guard case .modelsBehind(_, let models) = old else { Issue.record("\(old)"); return }
        #expect(models == ["claim"], "the BL part runs it again first")
        let fresh = drain.assess(allDone(), models: [.init(model: "claim", state: .failed(error: "boom", at: began + 5))], now: at(1))
        #expect(fresh == .modelFailed(model: "claim", error: "boom"))
        // Said as soon as it is read, even while sources are behind.
        let early = drain.assess([Reading(source: "qvp", flushed: nil, applied: LSN(1))],
                                 models: [.init(model: "claim", state: .failed(error: "boom", at: began + 5))], now: at(1))
        #expect(early == .modelFailed(model: "claim", error: "boom"))
    }

    @Test func pastTheDeadlineADrainThatIsNotDoneTimesOutAndOneThatIsDoneIsDone() {
        let drain = drain(deadline: 10)
        let late = drain.assess([Reading(source: "qvp", flushed: LSN(500), applied: LSN(400))], models: nil, now: at(11))
        guard case .timedOut(let progress) = late else { Issue.record("\(late)"); return }
        #expect(progress.first?.applied == LSN(400))
        guard case .done = drain.assess(allDone(), models: [], now: at(11)) else { Issue.record("done wins over late"); return }
        guard case .timedOut = drain.assess(allDone(), models: [.init(model: "claim", state: .behind)], now: at(11)) else {
            Issue.record("models behind past the deadline"); return
        }
    }
}
