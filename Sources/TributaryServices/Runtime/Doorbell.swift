import Synchronization

/// A wake-up call between parts of one process (the applier's LISTEN session waking the
/// per-source appliers, a stop waking an idle part). Rings are counted: a waiter that says which
/// count it last saw (`since`) is woken by a ring it missed while busy, so a batch stored while a
/// source's applier was listing is not left for the next poll.
public final class Doorbell: Sendable {
    private struct State {
        var rings: UInt64 = 0
        var waiters: [ObjectIdentifier: Waiter] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// How many times it has rung.
    public var rings: UInt64 { state.withLock { $0.rings } }

    /// How many waits are in progress (a test rings once one is).
    var waiting: Int { state.withLock { $0.waiters.count } }

    /// Ends every wait in progress.
    public func ring() {
        let current = state.withLock { state in
            state.rings += 1
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in current { waiter.resume() }
    }

    /// Returns true at a ring after `since` (the count a caller saw before it got busy; by default
    /// the count now), false at `deadline`.
    @discardableResult
    public func wait(until deadline: ContinuousClock.Instant, since: UInt64? = nil) async -> Bool {
        let seen = since ?? rings
        if rings != seen { return true }
        guard deadline > .now else { return false }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                try? await Task.sleep(until: deadline, clock: .continuous)
                return false
            }
            group.addTask {
                await self.waitForRing(after: seen)
                return !Task.isCancelled
            }
            let rung = await group.next() ?? false
            group.cancelAll()
            return rung
        }
    }

    private func waitForRing(after seen: UInt64) async {
        let waiter = Waiter()
        let missed = state.withLock { state in
            if state.rings != seen { return true }
            state.waiters[ObjectIdentifier(waiter)] = waiter
            return false
        }
        if missed { return }
        await withTaskCancellationHandler {
            await withCheckedContinuation { waiter.park($0) }
        } onCancel: {
            waiter.resume()
        }
        _ = state.withLock { $0.waiters.removeValue(forKey: ObjectIdentifier(waiter)) }
    }

    /// One wait: resumed once, by a ring or a cancellation, whichever comes first, even when that
    /// comes before the wait parks.
    private final class Waiter: Sendable {
        private let state = Mutex<(continuation: CheckedContinuation<Void, Never>?, resumed: Bool)>((nil, false))

        func park(_ continuation: CheckedContinuation<Void, Never>) {
            let resumeNow = state.withLock { state in
                if state.resumed { return true }
                state.continuation = continuation
                return false
            }
            if resumeNow { continuation.resume() }
        }

        func resume() {
            let continuation = state.withLock { state in
                defer { state.continuation = nil; state.resumed = true }
                return state.continuation
            }
            continuation?.resume()
        }
    }
}
