import Testing
@testable import TributaryCore

/// Schema changes without a database: which column a Relation message's name is, which type
/// changes STG follows, and what the applier does for each change.
@Suite struct ColumnIdentityTests {
    typealias Column = ColumnIdentity.CatalogColumn
    static func numbered(_ pairs: [(Int, String)]) -> [ColumnIdentity.Numbered] { pairs.map { .init(attnum: $0.0, name: $0.1) } }
    static let dropped = "........pg.dropped.2........"

    @Test func aRenamedColumnKeepsItsNumber() {
        let previous = Self.numbered([(1, "id"), (2, "sku"), (3, "qty")])
        let catalog = [Column(attnum: 1, name: "id"), Column(attnum: 2, name: "sku_code"), Column(attnum: 3, name: "qty")]
        #expect(ColumnIdentity.identify(["id", "sku_code", "qty"], previous: previous, announced: nil, catalog: catalog) == .identified([1, 2, 3]))
    }

    @Test func aRenameAndAnAddOfTheOldNameInOneTransaction() {
        let previous = Self.numbered([(1, "id"), (2, "sku"), (3, "qty")])
        let catalog = [Column(attnum: 1, name: "id"), Column(attnum: 2, name: "sku_code"), Column(attnum: 3, name: "qty"), Column(attnum: 4, name: "sku")]
        #expect(ColumnIdentity.identify(["id", "sku_code", "qty", "sku"], previous: previous, announced: nil, catalog: catalog)
                == .identified([1, 2, 3, 4]))
    }

    @Test func aDropAndAnAddAreNoRename() {
        let previous = Self.numbered([(1, "id"), (2, "x"), (3, "y")])
        let catalog = [Column(attnum: 1, name: "id"), Column(attnum: 2, name: Self.dropped, dropped: true), Column(attnum: 3, name: "y"),
                       Column(attnum: 4, name: "z")]
        #expect(ColumnIdentity.identify(["id", "y", "z"], previous: previous, announced: nil, catalog: catalog) == .identified([1, 3, 4]))
        #expect(ColumnIdentity.identify(["id", "y"], previous: previous, announced: nil, catalog: catalog) == .identified([1, 3]))
    }

    /// The replicator reads a change after later DDL changed the table again.
    @Test func aNameTheCatalogNoLongerHasIsFoundByThePreviousNameOrItsPlace() {
        // sku → sku_code at the message, sku_code → code later.
        let previous = Self.numbered([(1, "id"), (2, "sku"), (3, "qty")])
        let catalog = [Column(attnum: 1, name: "id"), Column(attnum: 2, name: "code"), Column(attnum: 3, name: "qty")]
        #expect(ColumnIdentity.identify(["id", "sku_code", "qty"], previous: previous, announced: nil, catalog: catalog) == .identified([1, 2, 3]))
        // A column dropped after the message: the name the previous message knew.
        let droppedLater = [Column(attnum: 1, name: "id"), Column(attnum: 2, name: Self.dropped, dropped: true), Column(attnum: 3, name: "qty")]
        #expect(ColumnIdentity.identify(["id", "sku", "qty"], previous: previous, announced: nil, catalog: droppedLater) == .identified([1, 2, 3]))
        // The first message of a session: by place.
        #expect(ColumnIdentity.identify(["id", "sku", "qty"], previous: nil, announced: nil, catalog: droppedLater) == .identified([1, 2, 3]))
    }

    @Test func whatTheCatalogCannotTellApartIsAmbiguous() {
        // Dropped and added again under one name: the message may be from before the drop or after the add.
        let previous = Self.numbered([(1, "id"), (2, "b")])
        let catalog = [Column(attnum: 1, name: "id"), Column(attnum: 2, name: Self.dropped, dropped: true), Column(attnum: 3, name: "b")]
        guard case .ambiguous(let reason) = ColumnIdentity.identify(["id", "b"], previous: previous, announced: nil, catalog: catalog) else {
            Issue.record("a drop and an add under one name must not be guessed")
            return
        }
        #expect(reason.contains("dropped and added again"))
        // Two columns could be the unknown name's.
        let two = [Column(attnum: 1, name: "id"), Column(attnum: 2, name: "p"), Column(attnum: 3, name: "q")]
        if case .identified = ColumnIdentity.identify(["id", "r"], previous: nil, announced: nil, catalog: two) {
            Issue.record("a name that could be either of two columns must not be guessed")
        }
        // A column the catalog still has but the message leaves no place for.
        let previousThree = Self.numbered([(1, "id"), (2, "p"), (3, "q")])
        if case .identified = ColumnIdentity.identify(["id", "q"], previous: previousThree, announced: nil, catalog: two) {
            Issue.record("a live column cannot have been missing")
        }
    }

    @Test func theTriggersShapeDecidesWhatTheCatalogCannot() {
        let catalog = [Column(attnum: 1, name: "id"), Column(attnum: 2, name: Self.dropped, dropped: true), Column(attnum: 3, name: "b")]
        let announced = Self.numbered([(1, "id"), (3, "b")])
        #expect(ColumnIdentity.identify(["id", "b"], previous: Self.numbered([(1, "id"), (2, "b")]), announced: announced, catalog: catalog)
                == .identified([1, 3], announced: true))
    }

    /// A change written before a rename and an add of the old name, read after both: its names are
    /// the previous message's, so its columns are too, whatever the catalog calls them now.
    @Test func theSameNamesAsThePreviousMessageAreTheSameColumns() {
        let previous = Self.numbered([(1, "id"), (2, "code"), (3, "n")])
        let catalog = [Column(attnum: 1, name: "id"), Column(attnum: 2, name: "code_old"), Column(attnum: 3, name: "n"), Column(attnum: 4, name: "code")]
        #expect(ColumnIdentity.identify(["id", "code", "n"], previous: previous, announced: nil, catalog: catalog) == .identified([1, 2, 3]))
        // With the trigger and no announcement since, even a drop and an add under one name later on is no doubt.
        let readded = [Column(attnum: 1, name: "id"), Column(attnum: 2, name: Self.dropped, dropped: true), Column(attnum: 3, name: "b")]
        let before = Self.numbered([(1, "id"), (2, "b")])
        #expect(ColumnIdentity.identify(["id", "b"], previous: before, announced: nil, catalog: readded, unchangedSincePrevious: true)
                == .identified([1, 2]))
    }

    @Test func theTriggersMessageIsRead() {
        let content = Array(#"{"event": "ddl", "tag": "ALTER TABLE", "oid": 16384, "table": "public.lines", "columns": [{"attnum": 1, "name": "id"}, {"attnum": 3, "name": "qty"}]}"#.utf8)
        let announcement = DDLAnnouncement.decode(prefix: DDLAnnouncement.prefix, content: content)
        #expect(announcement?.event == .ddl && announcement?.oid == 16384 && announcement?.columns?.map(\.attnum) == [1, 3])
        #expect(DDLAnnouncement.decode(prefix: "tributary-heartbeat", content: content) == nil)
        #expect(DDLAnnouncement.installSQL.contains("command.objid::bigint"), "an oid goes into JSON as a string unless cast")
    }

    @Test func nothingMovedKeepsThePreviousNumbers() {
        let previous = Self.numbered([(1, "id"), (4, "b")])
        let catalog = [Column(attnum: 1, name: "id"), Column(attnum: 4, name: "b"), Column(attnum: 5, name: "later")]
        #expect(ColumnIdentity.identify(["id", "b"], previous: previous, announced: nil, catalog: catalog) == .identified([1, 4]))
    }
}

