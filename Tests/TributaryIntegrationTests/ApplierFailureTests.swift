import Foundation
import Testing
import TributaryCore
import TributaryPostgres
import TributaryStorage
@testable import TributaryServices
import TributaryTestSupport

/// The applier under replays, reordering, kills and damaged files.
@Suite(.clusterLoad) struct ApplierFailureTests {
    /// One source with a random workload replicated into many small batches.
    func replicatedFixture(_ label: String, steps: Int = 300, rowsPerBatch: Int = 40, largeValues: Bool = true) async throws -> PipelineFixture {
        var fixture = try await PipelineFixture.make(label, sources: [("qvp", ["public.accounts", "public.ledger"])])
        fixture.snapshotYAML = "  jobs: 1\nbatch:\n  max_rows: \(rowsPerBatch)\n"
        let source = try await fixture.connectSource("qvp")
        try await source.execute(RandomWorkload.schema)
        _ = try await fixture.snapshot("qvp")
        var workload = RandomWorkload(seed: UInt64.random(in: 1...UInt64.max), largeValues: largeValues)
        let two = try await fixture.connectSource("qvp")
        for step in 0..<steps { try await workload.step(source, two, addColumnAt: nil, step: step) }
        var limits = try fixture.configuration().target.batch
        limits.rowsMax = rowsPerBatch
        _ = try await fixture.replicateUntilCaughtUp("qvp", limits: limits)
        return fixture
    }

    /// A second target database holding the fixture's snapshot of qvp; its connection string.
    func secondTarget(_ name: String, of fixture: PipelineFixture) async throws -> String {
        let database = try await fixture.clusters.makeDatabase(name, onSource: false)
        var configuration = try fixture.configuration().target
        configuration.connection = database
        _ = try await SnapshotLoader(target: TargetEndpoint(configuration, command: "test"), store: try fixture.store(), jobs: 1, sources: [],
                                     logger: PipelineFixture.logger).load(source: "qvp")
        return database
    }

    func liveRows(_ connectionInfo: String, table: String) async throws -> [String] {
        let connection = try await PostgresConnection.connect(connectionInfo, name: "target")
        let columns = try await connection.query("""
            SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
            WHERE attrelid = 'stg.\(table)'::regclass AND attnum > 0 AND NOT attisdropped
            """).scalar!
        return try await connection.query("SELECT ROW(\(columns))::text AS r FROM stg.\(table) WHERE NOT _deleted ORDER BY r").rows.map { $0[0]! }
    }

    /// Without out-of-line values: an update that leaves a TOASTed column unchanged means "keep the
    /// value as of this point in LSN order", which only in-order application can honour (the
    /// applier applies strictly in LSN order; replays of applied batches stay harmless, see above).
    @Test func batchesAppliedTwiceOrShuffledWithReplaysGiveTheSameSTG() async throws {
        // Small batches, so that even a workload heavy in bulk inserts stages well over 10 of them.
        let fixture = try await replicatedFixture("shuffle", rowsPerBatch: 10, largeValues: false)
        let store = try fixture.store()
        let configuration = try fixture.configuration()
        let manifests = try await fixture.stagedChanges("qvp").manifests
        #expect(manifests.count > 10)

        // In order, twice: the second run applies nothing. Batch by batch, every batch after the
        // first was loaded ahead, on the second connection, while the one before it merged.
        var settings = ChangeApplier.Settings(jobs: 1)
        settings.grouping = nil
        let applier = ChangeApplier(endpoints: try fixture.endpoints(), sources: configuration.sources, store: store, settings: settings,
                                    logger: PipelineFixture.logger)
        let first = try await applier.applyOnce()
        #expect(first.batches == manifests.count)
        #expect(first.loadedAhead == manifests.count - 1)
        #expect(try await applier.applyOnce().batches == 0)
        #expect(try await fixture.verify("qvp").allSatisfy { $0.matches })

        // A second target: the snapshot, then every batch in a shuffled order, many of them twice.
        let shuffledTarget = try await secondTarget("shuffled", of: fixture)
        var generator = SeededGenerator(seed: UInt64.random(in: 1...UInt64.max))
        let order = (manifests + manifests.filter { _ in Bool.random(using: &generator) }).shuffled(using: &generator)
        let connection = try await PostgresConnection.connect(shuffledTarget, name: "target")
        let batchApplier = BatchApplier(source: configuration.sources[0], store: store, logger: PipelineFixture.logger)
        var applied = 0
        for manifest in order where try await batchApplier.apply(manifest, on: connection).applied { applied += 1 }
        #expect(applied == manifests.count, "each batch applies once, replays change nothing")
        for table in ["qvp_accounts", "qvp_ledger"] {
            let inOrder = try await liveRows(fixture.target, table: table)
            let shuffled = try await liveRows(shuffledTarget, table: table)
            #expect(inOrder == shuffled, "\(table) differs after a shuffled apply")
        }
    }

