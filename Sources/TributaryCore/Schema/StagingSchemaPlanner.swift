/// How an STG table follows its source table's new shape: from the shape it last followed (with
/// the columns' catalog numbers, recorded by the applier), the shape a batch brings, and the STG
/// table's columns as they are now (so a step an operator already took by hand is not taken
/// twice). Pure: the applier runs the statements in the batch's transaction, before its rows.
///
/// Followed exactly (`follow`): a column renamed (same number, new name), a table renamed (same
/// relation id; STG keeps its name), a column added (with the value existing rows got, when the
/// source added it with a constant default; a non-constant default asks for a table snapshot), a
/// type widened (`TypeWidening`), NOT NULL set or dropped (nothing to do in STG), a column dropped
/// (STG keeps it: its values stay for the rows that had them, new rows get NULL).
/// Stopped, with the fix: a type narrowed or changed otherwise, the key changed (or a key column
/// dropped), columns the replicator could not identify, a column dropped and added again under one
/// name unless the DDL event trigger announced it. With `stop`, every change STG would need.
public enum StagingSchemaPlanner {
    public struct Context: Sendable {
        /// `qvp`
        public var source: String
        /// `slots/qvp.yaml`
        public var sourceFile: String
        public var stagingTable: QualifiedName
        public var policy: SchemaChangePolicy

        public init(source: String, sourceFile: String, stagingTable: QualifiedName, policy: SchemaChangePolicy) {
            self.source = source
            self.sourceFile = sourceFile
            self.stagingTable = stagingTable
            self.policy = policy
        }
    }

    public struct Step: Sendable, Equatable {
        public enum Kind: String, Sendable {
            case renameTable = "rename table", renameColumn = "rename column", addColumn = "add column", widenType = "widen type"
            case setNotNull = "set not null", dropNotNull = "drop not null", dropColumn = "drop column"
        }

        public var kind: Kind
        /// The column it is about (the new name), if any.
        public var column: String?
        /// What changed on the source, for `status` and the log: `column sku renamed to sku_code`.
        public var description: String
        /// What STG needs, in order (none for a change STG has nothing to do for).
        public var statements: [String]

        public init(_ kind: Kind, column: String? = nil, _ description: String, _ statements: [String] = []) {
            self.kind = kind
            self.column = column
            self.description = description
            self.statements = statements
        }
    }

    public enum Decision: Sendable, Equatable {
        case unchanged
        /// The steps in order; `resync` says why the table's existing rows need a table snapshot
        /// (values no change in the stream carries).
        case follow([Step], resync: String?)
        /// The change, and what the operator does about it.
        case stop(change: String, fix: String)
    }

    /// Whether a file whose columns the replicator could not identify has, exactly, the shape a
    /// table snapshot's copy brought (which STG follows): its Relation message came in a
    /// transaction committed before the copy's point, and the table's changes use a message's
    /// shape only until the next DDL on it (pgoutput sends another message then), so the table
    /// had that shape at the copy's point, where the copy read its columns' numbers from the
    /// catalog. Names and types must agree as well; anything else is no conclusion (nil).
    /// Without this, a source stopped on unidentified columns would stay stopped after its fix
    /// until the table's next DDL or cache invalidation.
    public static func shapeFromCopy(incoming: RelationSchema, recorded: RelationSchema?, recordedAt: LSN?, copiedAt: LSN?) -> RelationSchema? {
        guard incoming.unidentified != nil, let since = incoming.unidentifiedSince, let copiedAt, since < copiedAt,
              let recorded, recordedAt == copiedAt, recorded.identifiesColumns, recorded.unidentified == nil,
              recorded.columns.map(\.name) == incoming.columns.map(\.name),
              recorded.columns.map(\.typeOid) == incoming.columns.map(\.typeOid),
              recorded.key == incoming.key else { return nil }
        return recorded
    }

