import Foundation

/// How far a drain is (DESIGN.md §5): each source's end is fixed; a source is done once its
/// applied position reaches the end (every change up to it is in STG: the applier moves the
/// applied position over idle stretches once nothing is stored after it) and no table snapshot
/// of it waits to be merged; the drain is done once every source is and every BL model holds
/// every change of STG. Pure: readings and the time in, the verdict out.
public struct DrainProgress: Sendable {
    public typealias Instant = ContinuousClock.Instant

    /// One source as the control state has it.
    public struct SourceReading: Sendable, Equatable {
        public var source: String
        public var flushed: LSN?
        public var applied: LSN?
        /// Table snapshots stored and not yet merged; nil when not counted since the last reading.
        public var pendingTableSnapshots: Int?

        public init(source: String, flushed: LSN?, applied: LSN?, pendingTableSnapshots: Int? = nil) {
            self.source = source
            self.flushed = flushed
            self.applied = applied
            self.pendingTableSnapshots = pendingTableSnapshots
        }
    }

    /// One source's progress, as the drain prints it.
    public struct SourceProgress: Sendable, Equatable {
        public var source: String
        public var end: LSN
        public var flushed: LSN?
        public var applied: LSN?
        public var done: Bool
    }

    /// One BL model as its control state and its inputs have it.
    public struct ModelReading: Sendable, Equatable {
        public enum State: Sendable, Equatable {
            /// Every input change up to now is in the model.
            case current
            /// Input changes wait for its next run (or it was never built).
            case behind
            /// Its last run failed.
            case failed(error: String, at: Date)
        }

        public var model: String
        public var state: State
        /// It reads an STG table of a source this drain leaves alone that is not there (that
        /// source is not snapshotted): it has nothing to catch up with.
        public var waitsOnUndrainedSource: Bool

        public init(model: String, state: State, waitsOnUndrainedSource: Bool = false) {
            self.model = model
            self.state = state
            self.waitsOnUndrainedSource = waitsOnUndrainedSource
        }
    }

    public enum Verdict: Sendable, Equatable {
        /// Sources are behind their end.
        case waiting([SourceProgress])
        /// These sources reached their end: count their table snapshots not yet merged.
        case countTableSnapshots([String])
        /// Every source is done: read the models.
        case readModels([SourceProgress])
        /// Models are behind; the sources are done.
        case modelsBehind([SourceProgress], models: [String])
        case done([SourceProgress])
        /// A model failed during the drain: the drain ends with its error, the sources stay draining.
        case modelFailed(model: String, error: String)
        case timedOut([SourceProgress])
    }

    public let ends: [String: LSN]
    /// When the drain began, on the target's clock: a model failure from before it is not the
    /// drain's (the BL part runs the model again first).
    public let began: Date
    public let deadline: Instant?

    public init(ends: [String: LSN], began: Date, deadline: Instant?) {
        self.ends = ends
        self.began = began
        self.deadline = deadline
    }

    /// - Parameter models: nil when not read in this round.
    public func assess(_ sources: [SourceReading], models: [ModelReading]?, now: Instant) -> Verdict {
        let progress = sources.map { reading in
            let end = ends[reading.source] ?? .zero
            // Applied at all first: a source whose snapshot is not in STG has nothing to apply to yet.
            let reached = reading.applied.map { $0 >= end } ?? false
            return SourceProgress(source: reading.source, end: end, flushed: reading.flushed, applied: reading.applied,
                                  done: reached && reading.pendingTableSnapshots == 0)
        }
        if let failure = models?.lazy.compactMap({ model -> (String, String)? in
            guard case .failed(let error, let at) = model.state, at >= began else { return nil }
            return (model.model, error)
        }).first {
            return .modelFailed(model: failure.0, error: failure.1)
        }
        let timedOut = deadline.map { now > $0 } ?? false
        guard progress.allSatisfy(\.done) else {
            if timedOut { return .timedOut(progress) }
            let uncounted = zip(sources, progress).filter { reading, item in
                item.applied.map { $0 >= item.end } ?? false && reading.pendingTableSnapshots == nil
            }.map(\.0.source)
            return uncounted.isEmpty ? .waiting(progress) : .countTableSnapshots(uncounted)
        }
        guard let models else { return .readModels(progress) }
        let behind = models.filter { $0.state != .current && !$0.waitsOnUndrainedSource }.map(\.model)
        if behind.isEmpty { return .done(progress) }
        return timedOut ? .timedOut(progress) : .modelsBehind(progress, models: behind)
    }
}