    /// Every STG row as text, `_lsn` included; of a tombstone, its key and `_lsn` (its other
    /// values are what its table last held, or none when STG never held the row).
    func allRows(_ connectionInfo: String, table: String, key: String) async throws -> [String] {
        let connection = try await PostgresConnection.connect(connectionInfo, name: "target")
        return try await connection.query("""
            SELECT CASE WHEN _deleted THEN ROW(\(key), _lsn)::text ELSE s::text END AS r FROM stg.\(table) s ORDER BY r
            """).rows.map { $0[0]! }
    }

    /// A backlog merged in groups (`BatchGroup`) gives exactly the STG that applying it batch by
    /// batch gives, tombstones and LSNs included, over the random workload's every kind of change
    /// (key moves, unchanged TOAST, bulk inserts; its TRUNCATEs end groups).
    @Test func aBacklogMergedInGroupsGivesTheSTGOfOneBatchAtATime() async throws {
        let fixture = try await replicatedFixture("grouped", rowsPerBatch: 10, largeValues: true)
        let store = try fixture.store()
        let configuration = try fixture.configuration()
        let manifests = try await fixture.stagedChanges("qvp").manifests
        #expect(manifests.count > 10)
        let report = try await ChangeApplier(endpoints: try fixture.endpoints(), sources: configuration.sources, store: store,
                                             settings: .init(jobs: 1), logger: PipelineFixture.logger).applyOnce()
        #expect(report.batches == manifests.count)
        #expect(report.grouped > manifests.count / 2 && report.groups < report.grouped / 2, "\(report.groups) groups of \(report.grouped) batches")
        let target = try await fixture.connectTarget()
        #expect(try await target.query("SELECT count(*) FROM tributary.applied_batches WHERE source = 'qvp'").scalar == String(manifests.count))
        #expect(try await target.query("SELECT applied_lsn FROM tributary.sources WHERE source = 'qvp'").scalar == manifests.last!.endLSN.description)
        #expect(try await fixture.verify("qvp").allSatisfy { $0.matches })

        let batchByBatch = try await secondTarget("onebyone", of: fixture)
        let connection = try await PostgresConnection.connect(batchByBatch, name: "target")
        let batchApplier = BatchApplier(source: configuration.sources[0], store: store, logger: PipelineFixture.logger)
        for manifest in manifests { _ = try await batchApplier.apply(manifest, on: connection) }
        for (table, key) in [("qvp_accounts", "id"), ("qvp_ledger", "a, b")] {
            let grouped = try await allRows(fixture.target, table: table, key: key)
            let oneByOne = try await allRows(batchByBatch, table: table, key: key)
            let differences = Set(grouped).symmetricDifference(oneByOne).sorted().map { "\($0.prefix(40))…\($0.suffix(40)) (\($0.count))" }
            #expect(differences.isEmpty && grouped.count == oneByOne.count, "\(table) differs between grouped and batch by batch: \(differences)")
        }
    }

