import Synchronization

/// Wake-up calls from the applier's LISTEN connection to its per-source loops: a notification
/// (a batch stored, a pause or resume) wakes every source, which then lists its own batches.
final class SourceWakeups: Sendable {
    private let generation = Atomic<Int>(0)

    /// `all`: something was notified. A plain timeout of the LISTEN wait wakes nobody.
    func wake(all: Bool) {
        if all { generation.add(1, ordering: .relaxed) }
    }

    /// Returns at a wake-up after the call, at `deadline`, or when `stopped` says so.
    func wait(_ source: String, until deadline: ContinuousClock.Instant, unless stopped: () -> Bool) async {
        let seen = generation.load(ordering: .relaxed)
        while generation.load(ordering: .relaxed) == seen && ContinuousClock.now < deadline && !stopped() {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}

/// The sources whose applier stopped on a permanent failure, shared by the per-source loops.
final class SourceFailures: Sendable {
    private let failures = Mutex<[String: Error]>([:])

    subscript(source: String) -> Error? {
        get { failures.withLock { $0[source] } }
        set { failures.withLock { $0[source] = newValue } }
    }

    var count: Int { failures.withLock { $0.count } }
    var all: [String: Error] { failures.withLock { $0 } }
}
