/// Whether finding the one-applier lock held is worth waiting out. Pure: what this applier knows
/// of its own lock and the time in, the kind of failure out.
public struct ApplierLockRules: Sendable {
    public typealias Instant = ContinuousClock.Instant

    /// A drain's applier: another applier holding the lock is doing the same work.
    public let cooperative: Bool
    /// How long a server may take to notice that the session holding the lock is gone.
    public let ownSessionGrace: Duration
    /// When this applier's own locked session was lost.
    public private(set) var lostAt: Instant?

    public init(cooperative: Bool = false, ownSessionGrace: Duration = .seconds(120)) {
        self.cooperative = cooperative
        self.ownSessionGrace = ownSessionGrace
    }

    /// The session holding the lock was lost.
    public mutating func lost(now: Instant) { lostAt = now }

    /// The lock is held again by this applier.
    public mutating func claimed() { lostAt = nil }

    /// The lock is held by someone: right after this applier lost its own session, most likely by
    /// that old session, whose server process has not noticed yet; another applier it is only if
    /// that lasts longer than the server could take to notice.
    public func judgeBusy(now: Instant) -> SupervisionPolicy.Failure {
        if cooperative { return .busy }
        if let lostAt, now - lostAt < ownSessionGrace { return .busy }
        return .permanent
    }
}
