import Foundation
import Yams

/// Reads BL models: `bl/<name>.yaml` (table, key, inputs and how their changes map to keys) beside
/// `bl/<name>.sql` (the SELECT). Pure: the caller passes the files' names and texts.
public enum TransformModelParser {
    public static func parse(yaml: ConfigurationParser.File, sql: String?) throws -> TransformModel {
        let stem = ((yaml.name as NSString).lastPathComponent as NSString).deletingPathExtension
        guard let sql, !sql.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw TributaryError.configuration(file: yaml.name, problem: "no \(stem).sql beside it: a model is a YAML file and the SELECT in a .sql file of the same name")
        }
        let root = try ConfigurationParser.root(yaml, environment: [:])
        try root.requireOnly(["table", "key", "surrogate", "surrogate_default", "deletes", "full_refresh", "schema_drift", "inputs", "indexes",
                              "references"])
        guard stem.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.isLowercase || $0.isNumber)) }), stem.first?.isLetter == true else {
            throw TributaryError.configuration(file: yaml.name, problem: "\"\(stem)\" is not a usable model name: lower-case letters, digits and _, starting with a letter")
        }
        let tableName = try root.string("table") ?? stem
        guard let table = QualifiedName(parsing: tableName.contains(".") ? tableName : "\(TransformModel.schema).\(tableName)"),
              table.schema == TransformModel.schema else {
            throw root.error("table", root.node("table")!, "a model writes a table in schema \(TransformModel.schema), found \"\(tableName)\"")
        }
        guard let key = try root.stringList("key"), !key.isEmpty else {
            throw TributaryError.configuration(file: yaml.name, line: root.line, keyPath: "key", problem: "required: the columns that identify a row of the model")
        }
        var model = TransformModel(name: stem, table: table, key: key, surrogate: try root.string("surrogate"),
                                   inputs: try inputs(root, keyCount: key.count), indexes: try indexes(root),
                                   sql: Self.trimmed(sql), file: yaml.name)
        if let text = try root.string("deletes") {
            guard let deletes = TransformModel.Deletes(rawValue: text) else {
                throw root.error("deletes", root.node("deletes")!, "expected delete or flag, found \"\(text)\"")
            }
            model.deletes = deletes
        }
        if let text = try root.string("schema_drift") {
            guard let drift = TransformModel.SchemaDrift(rawValue: text) else {
                throw root.error("schema_drift", root.node("schema_drift")!, "expected fail or rebuild, found \"\(text)\"")
            }
            model.schemaDrift = drift
        }
        model.fullRefresh = try root.bool("full_refresh") ?? true
        model.surrogateDefault = try root.bool("surrogate_default") ?? true
        model.references = try references(root)
        if let surrogate = model.surrogate, key.contains(surrogate) {
            throw root.error("surrogate", root.node("surrogate")!, "the surrogate \(surrogate) cannot also be a key column: it is made from the key")
        }
        return model
    }

    /// `references:`, each `columns: [a, b]` (or one name) and `to: bl.model(x, y)`, with
    /// `nullable:` and `on_orphan: fail|warn`.
    static func references(_ root: YAMLReader) throws -> [TransformModel.Reference] {
        try (root.children("references") ?? []).map { reader in
            try reader.requireOnly(["columns", "to", "nullable", "on_orphan"])
            guard let columns = try reader.stringList("columns"), !columns.isEmpty else {
                throw TributaryError.configuration(file: reader.file, line: reader.line, keyPath: reader.path + ".columns",
                                                   problem: "required: the model's columns that name a row of another model")
            }
            let text = try reader.requiredString("to")
            guard let target = TransformModel.Index(parsing: text), target.table.schema == TransformModel.schema,
                  case let targetColumns = target.columns.dropFirst().dropLast().split(separator: ",")
                      .map({ $0.trimmingCharacters(in: .whitespaces) }),
                  !targetColumns.isEmpty, targetColumns.allSatisfy({ !$0.isEmpty && !$0.contains("(") }) else {
                throw reader.error("to", reader.node("to")!, "expected bl.<model table>(<columns>), found \"\(text)\"")
            }
            guard targetColumns.count == columns.count else {
                throw reader.error("to", reader.node("to")!, "\(columns.count) columns refer to \(targetColumns.count) of \(target.table)")
            }
            var reference = TransformModel.Reference(columns: columns, target: target.table, targetColumns: targetColumns,
                                                     nullable: try reader.bool("nullable") ?? false)
            if let policy = try reader.string("on_orphan") {
                guard let onOrphan = TransformModel.Reference.OnOrphan(rawValue: policy) else {
                    throw reader.error("on_orphan", reader.node("on_orphan")!, "expected fail or warn, found \"\(policy)\"")
                }
                reference.onOrphan = onOrphan
            }
            return reference
        }
    }

    static func indexes(_ root: YAMLReader) throws -> [TransformModel.Index] {
        try (root.stringList("indexes") ?? []).map { text in
            guard let index = TransformModel.Index(parsing: text) else {
                throw root.error("indexes", root.node("indexes")!, "\"\(text)\" is not schema.table (columns or (expression))")
            }
            return index
        }
    }

    static func inputs(_ root: YAMLReader, keyCount: Int) throws -> [TransformModel.Input] {
        guard let readers = try root.children("inputs"), !readers.isEmpty else {
            throw TributaryError.configuration(file: root.file, line: root.line, keyPath: "inputs",
                                     problem: "required: every table the SELECT reads, with how its changed rows map to the model's keys")
        }
        var inputs: [TransformModel.Input] = []
        for reader in readers {
            try reader.requireOnly(["table", "keys", "query"])
            let text = try reader.requiredString("table")
            guard let table = QualifiedName(parsing: text), [StagingColumns.schema, TransformModel.schema].contains(table.schema) else {
                throw reader.error("table", reader.node("table")!, "an input is a table of schema stg or bl, found \"\(text)\"")
            }
            let mapping: TransformModel.Input.Mapping
            switch (try reader.stringList("keys"), try reader.string("query")) {
            case (let keys?, nil):
                guard keys.count == keyCount else {
                    throw reader.error("keys", reader.node("keys")!, "\(keys.count) expressions for a key of \(keyCount) columns")
                }
                mapping = .expressions(keys)
            case (nil, let query?):
                mapping = .query(Self.trimmed(query))
            default:
                throw TributaryError.configuration(file: reader.file, line: reader.line, keyPath: reader.path,
                                         problem: "give keys: (an expression per key column over a changed row) or query: (a SELECT of keys FROM changed), one of them")
            }
            if inputs.contains(where: { $0.table == table }) {
                throw TributaryError.configuration(file: reader.file, line: reader.line, keyPath: reader.path, problem: "\(table) is listed twice")
            }
            inputs.append(TransformModel.Input(table: table, mapping: mapping))
        }
        return inputs
    }

    /// The models of a configuration checked as a whole: unique tables, inputs that are models,
    /// no circles. Returns them in running order.
    public static func validate(_ models: [TransformModel]) throws -> [TransformModel] {
        var tables: [QualifiedName: String] = [:]
        for model in models {
            if let other = tables[model.table] {
                throw TributaryError.configuration(file: model.file, keyPath: "table", problem: "\(model.table) is also written by \(other)")
            }
            tables[model.table] = model.file
        }
        for model in models {
            for input in model.inputs where input.isModel && tables[input.table] == nil {
                throw TributaryError.configuration(file: model.file, keyPath: "inputs", problem: "\(input.table) is read but no model writes it")
            }
            for (index, reference) in model.references.enumerated() where tables[reference.target] == nil {
                throw TributaryError.configuration(file: model.file, keyPath: "references[\(index)].to",
                                                   problem: "\(reference.target) is referred to but no model writes it")
            }
        }
        do {
            return try TransformOrder.sorted(models)
        } catch let cycle as TransformOrder.Cycle {
            throw TributaryError.configuration(file: models.first?.file ?? "bl", problem: cycle.description)
        }
    }

    /// SQL without surrounding space or a trailing `;` (it is nested in other statements).
    static func trimmed(_ sql: String) -> String {
        var text = sql.trimmingCharacters(in: .whitespacesAndNewlines)
        while text.hasSuffix(";") { text = String(text.dropLast()).trimmingCharacters(in: .whitespacesAndNewlines) }
        return text
    }
}
