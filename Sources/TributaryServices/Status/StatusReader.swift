import Foundation
import TributaryCore
import TributaryPostgres
import TributaryStorage

/// What `tributary status` shows per source, read from the source (WAL and slot), the staging
/// store (batches not yet applied) and the target's control schema. Works while nothing runs.
public struct SourceStatus: Sendable, Codable, Equatable {
    /// running, paused, draining, drained; or "not snapshotted" before the first applied snapshot.
    public var state: String
    public var source: String
    public var slot: String
    /// Whether a replicator is consuming the slot now.
    public var replicatorActive: Bool?
    public var sourceLSN: String?
    public var confirmedLSN: String?
    /// WAL the source still holds for Tributary: current position − slot's confirmed position.
    public var sourceLagBytes: Int?
    /// WAL the slot keeps on the source's disk (from its restart position).
    public var retainedWALBytes: Int?
    public var walStatus: String?
    public var stagedBatches: Int
    public var stagedBytes: Int
    public var flushedLSN: String?
    public var appliedLSN: String?
    public var appliedCommitTime: Date?
    /// now − commit time of the newest applied change (heartbeats keep it honest on idle sources).
    public var lagSeconds: Double?
    /// Changes applied per second over the last minute.
    public var changesPerSecond: Double
    public var warnings: [String]
    /// While draining or drained: the end the drain fixed.
    public var drainLSN: String?

    enum CodingKeys: String, CodingKey {
        case state, source, slot, replicatorActive, confirmedLSN = "confirmedLsn", sourceLSN = "sourceLsn", sourceLagBytes
        case retainedWALBytes = "retainedWalBytes", walStatus, stagedBatches, stagedBytes, flushedLSN = "flushedLsn"
        case appliedLSN = "appliedLsn", appliedCommitTime, lagSeconds, changesPerSecond, warnings, drainLSN = "drainLsn"
    }
}

public struct StatusReader: Sendable {
    public let target: String
    public let store: any StagingStore

    public init(target: String, store: any StagingStore) {
        self.target = target
        self.store = store
    }

    public func read(_ sources: [SourceConfiguration]) async throws -> [SourceStatus] {
        let connection = try await PostgresConnection.connect(target, name: "target", applicationName: "tributary status")
        try await ControlSchema.migrate(on: connection)
        var result: [SourceStatus] = []
        for source in sources { result.append(try await read(source, target: connection)) }
        await connection.close()
        return result
    }

    func read(_ source: SourceConfiguration, target: PostgresConnection) async throws -> SourceStatus {
        var status = SourceStatus(state: "not snapshotted", source: source.name, slot: source.slot, stagedBatches: 0, stagedBytes: 0,
                                  changesPerSecond: 0, warnings: [])
        let control = try await target.query("""
            SELECT state, flushed_lsn, applied_lsn, drain_lsn, applied_commit_time, extract(epoch FROM now() - applied_commit_time) AS lag,
                   (SELECT coalesce(sum(rows), 0) / 60.0 FROM tributary.applied_batches
                    WHERE source = $1 AND applied_at > now() - interval '1 minute') AS rate
            FROM tributary.sources WHERE source = $1
            """, [source.name])
        if !control.isEmpty {
            status.state = control.value(0, "state")!
            status.flushedLSN = control.value(0, "flushed_lsn")
            status.drainLSN = control.value(0, "drain_lsn")
            status.appliedLSN = control.value(0, "applied_lsn")
            status.appliedCommitTime = control.value(0, "applied_commit_time").flatMap(Self.parseTime)
            status.lagSeconds = control.value(0, "lag").flatMap(Double.init)
            status.changesPerSecond = Double(control.value(0, "rate") ?? "0") ?? 0
        }
        // Staged but not applied: batches after the applied position.
        if let applied = status.appliedLSN.flatMap(LSN.init) {
            let pending = try await store.list(prefix: ObjectNaming.cdcPrefix(source: source.name),
                                               startAfter: ObjectNaming.cdcDirectory(source: source.name, endLSN: applied) + "~")
            status.stagedBatches = pending.filter { $0.key.hasSuffix("/" + ObjectNaming.manifestName) }.count
            status.stagedBytes = pending.reduce(0) { $0 + $1.size }
        }
        do {
            let connection = try await PostgresConnection.connect(source.connection, name: source.name, applicationName: "tributary status")
            let slot = try await connection.query("""
                SELECT pg_current_wal_lsn() AS current, s.confirmed_flush_lsn, s.active,
                       pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint AS lag,
                       pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint AS retained,
                       s.wal_status, s.safe_wal_size
                FROM (SELECT 1) AS one LEFT JOIN pg_replication_slots s ON s.slot_name = $1
                """, [source.slot])
            await connection.close()
            status.sourceLSN = slot.value(0, "current")
            status.confirmedLSN = slot.value(0, "confirmed_flush_lsn")
            if status.confirmedLSN == nil {
                status.warnings.append("replication slot \(source.slot) does not exist on \(source.name): run tributary snapshot --source \(source.name)")
            } else {
                status.replicatorActive = slot.value(0, "active") == "t"
                status.sourceLagBytes = slot.value(0, "lag").flatMap(Int.init)
                status.retainedWALBytes = slot.value(0, "retained").flatMap(Int.init)
                status.walStatus = slot.value(0, "wal_status")
                if status.replicatorActive == false && (status.state == "running" || status.state == "draining") {
                    status.warnings.append("no replicator is consuming the slot: the source retains WAL until tributary run (or replicate --source \(source.name)) runs")
                }
                if status.state == "paused" {
                    status.warnings.append("paused: the source retains WAL for the slot until tributary resume \(source.name)")
                }
                if let safe = slot.value(0, "safe_wal_size").flatMap(Int.init), let retained = status.retainedWALBytes,
                   safe < retained / 4 {
                    status.warnings.append("the slot nears max_slot_wal_keep_size: \(safe) bytes left before the source invalidates it")
                }
                if status.walStatus == "lost" {
                    status.warnings.append("the slot lost WAL it needed: take a new snapshot (tributary snapshot --source \(source.name) --restart)")
                }
            }
        } catch {
            status.warnings.append("source unreachable: \(error)")
        }
        return status
    }

    static func parseTime(_ text: String) -> Date? {
        // PostgreSQL's ISO form under TimeZone=UTC: 2026-11-25 10:12:14.760203+00
        ManifestCoding.parseTimestamp(text.replacingOccurrences(of: " ", with: "T").replacingOccurrences(of: "+00", with: "Z"))
    }
}

/// `tributary status --json`: `{"generated_at": …, "sources": [SourceStatus…]}`, snake_case keys,
/// LSNs in PostgreSQL's text form, times ISO 8601 with microseconds. Fields are only ever added.
public struct StatusReport: Sendable, Codable, Equatable {
    public var generatedAt: Date
    public var sources: [SourceStatus]

    public init(generatedAt: Date, sources: [SourceStatus]) {
        self.generatedAt = generatedAt
        self.sources = sources
    }
}
