import Synchronization
import TributaryCore
import TributaryStorage

/// The status `run`'s operations endpoints serve: one reading, shared by every request and kept
/// fresh by one part (`StatusRefresherPart`) on sessions it holds, so a scrape opens no connection
/// and lists no bucket. A request that finds the reading older than `freshness` asks for a new one
/// and waits for it a moment; readings are at most one a `freshness` apart, however many ask.
public final class StatusBoard: Sendable {
    private let state = Mutex<(report: StatusReport?, readAt: ContinuousClock.Instant?)>((nil, nil))
    /// The last hour of each source's lag, from the readings (the status page's chart).
    private let samples = Mutex(StatusHistory())
    /// Wakes the refresher.
    let refresherDoorbell = Doorbell()
    /// Wakes the requests waiting for a new reading.
    private let published = Doorbell()
    /// How often the refresher reads when nobody asks.
    public let interval: Duration
    public let freshness: Duration

    public init(interval: Duration = .seconds(5), freshness: Duration = .seconds(1)) {
        self.interval = interval
        self.freshness = freshness
    }

    /// The newest reading: a fresh one when the refresher gives it within `wait`, else the last
    /// (nil before the first).
    public func current(wait: Duration = .seconds(3)) async -> StatusReport? {
        let (report, readAt) = state.withLock { $0 }
        if let readAt, ContinuousClock.now - readAt <= freshness { return report }
        let seen = published.rings
        refresherDoorbell.ring()
        await published.wait(until: .now + wait, since: seen)
        return state.withLock { $0.report }
    }

    /// When the last reading was taken.
    var readAt: ContinuousClock.Instant? { state.withLock { $0.readAt } }

    /// The newest reading (as `current`) and the samples kept from the readings before it.
    public func history() -> StatusHistory { samples.withLock { $0 } }

    func publish(_ report: StatusReport) {
        state.withLock { $0 = (report, .now) }
        samples.withLock { history in
            for source in report.sources {
                history.record(.init(at: report.generatedAt, lagSeconds: source.lagSeconds, sourceLagBytes: source.sourceLagBytes,
                                     changesPerSecond: source.changesPerSecond, stagedBatches: source.stagedBatches), source: source.source)
            }
            history.keep(only: Set(report.sources.map(\.source)))
        }
        published.ring()
    }
}

/// Reads the status for the `StatusBoard` every `interval`, or sooner when a request asks (at most
/// once a `freshness`), on a target session and a session per source that it holds.
struct StatusRefresherPart: Part {
    let kind = "status"
    let source: String? = nil
    let reader: StatusReader
    let sources: [SourceConfiguration]
    let board: StatusBoard
    private var sessions: StatusSessions

    init(reader: StatusReader, sources: [SourceConfiguration], board: StatusBoard) {
        self.reader = reader
        self.sources = sources
        self.board = board
        sessions = StatusSessions(endpoints: reader.endpoints)
    }

    mutating func step(_ context: PartContext) async throws -> PartStep {
        if let readAt = board.readAt, ContinuousClock.now - readAt < board.freshness { return .idle(until: readAt + board.freshness) }
        board.publish(try await reader.report(sources, sessions: &sessions))
        context.ready("reading the status every \(Int(board.interval.seconds)) s")
        return .idle(until: .now + board.interval)
    }

    mutating func reset() async { await sessions.close() }
}
