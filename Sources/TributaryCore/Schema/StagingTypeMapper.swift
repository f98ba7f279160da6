/// What the catalog says of one type, enough to decide its STG type.
public struct CatalogType: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case base, composite, domain, enumeration, pseudo, range, multirange
    }

    public var oid: UInt32
    public var schema: String
    public var kind: Kind
    /// For a domain: the type it is over, and `format_type(base, domain's typmod)`.
    public var baseTypeOID: UInt32
    public var baseFormatted: String
    /// For an array type: its element type.
    public var elementOID: UInt32
    public var isArray: Bool

    public init(oid: UInt32, schema: String, kind: Kind, baseTypeOID: UInt32 = 0, baseFormatted: String = "",
                elementOID: UInt32 = 0, isArray: Bool = false) {
        self.oid = oid
        self.schema = schema
        self.kind = kind
        self.baseTypeOID = baseTypeOID
        self.baseFormatted = baseFormatted
        self.elementOID = elementOID
        self.isArray = isArray
    }
}

/// Chooses each STG column's type.
///
/// STG lives in another database, where the sources' enums, domains and composite types do not exist.
/// Built-in types are kept as they are; a domain becomes its base type; anything user-defined becomes
/// `text`, whose text form is identical, so COPY moves values unchanged and the BL layer casts.
public enum StagingTypeMapper {
    public struct UnknownType: Error, Equatable {
        public let oid: UInt32
    }

    /// - Parameter formattedWithModifier: `format_type(oid, typmod)` of the column, used when the type is kept.
    public static func stagingType(
        oid: UInt32, formattedWithModifier: String, catalog: [UInt32: CatalogType]
    ) throws -> String {
        try replacement(for: oid, catalog: catalog) ?? formattedWithModifier
    }

    /// nil when the type is kept as the column formats it; otherwise the type to use instead.
    private static func replacement(for oid: UInt32, catalog: [UInt32: CatalogType]) throws -> String? {
        guard let type = catalog[oid] else { throw UnknownType(oid: oid) }
        if type.isArray {
            return try replacement(for: type.elementOID, catalog: catalog).map { $0 + "[]" }
        }
        switch type.kind {
        case .domain:
            return try replacement(for: type.baseTypeOID, catalog: catalog) ?? type.baseFormatted
        case .base, .range, .multirange, .pseudo:
            return type.schema == "pg_catalog" ? nil : "text"
        case .composite, .enumeration:
            return "text"
        }
    }
}