@Suite struct TypeWideningTests {
    @Test(arguments: [
        ("integer", "bigint", true), ("smallint", "integer", true), ("bigint", "integer", false),
        ("character varying(20)", "character varying(50)", true), ("character varying(50)", "character varying(10)", false),
        ("character varying(20)", "text", true), ("character varying(20)", "character varying", true), ("text", "character varying(20)", false),
        ("numeric(10,2)", "numeric(12,2)", true), ("numeric(10,2)", "numeric(12,3)", true), ("numeric(10,2)", "numeric(10,3)", false),
        ("numeric(10,2)", "numeric", true), ("numeric", "numeric(10,2)", false), ("real", "double precision", true),
        ("integer[]", "bigint[]", true), ("integer", "text", false), ("date", "timestamp without time zone", false),
    ])
    func widening(from old: String, to new: String, widens: Bool) {
        #expect(TypeWidening.widens(from: old, to: new) == widens, "\(old) → \(new)")
    }
}

@Suite struct StagingSchemaPlannerTests {
    static let stg = QualifiedName(schema: "stg", name: "acc_lines")
    static let context = StagingSchemaPlanner.Context(source: "acc", sourceFile: "slots/acc.yaml", stagingTable: stg, policy: .follow)

    static func column(_ name: String, _ type: String = "integer", attnum: Int, notNull: Bool = false, missing: String? = nil,
                       hasDefault: Bool = false) -> ColumnSchema {
        ColumnSchema(name: name, sourceType: type, stagingType: type, typeOid: 23, notNull: notNull, missingValue: missing, attnum: attnum,
                     hasDefault: hasDefault)
    }

