import TributaryCore
import TributaryPostgres
import TributaryStorage

/// `tributary check`: every requirement of sources, target and staging store, each reported on its
/// own, so an operator fixes them all in one round.
public struct PreflightChecker: Sendable {
    public struct Result: Sendable {
        public var subject: String
        public var passed: Bool
        public var message: String
    }

    public let configuration: Configuration
    public let endpoints: Endpoints
    /// The store, or why it could not be opened (bad credentials, say).
    public let store: Swift.Result<any StagingStore, any Error>

    public init(configuration: Configuration, endpoints: Endpoints, store: Swift.Result<any StagingStore, any Error>) {
        self.configuration = configuration
        self.endpoints = endpoints
        self.store = store
    }

    public func run(sources: [SourceConfiguration]) async -> [Result] {
        var results: [Result] = []
        for source in sources {
            results += await check(source)
        }
        results += await checkTarget()
        results += await checkSnapshotted(sources)
        results += await checkStore()
        return results
    }

    /// Tables in a snapshotted source's configuration that no snapshot has filled yet (added to the
    /// YAML since): their STG tables are missing or hold only what the stream brought.
    /// An unreachable target is said by the target's own check; anything failing after it is said
    /// here, never taken for "nothing to report".
    func checkSnapshotted(_ sources: [SourceConfiguration]) async -> [Result] {
        guard let connection = try? await endpoints.target.connect() else { return [] }
        let control = ControlStore(connection)
        var results: [Result] = []
        do {
            if try await control.isCurrent() {
                for source in sources {
                    guard try await control.appliedSnapshot(of: source.name) != nil else { continue }
                    let filled = try await control.snapshottedTables(source.name)
                    let missing = source.tables.filter { !filled.contains($0.stagingTable) }.map(\.table.description)
                    if missing.isEmpty { continue }
                    results.append(Result(subject: source.name, passed: false, message: """
                        not snapshotted yet: \(missing.joined(separator: ", ")): \
                        run tributary snapshot --source \(source.name) \(missing.map { "--table \($0)" }.joined(separator: " "))
                        """))
                }
            }
        } catch {
            results.append(Result(subject: "target", passed: false, message: "could not read which tables are snapshotted: \(error)"))
        }
        await connection.close()
        return results
    }

    /// The control state of `source` when the target holds an applied snapshot of it that is not
    /// finished with (drained); nil otherwise, or when the target cannot say.
    func replicatedState(_ source: SourceConfiguration) async -> SourceControlState? {
        try? await endpoints.target.withControl(migrate: false) { control -> SourceControlState? in
            guard try await control.isCurrent(), try await control.appliedSnapshot(of: source.name) != nil,
                  let state = try await control.state(of: source.name), state.state != .drained else { return nil }
            return state
        } ?? nil
    }

    /// The relation ids the applier recorded for `source`'s tables (none when the target cannot say).
    func recordedOIDs(_ source: SourceConfiguration) async -> [QualifiedName: UInt32] {
        (try? await endpoints.target.withControl(migrate: false) { control -> [QualifiedName: UInt32] in
            guard try await control.isCurrent() else { return [:] }
            return try await control.recordedTableOIDs(of: source.name)
        }) ?? [:]
    }

    /// The slot exists and serves, or can be created; lost, recreated, or dropped after the snapshot, fails.
    func checkSlot(_ source: SourceConfiguration, on connection: PostgresConnection, freeSlots: Int, freeSenders: Int) async throws -> Result {
        func result(_ passed: Bool, _ message: String) -> Result { Result(subject: source.name, passed: passed, message: message) }
        if let slot = try await ReplicationSlot.find(source.slot, on: connection) {
            guard !slot.isLost else {
                return result(false, "replication slot \(source.slot) is lost: the source removed WAL it still needed (max_slot_wal_keep_size): "
                                     + ReplicationSlot.recovery(source: source.name))
            }
            if let recorded = await replicatedState(source)?.flushedLSN, case .success(let store) = store,
               let problem = try? await SlotContinuityCheck.problem(slot, source: source, recorded: { recorded }, store: store) {
                return result(false, problem + ": " + ReplicationSlot.recovery(source: source.name))
            }
            return result(true, "replication slot \(source.slot) exists (confirmed up to \(slot.confirmedFlushLSN?.description ?? "-"))")
        }
        if await replicatedState(source) != nil {
            return result(false, "replication slot \(source.slot) was dropped after the snapshot: changes since are missing: "
                                 + ReplicationSlot.recovery(source: source.name))
        }
        guard freeSlots > 0, freeSenders > 0 else {
            return result(false, "no free replication slot or WAL sender: raise max_replication_slots and max_wal_senders and restart")
        }
        return result(true, "replication slot \(source.slot) can be created (\(freeSlots) free)")
    }

