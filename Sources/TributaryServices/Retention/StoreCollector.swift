import Foundation
import Logging
import TributaryCore
import TributaryPostgres
import TributaryStorage

/// `tributary gc`, and the same in `run` every `staging.gc_interval`: removes from the staging
/// store what `RetentionPlanner` proves dead, and records per source what the store still holds.
/// Safe beside every other part: it only removes what lies before a position that never moves back.
public struct StoreCollector: Sendable {
    public struct Report: Sendable {
        public var source: String
        /// Nil when the source has no control state yet (nothing was collected).
        public var plan: RetentionPlanner.Plan?
        public var dryRun: Bool

    }

    public let endpoints: Endpoints
    public let store: any StagingStore
    public let settings: RetentionSettings
    public let logger: Logger
    public let stop: StopSignal
    /// Deletes in flight at once (a remote store answers each in tens of milliseconds).
    public var connections = 8
    /// How often a collection lists a source's whole part of the store, to measure what it holds
    /// (`status` shows it with its time); the collections between list only what they may remove
    /// (`RetentionPlanner.listingRanges`) and subtract what they removed.
    public var usageMeasurementInterval: Duration = .seconds(3600)

    public init(endpoints: Endpoints, store: any StagingStore, settings: RetentionSettings, logger: Logger, stop: StopSignal = StopSignal()) {
        self.endpoints = endpoints
        self.store = store
        self.settings = settings
        self.logger = logger
        self.stop = stop
    }

    /// One collection of every source in `sources`.
    public func collect(_ sources: [SourceConfiguration], dryRun: Bool) async throws -> [Report] {
        try await endpoints.target.withControl(migrate: !dryRun, for: "gc") { control in
            var reports: [Report] = []
            for source in sources where !stop.isRequested {
                reports.append(try await collect(source.name, control: control, dryRun: dryRun))
            }
            return reports
        }
    }

    private func collect(_ source: String, control: ControlStore, dryRun: Bool) async throws -> Report {
        // Positions first, the listing after: whatever the listing shows before them is dead.
        guard let positions = try await control.retentionPositions(of: source, retention: settings.retention) else {
            return Report(source: source, plan: nil, dryRun: dryRun)
        }
        let usage = try await control.storeUsage(of: source)
        let measuring = usage.map { -$0.measuredAt.timeIntervalSinceNow >= Double(usageMeasurementInterval.components.seconds) } ?? true
        var listing: [StoredObject] = []
        if measuring {
            listing = try await store.list(prefix: source + "/", startAfter: nil)
        } else {
            for range in RetentionPlanner.listingRanges(source: source, positions: positions) {
                listing += try await store.list(prefix: range.prefix, startAfter: nil, endBefore: range.endBefore)
            }
        }
        let plan = RetentionPlanner.plan(source: source, listing: listing, positions: positions)
        guard !dryRun else { return Report(source: source, plan: plan, dryRun: true) }
        var removedBatches: [LSN] = []
        // Oldest first: a collection cut short leaves the newest of what it meant to remove.
        for removal in plan.removals where !stop.isRequested {
            try await remove(removal.keys)
            if let end = removal.batchEnd { removedBatches.append(end) }
            if removedBatches.count >= 500 {
                try await control.forgetBatches(source, removedBatches)
                removedBatches = []
            }
        }
        try await control.forgetBatches(source, removedBatches)
        if measuring {
            try await control.recordStoreUsage(source, plan: plan)
        } else {
            try await control.recordRemoval(source, plan: plan)
        }
        if plan.removedObjects > 0 {
            logger.with(source: source).info("staging store collected", metadata: [
                LogKey.removedObjects: .stringConvertible(plan.removedObjects), LogKey.removedBytes: .stringConvertible(plan.removedBytes),
                LogKey.keptObjects: .stringConvertible(plan.keptObjects),
            ])
        }
        return Report(source: source, plan: plan, dryRun: false)
    }

    /// The manifest first (the batch or snapshot is gone for every reader at once), then the rest.
    private func remove(_ keys: [String]) async throws {
        guard let first = keys.first else { return }
        try await store.delete(key: first)
        var rest = keys.dropFirst()[...]
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<connections {
                guard let key = rest.popFirst() else { break }
                group.addTask { try await store.delete(key: key) }
            }
            while try await group.next() != nil {
                if let key = rest.popFirst() { group.addTask { try await store.delete(key: key) } }
            }
        }
    }

}
