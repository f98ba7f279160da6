/// One BL model (DESIGN.md §4b): a plain SELECT over STG (and other BL models) that produces one
/// BL table, with the key it is merged on and, for each table it reads, how a changed row of that
/// table maps to the model's keys. Read from `slots/bl/<name>.yaml` and `<name>.sql`.
public struct TransformModel: Sendable, Hashable {
    /// What happens to the BL row of a key the SELECT no longer produces.
    public enum Deletes: String, Sendable, Hashable {
        /// The row is removed.
        case delete
        /// The row stays, with `_deleted` set (and cleared again if the key comes back).
        case flag
    }

    /// What happens when the SELECT's columns no longer match the BL table's.
    public enum SchemaDrift: String, Sendable, Hashable {
        /// The model stops with an error saying how to rebuild it.
        case fail
        /// The model is fully reloaded with its new columns.
        case rebuild
    }

    /// A table the model reads.
    public struct Input: Sendable, Hashable {
        public enum Mapping: Sendable, Hashable {
            /// One SQL expression per model key column, over a changed row's columns.
            case expressions([String])
            /// A SELECT over `changed` (the changed rows) returning model keys: for a row that
            /// affects many of the model's keys (a parent row).
            case query(String)
        }

        /// `stg.<table>` or `bl.<model table>`.
        public var table: QualifiedName
        public var mapping: Mapping

        public init(table: QualifiedName, mapping: Mapping) {
            self.table = table
            self.mapping = mapping
        }

        public var isModel: Bool { table.schema == TransformModel.schema }
    }

    /// An index a model wants on one of its inputs: `stg.t ((expression))` or `stg.t (column)`.
    public struct Index: Sendable, Hashable {
        public var table: QualifiedName
        /// The parenthesised column or expression list, as written.
        public var columns: String

        public init(table: QualifiedName, columns: String) {
            self.table = table
            self.columns = columns
        }

        /// Reads `schema.table (columns)`; nil when it is not of that shape.
        public init?(parsing text: String) {
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            guard let open = trimmed.firstIndex(of: "("), trimmed.hasSuffix(")"),
                  let table = QualifiedName(parsing: trimmed[..<open].trimmingCharacters(in: .whitespaces)) else { return nil }
            self.init(table: table, columns: String(trimmed[open...]))
        }

        /// A name of its own, the same whenever the definition is: `bl_<16 hex>`.
        public var name: String { "bl_" + SHA256Hasher.hex(Array("\(table.description) \(columns)".utf8)).prefix(16) }
    }

    /// A relationship the model's rows must keep (`references:`): its `columns` name a row of
    /// `target` by `targetColumns`, as a foreign key would. `verify` and `drain` count the rows
    /// that point at nothing (orphans).
    public struct Reference: Sendable, Hashable {
        public enum OnOrphan: String, Sendable, Hashable {
            /// An orphan fails `drain` (and `verify`).
            case fail
            /// An orphan is reported, and fails nothing.
            case warn
        }

        public var columns: [String]
        public var target: QualifiedName
        public var targetColumns: [String]
        /// A row whose columns are all NULL points at nothing and is no orphan.
        public var nullable: Bool
        public var onOrphan: OnOrphan

        public init(columns: [String], target: QualifiedName, targetColumns: [String], nullable: Bool = false, onOrphan: OnOrphan = .fail) {
            self.columns = columns
            self.target = target
            self.targetColumns = targetColumns
            self.nullable = nullable
            self.onOrphan = onOrphan
        }

        /// `party_id → bl.party(party_id)`: how reports name it.
        public var description: String {
            "\(columns.joined(separator: ", ")) → \(target)(\(targetColumns.joined(separator: ", ")))"
        }
    }

    public static let schema = "bl"

    /// The file stem: `contract` for `bl/contract.yaml`.
    public var name: String
    /// `bl.<name>` unless the YAML says otherwise.
    public var table: QualifiedName
    public var key: [String]
    /// A bigint column with a stable surrogate per key, from a key map that survives reloads.
    public var surrogate: String?
    /// At cutover (`drain`), the surrogate column gets a default that draws from the key map's
    /// sequence, so the application can insert rows without one (`surrogate_default`).
    public var surrogateDefault = true
    /// The relationships its rows must keep (`references:`).
    public var references: [Reference] = []
    public var deletes: Deletes
    public var fullRefresh: Bool
    public var schemaDrift: SchemaDrift
    public var inputs: [Input]
    /// Indexes on inputs that let an incremental run find the affected rows.
    public var indexes: [Index]
    /// The SELECT, as written.
    public var sql: String
    public var file: String

    public init(name: String, table: QualifiedName, key: [String], surrogate: String? = nil, deletes: Deletes = .delete,
                fullRefresh: Bool = true, schemaDrift: SchemaDrift = .fail, inputs: [Input], indexes: [Index] = [],
                sql: String, file: String) {
        self.name = name
        self.table = table
        self.key = key
        self.surrogate = surrogate
        self.deletes = deletes
        self.fullRefresh = fullRefresh
        self.schemaDrift = schemaDrift
        self.inputs = inputs
        self.indexes = indexes
        self.sql = sql
        self.file = file
    }

    /// The models this one reads, by table.
    public var upstreamTables: [QualifiedName] { inputs.filter(\.isModel).map(\.table) }
}

/// The models in the order they must run: every model after the models it reads.
public enum TransformOrder {
    public struct Cycle: Error, CustomStringConvertible, Equatable {
        public var models: [String]
        public var description: String { "BL models read each other in a circle: \(models.joined(separator: " → "))" }
    }

    public static func sorted(_ models: [TransformModel]) throws -> [TransformModel] {
        let byTable = Dictionary(uniqueKeysWithValues: models.map { ($0.table, $0) })
        var done: Set<String> = []
        var visiting: [String] = []
        var order: [TransformModel] = []
        func visit(_ model: TransformModel) throws {
            if done.contains(model.name) { return }
            if let start = visiting.firstIndex(of: model.name) { throw Cycle(models: Array(visiting[start...]) + [model.name]) }
            visiting.append(model.name)
            for upstream in model.upstreamTables.compactMap({ byTable[$0] }) { try visit(upstream) }
            visiting.removeLast()
            done.insert(model.name)
            order.append(model)
        }
        for model in models.sorted(by: { $0.name < $1.name }) { try visit(model) }
        return order
    }

    /// Of `pending` (in running order), the models that may start now: every model of `running`'s
    /// batch it reads has finished. Models not in `pending`, `running` or `finished` were not
    /// selected and count as done.
    public static func startable(_ pending: [TransformModel], running: Set<String>, finished: Set<String>,
                                 all: [TransformModel]) -> [TransformModel] {
        let byTable = Dictionary(uniqueKeysWithValues: all.map { ($0.table, $0.name) })
        let waiting = Set(pending.map(\.name)).union(running)
        return pending.filter { model in
            model.upstreamTables.compactMap { byTable[$0] }.allSatisfy { !waiting.contains($0) || finished.contains($0) }
        }
    }

    /// `models` and every model that reads one of them, directly or not, in running order.
    public static func withDependants(_ names: Set<String>, in sorted: [TransformModel]) -> [TransformModel] {
        var selected = names
        for model in sorted where !selected.contains(model.name) {
            let upstream = Set(model.upstreamTables)
            if sorted.contains(where: { selected.contains($0.name) && upstream.contains($0.table) }) { selected.insert(model.name) }
        }
        return sorted.filter { selected.contains($0.name) }
    }
}
