/// Exponential backoff, the one rule every retry loop follows (the OCI client's requests, the
/// applier's and the replicators' reconnects): the ceiling doubles from `initial` up to `maximum`;
/// with `jitter` the delay is uniform below it ("full jitter"), which spreads the retries of many
/// workers that failed together.
public struct Backoff: Sendable, Equatable {
    public var initialSeconds: Double
    public var maximumSeconds: Double
    public var jitter: Bool
    /// Failures since the last success.
    public private(set) var failures = 0

    public init(initialSeconds: Double, maximumSeconds: Double, jitter: Bool = false) {
        self.initialSeconds = initialSeconds
        self.maximumSeconds = maximumSeconds
        self.jitter = jitter
    }

    /// The delay before retry number `retry` (0 for the first); `unit` is a random number in [0, 1).
    public func delay(beforeRetry retry: Int, unit: Double = 1) -> Double {
        let ceiling = min(maximumSeconds, initialSeconds * Double(1 << min(retry, 30)))
        return jitter ? ceiling * min(max(unit, 0), 1) : ceiling
    }

    /// Counts a failure and returns how long to wait before the next attempt.
    public mutating func next(unit: Double = Double.random(in: 0..<1)) -> Double {
        defer { failures += 1 }
        return delay(beforeRetry: failures, unit: unit)
    }

    /// A success: the next failure waits `initialSeconds` again.
    public mutating func reset() { failures = 0 }
}