    static func relation(_ columns: [ColumnSchema], key: [String] = ["id"], sourceName: QualifiedName? = nil) -> RelationSchema {
        RelationSchema(table: QualifiedName(schema: "public", name: "acc_lines"), columns: columns, key: key, oid: 16384, sourceName: sourceName)
    }

    static func staging(_ relation: RelationSchema, extra: [String: String] = [:]) -> [String: String] {
        Dictionary(uniqueKeysWithValues: relation.columns.map { ($0.name, $0.stagingType) })
            .merging(["_lsn": "pg_lsn", "_deleted": "boolean"]) { first, _ in first }.merging(extra) { _, new in new }
    }

    static let before = relation([column("id", "bigint", attnum: 1, notNull: true), column("sku", "character varying(20)", attnum: 2),
                                  column("qty", attnum: 3)])

    func steps(_ decision: StagingSchemaPlanner.Decision) -> [StagingSchemaPlanner.Step] {
        if case .follow(let steps, _) = decision { return steps }
        Issue.record("expected to follow: \(decision)")
        return []
    }

    @Test func aRenameIsFollowedAndOnlyOnce() {
        let after = Self.relation([Self.column("id", "bigint", attnum: 1, notNull: true), Self.column("sku_code", "character varying(20)", attnum: 2),
                                   Self.column("qty", attnum: 3)])
        let plan = steps(StagingSchemaPlanner.plan(recorded: Self.before, incoming: after, staging: Self.staging(Self.before), context: Self.context))
        #expect(plan.map(\.kind) == [.renameColumn])
        #expect(plan.first?.statements == [#"ALTER TABLE "stg"."acc_lines" RENAME COLUMN "sku" TO "sku_code""#])
        // STG has it already (the same batch replayed, or an operator did it): nothing to do.
        #expect(StagingSchemaPlanner.plan(recorded: Self.before, incoming: after, staging: Self.staging(after), context: Self.context) == .unchanged)
    }

