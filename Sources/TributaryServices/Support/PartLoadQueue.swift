import TributaryCore
import TributaryStorage

/// `PartLoadSchedule` for parallel workers: they wait here until a job is ready or the producer
/// closes the queue.
actor PartLoadQueue {
    typealias Job = PartLoadSchedule<StagedFile>.Job

    private var schedule: PartLoadSchedule<StagedFile>
    private var waiters: [(previous: Int?, continuation: CheckedContinuation<Job?, Never>)] = []
    private var closed = false

    init(tables: Int) { schedule = PartLoadSchedule(tables: tables) }

    func add(table: Int, part: StagedFile) {
        schedule.add(table: table, part: part, bytes: part.bytes)
        wake()
    }

    /// Every part of `table` was added.
    func complete(table: Int) {
        schedule.complete(table: table)
        wake()
    }

    func skip(table: Int) { schedule.skip(table: table) }

    /// No more parts or tables: workers with nothing to do get nil.
    func close() {
        closed = true
        wake()
    }

    func next(after previous: Int?) async -> Job? {
        if let job = schedule.next(after: previous) { return job }
        if closed { return nil }
        return await withCheckedContinuation { waiters.append((previous, $0)) }
    }

    /// A part of `table` is loaded; true when the caller is now to build the table's key.
    func loaded(table: Int) -> Bool { schedule.loaded(table: table) }

    private func wake() {
        while !waiters.isEmpty {
            if let job = schedule.next(after: waiters[0].previous) {
                waiters.removeFirst().continuation.resume(returning: job)
            } else if closed {
                waiters.removeFirst().continuation.resume(returning: nil)
            } else {
                return
            }
        }
    }
}