    /// Each batch numbers its changes from 1: in a group, a key's changes are ordered by commit
    /// LSN first. A row inserted with a large value late in one batch (a high `_seq`), then
    /// updated twice and moved to a new key early in the next (low `_seq`s, its large value left
    /// out as unchanged): ordered by `_seq` alone, the insert would win and the move would find
    /// no earlier change to take the value from.
    @Test func aGroupOrdersAKeysChangesByCommitThenSequence() async throws {
        var fixture = try await PipelineFixture.make("grouporder", sources: [("qvp", ["public.accounts"])])
        fixture.snapshotYAML = "  jobs: 1\n"
        let source = try await fixture.connectSource("qvp")
        try await source.execute("""
            CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric(12,2), doc text);
            ALTER TABLE accounts ALTER COLUMN doc SET STORAGE EXTERNAL;
            """)
        _ = try await fixture.snapshot("qvp")
        _ = try await fixture.load("qvp")
        for transaction in [
            "INSERT INTO accounts SELECT i, 'owner ' || i, 0, repeat(md5(i::text), 100) FROM generate_series(5000, 5019) i",
            "UPDATE accounts SET balance = 7 WHERE id = 5019",
            "UPDATE accounts SET balance = 8 WHERE id = 5019",
            "UPDATE accounts SET id = 7000 WHERE id = 5018",
            "INSERT INTO accounts SELECT i, 'filler', 0, NULL FROM generate_series(6000, 6019) i",
        ] {
            try await source.execute(transaction)
        }
        var limits = try fixture.configuration().target.batch
        limits.rowsMax = 10
        _ = try await fixture.replicateUntilCaughtUp("qvp", limits: limits)
        let manifests = try await fixture.stagedChanges("qvp").manifests
        #expect(manifests.count == 2, "the insert in one batch, the rest in the next")
        let report = try await ChangeApplier(endpoints: try fixture.endpoints(), sources: try fixture.configuration().sources, store: try fixture.store(),
                                             settings: .init(jobs: 1), logger: PipelineFixture.logger).applyOnce()
        #expect(report.groups == 1 && report.grouped == 2)
        let target = try await fixture.connectTarget()
        #expect(try await target.query("SELECT balance FROM stg.qvp_accounts WHERE id = 5019 AND NOT _deleted").scalar == "8.00")
        #expect(try await target.query("SELECT length(doc) FROM stg.qvp_accounts WHERE id = 7000 AND NOT _deleted").scalar == "3200")
        #expect(try await target.query("SELECT _deleted FROM stg.qvp_accounts WHERE id = 5018").scalar == "t")
        #expect(try await fixture.verify("qvp").allSatisfy { $0.matches })
    }

    @Test func applierKilledDuringMergesFinishesCorrectly() async throws {
        let fixture = try await replicatedFixture("killapply", steps: 400, rowsPerBatch: 4)
        let manifests = try await fixture.stagedChanges("qvp").manifests.count
        #expect(manifests > 40)
        let target = try await fixture.connectTarget()
        var kills = 0
        for fraction in [0.1, 0.35, 0.6, 0.85] {
            try fixture.writeConfiguration()
            let apply = TestProcess(Paths.tributary, ["apply", "--once", "--config", fixture.configurationDirectory])
            try apply.start()
            let deadline = ContinuousClock.now + .seconds(120)
            while ContinuousClock.now < deadline, waitpid(apply.pid, nil, WNOHANG) == 0 {
                let count = try? await target.query("SELECT count(*) FROM tributary.applied_batches").scalar.flatMap { Int($0) }
                if let count, count >= Int(Double(manifests) * fraction) {
                    apply.kill()
                    break
                }
                try await Task.sleep(for: .milliseconds(3))
            }
            if (await apply.wait()).signalled { kills += 1 }
        }
        #expect(kills >= 2)
        let finish = try await fixture.tributary(["apply", "--once"])
        #expect(finish.status == 0, "\(finish.standardError)")
        #expect(try await target.query("SELECT count(*) FROM tributary.applied_batches").scalar == String(manifests))
        #expect(try await fixture.verify("qvp").allSatisfy { $0.matches })
        // The killed runs' batches loaded ahead and never merged are gone.
        #expect(try await target.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'tributary_load'").scalar == "0")
    }

