import Foundation
import Logging
import TributaryCore
import TributaryPostgres
import TributaryStorage

/// The table snapshots a source's pipeline takes by itself, where the stream cannot make STG
/// exact: rows whose values changed without a change being written (a column added with a
/// default that is not a constant, asked for by the applier in the batch's transaction) and rows
/// that came or went with a partition (attached, detached, created or dropped under a configured
/// partitioned table, seen by comparing its partitions every `partitionInterval`). Each is a
/// `snapshot --table` (a copy at its own point, merged into STG by LSN by the applier), so the
/// result is exact whenever it runs; `drain` waits for those asked for.
struct TableResyncPart: Part {
    let kind = "resync"
    var source: String? { configuration.name }
    let configuration: SourceConfiguration
    let service: SnapshotService
    let partitionInterval: Duration
    private var control: ControlStore?
    private var catalog: PostgresConnection?

    init(source: SourceConfiguration, service: SnapshotService, partitionInterval: Duration = .seconds(10)) {
        configuration = source
        self.service = service
        self.partitionInterval = partitionInterval
    }

    mutating func step(_ context: PartContext) async throws -> PartStep {
        let started = ContinuousClock.now
        if control == nil { control = try await service.endpoints.target.openControl(migrate: true, for: "resync \(configuration.name)") }
        if catalog == nil { catalog = try await service.endpoints.source(configuration).connect(for: "resync \(configuration.name)") }
        try await comparePartitions(control: control!, catalog: catalog!, logger: context.logger)
        let pending = try await control!.pendingResyncs(of: configuration.name)
        context.ready(pending.isEmpty ? "watching partitions every \(Int(partitionInterval.seconds)) s" : "copying \(pending.count) tables again")
        for request in pending where !context.stop.isRequested {
            context.logger.notice("table snapshot for values no change carried", metadata: [
                LogKey.table: .string(request.table.description), LogKey.reason: .string(request.reason)])
            let point = PointHolder()
            try await context.working {
                try await service.runTables([request.table], of: configuration, jobs: nil, apply: false, onProgress: { _ in }) { event in
                    if case .tablesCopied(let manifest, _) = event { point.set(manifest.consistentPoint) }
                }
            }
            guard let snapshot = point.value else { continue }
            try await control!.resyncStored(configuration.name, table: request.table, upTo: request.lsn, snapshot: snapshot)
            context.logger.notice("table snapshot stored: the applier merges it", metadata: [
                LogKey.table: .string(request.table.description), LogKey.snapshot: .string(snapshot.description)])
        }
        return .idle(until: started + partitionInterval)
    }

    /// Each configured partitioned table's partitions (by relation id, so a rename is no change)
    /// against those seen last: any difference asks for a table snapshot of the table.
    private func comparePartitions(control: ControlStore, catalog: PostgresConnection, logger: Logger) async throws {
        let rows = try await catalog.query("""
            SELECT t.name, coalesce(array_agg(p.relid::oid::text ORDER BY p.relid::oid) FILTER (WHERE p.relid IS NOT NULL), '{}')::text AS partitions
            FROM unnest($1::text[]) AS t(name)
            JOIN pg_class c ON c.oid = to_regclass(t.name) AND c.relkind = 'p'
            LEFT JOIN LATERAL pg_partition_tree(c.oid) p ON p.relid <> c.oid
            GROUP BY t.name
            """, [PostgresArray.literal(configuration.tables.map(\.table.sql))])
        for row in rows.rows {
            guard let table = configuration.tables.first(where: { $0.table.sql == (try? row.decode(at: 0, as: String.self)) })?.table else { continue }
            let text = try row.decode(at: 1, as: String.self)
            let now = text.trimmingCharacters(in: CharacterSet(charactersIn: "{}")).split(separator: ",").map(String.init)
            guard let seen = try await control.partitionSet(of: configuration.name, table: table) else {
                try await control.recordPartitionSet(now, of: configuration.name, table: table)
                continue
            }
            guard seen != now else { continue }
            let lsn = try await catalog.query("SELECT pg_current_wal_lsn()").scalar(LSN.self)
            let reason = "its partitions changed (\(Set(now).subtracting(seen).count) added, \(Set(seen).subtracting(now).count) gone): their rows came or went without changes"
            try await control.requestResync(configuration.name, table: table, reason: reason, at: lsn)
            try await control.recordPartitionSet(now, of: configuration.name, table: table)
            logger.notice("partitions changed on the source: a table snapshot follows", metadata: [
                LogKey.table: .string(table.description), LogKey.reason: .string(reason)])
        }
    }

    mutating func reset() async {
        await control?.close()
        control = nil
        await catalog?.close()
        catalog = nil
    }
}

/// The consistent point a snapshot's event reports, read after it.
private final class PointHolder: @unchecked Sendable {
    private var point: LSN?
    private let lock = NSLock()
    func set(_ value: LSN) { lock.withLock { point = value } }
    var value: LSN? { lock.withLock { point } }
}
