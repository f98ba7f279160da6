import Foundation
import Synchronization
import Testing
import TributaryCore
@testable import TributaryServices

/// A stop (SIGTERM to `snapshot`) ends every load worker at its next job, including those waiting
/// for parts the copy has not stored yet; a worker in a frozen run then commits it.
@Suite struct PartLoadQueueTests {
    static func part(_ key: String) -> QueuedPart {
        QueuedPart(file: StagedFile(key: key, rows: 10, bytes: 100, uncompressedBytes: 1_000, sha256: ""), local: nil)
    }

    @Test func aStopEndsWaitingWorkersAndTheNextJobOfBusyOnes() async throws {
        let stop = StopSignal()
        let queue = PartLoadQueue(tables: 2, frozenRunBytes: 1 << 30, stop: stop)
        await queue.add(table: 0, part: Self.part("t0-0"))
        await queue.add(table: 0, part: Self.part("t0-1"))
        // Worker 0 opens a frozen run on table 0; worker 1 has nothing (the run holds table 0) and waits.
        guard case .load(0, _, true)? = await queue.next(worker: 0) else { Issue.record("worker 0 loads table 0 frozen"); return }
        // 0 waiting, 1 ended with no job, 2 given a job; polled, so a worker left waiting fails the test instead of hanging it.
        let outcome = Atomic<Int>(0)
        Task { outcome.store(await queue.next(worker: 1) == nil ? 1 : 2, ordering: .relaxed) }
        try await Task.sleep(for: .milliseconds(50))
        #expect(outcome.load(ordering: .relaxed) == 0, "worker 1 waits while the run holds table 0")

        // A part of another table arrives after the stop: the waiting worker is woken, and gets no job.
        stop.request()
        await queue.add(table: 1, part: Self.part("t1-0"))
        for _ in 0..<200 where outcome.load(ordering: .relaxed) == 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(outcome.load(ordering: .relaxed) == 1, "a waiting worker ends at once")
        // Worker 0 finishes the part in hand; its next job is none, though table 0 has a part left.
        _ = await queue.loaded(worker: 0, table: 0)
        #expect(await queue.next(worker: 0) == nil, "a busy worker ends after the part in hand")
    }

    @Test func withoutAStopTheWaitingWorkerGetsTheNextTable() async throws {
        let queue = PartLoadQueue(tables: 2, frozenRunBytes: 1 << 30)
        await queue.add(table: 0, part: Self.part("t0-0"))
        guard case .load(0, _, true)? = await queue.next(worker: 0) else { Issue.record("worker 0 loads table 0 frozen"); return }
        let waiting = Task { await queue.next(worker: 1) }
        try await Task.sleep(for: .milliseconds(50))
        await queue.add(table: 1, part: Self.part("t1-0"))
        guard case .load(1, _, _)? = await waiting.value else { Issue.record("worker 1 takes table 1"); return }
    }
}
