/// One column as the pipeline carries it: its source type and the type its STG column gets.
public struct ColumnSchema: Sendable, Hashable, Codable {
    public var name: String
    /// `format_type` of the source column, e.g. `numeric(12,2)` or `public.order_state`.
    public var sourceType: String
    /// The type of the STG column: the source type when the target surely has it (built-in types),
    /// otherwise a type whose text form is the same (an enum becomes `text`, a domain its base type).
    public var stagingType: String
    public var typeOid: UInt32
    public var notNull: Bool
    /// The value rows that existed when the column was added with a constant default carry without
    /// any change being written (PostgreSQL's "missing value"); STG gives its existing rows the same.
    public var missingValue: String?

    public init(name: String, sourceType: String, stagingType: String, typeOid: UInt32, notNull: Bool, missingValue: String? = nil) {
        self.name = name
        self.sourceType = sourceType
        self.stagingType = stagingType
        self.typeOid = typeOid
        self.notNull = notNull
        self.missingValue = missingValue
    }
}

/// A source table's shape: what the manifests carry so the applier can build and follow STG.
public struct RelationSchema: Sendable, Hashable, Codable {
    public var table: QualifiedName
    public var columns: [ColumnSchema]
    /// Key columns, in key order; never empty for a table the pipeline accepts.
    public var key: [String]

    public init(table: QualifiedName, columns: [ColumnSchema], key: [String]) {
        self.table = table
        self.columns = columns
        self.key = key
    }

    public var columnNames: [String] { columns.map(\.name) }
}
