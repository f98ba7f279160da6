/// Exponential backoff, the one rule every retry loop follows (the OCI client's requests, the
/// supervisor's waits after a part's temporary failure): the ceiling doubles from `initial` up to
/// `maximum`; with `jitter` the delay is uniform below it ("full jitter"), which spreads the
/// retries of many workers that failed together.
public struct Backoff: Sendable, Equatable {
    public var initial: Duration
    public var maximum: Duration
    public var jitter: Bool
    /// Failures since the last success.
    public private(set) var failures = 0

    public init(initial: Duration, maximum: Duration, jitter: Bool = false) {
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
    }

    /// The delay before retry number `retry` (0 for the first); `unit` is a random number in [0, 1).
    public func delay(beforeRetry retry: Int, unit: Double = 1) -> Duration {
        let ceiling = min(maximum, initial * (1 << min(retry, 30)))
        return jitter ? ceiling * min(max(unit, 0), 1) : ceiling
    }

    /// Counts a failure and returns how long to wait before the next attempt.
    public mutating func next(unit: Double = Double.random(in: 0..<1)) -> Duration {
        defer { failures += 1 }
        return delay(beforeRetry: failures, unit: unit)
    }

    /// A success: the next failure waits `initial` again.
    public mutating func reset() { failures = 0 }
}

extension Duration {
    /// The duration in seconds, for arithmetic and display.
    public var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