    func check(_ source: SourceConfiguration) async -> [Result] {
        var results: [Result] = []
        func pass(_ message: String) { results.append(Result(subject: source.name, passed: true, message: message)) }
        func fail(_ message: String) { results.append(Result(subject: source.name, passed: false, message: message)) }

        let connection: PostgresConnection
        do {
            connection = try await endpoints.source(source).connect()
        } catch {
            fail("unreachable: \(error)")
            return results
        }
        do {
            let server = try await connection.query("""
                SELECT current_setting('server_version') AS version, current_setting('server_version_num')::int AS number,
                       current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots) AS free_slots,
                       current_setting('max_wal_senders')::int - (SELECT count(*) FROM pg_stat_replication) AS free_senders,
                       EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1) AS publication_exists
                """, [source.publication]).rows[0]
            pass("reachable: PostgreSQL \(try server.decode("version", as: String.self)) at \(connection.endpoint)")
            if try server.decode("number", as: Int.self) < 150000 {
                fail("PostgreSQL 15 or newer is required (pgoutput protocol 2 with streaming and MERGE)")
            }
            do {
                try await SourceChecks.requireLogicalDecoding(on: connection, source: source)
                pass("wal_level = logical and the role may replicate")
            } catch {
                fail("\(error)")
            }
            results.append(try await checkSlot(source, on: connection, freeSlots: try server.decode("free_slots", as: Int.self),
                                               freeSenders: try server.decode("free_senders", as: Int.self)))
            if try server.decode("publication_exists", as: Bool.self) {
                pass("publication \(source.publication) exists")
            } else if source.createPublication {
                pass("publication \(source.publication) will be created by snapshot")
            } else {
                fail("publication \(source.publication) does not exist and create_publication is false: create it, or set create_publication: true")
            }
            if try await connection.query(DDLAnnouncement.installedSQL).scalar(Int.self) == DDLAnnouncement.triggers.count {
                pass("DDL event trigger installed: schema changes are read at their exact place in the stream")
            } else {
                pass("DDL event trigger not installed (optional): schema changes are identified from the catalog (see the README); "
                     + "tributary check --ddl-trigger prints the SQL that installs it")
            }
            let recorded = await recordedOIDs(source)
            for table in source.tables {
                do {
                    if try await connection.query("SELECT to_regclass($1) IS NULL", [table.table.sql]).scalar(Bool.self),
                       let oid = recorded[table.table], let renamed = try await SourceDrift.name(of: oid, on: connection) {
                        pass("table \(table.table) → stg.\(table.stagingTable): renamed to \(renamed) on \(source.name), followed by its relation id; "
                             + "\(source.file) names the old name: write name: \(renamed) with stg_table: \(table.stagingTable)")
                        continue
                    }
                    let described = try await SourceCatalog.describe(table, source: source, on: connection)
                    var note = "\(described.relation.columns.count) columns, key (\(described.relation.key.joined(separator: ", ")))"
                    if !described.omittedColumns.isEmpty { note += ", not replicated: \(described.omittedColumns.joined(separator: ", "))" }
                    pass("table \(table.table) → stg.\(table.stagingTable): \(note)")
                } catch {
                    fail("\(error)")
                }
            }
        } catch {
            fail("\(error)")
        }
        await connection.close()
        return results
    }

    func checkTarget() async -> [Result] {
        do {
            return try await endpoints.target.withConnection { connection in try await checkTarget(on: connection) }
        } catch {
            return [Result(subject: "target", passed: false, message: "\(error)")]
        }
    }

    private func checkTarget(on connection: PostgresConnection) async throws -> [Result] {
        let server = try await connection.query("""
            SELECT current_setting('server_version') AS version,
                   has_database_privilege(current_database(), 'CREATE')
                   OR (SELECT count(*) = 3 AND bool_and(has_schema_privilege(oid, 'CREATE')) FROM pg_namespace
                       WHERE nspname IN ('tributary', 'stg', 'tributary_load')) AS may_create
            """).rows[0]
        var results = [Result(subject: "target", passed: true,
                              message: "reachable: PostgreSQL \(try server.decode("version", as: String.self)) at \(connection.endpoint)")]
        if try server.decode("may_create", as: Bool.self) {
            try await connection.execute("CREATE TEMP TABLE tributary_check (x int); DROP TABLE tributary_check")
            results.append(Result(subject: "target", passed: true, message: "writable: may create (or owns) the schemas tributary, stg and tributary_load"))
        } else {
            results.append(Result(subject: "target", passed: false, message: """
                the role may not create schemas: GRANT CREATE ON DATABASE <db> TO <role>, or have an administrator create \
                tributary, stg, tributary_load, bl and tributary_bl with AUTHORIZATION <role>
                """))
        }
        return results
    }

    func checkStore() async -> [Result] {
        let store: any StagingStore
        switch self.store {
        case .success(let opened): store = opened
        case .failure(let error):
            return [Result(subject: "staging", passed: false, message: "\(configuration.target.staging) cannot be opened: \(error)")]
        }
        let key = "_check/probe-\(UInt64.random(in: 0...UInt64.max))"
        do {
            try await store.put(key: key, bytes: Array("tributary check".utf8))
            let back = try await store.get(key: key)
            try await store.delete(key: key)
            guard back == Array("tributary check".utf8) else {
                return [Result(subject: "staging", passed: false, message: "\(store) returned other bytes than were written")]
            }
            return [Result(subject: "staging", passed: true, message: "\(store) is writable and readable")]
        } catch {
            return [Result(subject: "staging", passed: false, message: "\(store): \(error)")]
        }
    }
}