    /// A batch loaded ahead is merged only with every row it was loaded with: a load table that a
    /// restart of the target emptied (as it empties every unlogged table) is refused, nothing of
    /// the batch applied, and the next pass loads it again. A new loading connection drops the
    /// load tables a killed applier left.
    @Test func aBatchLoadedAheadIsMergedOnlyWithAllItsRows() async throws {
        let fixture = try await replicatedFixture("loadahead", steps: 120)
        let store = try fixture.store()
        let configuration = try fixture.configuration()
        let manifests = try await fixture.stagedChanges("qvp").manifests
        let victim = try #require(manifests.first { $0.rows > 0 })
        let target = try await fixture.connectTarget()
        try await ControlStore(target).migrate()
        // STG as the applier finds it: the snapshot in (a batch of a table without an STG table waits for its copy).
        _ = try await fixture.load("qvp")

        // Every file loaded ahead, none left for the merging transaction to COPY straight into STG (`DirectInsertTests`).
        let preloader = try await BatchPreloader.connect(target: try fixture.endpoints().target, source: "qvp", store: store,
                                                         directExclusions: Self.excludingAll(manifests))
        let loaded = try await preloader.load(victim, set: 0)
        #expect(try await target.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'tributary_load'").scalar == String(victim.files.count))
        let tables = loaded.tables.compactMap { $0 }
        for table in tables { try await target.execute("TRUNCATE \(table.sql)") }
        let applier = BatchApplier(source: configuration.sources[0], store: store, logger: PipelineFixture.logger)
        await #expect(throws: PreloadedBatchLost.self) { try await applier.apply(loaded, on: target) }
        #expect(TemporaryFailure.matches(PreloadedBatchLost(table: tables[0], rows: 0, expected: 1)))
        #expect(try await target.query("SELECT count(*) FROM tributary.applied_batches").scalar == "0")

        // Loaded again and left behind (the applier killed): the next loading connection drops it.
        _ = try await preloader.load(victim, set: 0)
        await preloader.close()
        await (try BatchPreloader.connect(target: try fixture.endpoints().target, source: "qvp", store: store)).close()
        #expect(try await target.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'tributary_load'").scalar == "0")

        let report = try await ChangeApplier(endpoints: try fixture.endpoints(), sources: configuration.sources, store: store, settings: .init(jobs: 1),
                                             logger: PipelineFixture.logger).applyOnce()
        #expect(report.batches == manifests.count)
        #expect(try await fixture.verify("qvp").allSatisfy { $0.matches })
    }

    /// The same once STG follows the batch's shapes: its files (tables of one file each, read by
    /// no model) are vouched for in one query and merged together (`PlainMerge`), and a load table
    /// a restart emptied is refused all the same.
    @Test func aBatchLoadedAheadWhoseFilesMergeTogetherIsMergedOnlyWithAllItsRows() async throws {
        let fixture = try await replicatedFixture("loadahead-plain", steps: 120)
        // A random workload may end on TRUNCATEs or shape changes in every batch: a last batch of
        // plain inserts into both tables, so that such a batch is always there.
        try await fixture.connectSource("qvp").execute("""
            INSERT INTO accounts SELECT i, 'plain ' || i, i, NULL, ARRAY['p'] FROM generate_series(900000, 900004) i;
            INSERT INTO ledger SELECT i, 1, 'plain' FROM generate_series(900000, 900004) i;
            """)
        _ = try await fixture.replicateUntilCaughtUp("qvp")
        let store = try fixture.store()
        let configuration = try fixture.configuration()
        let manifests = try await fixture.stagedChanges("qvp").manifests
        let last = try #require(manifests.lastIndex { $0.rows > 0 && $0.files.allSatisfy { $0.truncates == 0 } && Set($0.files.map(\.stagingTable)).count == $0.files.count })
        let target = try await fixture.connectTarget()
        try await ControlStore(target).migrate()
        _ = try await fixture.load("qvp")
        // The batches before it, applied one by one: STG follows their shapes from the first on.
        let applier = BatchApplier(source: configuration.sources[0], store: store, logger: PipelineFixture.logger)
        for manifest in manifests[..<last] { _ = try await applier.apply(manifest, on: target) }

        let preloader = try await BatchPreloader.connect(target: try fixture.endpoints().target, source: "qvp", store: store)
        let emptied = try await preloader.load(manifests[last], set: 0)
        try await target.execute("TRUNCATE \(try #require(emptied.tables[0]).sql)")
        await #expect(throws: PreloadedBatchLost.self) { try await applier.apply(emptied, on: target) }
        #expect(try await target.query("SELECT count(*) FROM tributary.applied_batches").scalar == String(last))

        let loaded = try await preloader.load(manifests[last], set: 1)
        #expect(try await applier.apply(loaded, on: target).applied)
        await preloader.close()
        for manifest in manifests[(last + 1)...] { _ = try await applier.apply(manifest, on: target) }
        #expect(try await fixture.verify("qvp").allSatisfy { $0.matches })
    }

