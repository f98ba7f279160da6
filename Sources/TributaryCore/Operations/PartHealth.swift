/// What `/healthz`, `/readyz` and the systemd watchdog say of a long-running process, from what its
/// parts (a replicator per source, the applier, the BL models, the object sync) report. Pure: the
/// parts' reports and the time in, the verdicts out.
///
/// Alive: every part's loop has come round within `stallLimit`, or the part is inside a long piece
/// of work it declared (a BL reload, a snapshot load), which the database bounds. Ready: every
/// part is doing its job, or held by an operator (paused, drained).
public struct PartHealth: Sendable {
    public typealias Instant = ContinuousClock.Instant

    struct Part: Sendable {
        var lastBeat: Instant
        var busySince: Instant?
        var ready = false
        var reason = "starting"
    }

    var parts: [String: Part] = [:]
    /// Every part has been ready at least once: the process is up (systemd's READY=1).
    public private(set) var wasReady = false

    public init() {}

    public mutating func register(_ part: String, now: Instant) {
        parts[part] = Part(lastBeat: now)
    }

    /// The part's loop came round.
    public mutating func beat(_ part: String, now: Instant) {
        parts[part]?.lastBeat = now
    }

    /// The part begins (`busy`) or ends a long piece of work.
    public mutating func working(_ part: String, _ busy: Bool, now: Instant) {
        parts[part]?.busySince = busy ? now : nil
        parts[part]?.lastBeat = now
    }

    /// - Parameter reason: what it is doing, or why it is not ready.
    public mutating func ready(_ part: String, _ ready: Bool, reason: String, now: Instant) {
        parts[part]?.ready = ready
        parts[part]?.reason = reason
        parts[part]?.lastBeat = now
        if !parts.isEmpty && parts.values.allSatisfy(\.ready) { wasReady = true }
    }

    /// Parts whose loop has not come round within `limit` (and that are not inside declared work).
    public func stalled(now: Instant, limit: Duration) -> [String] {
        parts.filter { $0.value.busySince == nil && now - $0.value.lastBeat > limit }.map(\.key).sorted()
    }

    /// Parts not ready, each with its reason.
    public var notReady: [(part: String, reason: String)] {
        parts.filter { !$0.value.ready }.map { ($0.key, $0.value.reason) }.sorted { $0.part < $1.part }
    }

    /// One line per part: its state and reason.
    public func describe(now: Instant) -> [String] {
        parts.keys.sorted().map { name in
            let part = parts[name]!
            let age = now - part.lastBeat
            return "\(name): \(part.ready ? "ready" : "not ready") (\(part.reason)); loop \(age.components.seconds) s ago"
                + (part.busySince.map { " working for \((now - $0).components.seconds) s" } ?? "")
        }
    }
}
