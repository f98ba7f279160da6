import Synchronization

/// A wake-up call between parts of one process (the applier's LISTEN session waking the
/// per-source appliers, a stop waking an idle part): `ring` ends every `wait` in progress.
public final class Doorbell: Sendable {
    private let waiters = Mutex<[ObjectIdentifier: Waiter]>([:])

    public init() {}

    /// Ends every wait in progress.
    public func ring() {
        let current = waiters.withLock { waiters in
            defer { waiters = [:] }
            return Array(waiters.values)
        }
        for waiter in current { waiter.resume() }
    }

    /// Returns at the next ring (true), or at `deadline` (false), whichever comes first.
    @discardableResult
    public func wait(until deadline: ContinuousClock.Instant) async -> Bool {
        guard deadline > .now else { return false }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                try? await Task.sleep(until: deadline, clock: .continuous)
                return false
            }
            group.addTask {
                await self.waitForRing()
                return !Task.isCancelled
            }
            let rung = await group.next() ?? false
            group.cancelAll()
            return rung
        }
    }

    private func waitForRing() async {
        let waiter = Waiter()
        waiters.withLock { $0[ObjectIdentifier(waiter)] = waiter }
        await withTaskCancellationHandler {
            await withCheckedContinuation { waiter.park($0) }
        } onCancel: {
            waiter.resume()
        }
        _ = waiters.withLock { $0.removeValue(forKey: ObjectIdentifier(waiter)) }
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
