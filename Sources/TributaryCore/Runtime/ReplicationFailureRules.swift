/// Which failures of a source's replicator are worth waiting out. Pure: what the supervisor has
/// seen of its replicator so far and the time in, the kind of failure out.
public struct ReplicationFailureRules: Sendable {
    public typealias Instant = ContinuousClock.Instant

    /// A replicator's failure as the adapters report it.
    public enum Kind: Sendable, Equatable {
        /// The connection broke, or the server is shutting down or restarting.
        case sourceInterrupted
        /// The source refused the connection.
        case connectionRefused
        /// The staging store or the work directory failed after all its attempts: the slot keeps
        /// every change until a batch is stored, so waiting loses nothing.
        case storage
        /// Another process consumes the slot.
        case slotInUse
        /// Anything else: a missing slot, a type change, a protocol violation.
        case other
    }

    /// When the supervisor began: at start-up a busy slot may be a previous replicator's walsender
    /// still exiting (a restart right after a stop).
    public let began: Instant
    public let startupGrace: Duration
    /// A drain's replicator: another process consuming the slot is doing the same work.
    public let cooperative: Bool
    /// The source answered once: from then on a refused connection is the source restarting.
    public private(set) var reached = false
    /// A replicator run has ended normally (after a pause, or at a drain end): from then on the
    /// slot may be taken by a drain finishing the source itself.
    public private(set) var started = false

    public init(began: Instant, startupGrace: Duration = .seconds(10), cooperative: Bool = false) {
        self.began = began
        self.startupGrace = startupGrace
        self.cooperative = cooperative
    }

    /// A replicator run ended normally.
    public mutating func ran() {
        started = true
        reached = true
    }

    public mutating func judge(_ kind: Kind, now: Instant) -> SupervisionPolicy.Failure {
        switch kind {
        case .sourceInterrupted:
            reached = true
            return .temporary
        case .connectionRefused:
            return reached ? .temporary : .permanent
        case .storage:
            // Only a stream writes batches and spills: the source answered. Without this, a
            // replicator waiting out a full work directory stopped its process when the source
            // then restarted (the chaos suite, seed 960734).
            reached = true
            return .temporary
        case .slotInUse:
            return cooperative || started || now - began < startupGrace ? .busy : .permanent
        case .other:
            return .permanent
        }
    }
}
