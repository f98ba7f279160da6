/// What the supervisor of a long-running part does after one of its steps fails: wait and try
/// again (and how long), or stop the part. Pure: the failure's kind and the time in, the decision
/// out; every part of `run` and `drain` goes through the same rules.
public struct SupervisionPolicy: Sendable {
    public typealias Instant = ContinuousClock.Instant

    /// What a failure means for the part, as the part itself judges it.
    public enum Failure: Sendable, Equatable {
        /// A server restarting, a connection cut, the store unreachable, the work directory full:
        /// ends without anyone changing anything. Waited out with growing backoff.
        case temporary
        /// Another process holds what the part needs now (the slot, the applier lock), and may
        /// be doing its work: tried again after `busyRetry`, without backoff growing.
        case busy
        /// Waits for an operator's fix that the part can see once it is made (STG altered by hand,
        /// a table snapshot stored): tried again after `fixRetry`, without backoff growing, so
        /// the part goes on by itself.
        case awaitingFix
        /// Cannot end without an operator: the part stops, with this error.
        case permanent
    }

    public enum Decision: Sendable, Equatable {
        case retry(after: Duration)
        case stop
    }

    public var backoff: Backoff
    public let busyRetry: Duration
    public let fixRetry: Duration
    /// A step that ran this long before it failed had recovered: its trouble is new, and the waits
    /// start afresh (a replicator that streamed for minutes is not still failing since yesterday).
    public let freshAfter: Duration
    /// Failures in a row since the last step that succeeded.
    public private(set) var failures = 0

    public init(backoff: Backoff = Backoff(initial: .milliseconds(500), maximum: .seconds(30)),
                busyRetry: Duration = .seconds(1), fixRetry: Duration = .seconds(5), freshAfter: Duration = .seconds(30)) {
        self.backoff = backoff
        self.busyRetry = busyRetry
        self.fixRetry = fixRetry
        self.freshAfter = freshAfter
    }

    /// A step succeeded: the next failure waits `backoff.initial` again.
    public mutating func succeeded() {
        backoff.reset()
        failures = 0
    }

    /// A step that began at `started` failed at `now` with `failure`.
    public mutating func failed(_ failure: Failure, started: Instant, now: Instant) -> Decision {
        switch failure {
        case .permanent:
            return .stop
        case .busy:
            failures += 1
            return .retry(after: busyRetry)
        case .awaitingFix:
            failures += 1
            return .retry(after: fixRetry)
        case .temporary:
            if now - started > freshAfter { backoff.reset() }
            failures += 1
            return .retry(after: backoff.next(unit: 1))
        }
    }
}
