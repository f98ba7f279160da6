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
    /// The column's number in the source catalog (`attnum`): what identifies it through a rename.
    /// Absent in manifests written before tributary tracked it.
    public var attnum: Int?
    /// The column has a default expression on the source. Added with one that is not a constant
    /// (no `missingValue`), the existing rows got values no change in the stream carries.
    public var hasDefault: Bool?

    enum CodingKeys: String, CodingKey {
        case name, attnum
        case sourceType = "source_type", stagingType = "staging_type", typeOid = "type_oid", notNull = "not_null"
        case missingValue = "missing_value", hasDefault = "has_default"
    }

    public init(name: String, sourceType: String, stagingType: String, typeOid: UInt32, notNull: Bool, missingValue: String? = nil,
                attnum: Int? = nil, hasDefault: Bool? = nil) {
        self.name = name
        self.sourceType = sourceType
        self.stagingType = stagingType
        self.typeOid = typeOid
        self.notNull = notNull
        self.missingValue = missingValue
        self.attnum = attnum
        self.hasDefault = hasDefault
    }
}

/// A source table's shape: what the manifests carry so the applier can build and follow STG.
public struct RelationSchema: Sendable, Hashable, Codable {
    public var table: QualifiedName
    public var columns: [ColumnSchema]
    /// Key columns, in key order; never empty for a table the pipeline accepts.
    public var key: [String]
    /// The table's id in the source catalog: what identifies it through a rename.
    public var oid: UInt32?
    /// The table's name on the source when it is not the configured `table` (renamed since the
    /// configuration was written; its STG table keeps its name).
    public var sourceName: QualifiedName?
    /// The columns' numbers came from the DDL event trigger's shape: exact, also where the catalog
    /// cannot tell (a column dropped and added again under one name).
    public var announced: Bool?
    /// Why the replicator could not tell which column is which (`ColumnIdentity`): the columns
    /// then carry no numbers, and the applier stops on the change unless a table snapshot covers it.
    public var unidentified: String?
    /// With `unidentified`: the commit LSN of the transaction whose Relation message described the
    /// table so (its changes until the next Relation message have this shape). A table snapshot
    /// taken after it read the same shape exactly, numbers included: no DDL on the table can come
    /// between the message and a change that still uses it. Absent when not known (a streamed
    /// transaction's message), and then nothing is concluded from it.
    public var unidentifiedSince: LSN?

    enum CodingKeys: String, CodingKey {
        case table, columns, key, oid, announced, unidentified
        case sourceName = "source_name", unidentifiedSince = "unidentified_since"
    }

    public init(table: QualifiedName, columns: [ColumnSchema], key: [String], oid: UInt32? = nil, sourceName: QualifiedName? = nil,
                announced: Bool? = nil, unidentified: String? = nil, unidentifiedSince: LSN? = nil) {
        self.table = table
        self.columns = columns
        self.key = key
        self.oid = oid
        self.sourceName = sourceName
        self.announced = announced
        self.unidentified = unidentified
        self.unidentifiedSince = unidentifiedSince
    }

    public var columnNames: [String] { columns.map(\.name) }

    /// Whether every column carries its catalog number (manifests before tributary tracked them do not).
    public var identifiesColumns: Bool { !columns.isEmpty && columns.allSatisfy { $0.attnum != nil } }

    public func column(attnum: Int) -> ColumnSchema? { columns.first { $0.attnum == attnum } }
}

/// Type names read from a manifest go into DDL on the target (`CREATE TABLE … (col <type>)`): what
/// the staging store holds must not be able to run SQL there. A well-formed name is words, at most
/// one numeric modifier and array brackets (`numeric(12,2)`, `timestamp(3) with time zone`,
/// `character varying(64)[]`, `"char"`), and nothing else; the applier also has the target parse it
/// as a type (`to_regtype`) before use.
public enum StagingTypeName {
    public static func isWellFormed(_ name: String) -> Bool {
        var rest = Substring(name)
        while rest.hasSuffix("[]") { rest = rest.dropLast(2) }
        if rest == "\"char\"" { return true }
        var sawModifier = false, expectWord = true
        var index = rest.startIndex
        while index < rest.endIndex {
            let character = rest[index]
            if character == "(" {
                guard !sawModifier, !expectWord, let close = rest[index...].firstIndex(of: ")") else { return false }
                let numbers = rest[rest.index(after: index)..<close].split(separator: ",", omittingEmptySubsequences: false)
                guard (1...2).contains(numbers.count), numbers.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCIIDigit) }) else { return false }
                sawModifier = true
                index = rest.index(after: close)
                continue
            }
            if character == " " {
                guard !expectWord else { return false }
                expectWord = true
            } else if expectWord {
                guard character.isASCIILowercaseLetter || character == "_" else { return false }
                expectWord = false
            } else {
                guard character.isASCIILowercaseLetter || character.isASCIIDigit || character == "_" || character == "." else { return false }
            }
            index = rest.index(after: index)
        }
        return !expectWord
    }
}

extension RelationSchema {
    /// Column types that are not well-formed type names (see `StagingTypeName`).
    public var malformedTypes: [String] { columns.map(\.stagingType).filter { !StagingTypeName.isWellFormed($0) } }
}

extension Character {
    var isASCIILowercaseLetter: Bool { isASCII && isLowercase && isLetter }
    var isASCIIDigit: Bool { isASCII && isNumber }
}