    /// - Parameter staging: the STG table's columns (name → `format_type`), metadata ones included.
    public static func plan(recorded: RelationSchema?, incoming: RelationSchema, staging: [String: String], context: Context) -> Decision {
        let table = incoming.table, stg = context.stagingTable.sql
        let resyncFix = "tributary snapshot --source \(context.source) --table \(table) (while run goes on; the applier skips what the copy covers and goes on by itself)"
        if let problem = incoming.unidentified {
            return .stop(change: "cannot tell which column of \(table) on \(context.source) is which: \(problem)",
                         fix: resyncFix + "; the DDL event trigger tells such changes apart (tributary check prints it)")
        }
        guard let recorded, recorded.identifiesColumns, incoming.identifiesColumns else {
            return planByName(incoming: incoming, staging: staging, context: context)
        }
        var steps: [Step] = []
        var resync: String?
        var columns = staging

        let oldKey = recorded.key.compactMap { name in recorded.columns.first { $0.name == name }?.attnum }
        let newKey = incoming.key.compactMap { name in incoming.columns.first { $0.name == name }?.attnum }
        if oldKey != newKey {
            let dropped = recorded.key.filter { name in !incoming.columns.contains { $0.attnum == recorded.columns.first { $0.name == name }?.attnum } }
            let change = dropped.isEmpty
                ? "the key of \(table) on \(context.source) changed from (\(recorded.key.joined(separator: ", "))) to (\(incoming.key.joined(separator: ", ")))"
                : "key column \(dropped.joined(separator: ", ")) of \(table) was dropped on \(context.source)"
            return .stop(change: change, fix: "STG is merged on the key, so its table is built anew: DROP TABLE \(stg) on the target, then " + resyncFix)
        }

        let oldName = recorded.sourceName ?? recorded.table, newName = incoming.sourceName ?? incoming.table
        if oldName != newName {
            var step = Step(.renameTable, "table \(oldName) renamed to \(newName)")
            if incoming.sourceName != nil {
                step.description += " (\(context.sourceFile) names it \(incoming.table); \(context.stagingTable) keeps its name)"
            }
            steps.append(step)
        }

        // Renames, through temporary names when one takes a name another still has (a swap).
        let renames = incoming.columns.compactMap { column -> (old: String, new: String, attnum: Int)? in
            guard let old = recorded.column(attnum: column.attnum!), old.name != column.name,
                  columns[old.name] != nil, !(columns[column.name] != nil && columns[old.name] == nil) else { return nil }
            return (old.name, column.name, column.attnum!)
        }
        let renamedAway = Set(renames.map(\.old))
        for rename in renames where columns[rename.new] != nil && !renamedAway.contains(rename.new) {
            // The name belongs to a column STG kept after the source dropped it.
            let kept = freeName(rename.new + "_dropped", in: columns)
            steps.append(Step(.dropColumn, column: rename.new, "kept column \(rename.new) (dropped on the source) renamed to \(kept) to free its name",
                              ["ALTER TABLE \(stg) RENAME COLUMN \(SQL.identifier(rename.new)) TO \(SQL.identifier(kept))"]))
            columns[kept] = columns.removeValue(forKey: rename.new)
        }
        var from = Dictionary(uniqueKeysWithValues: renames.map { ($0.attnum, $0.old) })
        var statements: [String] = []
        if renames.contains(where: { columns[$0.new] != nil }) {
            for rename in renames {
                let temporary = freeName("tributary_renaming_\(rename.attnum)", in: columns)
                statements.append("ALTER TABLE \(stg) RENAME COLUMN \(SQL.identifier(rename.old)) TO \(SQL.identifier(temporary))")
                columns[temporary] = columns.removeValue(forKey: rename.old)
                from[rename.attnum] = temporary
            }
        }
        for rename in renames {
            statements.append("ALTER TABLE \(stg) RENAME COLUMN \(SQL.identifier(from[rename.attnum]!)) TO \(SQL.identifier(rename.new))")
            columns[rename.new] = columns.removeValue(forKey: from[rename.attnum]!)
        }
        if !renames.isEmpty {
            steps.append(Step(.renameColumn, column: renames.map(\.new).joined(separator: ", "),
                              renames.map { "column \($0.old) renamed to \($0.new)" }.joined(separator: ", "), statements))
        }

        for column in incoming.columns {
            let name = SQL.identifier(column.name)
            let old = recorded.column(attnum: column.attnum!)
            guard let old, columns[column.name] != nil || columns[old.name] != nil else {
                if let present = columns[column.name] {
                    let reused = old == nil && recorded.columns.contains { $0.name == column.name }
                    if !reused {
                        // Added to STG already (by an operator following a stop): the same type, or not.
                        guard present == column.stagingType else {
                            return .stop(change: "column \(column.name) added to \(table) on \(context.source) is \(column.stagingType), \(context.stagingTable) has it as \(present)",
                                         fix: "ALTER TABLE \(stg) ALTER COLUMN \(name) TYPE \(column.stagingType) on the target; the applier goes on by itself")
                        }
                        continue
                    }
                    guard incoming.announced == true else {
                        return .stop(change: "column \(column.name) of \(table) was dropped on \(context.source) and added again under the same name (or the replicator read it after both)",
                                     fix: resyncFix + "; the DDL event trigger tells such changes apart (tributary check prints it)")
                    }
                    let kept = freeName(column.name + "_dropped", in: columns)
                    steps.append(Step(.dropColumn, column: column.name, "column \(column.name) dropped; STG keeps it as \(kept)",
                                      ["ALTER TABLE \(stg) RENAME COLUMN \(name) TO \(SQL.identifier(kept))"]))
                    columns[kept] = columns.removeValue(forKey: column.name)
                }
                steps.append(addColumn(column, stagingTable: stg))
                columns[column.name] = column.stagingType
                if column.missingValue == nil && column.hasDefault == true {
                    resync = "column \(column.name) was added with a default that is not a constant: the existing rows' values came with no change"
                }
                continue
            }
            if let type = columns[column.name], type != column.stagingType {
                guard TypeWidening.widens(from: type, to: column.stagingType) else {
                    return .stop(change: "column \(column.name) of \(table) on \(context.source) changed type from \(old.stagingType) to \(column.stagingType), which STG does not follow by itself",
                                 fix: "ALTER TABLE \(stg) ALTER COLUMN \(name) TYPE \(column.stagingType) on the target "
                                    + "(rows the source deleted stay as tombstones: one whose value does not fit must be changed first); the applier goes on by itself")
                }
                steps.append(Step(.widenType, column: column.name, "column \(column.name) widened from \(type) to \(column.stagingType)",
                                  ["ALTER TABLE \(stg) ALTER COLUMN \(name) TYPE \(column.stagingType)"]))
                columns[column.name] = column.stagingType
            }
            if old.notNull != column.notNull {
                steps.append(Step(column.notNull ? .setNotNull : .dropNotNull, column: column.name,
                                  "column \(column.name) \(column.notNull ? "set" : "dropped") NOT NULL"))
            }
        }
        let incomingNumbers = Set(incoming.columns.compactMap(\.attnum))
        for column in recorded.columns where !incomingNumbers.contains(column.attnum!) && columns[column.name] != nil
            && !incoming.columns.contains(where: { $0.name == column.name }) {
            steps.append(Step(.dropColumn, column: column.name, "column \(column.name) dropped; STG keeps it (its values stay, new rows get NULL)"))
        }
        return decide(steps, resync: resync, table: table, configurationNamesOldName: incoming.sourceName != nil, context: context)
    }

