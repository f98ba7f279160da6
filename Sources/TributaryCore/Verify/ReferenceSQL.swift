/// The queries that check a BL model's relationships (`references:`): its rows whose columns name
/// no row of the model they refer to. Rows a flagging model keeps as deleted count on neither side.
public enum ReferenceSQL {
    /// `orphans` (a count) and `sample`: up to `sample` orphans, `(key) → (values)`, as a JSON array.
    public static func orphans(_ model: TransformModel, _ reference: TransformModel.Reference, target: TransformModel?,
                               sample: Int = 10) -> String {
        let child = "c", parent = "p"
        let match = zip(reference.columns, reference.targetColumns).map { column, targetColumn in
            "\(parent).\(SQL.identifier(targetColumn)) = \(child).\(SQL.identifier(column))"
        }.joined(separator: " AND ")
        var parentFilter = ""
        if target?.deletes == .flag { parentFilter = " AND NOT \(parent).\(SQL.identifier(TransformSQL.deleted))" }
        var conditions = ["NOT EXISTS (SELECT 1 FROM \(reference.target.sql) AS \(parent) WHERE \(match)\(parentFilter))"]
        if reference.nullable {
            conditions.insert("(" + reference.columns.map { "\(child).\(SQL.identifier($0)) IS NOT NULL" }.joined(separator: " OR ") + ")", at: 0)
        }
        if model.deletes == .flag { conditions.append("NOT \(child).\(SQL.identifier(TransformSQL.deleted))") }
        let key = model.key.map { "\(child).\(SQL.identifier($0))::text" }.joined(separator: " || ', ' || ")
        let values = reference.columns.map { "coalesce(\(child).\(SQL.identifier($0))::text, 'NULL')" }.joined(separator: " || ', ' || ")
        return """
            SELECT count(*) AS orphans,
                   coalesce(to_json((array_agg('(' || \(key) || ') → (' || \(values) || ')' ORDER BY \(key)))[1:\(sample)])::text, '[]') AS sample
            FROM \(model.table.sql) AS \(child) WHERE \(conditions.joined(separator: " AND "))
            """
    }

    /// The columns of `table` (to say which a reference names and the table lacks).
    public static func columns(of table: QualifiedName) -> String {
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(\(SQL.literal(table.sql))) AND attnum > 0 AND NOT attisdropped"
    }
}
