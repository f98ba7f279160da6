import Logging
import Synchronization
import TributaryCore
import TributaryPostgres

/// The one-applier lock of a process (DESIGN.md §4: one applier per target, or two would race to
/// record the same batch), held on a target session of its own that also LISTENs for stored
/// batches and for pause, resume and drain, and wakes each source's applier when one comes. No
/// source applies while the lock is not held (`ApplierLease`).
struct ApplierLockPart: Part {
    let kind = "apply"
    let source: String? = nil
    let endpoints: Endpoints
    let lease: ApplierLease
    /// The longest a LISTEN wait lasts before the loop comes round.
    let listenTimeout: Duration
    /// How soon a lock another process holds is tried again (on the same session).
    let busyRetry: Duration = .seconds(1)
    private var rules: ApplierLockRules
    /// The part's target session; `locked` once it holds the lock and listens.
    private var control: ControlStore?
    private var locked = false

    /// - Parameter cooperative: a drain's applier: another applier holding the lock is doing the work.
    init(endpoints: Endpoints, lease: ApplierLease, cooperative: Bool, listenTimeout: Duration = .seconds(1)) {
        self.endpoints = endpoints
        self.lease = lease
        self.listenTimeout = listenTimeout
        rules = ApplierLockRules(cooperative: cooperative)
    }

    static var busy: TributaryError {
        TributaryError(.applierBusy, "another tributary apply (or run, or drain) is applying to this target: let it finish, or stop it first")
    }

    mutating func step(_ context: PartContext) async throws -> PartStep {
        if control == nil { control = try await endpoints.target.openControl(migrate: true, for: "apply") }
        let control = control!
        guard locked else {
            guard try await control.claimApplierLock() else {
                // Another applier: run refuses to start beside one; a drain waits for it, on this session.
                if rules.judgeBusy(now: .now) == .permanent { throw Self.busy }
                context.notReady("waiting: another tributary apply, run or drain holds the applier lock")
                return .idle(until: .now + busyRetry)
            }
            try await control.listenForBatchesAndControl()
            locked = true
            rules.claimed()
            lease.claimed()
            context.ready("holding the applier lock")
            return .again
        }
        let notifications = try await control.connection.run { [listenTimeout] in
            try $0.waitForNotifications(timeout: listenTimeout.seconds)
        }
        if !notifications.isEmpty { lease.ring() }
        return .again
    }

    mutating func judge(_ error: any Error, now: ContinuousClock.Instant) -> SupervisionPolicy.Failure {
        if TributaryError.Code.applierBusy ~= error { return rules.judgeBusy(now: now) }
        guard TemporaryFailure.matches(error) else { return .permanent }
        // The locked session broke: the server releases the lock once it notices.
        if locked { rules.lost(now: now) }
        return .temporary
    }

    mutating func reset() async {
        lease.lost()
        locked = false
        await control?.close()
        control = nil
    }

    mutating func finish() async {
        lease.lost()
        // Released before the session closes: a closed session's backend drops its locks only as
        // it exits, and an applier started right after must not find the lock still held.
        if locked { try? await control?.releaseApplierLock() }
        locked = false
        await control?.close()
        control = nil
    }
}

/// Whether this process holds the applier lock, shared by the lock's part and every source's
/// applier; each source's applier has a doorbell here that wakes it.
final class ApplierLease: Sendable {
    private let held = Atomic<Bool>(false)
    let doorbells: [String: Doorbell]

    init(sources: [String]) {
        doorbells = Dictionary(uniqueKeysWithValues: sources.map { ($0, Doorbell()) })
    }

    var isHeld: Bool { held.load(ordering: .acquiring) }

    func claimed() {
        held.store(true, ordering: .releasing)
        ring()
    }

    func lost() { held.store(false, ordering: .releasing) }

    /// Wakes every source's applier: a batch was stored, or an operator changed something.
    func ring() { doorbells.values.forEach { $0.ring() } }
}

/// One source's applier under `run`, `apply` and `drain`: its batches in LSN order while the
/// process holds the applier lock. A permanent failure (a batch that cannot be applied) stops
/// this source only; the others go on.
struct SourceApplierPart: Part {
    let kind = "apply"
    var source: String? { applier.source.name }
    private var applier: SourceApplier
    let lease: ApplierLease

    init(_ applier: SourceApplier, lease: ApplierLease) {
        self.applier = applier
        self.lease = lease
    }

    mutating func step(_ context: PartContext) async throws -> PartStep {
        var report = ChangeApplier.Report()
        applier.liveness = (context.liveness, context.name)
        let held = lease.isHeld
        let action: SourceApplyMachine.Action
        do {
            action = try await applier.step(lockHeld: held, stop: context.stop, into: &report)
        } catch let error as TributaryError where error.code == .schemaChange {
            // Said where `status` reads it; the part looks again every few seconds for the fix.
            await applier.showSchemaStop(error, part: kind)
            throw error
        }
        await applier.showSchemaStop(nil, part: kind)
        context.ready(held ? "applying" : "waiting for the applier lock")
        if case .idle(let until) = action { return .idle(until: until) }
        return .again
    }

    func judge(_ error: any Error, now: ContinuousClock.Instant) -> SupervisionPolicy.Failure {
        if TributaryError.Code.schemaChange ~= error { return .awaitingFix }
        return TemporaryFailure.matches(error) ? .temporary : .permanent
    }

    mutating func reset() async { await applier.close() }
}