    /// Exclusions of every STG table the batches write: their files all go through load tables.
    static func excludingAll(_ manifests: [BatchManifest]) -> DirectInsertExclusions {
        let exclusions = DirectInsertExclusions()
        for file in manifests.flatMap(\.files) { exclusions.exclude(file.stagingTable) }
        return exclusions
    }

    /// A batch no preloader loaded (the applier keeping up, a batch at a time) is COPYed into the
    /// merging connection's own load tables in the batch's transaction and merged from there, its
    /// plain files together: after each batch, each file's load table holds exactly its rows. A
    /// batch applied again is not loaded again, and STG ends equal to the source (the workload
    /// moves keys, truncates and leaves TOASTed values unchanged).
    @Test func aBatchNotLoadedAheadIsLoadedIntoTheMergingConnectionsOwnTables() async throws {
        let fixture = try await replicatedFixture("ownload", steps: 120)
        let store = try fixture.store()
        let configuration = try fixture.configuration()
        let manifests = try await fixture.stagedChanges("qvp").manifests
        let target = try await fixture.connectTarget()
        try await ControlStore(target).migrate()
        _ = try await fixture.load("qvp")
        let own = MergingLoadTables(source: "qvp")
        let applier = BatchApplier(source: configuration.sources[0], store: store, logger: PipelineFixture.logger, ownLoadTables: own,
                                   directExclusions: Self.excludingAll(manifests))
        var files = 0
        for manifest in manifests {
            #expect(try await applier.apply(manifest, on: target).applied)
            let tables = BatchPreloader.loadTables(source: "qvp", files: manifest.files, set: MergingLoadTables.set)
            for (file, table) in zip(manifest.files, tables) {
                #expect(try await target.query("SELECT count(*) FROM \(table.sql)").scalar == String(file.file.rows), "\(file.file.key)")
                files += 1
            }
        }
        #expect(files >= manifests.count && own.wereUsed)
        let first = try #require(manifests.first { !$0.files.isEmpty })
        let table = BatchPreloader.loadTables(source: "qvp", files: first.files, set: MergingLoadTables.set)[0]
        try await target.execute("TRUNCATE \(table.sql)")
        #expect(try await applier.apply(first, on: target).applied == false)
        #expect(try await target.query("SELECT count(*) FROM \(table.sql)").scalar == "0", "a batch applied before is not loaded again")
        #expect(try await fixture.verify("qvp").allSatisfy { $0.matches })
    }

    /// An applier creates its load tables once per process and then only empties them; closed
    /// (a part reset: its load tables dropped), it creates them again at its next batch, and a
    /// backlog loaded ahead after it leaves the merging connection's own tables in place.
    @Test func anApplierClosedAndOpenedAgainCreatesItsLoadTablesAgain() async throws {
        let fixture = try await replicatedFixture("reopen", steps: 60)
        _ = try await fixture.load("qvp")
        let configuration = try fixture.configuration()
        var settings = ChangeApplier.Settings(jobs: 1)
        settings.grouping = nil
        var applier = SourceApplier(source: configuration.sources[0], endpoints: try fixture.endpoints(), store: try fixture.store(),
                                    settings: settings, logger: PipelineFixture.logger)
        let target = try await fixture.connectTarget()
        let loadTables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'tributary_load'"
        var report = ChangeApplier.Report()
        _ = try await applier.step(lockHeld: true, stop: StopSignal(), into: &report)
        #expect(report.batches == (try await fixture.stagedChanges("qvp").manifests.count))
        #expect(try await target.query(loadTables).scalar != "0")
        await applier.close()
        #expect(try await target.query(loadTables).scalar == "0")
        let source = try await fixture.connectSource("qvp")
        try await source.execute("UPDATE accounts SET balance = balance + 1 WHERE id IN (SELECT id FROM accounts ORDER BY id LIMIT 3)")
        _ = try await fixture.replicateUntilCaughtUp("qvp")
        report = ChangeApplier.Report()
        _ = try await applier.step(lockHeld: true, stop: StopSignal(), into: &report)
        #expect(report.batches == 1 && report.loadedAhead == 0, "in the merging connection's own load tables")
        for id in 1...3 {
            try await source.execute("UPDATE accounts SET balance = balance + 1 WHERE id = (SELECT id FROM accounts ORDER BY id OFFSET \(id) LIMIT 1)")
            _ = try await fixture.replicateUntilCaughtUp("qvp")
        }
        report = ChangeApplier.Report()
        _ = try await applier.step(lockHeld: true, stop: StopSignal(), into: &report)
        #expect(report.batches == 3 && report.loadedAhead == 2, "the first in the merging connection's own tables, the others loaded ahead: \(report)")
        await applier.close()
        #expect(try await fixture.verify("qvp").allSatisfy { $0.matches })
    }

