import TributaryCore
import TributaryStorage

/// A part waiting to be loaded: its staged file, and a local copy of it when the copy kept one.
struct QueuedPart: Sendable {
    var file: StagedFile
    var local: HandedOffPart?
}

/// `PartLoadSchedule` for parallel workers: they wait here until a job is ready or the producer
/// closes the queue.
actor PartLoadQueue {
    typealias Job = PartLoadSchedule<QueuedPart>.Job

    private var schedule: PartLoadSchedule<QueuedPart>
    private var waiters: [(worker: Int, continuation: CheckedContinuation<Job?, Never>)] = []
    private var closed = false
    /// Once requested, every worker gets nil for its next job: it ends after the part in hand and
    /// commits its frozen run, so what it loaded is kept.
    private let stop: StopSignal?

    init(tables: Int, frozenRunBytes: Int, stop: StopSignal? = nil) {
        schedule = PartLoadSchedule(tables: tables, frozenRunBytes: frozenRunBytes)
        self.stop = stop
    }

    private var isStopped: Bool { stop?.isRequested == true }

    func add(table: Int, part: QueuedPart) {
        schedule.add(table: table, part: part, bytes: part.file.uncompressedBytes)
        wake()
    }

    func partlyLoaded(table: Int) { schedule.partlyLoaded(table: table) }

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

    func next(worker: Int) async -> Job? {
        if isStopped { return nil }
        if let job = schedule.next(worker: worker) {
            // Taking a job can end a run or make a backlog that a waiting worker may now share.
            wake()
            return job
        }
        if closed { return nil }
        return await withCheckedContinuation { waiters.append((worker, $0)) }
    }

    /// A part of `table` is loaded; true when the caller is now to build the table's key.
    func loaded(worker: Int, table: Int) -> Bool {
        defer { wake() }
        return schedule.loaded(worker: worker, table: table)
    }

    /// Every waiter is asked again: what one cannot take (another's run) another may.
    private func wake() {
        if isStopped {
            for waiter in waiters { waiter.continuation.resume(returning: nil) }
            waiters.removeAll()
            return
        }
        var index = 0
        while index < waiters.count {
            if let job = schedule.next(worker: waiters[index].worker) {
                waiters.remove(at: index).continuation.resume(returning: job)
                index = 0
            } else if closed {
                waiters.remove(at: index).continuation.resume(returning: nil)
            } else {
                index += 1
            }
        }
    }
}