    @Test func aSwapOfTwoNamesGoesThroughTemporaryNames() {
        let before = Self.relation([Self.column("id", attnum: 1), Self.column("a", attnum: 2), Self.column("b", attnum: 3)])
        let after = Self.relation([Self.column("id", attnum: 1), Self.column("b", attnum: 2), Self.column("a", attnum: 3)])
        let plan = steps(StagingSchemaPlanner.plan(recorded: before, incoming: after, staging: Self.staging(before), context: Self.context))
        #expect(plan.first?.statements == [
            #"ALTER TABLE "stg"."acc_lines" RENAME COLUMN "a" TO "tributary_renaming_2""#,
            #"ALTER TABLE "stg"."acc_lines" RENAME COLUMN "b" TO "tributary_renaming_3""#,
            #"ALTER TABLE "stg"."acc_lines" RENAME COLUMN "tributary_renaming_2" TO "b""#,
            #"ALTER TABLE "stg"."acc_lines" RENAME COLUMN "tributary_renaming_3" TO "a""#,
        ])
    }

    @Test func aRenameAndAnAddOfTheOldName() {
        let after = Self.relation([Self.column("id", "bigint", attnum: 1, notNull: true), Self.column("sku_code", "character varying(20)", attnum: 2),
                                   Self.column("qty", attnum: 3), Self.column("sku", "text", attnum: 4)])
        let plan = steps(StagingSchemaPlanner.plan(recorded: Self.before, incoming: after, staging: Self.staging(Self.before), context: Self.context))
        #expect(plan.map(\.kind) == [.renameColumn, .addColumn])
        #expect(plan.flatMap(\.statements) == [#"ALTER TABLE "stg"."acc_lines" RENAME COLUMN "sku" TO "sku_code""#,
                                                #"ALTER TABLE "stg"."acc_lines" ADD COLUMN "sku" text"#])
    }

    @Test func addedColumnsGetWhatExistingRowsHave() {
        let constant = Self.relation(Self.before.columns + [Self.column("flag", "boolean", attnum: 4, missing: "true", hasDefault: true)])
        let decision = StagingSchemaPlanner.plan(recorded: Self.before, incoming: constant, staging: Self.staging(Self.before), context: Self.context)
        #expect(decision == .follow([.init(.addColumn, column: "flag", "column flag boolean added (existing rows: true)", [
            #"ALTER TABLE "stg"."acc_lines" ADD COLUMN "flag" boolean DEFAULT 'true'::boolean"#,
            #"ALTER TABLE "stg"."acc_lines" ALTER COLUMN "flag" DROP DEFAULT"#,
        ])], resync: nil))
        let volatile = Self.relation(Self.before.columns + [Self.column("at", "timestamp with time zone", attnum: 4, hasDefault: true)])
        guard case .follow(_, let resync?) = StagingSchemaPlanner.plan(recorded: Self.before, incoming: volatile, staging: Self.staging(Self.before),
                                                                         context: Self.context) else {
            Issue.record("a default that is not a constant asks for a table snapshot")
            return
        }
        #expect(resync.contains("not a constant"))
    }

    @Test func wideningIsFollowedNarrowingStopsWithTheAlter() {
        let wider = Self.relation([Self.column("id", "bigint", attnum: 1, notNull: true), Self.column("sku", "character varying(50)", attnum: 2),
                                   Self.column("qty", "bigint", attnum: 3, notNull: true)])
        let plan = steps(StagingSchemaPlanner.plan(recorded: Self.before, incoming: wider, staging: Self.staging(Self.before), context: Self.context))
        #expect(plan.map(\.kind) == [.widenType, .widenType, .setNotNull])
        #expect(plan[0].statements == [#"ALTER TABLE "stg"."acc_lines" ALTER COLUMN "sku" TYPE character varying(50)"#])
        let narrower = Self.relation([Self.column("id", "bigint", attnum: 1), Self.column("sku", "character varying(10)", attnum: 2),
                                      Self.column("qty", attnum: 3)])
        guard case .stop(let change, let fix) = StagingSchemaPlanner.plan(recorded: Self.before, incoming: narrower, staging: Self.staging(Self.before),
                                                                            context: Self.context) else {
            Issue.record("a narrowing must stop")
            return
        }
        #expect(change.contains("column sku of public.acc_lines on acc changed type from character varying(20) to character varying(10)"))
        #expect(fix.hasPrefix(#"ALTER TABLE "stg"."acc_lines" ALTER COLUMN "sku" TYPE character varying(10) on the target"#))
        // Once the operator altered STG, the applier goes on.
        #expect(StagingSchemaPlanner.plan(recorded: Self.before, incoming: narrower, staging: Self.staging(narrower), context: Self.context)
                != .stop(change: change, fix: fix))
    }

    @Test func aKeyChangeOrADroppedKeyColumnStops() {
        let newKey = Self.relation(Self.before.columns, key: ["id", "sku"])
        guard case .stop(let change, let fix) = StagingSchemaPlanner.plan(recorded: Self.before, incoming: newKey, staging: Self.staging(Self.before),
                                                                            context: Self.context) else {
            Issue.record("a key change must stop")
            return
        }
        #expect(change.contains("the key of public.acc_lines on acc changed from (id) to (id, sku)"))
        #expect(fix.contains(#"DROP TABLE "stg"."acc_lines" on the target, then tributary snapshot --source acc --table public.acc_lines"#))
        let keyDropped = Self.relation([Self.column("uid", "uuid", attnum: 4), Self.column("sku", "character varying(20)", attnum: 2),
                                        Self.column("qty", attnum: 3)], key: ["uid"])
        guard case .stop(let dropped, _) = StagingSchemaPlanner.plan(recorded: Self.before, incoming: keyDropped, staging: Self.staging(Self.before),
                                                                       context: Self.context) else {
            Issue.record("a dropped key column must stop")
            return
        }
        #expect(dropped.contains("key column id of public.acc_lines was dropped on acc"))
    }

    @Test func aDroppedColumnIsKeptAndADropAndAddUnderOneNameNeedsTheTrigger() {
        let dropped = Self.relation([Self.column("id", "bigint", attnum: 1, notNull: true), Self.column("qty", attnum: 3)])
        #expect(steps(StagingSchemaPlanner.plan(recorded: Self.before, incoming: dropped, staging: Self.staging(Self.before), context: Self.context))
                .map(\.kind) == [.dropColumn])
        var readded = Self.relation([Self.column("id", "bigint", attnum: 1, notNull: true), Self.column("qty", attnum: 3),
                                     Self.column("sku", "text", attnum: 4)])
        guard case .stop(let change, _) = StagingSchemaPlanner.plan(recorded: Self.before, incoming: readded, staging: Self.staging(Self.before),
                                                                      context: Self.context) else {
            Issue.record("without the trigger, a drop and an add under one name must stop")
            return
        }
        #expect(change.contains("dropped on acc and added again under the same name"))
        readded.announced = true
        let plan = steps(StagingSchemaPlanner.plan(recorded: Self.before, incoming: readded, staging: Self.staging(Self.before), context: Self.context))
        #expect(plan.flatMap(\.statements) == [#"ALTER TABLE "stg"."acc_lines" RENAME COLUMN "sku" TO "sku_dropped""#,
                                                #"ALTER TABLE "stg"."acc_lines" ADD COLUMN "sku" text"#])
    }

    @Test func aRenamedTableIsSaidAndSTGKeepsItsName() {
        let renamed = Self.relation(Self.before.columns, sourceName: QualifiedName(schema: "public", name: "acc_lines_v2"))
        let plan = steps(StagingSchemaPlanner.plan(recorded: Self.before, incoming: renamed, staging: Self.staging(Self.before), context: Self.context))
        #expect(plan.map(\.kind) == [.renameTable] && plan[0].statements.isEmpty)
        #expect(plan[0].description.contains("table public.acc_lines renamed to public.acc_lines_v2 (slots/acc.yaml names it public.acc_lines"))
    }

    @Test func unidentifiedColumnsStopWithATableSnapshotAsTheFix() {
        var unknown = Self.before
        unknown.unidentified = "column b was dropped and added again under the same name"
        guard case .stop(_, let fix) = StagingSchemaPlanner.plan(recorded: Self.before, incoming: unknown, staging: Self.staging(Self.before),
                                                                   context: Self.context) else {
            Issue.record("columns the replicator could not identify must stop")
            return
        }
        #expect(fix.contains("tributary snapshot --source acc --table public.acc_lines"))
    }

    @Test func afterTheFixUnidentifiedColumnsAreTheCopysOnlyWhenTheirMessageCameBeforeIt() {
        // The file's message, as the replicator saw it: names and types, no numbers.
        var unknown = Self.relation([Self.column("id", "bigint", attnum: 1, notNull: true), Self.column("qty", attnum: 3),
                                     Self.column("sku", "character varying(20)", attnum: 4)])
        unknown.columns = unknown.columns.map { var column = $0; column.attnum = nil; return column }
        unknown.unidentified = "column sku was dropped and added again under the same name"
        unknown.unidentifiedSince = LSN(0x5000)
        // What the copy read from the catalog at its point: the table after the DDL.
        var copy = Self.relation([Self.column("id", "bigint", attnum: 1, notNull: true), Self.column("qty", attnum: 3),
                                  Self.column("sku", "character varying(20)", attnum: 4)])
        copy.announced = true
        let point = LSN(0x6000)
        #expect(StagingSchemaPlanner.shapeFromCopy(incoming: unknown, recorded: copy, recordedAt: point, copiedAt: point) == copy)
        // A message from a transaction committed at or after the copy's point: a DDL may lie between.
        var later = unknown
        later.unidentifiedSince = point
        #expect(StagingSchemaPlanner.shapeFromCopy(incoming: later, recorded: copy, recordedAt: point, copiedAt: point) == nil)
        // Its commit unknown (a streamed transaction), no copy, or STG following a newer shape than the copy's.
        later.unidentifiedSince = nil
        #expect(StagingSchemaPlanner.shapeFromCopy(incoming: later, recorded: copy, recordedAt: point, copiedAt: point) == nil)
        #expect(StagingSchemaPlanner.shapeFromCopy(incoming: unknown, recorded: copy, recordedAt: point, copiedAt: nil) == nil)
        #expect(StagingSchemaPlanner.shapeFromCopy(incoming: unknown, recorded: copy, recordedAt: LSN(0x7000), copiedAt: point) == nil)
        // Names, types or key that differ from the copy's: no conclusion.
        var renamed = unknown
        renamed.columns[1].name = "quantity"
        #expect(StagingSchemaPlanner.shapeFromCopy(incoming: renamed, recorded: copy, recordedAt: point, copiedAt: point) == nil)
        var retyped = unknown
        retyped.columns[1].typeOid = 20
        #expect(StagingSchemaPlanner.shapeFromCopy(incoming: retyped, recorded: copy, recordedAt: point, copiedAt: point) == nil)
        var rekeyed = unknown
        rekeyed.key = ["sku"]
        #expect(StagingSchemaPlanner.shapeFromCopy(incoming: rekeyed, recorded: copy, recordedAt: point, copiedAt: point) == nil)
        // A file the replicator identified is planned as always.
        #expect(StagingSchemaPlanner.shapeFromCopy(incoming: Self.before, recorded: copy, recordedAt: point, copiedAt: point) == nil)
    }

    @Test func withStopEveryChangeSTGNeedsStopsWithItsStatements() {
        var context = Self.context
        context.policy = .stop
        let after = Self.relation([Self.column("id", "bigint", attnum: 1, notNull: true), Self.column("sku_code", "character varying(20)", attnum: 2),
                                   Self.column("qty", attnum: 3), Self.column("note", "text", attnum: 4)])
        guard case .stop(let change, let fix) = StagingSchemaPlanner.plan(recorded: Self.before, incoming: after, staging: Self.staging(Self.before),
                                                                            context: context) else {
            Issue.record("schema_changes: stop must stop")
            return
        }
        #expect(change.contains("schema_changes is stop: column sku renamed to sku_code; column note text added"))
        #expect(fix.contains(#"ALTER TABLE "stg"."acc_lines" RENAME COLUMN "sku" TO "sku_code"; ALTER TABLE "stg"."acc_lines" ADD COLUMN "note" text"#))
        // NOT NULL needs nothing in STG: it goes by.
        let notNull = Self.relation([Self.column("id", "bigint", attnum: 1, notNull: true), Self.column("sku", "character varying(20)", attnum: 2),
                                     Self.column("qty", attnum: 3, notNull: true)])
        #expect(steps(StagingSchemaPlanner.plan(recorded: Self.before, incoming: notNull, staging: Self.staging(Self.before), context: context))
                .map(\.kind) == [.setNotNull])
    }

    @Test func withoutNumbersColumnsAreFollowedByNameAsBefore() {
        let legacy = RelationSchema(table: QualifiedName(schema: "public", name: "acc_lines"),
                                    columns: [ColumnSchema(name: "id", sourceType: "bigint", stagingType: "bigint", typeOid: 20, notNull: true),
                                              ColumnSchema(name: "extra", sourceType: "text", stagingType: "text", typeOid: 25, notNull: false)],
                                    key: ["id"])
        let plan = steps(StagingSchemaPlanner.plan(recorded: nil, incoming: legacy, staging: ["id": "bigint"], context: Self.context))
        #expect(plan.flatMap(\.statements) == [#"ALTER TABLE "stg"."acc_lines" ADD COLUMN "extra" text"#])
    }
}
