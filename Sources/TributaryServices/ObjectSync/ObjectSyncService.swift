import Foundation
import Logging
import Synchronization
import TributaryCore
import TributaryStorage

/// The object sync (DESIGN.md §4c): every mapping of the chosen sources, a pass each. `tributary
/// sync-objects` runs it once, `run` every `sync.interval`, `drain` once more at the end, and
/// `verify` compares the listings without copying.
public struct ObjectSyncService: Sendable {
    public typealias Report = ObjectSyncReport

    public let configuration: Configuration
    public let endpoints: Endpoints
    public let logger: Logger
    public let stop: StopSignal
    let stores: ObjectStores

    public init(configuration: Configuration, endpoints: Endpoints, logger: Logger, stop: StopSignal = StopSignal()) {
        self.configuration = configuration
        self.endpoints = endpoints
        self.logger = logger
        self.stop = stop
        stores = ObjectStores(defaults: configuration.target.oci, connections: configuration.target.sync.connections, logger: logger)
    }

    public func mappings(of sources: [SourceConfiguration]) -> [ObjectMapping] { sources.flatMap(\.objects) }

    /// One pass over each mapping. A mapping that fails does not stop the others; its report says why.
    public func runOnce(_ sources: [SourceConfiguration], dryRun: Bool,
                        onProgress: @Sendable (ObjectSyncProgress) async -> Void = { _ in }) async throws -> [Report] {
        try await endpoints.target.withControl(migrate: !dryRun, for: "sync-objects") { control in
            try await runOnce(mappings(of: sources), control: control, dryRun: dryRun, onProgress: onProgress)
        }
    }

    private func runOnce(_ mappings: [ObjectMapping], control: ControlStore, dryRun: Bool,
                         onProgress: @Sendable (ObjectSyncProgress) async -> Void) async throws -> [Report] {
        var reports: [Report] = []
        for mapping in mappings {
            let progress = ObjectSyncProgress(mapping: mapping.id)
            await onProgress(progress)
            do {
                let pass = ObjectSyncPass(mapping: mapping, source: try stores.open(mapping.source, isSource: true),
                                          target: try stores.open(mapping.target, isSource: false),
                                          settings: configuration.target.sync, control: control, logger: logger, progress: progress, stop: stop)
                reports.append(Report(try await pass.run(dryRun: dryRun)))
            } catch {
                logger.error("object sync failed", metadata: [LogKey.mapping: .string(mapping.id), LogKey.error: .string("\(error)")])
                reports.append(Report(mapping: mapping, error: "\(error)"))
            }
            progress.finish()
            if stop.isRequested { break }
        }
        return reports
    }

    /// What `verify` says of the objects: per mapping, whatever a pass would still copy or delete.
    public func verify(_ sources: [SourceConfiguration]) async throws -> [Report] {
        try await runOnce(sources, dryRun: true)
    }
}

/// What one pass of one mapping did (or, dry, would do).
public struct ObjectSyncReport: Sendable {
    public var mapping: ObjectMapping
    public var listed: Int64 = 0
    public var copied: Int64 = 0
    public var copiedBytes: Int64 = 0
    public var replaced: Int64 = 0
    public var failed: Int64 = 0
    public var failures: [String] = []
    public var extra: Int64 = 0
    public var extraBytes: Int64 = 0
    public var deleted: Int64 = 0
    public var deletesHeld: String?
    public var toCopy: [String] = [], toReplace: [String] = [], toDelete: [String] = []
    public var toCopyBytes: Int64 = 0, toReplaceBytes: Int64 = 0
    /// A killed pass was carried on, from after `resumedAfter` (nil: from the start).
    public var resumed = false
    public var resumedAfter: String?
    public var seconds = 0.0
    /// The mapping could not be synced at all (a store unreachable, bad credentials).
    public var error: String?

    init(mapping: ObjectMapping, error: String) {
        self.mapping = mapping
        self.error = error
    }

    init(_ report: ObjectSyncPass.Report) {
        mapping = report.mapping
        listed = report.listed
        copied = report.copied
        copiedBytes = report.copiedBytes
        replaced = report.replaced
        failed = report.failed
        failures = report.failures
        extra = report.extra
        extraBytes = report.extraBytes
        deleted = report.deleted
        deletesHeld = report.deletesHeld
        toCopy = report.toCopy
        toReplace = report.toReplace
        toDelete = report.toDelete
        toCopyBytes = report.toCopyBytes
        toReplaceBytes = report.toReplaceBytes
        resumed = report.resumed
        resumedAfter = report.resumedAfter
        seconds = report.seconds
    }

    public var succeeded: Bool { error == nil && failed == 0 }
    public var changedSomething: Bool { copied + replaced + deleted > 0 }
    /// For verify: the target holds exactly what the source does.
    public var inPlace: Bool { succeeded && copied + replaced == 0 && extra == 0 }

    var metadata: Logger.Metadata {
        [LogKey.mapping: .string(mapping.id), LogKey.listed: .stringConvertible(listed), LogKey.copied: .stringConvertible(copied),
         LogKey.replaced: .stringConvertible(replaced), LogKey.failed: .stringConvertible(failed), LogKey.deleted: .stringConvertible(deleted),
         LogKey.bytes: .stringConvertible(copiedBytes), LogKey.seconds: .string(String(format: "%.1f", seconds))]
    }
}

/// A pass's counters while it runs, for a progress line: objects listed and copied, bytes, rate,
/// and an estimate from the bytes still planned.
public final class ObjectSyncProgress: Sendable {
    public let mapping: String
    public let startedAt = ContinuousClock.now
    private struct Counts {
        var listed: Int64 = 0, copied: Int64 = 0, copiedBytes: Int64 = 0, plannedBytes: Int64 = 0, failed: Int64 = 0
        var done = false
    }
    private let counts = Mutex(Counts())

    init(mapping: String) { self.mapping = mapping }

    func listed() { counts.withLock { $0.listed += 1 } }
    func planned(bytes: Int64) { counts.withLock { $0.plannedBytes += bytes } }
    func copied(bytes: Int64) { counts.withLock { $0.copied += 1; $0.copiedBytes += bytes } }
    func failed() { counts.withLock { $0.failed += 1 } }
    func finish() { counts.withLock { $0.done = true } }

    public var isDone: Bool { counts.withLock { $0.done } }

    public struct Snapshot: Sendable {
        public var listed, copied, copiedBytes, plannedBytes, failed: Int64
        public var seconds: Double
        public var bytesPerSecond: Double { seconds > 0 ? Double(copiedBytes) / seconds : 0 }
        /// Seconds left for the bytes planned so far, at the rate so far.
        public var estimate: Double? { bytesPerSecond > 0 ? Double(plannedBytes - copiedBytes) / bytesPerSecond : nil }
    }

    public var snapshot: Snapshot {
        let elapsed = ContinuousClock.now - startedAt
        return counts.withLock {
            Snapshot(listed: $0.listed, copied: $0.copied, copiedBytes: $0.copiedBytes, plannedBytes: $0.plannedBytes, failed: $0.failed,
                     seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        }
    }
}
