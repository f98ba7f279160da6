import TributaryCore

/// A configured table as the source's catalog describes it.
public struct SourceTable: Sendable {
    public var configuration: TableConfiguration
    public var oid: UInt32
    public var relation: RelationSchema
    /// Heap pages at the time of the look-up; the basis for splitting into ranges.
    public var pages: Int
    public var estimatedRows: Int
    public var estimatedBytes: Int
    public var isPartitioned: Bool
    /// Columns not carried: generated ones (pgoutput does not send them) and excluded ones.
    public var omittedColumns: [String]

    public var name: QualifiedName { configuration.table }
}
