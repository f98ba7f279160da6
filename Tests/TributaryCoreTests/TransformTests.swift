import Foundation
import Testing
@testable import TributaryCore

/// BL models without a database: reading them, their order, and when they run.
@Suite struct TransformTests {
    static func model(_ name: String, reads inputs: [String], file: String = "bl/m.yaml") -> TransformModel {
        TransformModel(name: name, table: QualifiedName(schema: "bl", name: name), key: ["id"],
                       inputs: inputs.map { .init(table: QualifiedName(parsing: $0)!, mapping: .expressions(["id"])) },
                       sql: "SELECT 1 AS id", file: file)
    }

    @Test func aModelIsReadFromItsYAMLAndSQL() throws {
        let yaml = ConfigurationParser.File(name: "slots/bl/contract.yaml", text: """
            key: [source_system, source_id]
            surrogate: contract_id
            deletes: flag
            inputs:
              - table: stg.qvp_policies
                keys: ["'qvp'", "id::text"]
              - table: bl.party
                query: SELECT 'qvp', p.id::text FROM changed c JOIN stg.qvp_policies p ON true
            indexes:
              - stg.qvp_policies ((id::text))
            """)
        let model = try TransformModelParser.parse(yaml: yaml, sql: "SELECT 1 AS source_system;\n")
        #expect(model.name == "contract" && model.table == QualifiedName(schema: "bl", name: "contract"))
        #expect(model.key == ["source_system", "source_id"] && model.surrogate == "contract_id" && model.deletes == .flag)
        #expect(model.inputs.count == 2 && model.inputs[1].isModel)
        #expect(model.inputs[0].mapping == .expressions(["'qvp'", "id::text"]))
        #expect(model.indexes == [TransformModel.Index(table: QualifiedName(schema: "stg", name: "qvp_policies"), columns: "((id::text))")])
        #expect(model.sql == "SELECT 1 AS source_system", "the trailing ; goes: the SELECT is nested")
    }

    @Test func badModelsAreRefusedWithTheFileAndKey() throws {
        func problem(_ text: String, sql: String? = "SELECT 1") -> String {
            do {
                _ = try TransformModelParser.parse(yaml: .init(name: "bl/x.yaml", text: text), sql: sql)
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        #expect(problem("key: [id]\ninputs: [{table: stg.t, keys: [id]}]", sql: nil).contains("no x.sql beside it"))
        #expect(problem("inputs: [{table: stg.t, keys: [id]}]").contains("key: required"))
        #expect(problem("key: [id]\ninputs: [{table: stg.t, keys: [a, b]}]").contains("2 expressions for a key of 1 columns"))
        #expect(problem("key: [id]\ninputs: [{table: stg.t}]").contains("give keys:"))
        #expect(problem("key: [id]\ninputs: [{table: public.t, keys: [id]}]").contains("schema stg or bl"))
        #expect(problem("key: [id]\ninputs: [{table: stg.t, keys: [id]}]\ndeletes: soft").contains("expected delete or flag"))
        #expect(problem("key: [id]\ninputs: [{table: stg.t, keys: [id]}]\nindexes: [stg.t]").contains("is not schema.table"))
        #expect(problem("key: [id]\ninputs: [{table: stg.t, keys: [id]}]\nsurogate: x").contains("did you mean \"surrogate\""))
    }

    @Test func referencesAreReadCompositeNullableAndWithTheirPolicy() throws {
        let yaml = ConfigurationParser.File(name: "bl/claim.yaml", text: """
            key: [id]
            inputs: [{table: stg.t, keys: [id]}]
            references:
              - columns: contract_id
                to: bl.contract(contract_id)
              - columns: [source_system, asset_no]
                to: bl.insured_asset( source_system, source_id )
                nullable: true
                on_orphan: warn
            """)
        let references = try TransformModelParser.parse(yaml: yaml, sql: "SELECT 1 AS id").references
        #expect(references == [
            .init(columns: ["contract_id"], target: QualifiedName(schema: "bl", name: "contract"), targetColumns: ["contract_id"]),
            .init(columns: ["source_system", "asset_no"], target: QualifiedName(schema: "bl", name: "insured_asset"),
                  targetColumns: ["source_system", "source_id"], nullable: true, onOrphan: .warn),
        ])
        #expect(references[1].description == "source_system, asset_no → bl.insured_asset(source_system, source_id)")
    }

