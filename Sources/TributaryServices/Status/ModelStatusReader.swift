import Foundation
import TributaryCore
import TributaryPostgres

/// What `status` shows of a BL model.
public struct ModelStatus: Sendable, Codable, Equatable {
    public enum State: String, Sendable, Codable {
        /// Never built yet.
        case notBuilt = "not built"
        /// Every input change up to now is in the model.
        case current
        /// Input changes wait for its next run.
        case behind
        /// Its last run failed (`error`); it and the models reading it wait for a fix.
        case failed
    }

    public var model: String
    public var table: String
    public var state: State
    /// How old the newest source change in the model is: the sources' STG lag when it is current.
    public var lagSeconds: Double?
    /// Input rows changed since the model's last run (counted up to a million).
    public var rowsWaiting: Int
    public var lastRunAt: Date?
    public var reloadedAt: Date?
    public var error: String?
    /// Rows pointing at nothing over the model's relationships (`references:`), at their last
    /// count (verify, drain, transform --check); nil before one, or without relationships.
    public var orphans: Int?

    enum CodingKeys: String, CodingKey {
        case model, table, state, lagSeconds, rowsWaiting, lastRunAt, reloadedAt, error, orphans
    }
}

/// Reads the models' state from the control state and counts what waits in their inputs.
struct ModelStatusReader {
    let models: [TransformModel]
    /// STG table → its source.
    let sourceOfTable: [String: String]

    func read(control: ControlStore, sources: [SourceStatus]) async throws -> [ModelStatus] {
        let states = Dictionary(uniqueKeysWithValues: try await control.modelStates().map { ($0.model, $0) })
        let orphans = try await control.referenceChecks()
        var result: [ModelStatus] = []
        for model in models {
            let state = states[model.name]
            let waiting = try await rowsWaiting(model, control: control)
            var status = ModelStatus(model: model.name, table: model.table.description, state: .behind, rowsWaiting: waiting,
                                     lastRunAt: state?.runAt, reloadedAt: state?.reloadedAt, error: state?.error)
            if !model.references.isEmpty { status.orphans = orphans[model.name] }
            if state?.error != nil {
                status.state = .failed
            } else if state?.runAt == nil {
                status.state = .notBuilt
            } else if waiting == 0 && state?.needsFull != true {
                status.state = .current
            }
            // Current: as fresh as STG for its sources. Behind: as old as the newest change its last run saw.
            let modelSources = Set(model.inputs.compactMap { sourceOfTable[$0.table.name] })
            let sourceLags = sources.filter { modelSources.contains($0.source) }.compactMap(\.lagSeconds)
            if status.state == .current {
                status.lagSeconds = sourceLags.max()
            } else if let asOf = state?.asOf {
                status.lagSeconds = Date().timeIntervalSince(asOf)
            }
            result.append(status)
        }
        return result
    }

    /// Input rows after the model's watermarks; an input without one counts whole.
    private func rowsWaiting(_ model: TransformModel, control: ControlStore) async throws -> Int {
        let marks = Dictionary(uniqueKeysWithValues: try await control.watermarks(of: model.name).map { ($0.input, $0) })
        var total = 0
        for input in model.inputs {
            let exists = try await control.connection.query("SELECT to_regclass($1) IS NOT NULL", [input.table.sql]).scalar(Bool.self)
            guard exists else { continue }
            let upstream = models.first { $0.table == input.table }
            if let upstream, !(try await control.connection.query("SELECT to_regclass($1) IS NOT NULL",
                                                                 [TransformSQL(model: upstream).changeLog.sql]).scalar(Bool.self)) {
                continue
            }
            let mark = marks[input.table.description]
            total += try await control.connection.run { connection -> Int in
                var shape = TransformSQL.InputShape(input: input, key: [], upstream: upstream)
                var logged = false
                if upstream == nil {
                    // An STG input's changes are in its change log, once a run has made it.
                    shape.key = try TargetCatalog.primaryKey(of: input.table, on: connection)
                    logged = try !shape.key.isEmpty && TargetCatalog.exists(TransformSQL.stagingLog(shape).log, on: connection)
                }
                return try connection.query(TransformSQL(model: model).pendingCount(shape, after: mark?.lsn, seq: mark?.seq, cap: ModelRun.pendingCap,
                                                                                    logged: logged)).scalar(Int.self)
            }
        }
        return total
    }
}

/// What `status` shows of an object-sync mapping: its last (or running) pass.
public struct ObjectSyncStatus: Sendable, Codable, Equatable {
    public var mapping: String
    public var source: String
    public var target: String
    /// `never run`, `running`, `done` or `failed`.
    public var state: String
    public var startedAt: Date?
    public var finishedAt: Date?
    /// Objects (and bytes) the pass planned to copy and has not yet.
    public var pending: Int64
    public var pendingBytes: Int64
    public var copied: Int64
    public var copiedBytes: Int64
    public var failed: Int64
    /// Objects only the target has.
    public var extra: Int64
    public var deleted: Int64
    public var error: String?

    enum CodingKeys: String, CodingKey {
        case mapping, source, target, state, startedAt = "started_at", finishedAt = "finished_at", pending, pendingBytes = "pending_bytes"
        case copied, copiedBytes = "copied_bytes", failed, extra, deleted, error
    }

    init(mapping: ObjectMapping, pass: ControlStore.ObjectPass?) {
        self.mapping = mapping.id
        source = mapping.source.description
        target = mapping.target.description
        state = pass?.state.rawValue ?? "never run"
        startedAt = pass?.startedAt
        finishedAt = pass?.finishedAt
        pending = pass?.pending ?? 0
        pendingBytes = pass?.pendingBytes ?? 0
        copied = (pass?.copied ?? 0) + (pass?.replaced ?? 0)
        copiedBytes = pass?.copiedBytes ?? 0
        failed = pass?.failed ?? 0
        extra = pass?.extra ?? 0
        deleted = pass?.deleted ?? 0
        error = pass?.error
    }
}