    /// Shapes without catalog numbers (manifests written before tributary recorded them): columns
    /// by name, as tributary followed them then.
    static func planByName(incoming: RelationSchema, staging: [String: String], context: Context) -> Decision {
        let table = incoming.table, stg = context.stagingTable.sql
        var steps: [Step] = []
        var resync: String?
        for column in incoming.columns {
            let name = SQL.identifier(column.name)
            guard let type = staging[column.name] else {
                steps.append(addColumn(column, stagingTable: stg))
                if column.missingValue == nil && column.hasDefault == true {
                    resync = "column \(column.name) was added with a default that is not a constant: the existing rows' values came with no change"
                }
                continue
            }
            guard type != column.stagingType else { continue }
            guard TypeWidening.widens(from: type, to: column.stagingType) else {
                return .stop(change: "column \(column.name) of \(table) on \(context.source) changed type from \(type) to \(column.stagingType), which STG does not follow by itself",
                             fix: "ALTER TABLE \(stg) ALTER COLUMN \(name) TYPE \(column.stagingType) on the target; the applier goes on by itself")
            }
            steps.append(Step(.widenType, "column \(column.name) widened from \(type) to \(column.stagingType)",
                              ["ALTER TABLE \(stg) ALTER COLUMN \(name) TYPE \(column.stagingType)"]))
        }
        return decide(steps, resync: resync, table: table, configurationNamesOldName: false, context: context)
    }

    private static func decide(_ steps: [Step], resync: String?, table: QualifiedName, configurationNamesOldName: Bool,
                               context: Context) -> Decision {
        guard !steps.isEmpty else { return .unchanged }
        guard context.policy == .stop else { return .follow(steps, resync: resync) }
        // With `stop`, a change STG needs nothing for (NOT NULL) goes by; the rest waits for the operator.
        let needed = steps.filter { !$0.statements.isEmpty || $0.kind == .dropColumn || ($0.kind == .renameTable && configurationNamesOldName) }
        guard !needed.isEmpty else { return .follow(steps, resync: resync) }
        let statements = needed.flatMap(\.statements)
        let byHand = needed.filter { $0.kind == .dropColumn && $0.statements.isEmpty }.compactMap(\.column).map {
            "ALTER TABLE \(context.stagingTable.sql) DROP COLUMN \(SQL.identifier($0))"
        }
        var fix = statements + byHand
        if needed.contains(where: { $0.kind == .renameTable }) {
            fix.append("in \(context.sourceFile) name the table as the source does now, with stg_table: \(context.stagingTable.name)")
        }
        return .stop(change: "\(table) changed on \(context.source) and schema_changes is stop: " + needed.map(\.description).joined(separator: "; "),
                     fix: fix.joined(separator: "; ") + "; the applier goes on by itself once STG has them")
    }

    static func addColumn(_ column: ColumnSchema, stagingTable stg: String) -> Step {
        let name = SQL.identifier(column.name)
        guard let value = column.missingValue else {
            return Step(.addColumn, column: column.name, "column \(column.name) \(column.stagingType) added", ["ALTER TABLE \(stg) ADD COLUMN \(name) \(column.stagingType)"])
        }
        // Existing source rows have this value without any change saying so; STG's too.
        return Step(.addColumn, column: column.name, "column \(column.name) \(column.stagingType) added (existing rows: \(value))", [
            "ALTER TABLE \(stg) ADD COLUMN \(name) \(column.stagingType) DEFAULT \(SQL.literal(value))::\(column.stagingType)",
            "ALTER TABLE \(stg) ALTER COLUMN \(name) DROP DEFAULT",
        ])
    }

    /// `base`, or `base_2`, `base_3`…: a column name `columns` does not have yet.
    static func freeName(_ base: String, in columns: [String: String]) -> String {
        let base = SQL.truncated(base, bytes: 59)
        guard columns[base] != nil else { return base }
        var number = 2
        while columns["\(base)_\(number)"] != nil { number += 1 }
        return "\(base)_\(number)"
    }
}