    /// A batch without files: its transactions changed only a table that is in the publication and
    /// not in the configuration (an operator's `ALTER PUBLICATION`, or a table added while `run`
    /// runs, whose first changes come before the replicator follows it). Its load was an empty
    /// SQL string, which PostgreSQL answers with PGRES_EMPTY_QUERY: the applier stopped for good
    /// and `drain` waited out its timeout. Applied one at a time (the merging connection's own
    /// load tables), loaded ahead (a backlog, batch by batch) and merged together with others (a
    /// backlog, grouped), it is recorded and the batches after it land.
    @Test(arguments: [false, true]) func batchesWithoutFilesApplyOneAtATimeAndLoadedAhead(grouped: Bool) async throws {
        var fixture = try await PipelineFixture.make(grouped ? "nofilesgrouped" : "nofiles", sources: [("qvp", ["public.accounts"])])
        fixture.snapshotYAML = "  jobs: 1\n"
        let source = try await fixture.connectSource("qvp")
        try await source.execute("""
            CREATE TABLE accounts (id int PRIMARY KEY, note text);
            CREATE TABLE unconfigured (id int PRIMARY KEY);
            """)
        _ = try await fixture.snapshot("qvp")
        _ = try await fixture.load("qvp")
        try await source.execute("ALTER PUBLICATION tributary_qvp ADD TABLE unconfigured")
        var settings = ChangeApplier.Settings(jobs: 1)
        if !grouped { settings.grouping = nil }
        let applier = ChangeApplier(endpoints: try fixture.endpoints(), sources: try fixture.configuration().sources, store: try fixture.store(),
                                    settings: settings, logger: PipelineFixture.logger)
        // One batch alone, then a backlog of three: two without files, the last one loaded ahead
        // while the first merges, and one with a file.
        try await source.execute("INSERT INTO unconfigured VALUES (1)")
        _ = try await fixture.replicateUntilCaughtUp("qvp")
        _ = try await applier.applyOnce()
        for statement in ["INSERT INTO unconfigured VALUES (2)", "INSERT INTO unconfigured VALUES (3)", "INSERT INTO accounts VALUES (1, 'after')"] {
            try await source.execute(statement)
            _ = try await fixture.replicateUntilCaughtUp("qvp")
        }
        let manifests = try await fixture.stagedChanges("qvp").manifests
        #expect(manifests.map(\.files.count) == [0, 0, 0, 1], "\(manifests.map(\.files.count))")
        let report = try await applier.applyOnce()
        if grouped {
            #expect(report.grouped == 3 && report.groups == 1, "the backlog merged together")
        } else {
            #expect(report.loadedAhead >= 1, "a batch without files was loaded ahead")
        }
        let target = try await fixture.connectTarget()
        #expect(try await target.query("SELECT applied_lsn FROM tributary.sources WHERE source = 'qvp'").scalar == manifests.last!.endLSN.description)
        #expect(try await target.query("SELECT count(*) FROM tributary.applied_batches WHERE source = 'qvp'").scalar == "4")
        #expect(try await target.query("SELECT note FROM stg.qvp_accounts WHERE id = 1").scalar == "after")
    }