    @Test func badReferencesAreRefusedWithTheFileAndKey() throws {
        func problem(_ references: String) -> String {
            let text = "key: [id]\ninputs: [{table: stg.t, keys: [id]}]\nreferences:\n" + references
            do {
                _ = try TransformModelParser.parse(yaml: .init(name: "bl/x.yaml", text: text), sql: "SELECT 1")
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        #expect(problem("  - to: bl.p(id)").contains("references[0].columns: required"))
        #expect(problem("  - {columns: a, to: stg.p(id)}").contains("expected bl.<model table>(<columns>)"))
        #expect(problem("  - {columns: a, to: bl.p}").contains("expected bl.<model table>(<columns>)"))
        #expect(problem("  - {columns: [a, b], to: bl.p(id)}").contains("2 columns refer to 1 of bl.p"))
        #expect(problem("  - {columns: a, to: bl.p(id), on_orphan: ignore}").contains("expected fail or warn"))
        #expect(problem("  - {columns: a, to: bl.p(id), nulable: true}").contains("did you mean \"nullable\""))

        var child = Self.model("claim", reads: ["stg.qvp_claims"])
        child.references = [.init(columns: ["contract_id"], target: QualifiedName(schema: "bl", name: "contract"), targetColumns: ["id"])]
        #expect(throws: TributaryError.self) { try TransformModelParser.validate([child]) }
        #expect(try TransformModelParser.validate([child, Self.model("contract", reads: ["stg.qvp_policies"])]).count == 2,
                "a reference is no input: it does not order the models")
    }

    @Test func anOrphanQueryIgnoresNullsWhenAllowedAndRowsKeptAsDeleted() {
        var child = Self.model("claim", reads: ["stg.qvp_claims"])
        child.deletes = .flag
        var parent = Self.model("contract", reads: ["stg.qvp_policies"])
        let reference = TransformModel.Reference(columns: ["a", "b"], target: parent.table, targetColumns: ["x", "y"], nullable: true)
        let sql = ReferenceSQL.orphans(child, reference, target: parent, sample: 3)
        #expect(sql.contains(#"FROM "bl"."claim" AS c WHERE (c."a" IS NOT NULL OR c."b" IS NOT NULL) AND NOT EXISTS (SELECT 1 FROM "bl"."contract" AS p WHERE p."x" = c."a" AND p."y" = c."b") AND NOT c."_deleted""#), "\(sql)")
        #expect(sql.contains("[1:3]"), "\(sql)")
        #expect(!sql.contains(#"p."_deleted""#), "a parent that deletes its rows keeps none")

        parent.deletes = .flag
        let strict = ReferenceSQL.orphans(child, .init(columns: ["a"], target: parent.table, targetColumns: ["x"]), target: parent)
        #expect(strict.contains(#"WHERE NOT EXISTS (SELECT 1 FROM "bl"."contract" AS p WHERE p."x" = c."a" AND NOT p."_deleted")"#), "\(strict)")
    }

    @Test func modelsRunAfterTheModelsTheyReadAndCirclesAreRefused() throws {
        let party = Self.model("party", reads: ["stg.qvp_customers"])
        let contract = Self.model("contract", reads: ["stg.qvp_policies", "bl.party"])
        let claim = Self.model("claim", reads: ["bl.contract"])
        let sorted = try TransformModelParser.validate([claim, contract, party])
        #expect(sorted.map(\.name) == ["party", "contract", "claim"])
        #expect(TransformOrder.withDependants(["contract"], in: sorted).map(\.name) == ["contract", "claim"])
        // Parallel runs: a model starts once every selected model it reads has finished.
        let withVisit = try TransformModelParser.validate([claim, contract, party, Self.model("visit", reads: ["stg.svp_visits"])])
        let startable = { (pending: [String], running: Set<String>, finished: Set<String>) in
            TransformOrder.startable(withVisit.filter { pending.contains($0.name) }, running: running, finished: finished, all: withVisit).map(\.name)
        }
        #expect(startable(["party", "contract", "claim", "visit"], [], []) == ["party", "visit"], "visit reads no model: it runs beside party")
        #expect(startable(["contract", "claim"], ["party"], []) == [])
        #expect(startable(["contract", "claim"], [], ["party"]) == ["contract"])
        #expect(startable(["claim"], [], []) == ["claim"], "contract not selected: claim need not wait for it")
        let circle = [Self.model("a", reads: ["bl.b"]), Self.model("b", reads: ["bl.a"])]
        #expect(throws: TributaryError.self) { try TransformModelParser.validate(circle) }
        #expect(throws: TributaryError.self) { try TransformModelParser.validate([Self.model("a", reads: ["bl.nobody"])]) }
    }

    // MARK: The scheduler

    let start = ContinuousClock.now
    func at(_ milliseconds: Int) -> ContinuousClock.Instant { start + .milliseconds(milliseconds) }

    func scheduler(catchUpDeferral: Duration = .zero) -> TransformScheduler {
        let models = [Self.model("party", reads: ["stg.qvp_customers"]), Self.model("contract", reads: ["stg.qvp_policies", "bl.party"]),
                      Self.model("claim", reads: ["stg.qvp_claims", "bl.contract"])]
        var scheduler = TransformScheduler(models: models, minInterval: .seconds(1), retryInterval: .seconds(30), catchUpDeferral: catchUpDeferral)
        // Start with nothing to do.
        for name in ["party", "contract", "claim"] { scheduler.finished(name, .unchanged, startedAt: at(-5_000), now: at(-5_000)) }
        return scheduler
    }

    @Test func aBurstOfChangesMakesOneRunPerIntervalInDependencyOrder() {
        var scheduler = scheduler()
        #expect(scheduler.next(now: at(0)) == .wait(until: nil))
        scheduler.changed(source: "qvp", stagingTables: ["qvp_customers"], now: at(0))
        #expect(scheduler.next(now: at(0)) == .run("party"))
        scheduler.finished("party", .changed, startedAt: at(0), now: at(0))
        // party changed rows: contract (which reads it) runs, then claim only if contract changed.
        #expect(scheduler.next(now: at(10)) == .run("contract"))
        scheduler.finished("contract", .unchanged, startedAt: at(10), now: at(10))
        #expect(scheduler.next(now: at(20)) == .wait(until: nil))
        // 200 batches within the interval: one run, at the end of the interval.
        for step in 0..<200 { scheduler.changed(source: "qvp", stagingTables: ["qvp_customers"], now: at(20 + step)); _ = scheduler.next(now: at(20 + step)) }
        #expect(scheduler.next(now: at(500)) == .wait(until: at(1_000)))
        #expect(scheduler.next(now: at(1_000)) == .run("party"))
    }

    @Test func aModelReadingAnotherWaitsUntilThatOneHasRun() {
        var scheduler = scheduler()
        scheduler.changed(source: "qvp", stagingTables: ["qvp_policies", "qvp_customers"], now: at(0))
        #expect(scheduler.next(now: at(0)) == .run("party"), "party first: contract reads it")
        scheduler.finished("party", .unchanged, startedAt: at(0), now: at(0))
        #expect(scheduler.next(now: at(1)) == .run("contract"))
    }

    @Test func aFailedModelStopsItselfAndItsReadersOnlyAndIsRetried() {
        var scheduler = scheduler()
        scheduler.changed(source: "qvp", stagingTables: ["qvp_policies", "qvp_claims", "qvp_customers"], now: at(0))
        scheduler.finished("party", .unchanged, startedAt: at(0), now: at(0))
        #expect(scheduler.next(now: at(0)) == .run("contract"))
        scheduler.finished("contract", .failed, startedAt: at(0), now: at(0))
        // claim reads contract: it waits; party does not: it goes on.
        scheduler.changed(source: "qvp", stagingTables: ["qvp_customers"], now: at(1_000))
        #expect(scheduler.next(now: at(2_000)) == .run("party"))
        scheduler.finished("party", .unchanged, startedAt: at(2_000), now: at(2_000))
        #expect(scheduler.next(now: at(5_000)) == .wait(until: at(30_000)))
        // After the retry interval: contract again, then claim.
        #expect(scheduler.next(now: at(30_000)) == .run("contract"))
        scheduler.finished("contract", .changed, startedAt: at(30_000), now: at(30_000))
        #expect(scheduler.next(now: at(30_001)) == .run("claim"))
    }

    @Test func whileTheApplierCatchesUpModelsWaitUntilItIsDoneOrTheDeferralEnds() {
        var scheduler = scheduler(catchUpDeferral: .seconds(60))
        // A backlog: party's work waits (re-evaluated when the backlog's holdover ends).
        scheduler.changed(source: "qvp", stagingTables: ["qvp_customers"], backlog: 40, now: at(0))
        #expect(scheduler.next(now: at(0)) == .wait(until: at(5_000)))
        scheduler.changed(source: "qvp", stagingTables: ["qvp_customers"], backlog: 39, now: at(3_000))
        #expect(scheduler.next(now: at(3_000)) == .wait(until: at(8_000)))
        // The last batch of the backlog: runs at once.
        scheduler.changed(source: "qvp", stagingTables: ["qvp_customers"], backlog: 0, now: at(4_000))
        #expect(scheduler.next(now: at(4_000)) == .run("party"))
        scheduler.finished("party", .unchanged, startedAt: at(4_000), now: at(4_500))

        // A long catch-up: the work waits no longer than the deferral, counted from when it came.
        for second in 10..<70 {
            scheduler.changed(source: "qvp", stagingTables: ["qvp_customers"], backlog: 1_000, now: at(second * 1_000))
            #expect(scheduler.next(now: at(second * 1_000)) != .run("party"), "at \(second) s")
        }
        scheduler.changed(source: "qvp", stagingTables: ["qvp_customers"], backlog: 1_000, now: at(70_000))
        #expect(scheduler.next(now: at(70_000)) == .run("party"))
        scheduler.finished("party", .unchanged, startedAt: at(70_000), now: at(71_000))
        scheduler.changed(source: "qvp", stagingTables: ["qvp_customers"], backlog: 1_000, now: at(72_000))
        #expect(scheduler.next(now: at(72_000)) == .wait(until: at(77_000)), "new work waits again")

        // The applier went quiet without saying it was done (stopped): the holdover ends the wait.
        #expect(scheduler.next(now: at(77_000)) == .run("party"))

        // What the applier says round-trips; an old applier's bare source name means no backlog.
        #expect(StagingChange(payload: StagingChange(source: "qvp", backlog: 12).payload) == StagingChange(source: "qvp", backlog: 12))
        #expect(StagingChange(payload: "svp") == StagingChange(source: "svp", backlog: 0))

        // A backlog found at start-up, before the applier said anything: the same wait.
        var starting = self.scheduler(catchUpDeferral: .seconds(60))
        starting.changedEverything(now: at(0))
        starting.applierBehind(sources: ["qvp", "svp"], now: at(0))
        #expect(starting.next(now: at(0)) == .wait(until: at(5_000)))
        // qvp's batches are in; svp's are not: still waiting.
        starting.changed(source: "qvp", stagingTables: ["qvp_customers"], backlog: 0, now: at(1_000))
        #expect(starting.next(now: at(1_000)) != .run("party"))
        starting.changed(source: "svp", stagingTables: [], backlog: 0, now: at(2_000))
        #expect(starting.next(now: at(2_000)) == .run("party"))

        // Without a backlog nothing is held back.
        var plain = self.scheduler(catchUpDeferral: .seconds(60))
        plain.changed(source: "qvp", stagingTables: ["qvp_customers"], now: at(0))
        #expect(plain.next(now: at(0)) == .run("party"))
    }

    /// An applier following a busy source has a few batches in hand at every step; that is not a
    /// catch-up, and BL follows STG as it goes.
    @Test func aFewBatchesInHandHoldNoModelBack() {
        var scheduler = scheduler(catchUpDeferral: .seconds(60))
        for second in 0..<10 {
            let backlog = TransformScheduler.catchUpBacklog - 1 - second % 3
            scheduler.changed(source: "qvp", stagingTables: ["qvp_customers"], backlog: backlog, now: at(second * 1_000))
            #expect(scheduler.next(now: at(second * 1_000)) == .run("party"), "at \(second) s, \(backlog) batches in hand")
            scheduler.finished("party", .unchanged, startedAt: at(second * 1_000), now: at(second * 1_000 + 100))
        }
        scheduler.changed(source: "qvp", stagingTables: ["qvp_customers"], backlog: TransformScheduler.catchUpBacklog, now: at(10_000))
        #expect(scheduler.next(now: at(10_000)) != .run("party"), "a catch-up holds it back")
    }

    @Test func anUpdateIsLoggedForReadersOnlyWhenAColumnTheyReadChanged() {
        let compared = ["contract_id", "status", "premium", "coverages"]
        let claim = TransformSQL.ReaderColumns(columns: ["source_system", "source_id", "contract_id"], wholeRow: false, selectNamesTable: true)
        let report = TransformSQL.ReaderColumns(columns: ["source_id", "status"], wholeRow: false, selectNamesTable: true)
        #expect(TransformSQL.loggedColumns(compared: compared, readers: [claim]) == ["contract_id"])
        #expect(TransformSQL.loggedColumns(compared: compared, readers: [claim, report]) == ["contract_id", "status"])
        #expect(TransformSQL.loggedColumns(compared: compared + ["_deleted"], readers: [claim]) == ["contract_id", "_deleted"],
                "a flagged delete is always seen")
        // Whenever the catalog cannot say, every change counts.
        #expect(TransformSQL.loggedColumns(compared: compared, readers: [claim, nil]) == nil, "a reader whose SQL does not compile now")
        #expect(TransformSQL.loggedColumns(compared: compared, readers: [
            TransformSQL.ReaderColumns(columns: ["source_id"], wholeRow: true, selectNamesTable: true)]) == nil, "a whole-row reference")
        #expect(TransformSQL.loggedColumns(compared: compared, readers: [
            TransformSQL.ReaderColumns(columns: ["source_id"], wholeRow: false, selectNamesTable: false)]) == nil,
                "a SELECT that reads the table only where the catalog does not see it (a function)")

        // The merge compares every column to decide what to write, and only those to decide what to log.
        let model = TransformModel(name: "contract", table: QualifiedName(schema: "bl", name: "contract"), key: ["id"],
                                   inputs: [], sql: "SELECT 1 AS id", file: "bl/contract.yaml")
        let merge = TransformSQL(model: model).merge(selectColumns: ["id"] + compared, logged: true, loggedColumns: ["contract_id"])
        #expect(merge.contains(#"ROW(t."contract_id")::text IS DISTINCT FROM ROW(f."contract_id")::text AS _tributary_reader_sees"#))
        #expect(merge.contains(#"WHERE t."id" IS NULL OR ROW(t."contract_id", t."status", t."premium", t."coverages")::text IS DISTINCT FROM"#))
        #expect(merge.contains("UNION SELECT \"id\" FROM changed WHERE _tributary_reader_sees"))
        let unlogged = TransformSQL(model: model).merge(selectColumns: ["id"] + compared, logged: false)
        #expect(!unlogged.contains("_tributary_reader_sees") && !unlogged.contains("__log"))
    }

    /// Each fresh key is looked up in the model's table once: a changed row is updated where it
    /// is, a new one inserted; a key the table holds keeps its surrogate, only a new one reads the
    /// surrogate map; the merge returns what it meant to write, to be checked against what it wrote.
    @Test func aMergeFindsEachRowOnceAndWritesItWhereItIs() {
        let model = TransformModel(name: "contract", table: QualifiedName(schema: "bl", name: "contract"), key: ["id"],
                                   surrogate: "contract_id", inputs: [], sql: "SELECT 1 AS id", file: "bl/contract.yaml")
        let sql = TransformSQL(model: model)
        #expect(sql.findCurrentRows == #"CREATE TEMPORARY TABLE _tributary_current ON COMMIT DROP AS SELECT n."id", t.ctid AS _tributary_row, "#
                + #"t."contract_id" AS _tributary_surrogate FROM _tributary_new AS n LEFT JOIN "bl"."contract" AS t ON t."id" = n."id""#)
        #expect(sql.assignNewSurrogates.contains(#"FROM _tributary_current AS c WHERE c._tributary_surrogate IS NULL AND NOT EXISTS"#))
        let merge = sql.merge(selectColumns: ["id", "status"], logged: false)
        #expect(merge.contains(#"SELECT coalesce(c._tributary_surrogate, (SELECT s."contract_id" FROM "tributary_bl"."contract__keys" AS s WHERE s."id" = n."id")), "#
                               + #"n."id", n."status", c._tributary_row FROM _tributary_new AS n JOIN _tributary_current AS c ON c."id" = n."id""#))
        #expect(merge.contains(#"LEFT JOIN "bl"."contract" AS t ON t.ctid = f._tributary_row WHERE t."id" IS NULL OR"#))
        #expect(merge.contains(#"updated AS (UPDATE "bl"."contract" AS t SET "contract_id" = c."contract_id", "status" = c."status" FROM changed AS c WHERE t.ctid = c._tributary_row"#))
        #expect(merge.contains(#"FROM changed WHERE _tributary_row IS NULL ON CONFLICT ("id") DO UPDATE SET"#))
        #expect(merge.hasSuffix("(SELECT count(*) FROM changed) AS changed"))
        // A model of keys only has nothing to update.
        let keysOnly = TransformSQL(model: TransformModel(name: "k", table: QualifiedName(schema: "bl", name: "k"), key: ["id"], inputs: [],
                                                          sql: "SELECT 1 AS id", file: "bl/k.yaml")).merge(selectColumns: ["id"], logged: false)
        #expect(!keysOnly.contains("updated AS") && keysOnly.contains("DO NOTHING") && keysOnly.contains("0::bigint AS updated"))
    }

    @Test func anInputsMappingIsProbedForWhatItReads() {
        let model = TransformModel(name: "contract", table: QualifiedName(schema: "bl", name: "contract"), key: ["source_system", "source_id"],
                                   inputs: [.init(table: QualifiedName(schema: "stg", name: "qvp_policy_coverages"), mapping: .expressions(["'qvp'", "policy_id::text"])),
                                            .init(table: QualifiedName(schema: "bl", name: "party"), mapping: .query("SELECT 1"))],
                                   sql: "SELECT 1", file: "bl/contract.yaml")
        let sql = TransformSQL(model: model)
        let expressions = TransformSQL.InputShape(input: model.inputs[0], key: ["policy_id", "coverage_code"])
        #expect(sql.mappingProbe(expressions) == #"CREATE TEMPORARY VIEW _tributary_maps AS SELECT ('qvp') AS _key_0, (policy_id::text) AS _key_1 FROM "stg"."qvp_policy_coverages" AS changed"#)
        #expect(sql.mappingProbe(TransformSQL.InputShape(input: model.inputs[1], key: ["source_system", "source_id"])) == nil)
        let check = TransformSQL.mapsByKeyOnly(input: expressions.input.table, key: expressions.key)
        #expect(check.contains(#"a.attname = ANY (ARRAY['policy_id', 'coverage_code']::name[])"#))
        #expect(check.contains(#"d.refobjid = '"stg"."qvp_policy_coverages"'::regclass"#))
        #expect(check.contains("p.provolatile = 'i'") && check.contains("strpos(pg_get_viewdef('_tributary_maps'::regclass), '.*') = 0"))
    }

    @Test func anSTGTablesChangeLogHoldsEachWritesKeysAtItsNewestLSN() {
        let log = StagingChangeLog(stagingTable: QualifiedName(schema: "stg", name: "qvp_policy_coverages"), key: ["policy_id", "coverage_code"])
        #expect(log.log == QualifiedName(schema: "tributary_bl", name: "stg_qvp_policy_coverages__changes"))
        // A batch: its keys at the batch's newest LSN; a batch of truncates only logs nothing.
        #expect(log.append(fromChanges: #""tributary_changes_0""#) == """
            INSERT INTO "tributary_bl"."stg_qvp_policy_coverages__changes" (_lsn, "policy_id", "coverage_code") SELECT max(_lsn), \
            array_agg("policy_id"), array_agg("coverage_code") FROM "tributary_changes_0" WHERE _op <> 'T' HAVING count(*) > 0
            """)
        // A TRUNCATE's tombstones or a table snapshot's merge: the rows written, counted.
        let logging = log.logging("UPDATE \"stg\".\"qvp_policy_coverages\" SET \"_deleted\" = true", at: LSN(0x30))
        #expect(logging.hasPrefix(#"WITH written AS (UPDATE "stg"."qvp_policy_coverages" SET "_deleted" = true RETURNING "policy_id", "coverage_code"), "#))
        #expect(logging.contains(#"SELECT '0/30'::pg_lsn, array_agg("policy_id"), array_agg("coverage_code") FROM written HAVING count(*) > 0) SELECT count(*) FROM written"#))
        // A run's range: both ends by the log's LSN, the key columns unnested together.
        #expect(log.changedKeys(into: "k", from: LSN(0x10), to: LSN(0x20)).hasSuffix("""
            unnest(l."policy_id", l."coverage_code") AS u ("policy_id", "coverage_code") \
            WHERE l._lsn > '0/10'::pg_lsn AND l._lsn <= '0/20'::pg_lsn
            """))
        // Pruning stops at the oldest watermark; a NULL one (a reload over an empty table) keeps all.
        #expect(log.prune(watermarks: "SELECT lsn FROM w").hasSuffix("WHERE _lsn <= (SELECT min(coalesce(lsn, '0/0'::pg_lsn)) FROM (SELECT lsn FROM w) AS w (lsn))"))
    }

    @Test func longTableNamesGetLogsOfTheirOwn() {
        let stem = String(repeating: "t", count: 60)
        let first = StagingChangeLog.name(of: QualifiedName(schema: "stg", name: stem + "_a"))
        let second = StagingChangeLog.name(of: QualifiedName(schema: "stg", name: stem + "_b"))
        #expect(first != second && first.name.utf8.count <= 63 && second.name.utf8.count <= 63)
    }

    @Test func anSTGInputsChangesAreItsLoggedKeysCurrentRows() {
        let model = Self.model("m", reads: ["stg.qvp_t"])
        let shape = TransformSQL.InputShape(input: model.inputs[0], key: ["id"])
        let sql = TransformSQL(model: model)
        #expect(sql.changedRows(shape, fromLSN: LSN(1), toLSN: LSN(2), fromSeq: nil, toSeq: 0)
                == #"CREATE TEMPORARY TABLE _tributary_changed ON COMMIT DROP AS SELECT s.* FROM "stg"."qvp_t" AS s JOIN _tributary_changed_keys USING ("id")"#)
        #expect(sql.newestChange(shape) == #"SELECT max(_lsn)::text FROM "tributary_bl"."stg_qvp_t__changes""#)
        // A reload is current to the table's own newest row: the log may be pruned or younger.
        #expect(sql.newestRow(shape) == #"SELECT max(_lsn)::text FROM "stg"."qvp_t""#)
    }

    /// An input whose mapping reads only its key maps the logged keys themselves; one that reads
    /// more (it has a key map) or comes from a model maps the rows the keys name.
    @Test func onlyAnInputMappedByItsKeyAloneMapsItsLoggedKeys() {
        let model = Self.model("m", reads: ["stg.qvp_t"])
        let sql = TransformSQL(model: model)
        var shape = TransformSQL.InputShape(input: model.inputs[0], key: ["id"], mapsByKeyOnly: true)
        #expect(shape.mapsLoggedKeys)
        #expect(sql.affectedNow(shape).contains("FROM _tributary_changed_keys AS changed"))
        shape.keyMap = sql.keyMap(0)
        #expect(!shape.mapsLoggedKeys)
        #expect(sql.affectedNow(shape).contains("FROM _tributary_changed AS changed"))
        shape.keyMap = nil
        shape.mapsByKeyOnly = false
        #expect(sql.affectedNow(shape).contains("FROM _tributary_changed AS changed"))
        shape.mapsByKeyOnly = true
        shape.upstream = model
        #expect(!shape.mapsLoggedKeys, "a model input keeps its one statement over the model's own log")
    }
}