    /// A backlog of small batches, each loaded ahead while the one before merges, the applier
    /// SIGKILLed at seeded random moments (mostly inside a batch's transaction, with the next one
    /// loaded ahead); a row inserted with a large value and then updated around it in later batches
    /// keeps the value, and nothing loaded ahead is left behind.
    @Test func aBacklogLoadedAheadSurvivesKillsMidBatch() async throws {
        let fixture = try await replicatedFixture("killgroup", steps: 300, rowsPerBatch: 4)
        let source = try await fixture.connectSource("qvp")
        try await source.execute("INSERT INTO accounts VALUES (9001, 'grouped', 1, repeat(md5('toast'), 400), ARRAY['x'])")
        for round in 0..<12 { try await source.execute("UPDATE accounts SET balance = balance + \(round) WHERE id = 9001") }
        var limits = try fixture.configuration().target.batch
        limits.rowsMax = 4
        _ = try await fixture.replicateUntilCaughtUp("qvp", limits: limits)
        let manifests = try await fixture.stagedChanges("qvp").manifests.count
        #expect(manifests > 60)

        let seed = UInt64.random(in: 1...UInt64.max / 2)
        print("aBacklogLoadedAheadSurvivesKillsMidBatch seed \(seed)")
        var generator = SeededGenerator(seed: seed)
        let target = try await fixture.connectTarget()
        var kills = 0
        func applied() async throws -> Int {
            // Before the first apply, the control schema is not there yet.
            (try? await target.query("SELECT count(*) FROM tributary.applied_batches").scalar.flatMap { Int($0) }) ?? 0
        }
        // A small batch applies in milliseconds: an attempt whose kill came after the applier
        // finished is not a kill, so attempts go on (each takes at least one batch) until three
        // kills landed or the backlog is applied.
        var attempts = 0
        while kills < 3, attempts < 8, try await applied() < manifests {
            attempts += 1
            try fixture.writeConfiguration()
            let before = try await applied()
            let apply = TestProcess(Paths.tributary, ["apply", "--once", "--config", fixture.configurationDirectory])
            try apply.start()
            // Once a batch has committed, the next one is under way: kill somewhere inside it.
            while waitpid(apply.pid, nil, WNOHANG) == 0, try await applied() == before { try await Task.sleep(for: .milliseconds(2)) }
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...10, using: &generator)))
            apply.kill()
            if (await apply.wait()).signalled { kills += 1 }
        }
        #expect(kills >= 2)
        let finish = try await fixture.tributary(["apply", "--once"])
        #expect(finish.status == 0, "\(finish.standardError)")
        #expect(try await target.query("SELECT count(*) FROM tributary.applied_batches").scalar == String(manifests))
        #expect(try await target.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'tributary_load'").scalar == "0")
        #expect(try await target.query("SELECT doc = repeat(md5('toast'), 400) FROM stg.qvp_accounts WHERE id = 9001").scalar == "t")
        #expect(try await fixture.verify("qvp").allSatisfy { $0.matches })
    }

    /// Hundreds of batches add no rows to the target's catalog per batch: the changes tables are
    /// reused (one temporary table per shape and session, two load tables per shape for batches
    /// loaded ahead), not created and dropped per file. Before, each file of each batch inserted
    /// and deleted some 30 rows of pg_class, pg_attribute, pg_type and pg_depend, which over
    /// hundreds of tables and weeks bloated the catalog.
    @Test func hundredsOfBatchesAddNoCatalogRowsPerBatch() async throws {
        var fixture = try await PipelineFixture.make("catalog", sources: [("qvp", ["public.accounts", "public.ledger"])])
        fixture.snapshotYAML = "  jobs: 1\nbatch:\n  max_rows: 1\n"
        let source = try await fixture.connectSource("qvp"), two = try await fixture.connectSource("qvp")
        try await source.execute(RandomWorkload.schema)
        _ = try await fixture.snapshot("qvp")
        // The snapshot loaded and the control state made first: what that creates is not counted.
        #expect(try await fixture.tributary(["apply", "--once"]).status == 0)
        var workload = RandomWorkload(seed: UInt64.random(in: 1...UInt64.max), largeValues: false)
        for step in 0..<700 { try await workload.step(source, two, addColumnAt: nil, step: step) }
        var limits = try fixture.configuration().target.batch
        limits.rowsMax = 1
        _ = try await fixture.replicateUntilCaughtUp("qvp", limits: limits)
        let manifests = try await fixture.stagedChanges("qvp").manifests
        #expect(manifests.count >= 400, "\(manifests.count) batches")
        let target = try await fixture.connectTarget()
        func catalogInserts() async throws -> Int {
            _ = try await target.query("SELECT pg_stat_clear_snapshot()")
            return try await target.query("""
                SELECT sum(n_tup_ins)::bigint FROM pg_stat_sys_tables
                WHERE relname IN ('pg_class', 'pg_attribute', 'pg_type', 'pg_depend')
                """).scalar(Int.self)
        }
        _ = try await target.query("SELECT pg_stat_force_next_flush()")
        let before = try await catalogInserts()
        let applied = try await fixture.tributary(["apply", "--once"])
        #expect(applied.status == 0, "\(applied.standardError)")
        // The apply's sessions have ended: their statistics are flushed.
        let after = try await catalogInserts()
        #expect(try await target.query("SELECT count(*) FROM tributary.applied_batches").scalar == String(manifests.count))
        // Two STG tables: their changes tables are made once (some 30 catalog rows each), not per batch.
        #expect(after - before < 400, "\(after - before) catalog rows inserted over \(manifests.count) batches")
        #expect(try await target.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'tributary_load'").scalar == "0",
                "the load tables go when the applier ends")
        #expect(try await fixture.verify("qvp").allSatisfy { $0.matches })
        // Files of one shape in a batch get load tables of their own; the other set never shares one.
        let file = manifests.first { !$0.files.isEmpty }!.files[0]
        let first = BatchPreloader.loadTables(source: "qvp", files: [file, file], set: 0)
        let second = BatchPreloader.loadTables(source: "qvp", files: [file], set: 1)
        #expect(Set(first).count == 2 && !first.contains(second[0]))
        await target.close()
    }

    @Test func corruptOrTruncatedFileStopsTheSourceAndAppliesNothingOfItsBatch() async throws {
        let fixture = try await replicatedFixture("corrupt", steps: 150)
        let manifests = try await fixture.stagedChanges("qvp").manifests
        let victim = try #require(manifests.dropFirst(2).first { !$0.files.isEmpty })
        let file = fixture.stagingDirectory + "/" + victim.files[0].file.key
        let original = try Data(contentsOf: URL(fileURLWithPath: file))
        let target = try await fixture.connectTarget()

        for damage in ["corrupt", "truncated"] {
            var bytes = original
            if damage == "corrupt" { bytes[bytes.count / 2] ^= 0x5A } else { bytes = bytes.prefix(bytes.count * 2 / 3) }
            try bytes.write(to: URL(fileURLWithPath: file))
            let outcome = try await fixture.tributary(["apply", "--once"])
            #expect(outcome.status == 1, "\(damage): \(outcome.standardError)")
            #expect(outcome.standardError.contains(victim.files[0].file.key), "\(damage): object not named: \(outcome.standardError)")
            #expect(outcome.standardError.contains("is corrupt"), "\(damage): \(outcome.standardError)")
            // Everything before the damaged batch is applied (also when a group of them held
            // it: they then go one at a time), nothing of it or after it.
            let applied = try await target.query("SELECT max(end_lsn) FROM tributary.applied_batches").scalar.flatMap(LSN.init)
            #expect(applied == manifests.last { $0.endLSN < victim.endLSN }?.endLSN, "\(damage): not every batch before the damaged one, or a later one, was applied")
            #expect(try await target.query("SELECT count(*) FROM tributary.applied_batches WHERE end_lsn >= $1::pg_lsn",
                                           [victim.endLSN.description]).scalar == "0")
        }
        try original.write(to: URL(fileURLWithPath: file))
        #expect(try await fixture.tributary(["apply", "--once"]).status == 0)
        #expect(try await fixture.verify("qvp").allSatisfy { $0.matches })
    }
}
